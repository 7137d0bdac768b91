"""Temporal rules: absence, counting windows, sustained thresholds and silence, per key.

durable-rules filters each event (the single-pattern parts compiled by compile_temporal); what
happens over time is kept here, in the database, in the transaction of the event or timer that
changes it:
- absent and silence become timers (engine/timers) due at the deadline; the awaited event
  cancels an absence timer, each new event moves a silence timer later;
- count and sustained keep a small window per key in `rule_states`.
So a restart loses no pending window or deadline and counts nothing twice, and waits measured in
working days hold no memory in the rule engine.

Within a batch of events the windows its events may need are read (and locked) in one query
before the first event (`prefetch`), kept here, and stored once per key by `write`, just before
the batch commits, with the silence deadlines moved in one executemany and the absence
deadlines ended in one (those the batch set are written then): a station sending a reading a
second costs a share of three statements per batch instead of three statements per reading. A
batch that rolls back calls `discard`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.events.vocabulary import parse_datetime
from engine.rules.compiler import HOLD, START, STOP
from engine.rules.format import Rule, Temporal
from engine.rules.message import field_value
from engine.rules.models import RuleState
from engine.timers import service as timers
from engine.timers.models import CANCELLED, RULE, Timer
from engine.worktime.calendar import WorkingCalendar

MAX_KEPT_IDS = 200  # event ids a sustained streak remembers for its match record


@dataclass(frozen=True)
class Detection:
    """A rule that matched: its events by alias, their ids, and what the window saw."""

    rule_key: str
    events: dict[str, dict]
    event_ids: list[int]
    window: dict = field(default_factory=dict)


def key_of(temporal: Temporal, message: dict) -> str:
    """The key value of an event, as text: '["HS-1"]' or '["HS-1", "tham-dinh"]'."""
    text = json.dumps([field_value(message, name) for name in temporal.key],
                      ensure_ascii=False, default=str)
    # Long keys are hashed so that the key column and timer refs stay bounded.
    return text if len(text) <= 200 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def timer_ref(version_id: int, rule_key: str, key: str) -> str:
    """The timer ref of one rule's deadline for one key."""
    return f"{version_id}:{rule_key}:{key}"


@dataclass
class _Window:
    """A key's window as the batch sees it: its stored row (locked; None when the key is new)."""

    row: RuleState | None
    state: dict
    changed: bool = False


@dataclass
class _Absence:
    """A key's absence deadlines as the batch changed them: the earliest moment an awaited event
    came (the stored pending deadlines due after it are cancelled at `write`), and the deadlines
    the batch set, [due, payload, still pending] in order."""

    stopped_at: datetime | None = None
    new: list[list] = field(default_factory=list)


