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
before the first event (`windows_wanted`, given to RuleStates.prefetch) and stored once per key
when the batch ends (engine/rules/state.py); `write` moves the silence deadlines in one
executemany and ends the absence deadlines in one (those the batch set are written then): a
station sending a reading a second costs a share of three statements per batch instead of three
statements per reading. A batch that rolls back calls `discard`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.events.vocabulary import parse_datetime
from engine.rules.compiler import HOLD, START, STOP
from engine.rules.format import Rule, Temporal
from engine.rules.message import field_value
from engine.rules.state import RuleStates, StateKey, key_text
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
    return key_text([field_value(message, name) for name in temporal.key])


def timer_ref(version_id: int, rule_key: str, key: str) -> str:
    """The timer ref of one rule's deadline for one key."""
    return f"{version_id}:{rule_key}:{key}"


@dataclass
class _Absence:
    """A key's absence deadlines as the batch changed them: the earliest moment an awaited event
    came (the stored pending deadlines due after it are cancelled at `write`), and the deadlines
    the batch set, [due, payload, still pending] in order."""

    stopped_at: datetime | None = None
    new: list[list] = field(default_factory=list)


class TemporalRules:
    """Applies the parts of temporal rules that durable-rules matched to their stored windows."""

    def __init__(self, calendar: WorkingCalendar, clock: Clock, states: RuleStates | None = None):
        self.calendar, self.clock = calendar, clock
        self.states = states or RuleStates()  # the windows, shared with the correlation rules
        # What the current batch changed, not yet written: the latest silence deadline (with
        # its payload) by timer ref.
        self._silences: dict[str, tuple[datetime, dict]] = {}
        # And the absence deadlines it set or cancelled, by timer ref.
        self._absences: dict[str, _Absence] = {}

    def write(self, session: Session) -> None:
        """Store the deadlines the events since the last write set or moved, each once, in the
        caller's transaction (which commits them with the events; RuleStates writes windows)."""
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

    @staticmethod
    def windows_wanted(version_id: int, rules: tuple[Rule, ...], message: dict) \
            -> Iterator[StateKey]:
        """The windows an event may change: those of its count or sustained rules."""
        for rule in rules:
            yield version_id, rule.key, key_of(rule.temporal, message)

    def discard(self) -> None:
        """Forget what was not written (its transaction rolled back)."""
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

    def _count(self, session: Session, version_id: int, rule: Rule, message: dict,
               moment: datetime, key: str) -> Detection | None:
        temporal = rule.temporal
        span = temporal.within.resolve(message.get("data") or {})
        ref = (version_id, rule.key, key)
        seen = [(datetime.fromisoformat(at), i)
                for at, i in self.states.get(session, ref).get("events", [])]
        seen.append((moment, int(message["id"])))
        # Keep what is still inside the window that ends with this event.
        seen = sorted(s for s in seen if span.after(s[0], self.calendar) > moment)
        if len(seen) >= temporal.count:
            # Counted events are used up: the next alarm needs new ones.
            self.states.put(ref, {})
            return Detection(rule.key, {rule.patterns[0].alias: message},
                             sorted(i for _, i in seen),
                             {"form": "count", "key": key, "count": len(seen),
                              "first_at": seen[0][0].isoformat(),
                              "last_at": seen[-1][0].isoformat(), "within": str(span)})
        self.states.put(ref, {"events": [[at.isoformat(), i] for at, i in seen]})
        return None

    def _sustained(self, session: Session, version_id: int, rule: Rule, parts: set[str],
                   message: dict, moment: datetime, key: str) -> Detection | None:
        temporal = rule.temporal
        ref = (version_id, rule.key, key)
        kept = self.states.get(session, ref)
        if HOLD not in parts:
            if kept:
                self.states.put(ref, {})  # the streak is broken by a reading that does not hold
            return None
        state = kept or {"since": moment.isoformat(), "ids": [], "n": 0}
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
        self.states.put(ref, state)
        return detection
