"""The one pipeline: pending events → rules → violations and processes → tasks → audit.

The same `run_once` serves both runners: a thread in embedded mode (engine/runner.py) and, with
Redis, the workers (worker/), each draining the partitions it holds. A batch of events is handled
in one transaction; if one of them fails, the batch rolls back and is handled again event by
event, each in a savepoint: the failing event waits and is tried again (backoff), and after its
last attempt becomes a dead letter with its error; the events behind it go on; nothing is
acknowledged twice. On PostgreSQL the batch holds its events' rows, so two runners never handle
one event, and one that waited re-reads them (already processed ones drop out).

Each runner holds its own rule matcher, which only tests each event against each pattern:
everything rules remember between events (correlations, windows, deadlines) is rows of the
database written in the batch's transaction (engine/rules/state.py), so which worker handled an
event, or whether it restarted since, changes no detection, and nothing is replayed on start.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.clock import SYSTEM_CLOCK, Clock
from engine.db import Database, insert_unless_present, is_transient, utcnow
from engine.events.models import FAILED, PENDING, PROCESSED, Event
from engine.events.vocabulary import Vocabulary
from engine.incidents import service as incidents
from engine.incidents.models import RULE
from engine.notify import service as notify
from engine.ops.logs import log_context
from engine.ops.metrics import PIPELINE_PASS, timed
from engine.playbooks import service as playbooks
from engine.playbooks.definitions import SUGGESTION
from engine.processes.models import MessageWait
from engine.processes.service import ProcessRuntime
from engine.processes.spiff import bpmn_message_names
from engine.rules import (
    DuplicateMessage,
    RuleMatcher,
    RuleSet,
    compile_ruleset,
    parse_rules,
    to_message,
)
from engine.rules.compiler import split_part
from engine.rules.correlation import CorrelationRules
from engine.rules.format import Rule
from engine.rules.state import StateKey
from engine.rules.temporal import Detection, TemporalRules
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.timers.models import PENDING as TIMER_PENDING
from engine.timers.models import Timer
from engine.violations.models import RuleMatch, Violation

log = logging.getLogger(__name__)


@dataclass
class LiveRuleset:
    """A published scenario version whose rules are loaded in the matcher."""

    version_id: int
    name: str
    rules: RuleSet
    event_types: frozenset[str]
    windowed: dict[str, tuple[Rule, ...]]  # RuleSet.windowed_by_type
    correlated: dict[str, tuple[Rule, ...]]  # RuleSet.correlated_by_type


_EVENTS = Event.__table__
# A Core executemany, not the ORM's bulk UPDATE by primary key: 2 % of a batch's Python calls.
_MARK_PROCESSED = update(_EVENTS).where(_EVENTS.c.id == bindparam("event_id")).values(
    status=PROCESSED, error=None, processed_at=bindparam("processed_at"))


# How long a due BPMN timer waits for a message received before it and not yet handled.
DEFER_FOR_MESSAGE = timedelta(milliseconds=200)
# A timer of an instance that also waits for a message fires this long after it is due at the
# earliest: an event is stamped received before its request commits, so a message received just
# before the due moment may not be visible yet when the timer is due (ingestion commits in
# milliseconds; a second leaves room for a loaded server). The winner is still decided by the
# due moment, not by when the timer fires.
MESSAGE_SETTLE = timedelta(seconds=1)


def _wait_matches(prop: str | None, value: str, data: dict) -> bool:
    """True if a message wait (correlation property, JSON value) takes an event with `data`."""
    return value == json.dumps(data.get(prop) if prop else None, ensure_ascii=False)


class Pipeline:
    """Processes pending events in id order; owns the rule matcher of this process."""

    def __init__(self, db: Database, vocabulary: Vocabulary, runtime: ProcessRuntime,
                 temporal: TemporalRules, clock: Clock = SYSTEM_CLOCK,
                 max_attempts: int = 3, retry_base_s: float = 2.0, retry_factor: float = 5.0,
                 email: bool = False):
        self.db, self.vocabulary, self.runtime = db, vocabulary, runtime
        self.email = email  # the e-mail channel is on: rule notices reach mailboxes too
        self.temporal = temporal
        self.states = temporal.states  # every row rules keep, read and written once a batch
        self.correlations = CorrelationRules(self.states, temporal.calendar)
        self.clock = clock
        self.max_attempts, self.retry_base_s = max_attempts, retry_base_s
        self.retry_factor = retry_factor
        self._message_types_of: tuple[int | None, frozenset[str]] = (None, frozenset())
        self.matcher = RuleMatcher()
        self.live: dict[str, LiveRuleset] = {}
        self._generation: frozenset[int] | None = None
        self._rulesets: dict[int, RuleSet] = {}  # parsed rules by version id (retired ones too)
        # Event by event after a failed batch: each scenario's part in its own savepoint, its
        # failures kept as incidents (see _handle).
        self._isolating = False

    # -- rules ------------------------------------------------------------------------------

    def refresh_rules(self, session: Session) -> None:
        """Load newly published versions, unload retired ones; read again the message types
        processes may wait for when versions were added."""
        # One query a batch: (id, status) of every version. The set of published ids, not
        # (count, max id): two publishes committing in the other order than their ids, one
        # retiring an old version, would leave both unchanged.
        versions = session.execute(select(ScenarioVersion.id, ScenarioVersion.status)).all()
        self._refresh_message_types(session, len(versions))
        generation = frozenset(id_ for id_, status in versions if status == PUBLISHED)
        if generation == self._generation:
            return
        versions = {f"{v.key}@{v.version}": v for v in session.scalars(
            select(ScenarioVersion).where(ScenarioVersion.status == PUBLISHED))}
        for name in list(self.live):
            if name not in versions:
                self.matcher.unload(name)
                del self.live[name]
        for name, version in versions.items():
            if name in self.live:
                continue
            rules = self._rules_of(version)
            # Compiled again from the rules, not read from the version: a version stored by an
            # older engine may hold durable joins, and this one keeps joins in the database.
            self.matcher.load(name, compile_ruleset(rules, name))
            self.live[name] = LiveRuleset(version.id, name, rules, rules.event_types,
                                          rules.windowed_by_type, rules.correlated_by_type)
        self._generation = generation

    def _rules_of(self, version: ScenarioVersion) -> RuleSet:
        if version.id not in self._rulesets:
            self._rulesets[version.id] = parse_rules(
                version.files[version.manifest.get("rules", "rules.yaml")],
                f"{version.key}/rules.yaml", self.vocabulary.field_types())
        return self._rulesets[version.id]

    @staticmethod
    def _message(event: Event) -> dict:
        return to_message(event.id, event.type, event.ce_source, event.subject, event.data)

    # -- events -----------------------------------------------------------------------------

    @timed(PIPELINE_PASS)
    def run_once(self, limit: int = 200, partitions: Collection[int] | None = None) -> int:
        """Process up to `limit` pending events (of these partitions, if given: the caller holds
        them) whose time has come, in id order; return how many were handled."""
        try:
            # Fast: the whole batch in one transaction, no savepoint per event (two statements
            # an event, a sixth of a worker's time when measured).
            return self._run(limit, partitions, careful=False)
        except Exception as exc:  # noqa: BLE001 - one event failed: the batch rolled back
            log.info("a batch of events failed (%s: %s); handling it event by event",
                     type(exc).__name__, exc)
            return self._run(limit, partitions, careful=True)

    def _run(self, limit: int, partitions: Collection[int] | None, careful: bool) -> int:
        try:
            with self.db.session() as session:
                self.refresh_rules(session)
                now = self.clock.now()
                query = (select(Event).where(
                    Event.status == PENDING,
                    or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now))
                    .order_by(Event.id).limit(limit))
                if partitions is not None:
                    query = query.where(Event.partition.in_(partitions))
                if self.db.is_postgres:
                    query = query.with_for_update()
                events = [e for e in session.scalars(query) if e.status == PENDING]
                done: list[dict] = []
                # Every row the batch's rules may change, locked at once in one order.
                self.states.prefetch(session, self._states_wanted(events))
                if careful:
                    handled = self._handle_carefully(session, events, now, done)
                else:
                    handled = self._handle_all(session, events, done)
                self._write_rules(session)
                if done:  # one executemany for the batch's processed events, not an UPDATE each
                    session.execute(_MARK_PROCESSED, done)
            return handled
        finally:
            self._discard_rules()  # nothing is left over from a batch, committed or not

    def _write_rules(self, session: Session) -> None:
        self.temporal.write(session)
        self.states.write(session)

    def _discard_rules(self) -> None:
        self.temporal.discard()
        self.states.discard()

    def _handle_all(self, session: Session, events: list[Event], done: list[dict]) -> int:
        for event in events:
            with log_context(event_id=event.id):
                self._handle(session, event)
            self._processed(event, done)
        return len(events)

    def _states_wanted(self, events: list[Event]) -> Iterator[StateKey]:
        for event in events:
            message = None
            for live in self.live.values():
                windowed = live.windowed.get(event.type, ())
                correlated = live.correlated.get(event.type, ())
                if windowed or correlated:
                    message = message or self._message(event)
                    yield from self.temporal.windows_wanted(live.version_id, windowed, message)
                    yield from self.correlations.keys_wanted(live.version_id, correlated,
                                                             message)

    def _handle_carefully(self, session: Session, events: list[Event], now,
                          done: list[dict]) -> int:
        # Each event in a savepoint, its rule windows written with it: a failing event is marked
        # (backoff, then dead letter) and the batch stops after it. Within an event, each
        # scenario's part is isolated (_isolating): a scenario's failure is its incident.
        self._isolating = True
        try:
            return self._handle_each(session, events, now, done)
        finally:
            self._isolating = False

    def _handle_each(self, session: Session, events: list[Event], now,
                     done: list[dict]) -> int:
        for index, event in enumerate(events):
            with log_context(event_id=event.id):
                try:
                    with session.begin_nested():
                        self._handle(session, event)
                        self._write_rules(session)
                except Exception as exc:  # noqa: BLE001 - a bad event must not stop the others
                    # What its rules changed was rolled back with it: read again from here on.
                    self._discard_rules()
                    if is_transient(exc):
                        # Another step changed one of its instances meanwhile (or PostgreSQL
                        # chose this side of a deadlock): leave it pending, no attempt counted,
                        # and stop here, so that later events of that instance keep their order.
                        log.info("event %s met a concurrent step (%s); retrying later",
                                 event.id, str(exc).splitlines()[0])
                        return index
                    self._failed(session, event, exc, now)
                    return index + 1
            self._processed(event, done)
        return len(events)

    @staticmethod
    def _processed(event: Event, done: list[dict]) -> None:
        done.append({"event_id": event.id, "processed_at": utcnow()})

    def _failed(self, session: Session, event: Event, exc: Exception, now) -> None:
        """One failed attempt: wait with backoff, or after the last one become a dead letter."""
        event.attempts += 1
        event.error = f"{type(exc).__name__}: {exc}"[:2000]
        if event.attempts < self.max_attempts:
            log.warning("event %s failed (attempt %d of %d): %s", event.id, event.attempts,
                        self.max_attempts, event.error)
            delay = self.retry_base_s * self.retry_factor ** (event.attempts - 1)
            event.next_attempt_at = now + timedelta(seconds=delay)
            return
        log.exception("event %s failed for good: a dead letter", event.id)
        event.status, event.next_attempt_at, event.processed_at = FAILED, None, utcnow()
        audit.record(session, "event.failed", actor="engine", subject_type="event",
                     subject_id=event.id, details={"error": event.error,
                                                   "attempts": event.attempts})

    def drain(self, limit: int = 200, partitions: Collection[int] | None = None) -> int:
        """Process pending events until none is ready; return how many were handled."""
        total = 0
        while (n := self.run_once(limit, partitions)):
            total += n
        return total

    def _handle(self, session: Session, event: Event) -> None:
        self._deliver_messages(session, event)
        message = self._message(event)
        for live in list(self.live.values()):
            if event.type not in live.event_types:
                continue
            if not self._isolating:
                self._apply_rules(session, event, live, message)
                continue
            # Handled again event by event after a failure: one scenario's failure must not
            # stop the others from handling this event. Its rules' part is rolled back, with
            # what they changed in the batch's rule state, and kept as an incident.
            try:
                with session.begin_nested():
                    self._apply_rules(session, event, live, message)
                    self._write_rules(session)
            except Exception as exc:  # noqa: BLE001 - any fault of that scenario's rules
                self._discard_rules()
                if is_transient(exc):
                    raise
                log.warning("scenario %s failed on event %s: %s", live.name, event.id, exc)
                incidents.open_incident(
                    session, kind=RULE, scenario_key=live.name.rsplit("@", 1)[0],
                    version_id=live.version_id, element=None, actor="engine",
                    error=f"{type(exc).__name__}: {exc}", payload={"event_id": event.id})

    def _apply_rules(self, session: Session, event: Event, live: LiveRuleset,
                     message: dict) -> None:
        """Post the event to one scenario's rules and act on what they match."""
        try:
            matches = self.matcher.post(live.name, message)
        except DuplicateMessage:
            raise RuntimeError(f"the rule engine had already seen event {event.id} in "
                               f"{live.name}") from None
        parts: dict[str, set[str]] = {}
        for match in matches:
            rule_key, part = split_part(match.rule_key)
            if part is None:
                ids = sorted(int(m["id"]) for m in match.events.values())
                self._on_match(session, live.version_id, Detection(
                    rule_key, match.events, ids))
            else:
                parts.setdefault(rule_key, set()).add(part)
        moment = event.time or event.received_at
        for rule_key, matched in parts.items():
            rule = live.rules.rule(rule_key)
            if rule.join is not None:
                detection = self.correlations.observe(session, live.version_id, rule, matched,
                                                      message, moment)
            else:
                detection = self.temporal.observe(session, live.version_id, rule, matched,
                                                  message, moment)
            if detection is not None:
                self._on_match(session, live.version_id, detection)

    def fire_rule_timer(self, session: Session, timer: Timer) -> None:
        """A temporal rule's deadline passed (scheduler handler for rule timers)."""
        version = self.runtime.version(session, timer.payload["version_id"])
        rule = self._rules_of(version).rule(timer.payload["rule"])
        event = session.get(Event, timer.payload["event_id"])
        detection = self.temporal.on_timer(rule, timer, self._message(event))
        # A scenario that fails to start here is its incident, not a failed timer.
        self._on_match(session, version.id, detection, isolate=True)

    def _refresh_message_types(self, session: Session, count: int) -> None:
        """The event types some process of any stored version may wait for (its BPMN messages;
        retired versions count: their instances still wait); read again when versions change."""
        if count != self._message_types_of[0]:
            names: set[str] = set()
            for version in session.scalars(select(ScenarioVersion)):
                names |= bpmn_message_names(version.files.get(
                    version.manifest.get("process", "process.bpmn"), ""))
            self._message_types_of = (count, frozenset(names))

    def fire_process_timer(self, session: Session, timer: Timer) -> None:
        """A BPMN timer is due (scheduler handler): fire it, unless a message its instance waits
        for was received before it fell due, or at that very moment, and is not handled yet:
        that message came first, so the timer waits for it (and loses an event-based gateway
        to it; a tie goes to the message, as in runtime.deliver_message)."""
        deferred = timer.payload.get("deferred_from")
        due = datetime.fromisoformat(deferred) if deferred else timer.due_at
        waits = session.execute(select(MessageWait.message_name, MessageWait.correlation_property,
                                       MessageWait.correlation_value)
                                .where(MessageWait.instance_id == timer.instance_id)).all()
        now = self.clock.now()
        if waits and (now < due + MESSAGE_SETTLE or
                      self._message_pending_before(session, waits, due)):
            timer.status, timer.fired_at, timer.lateness_ms = TIMER_PENDING, None, None
            timer.payload = {**timer.payload, "deferred_from": due.isoformat()}
            timer.due_at = max(now + DEFER_FOR_MESSAGE, due + MESSAGE_SETTLE)
            return
        self.runtime.fire_timer(session, timer)

    @staticmethod
    def _message_pending_before(session: Session, waits: list, moment: datetime) -> bool:
        """True if an event received by `moment` (at it or before) and not yet handled would be
        delivered through one of these message waits (its type, its correlation value)."""
        candidates = session.scalars(select(Event).where(
            Event.status == PENDING, Event.type.in_({w.message_name for w in waits}),
            Event.received_at <= moment))
        return any(_wait_matches(prop, value, event.data)
                   for event in candidates for name, prop, value in waits
                   if name == event.type)

    def _deliver_messages(self, session: Session, event: Event) -> None:
        if event.type not in self._message_types_of[1]:
            return  # no process can be waiting for it: spare the lookup
        # A wait correlates on one field of the event (or on none): ask, in one indexed query,
        # for the waits whose value is one of the event's field values, then keep those whose
        # own field has that value.
        values = {json.dumps(value, ensure_ascii=False) for value in event.data.values()}
        values.add(json.dumps(None))
        instance_ids = {
            instance_id for instance_id, prop, value in session.execute(
                select(MessageWait.instance_id, MessageWait.correlation_property,
                       MessageWait.correlation_value).where(
                    MessageWait.message_name == event.type,
                    MessageWait.correlation_value.in_(values)))
            if _wait_matches(prop, value, event.data)}
        for instance_id in sorted(instance_ids):
            self.runtime.deliver_message(session, instance_id, event.type, event.data,
                                         actor="engine", event_id=event.id,
                                         received_at=event.received_at,
                                         isolate=self._isolating)

    def _on_match(self, session: Session, version_id: int, match: Detection,
                  isolate: bool = False) -> None:
        ids = match.event_ids
        ids_key = ",".join(str(i) for i in ids)
        if len(ids_key) > 200:  # a long window: its ids are kept in full in event_ids
            ids_key = "sha256:" + hashlib.sha256(ids_key.encode()).hexdigest()
        match_id = insert_unless_present(session, RuleMatch, {
            "scenario_version_id": version_id, "rule_key": match.rule_key,
            "event_ids_key": ids_key, "event_ids": ids})
        if match_id is None:
            return  # this rule already matched these events: acted on once
        version = self.runtime.version(session, version_id)
        rule = self._rules_of(version).rule(match.rule_key)
        action = rule.then
        actor = f"rule:{version.key}/{rule.key}"
        audit.record(session, "rule.matched", actor=actor, subject_type="rule_match",
                     subject_id=match_id, details={"scenario": version.key,
                                                 "version": version.version, "rule": rule.key,
                                                 "event_ids": ids, **({"window": match.window}
                                                                      if match.window else {})})
        filled = action.render(match.events)
        if action.open == SUGGESTION:  # a playbook: a person decides whether it runs
            playbooks.suggest(session, version, rule_key=rule.key, match_id=match_id,
                              filled=filled, event_ids=ids, actor=actor, now=self.clock.now(),
                              email=self.email)
            return
        subject = filled["subject"] or None
        data = dict(filled["data"])
        if match.window:
            data.setdefault("rule_window", match.window)
        violation = None
        if action.open:
            title = filled["title"]
            violation = Violation(
                kind=action.open, scenario_version_id=version.id, scenario_key=version.key,
                rule_key=rule.key, match_id=match_id,
                severity=filled["severity"] or version.severity,
                title_vi=(title.get("vi") or version.name_vi)[:500],
                title_en=(title.get("en") or version.name_en)[:500],
                subject=subject, event_ids=ids, opened_at=self.clock.now())
            session.add(violation)
            session.flush()
            audit.record(session, f"{action.open}.opened", actor=actor,
                         subject_type="violation", subject_id=violation.id,
                         details={"title": violation.title_vi, "severity": violation.severity,
                                  "subject": subject, "event_ids": ids})
            data["violation_id"] = violation.id
        instance = self.runtime.start(session, version, data, actor=actor, subject=subject,
                                      isolate=isolate or self._isolating,
                                      details={"rule": rule.key, "event_ids": ids})
        if violation is not None:
            violation.instance_id = instance.id
        for notice in filled["notify"]:
            text = notice["text"]
            notify.send(session, kind="rule.notify", actor=actor, department_key=notice["to"],
                        role=notice["role"], instance_id=instance.id, email=self.email,
                        subject=(filled["title"].get("vi") or rule.name.get("vi") or rule.key),
                        text="\n".join(t for t in (text.get("vi"), text.get("en")) if t))