class TemporalRules:
    """Applies the parts of temporal rules that durable-rules matched to their stored windows."""

    def __init__(self, calendar: WorkingCalendar, clock: Clock):
        self.calendar, self.clock = calendar, clock
        # What the current batch changed, not yet written: windows by (version, rule, key) and
        # the latest silence deadline (with its payload) by timer ref.
        self._windows: dict[tuple[int, str, str], _Window] = {}
        self._silences: dict[str, tuple[datetime, dict]] = {}
        # And the absence deadlines it set or cancelled, by timer ref.
        self._absences: dict[str, _Absence] = {}

    def write(self, session: Session) -> None:
        """Store what the events since the last write changed, each window and silence deadline
        once, in the caller's transaction (which commits them with the events)."""
        for (version_id, rule_key, key), window in self._windows.items():
            if not window.changed:
                continue
            if window.row is None:
                session.add(RuleState(scenario_version_id=version_id, rule_key=rule_key,
                                      key=key, state=window.state))
            else:
                window.row.state = window.state
        if self._silences:
            timers.postpone(session, RULE, self._silences)
        # Cancelled before the batch's own deadlines are added, which the cuts must not reach.
        cuts = {ref: a.stopped_at for ref, a in self._absences.items() if a.stopped_at}
        if cuts:
            timers.cancel_due_after(session, RULE, cuts)
        for ref, absence in self._absences.items():
            for due, payload, pending in absence.new:
                timer = timers.schedule(session, RULE, ref, due, payload=payload)
                if not pending:
                    timer.status = CANCELLED
        self.discard()

    def prefetch(self, session: Session, wanted: Iterable[tuple[int, Rule, dict]]) -> None:
        """Read (and lock) at once the windows a batch's events may need: (version id, count or
        sustained rule, message) each; one query for the batch instead of one per key."""
        keys = {(version_id, rule.key, key_of(rule.temporal, message))
                for version_id, rule, message in wanted} - self._windows.keys()
        if not keys:
            return
        rows = session.scalars(select(RuleState).where(tuple_(
            RuleState.scenario_version_id, RuleState.rule_key, RuleState.key).in_(keys))
            .order_by(RuleState.id).with_for_update())  # one lock order for every worker
        for row in rows:
            self._windows[(row.scenario_version_id, row.rule_key, row.key)] = _Window(
                row, dict(row.state))
        for missing in keys - self._windows.keys():
            self._windows[missing] = _Window(None, {})

    def discard(self) -> None:
        """Forget what was not written (its transaction rolled back)."""
        self._windows.clear()
        self._silences.clear()
        self._absences.clear()

    def observe(self, session: Session, version_id: int, rule: Rule, parts: set[str],
                message: dict, moment: datetime) -> Detection | None:
        """One event matched `parts` of `rule` at `moment` (its time); a detection if complete."""
        temporal = rule.temporal
        key = key_of(temporal, message)
        form = temporal.form
        if form == "absent":
            self._absent(session, version_id, rule, parts, message, moment, key)
            return None
        if form == "silence":
            self._silence(session, version_id, rule, message, moment, key)
            return None
        if form == "count":
            return self._count(session, version_id, rule, message, moment, key)
        return self._sustained(session, version_id, rule, parts, message, moment, key)

    def on_timer(self, rule: Rule, timer: Timer, message: dict) -> Detection:
        """A deadline of `rule` passed (absence or silence): the detection for its event."""
        alias = rule.patterns[0].alias
        window = {"form": rule.temporal.form, "key": timer.ref.split(":", 2)[2],
                  "due_at": timer.due_at.isoformat(), **timer.payload.get("window", {})}
        return Detection(rule.key, {alias: message}, [int(message["id"])], window)

    # -- forms ------------------------------------------------------------------------------

    def _absent(self, session: Session, version_id: int, rule: Rule, parts: set[str],
                message: dict, moment: datetime, key: str) -> None:
        temporal = rule.temporal
        # Kept until `write`: an INSERT for each deadline and an UPDATE for each awaited event
        # were a third of a batch's statements (measured), now one executemany each a batch.
        absence = self._absences.setdefault(timer_ref(version_id, rule.key, key), _Absence())
        if STOP in parts:
            # What came in time cancels the wait; a deadline already passed still fires.
            if absence.stopped_at is None or moment < absence.stopped_at:
                absence.stopped_at = moment
            for new in absence.new:
                new[2] = new[2] and new[0] <= moment
        if START in parts:
            if temporal.by:
                due = parse_datetime(str(field_value(message, temporal.by) or ""))
                if due is None:
                    raise ValueError(f"rule {rule.key}: field '{temporal.by}' of event "
                                     f"{message['id']} is not a date-time")
            else:
                due = temporal.within.resolve(message.get("data") or {}).after(
                    moment, self.calendar)
            absence.new.append([due, {
                "version_id": version_id, "rule": rule.key, "event_id": message["id"],
                "window": {"started_at": moment.isoformat(),
                           "awaited": temporal.stop.event}}, True])

    def _silence(self, session: Session, version_id: int, rule: Rule, message: dict,
                 moment: datetime, key: str) -> None:
        ref = timer_ref(version_id, rule.key, key)
        span = rule.temporal.within.resolve(message.get("data") or {})
        # Silence is about hearing nothing *now*: a reading that arrives late (a station
        # back-filling its buffer, a replayed day) proves the station is talking, so the wait
        # starts from when it is processed, not from its old timestamp.
        due = span.after(max(moment, self.clock.now()), self.calendar)
        # A late-arriving older event never pulls the deadline earlier (`postpone` at write).
        kept = self._silences.get(ref)
        if kept is None or kept[0] < due:
            self._silences[ref] = (due, {
                "version_id": version_id, "rule": rule.key, "event_id": message["id"],
                "window": {"last_seen": moment.isoformat(), "silent_for": str(span)}})

    def _window(self, session: Session, version_id: int, rule: Rule, key: str) -> _Window:
        window = self._windows.get((version_id, rule.key, key))
        if window is None:
            # Locked until the batch commits: with several workers, two partitions may share a
            # rule key (a key that is not the events' subject); their batches take turns
            # (SQLite ignores it: one writer).
            row = session.scalars(select(RuleState).where(
                RuleState.scenario_version_id == version_id, RuleState.rule_key == rule.key,
                RuleState.key == key).with_for_update()).first()
            window = _Window(row, dict(row.state) if row is not None else {})
            self._windows[(version_id, rule.key, key)] = window
        return window

    @staticmethod
    def _keep(window: _Window, state: dict) -> None:
        window.state, window.changed = state, True

    def _count(self, session: Session, version_id: int, rule: Rule, message: dict,
               moment: datetime, key: str) -> Detection | None:
        temporal = rule.temporal
        span = temporal.within.resolve(message.get("data") or {})
        window = self._window(session, version_id, rule, key)
        seen = [(datetime.fromisoformat(at), i) for at, i in window.state.get("events", [])]
        seen.append((moment, int(message["id"])))
        # Keep what is still inside the window that ends with this event.
        seen = sorted(s for s in seen if span.after(s[0], self.calendar) > moment)
        if len(seen) >= temporal.count:
            # Counted events are used up: the next alarm needs new ones.
            self._keep(window, {"events": []})
            return Detection(rule.key, {rule.patterns[0].alias: message},
                             sorted(i for _, i in seen),
                             {"form": "count", "key": key, "count": len(seen),
                              "first_at": seen[0][0].isoformat(),
                              "last_at": seen[-1][0].isoformat(), "within": str(span)})
        self._keep(window, {"events": [[at.isoformat(), i] for at, i in seen]})
        return None

    def _sustained(self, session: Session, version_id: int, rule: Rule, parts: set[str],
                   message: dict, moment: datetime, key: str) -> Detection | None:
        temporal = rule.temporal
        window = self._window(session, version_id, rule, key)
        if HOLD not in parts:
            if window.state:
                self._keep(window, {})  # the streak is broken by a reading that does not hold
            return None
        state = dict(window.state) or {"since": moment.isoformat(), "ids": [], "n": 0}
        state["n"] += 1
        state["ids"] = (state["ids"] + [int(message["id"])])[-MAX_KEPT_IDS:]
        state["last"] = moment.isoformat()
        since = datetime.fromisoformat(state["since"])
        enough = (temporal.readings is not None and state["n"] >= temporal.readings) or (
            temporal.within is not None and temporal.within.elapsed(since, moment, self.calendar)
            >= temporal.within.resolve(message.get("data") or {}).length(self.calendar))
        detection = None
        if enough and not state.get("fired"):
            state["fired"] = True  # once per streak; a reading below the limit re-arms it
            detection = Detection(rule.key, {rule.patterns[0].alias: message},
                                  sorted(state["ids"]),
                                  {"form": "sustained", "key": key, "readings": state["n"],
                                   "since": state["since"], "until": state["last"]})
        self._keep(window, state)
        return detection
