"""The dry run: a draft scenario fed a stream of sample events in a sandbox, to see what happens.

    events = dryrun.parse_manual(text)     # or recorded(...) / simulated(...)
    report = dryrun.dry_run(files, events, vocabulary=v, calendar=c, organisation=session)

The sandbox is a throw-away engine: a SQLite database in a temporary folder (deleted afterwards)
holding a copy of the organisation, the draft published in it, one source allowed every type,
and its own `Services` on a ManualClock. Nothing real is written; no outbox runs there, so no
e-mail or webhook leaves. The sandbox's rule matcher gives its durable-rules names a prefix no
scenario key can have, and unloads them at the end, so two dry runs share nothing.

Each match of an `all:` rule says how repetition was applied: the rule's `repeat` (in words,
Vietnamese first) and the correlation key its events shared (docs/rules.md, section 2).
"""
from __future__ import annotations

import bisect
import json
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import paths
from engine.audit.models import AuditRecord
from engine.auth import service as auth
from engine.clock import ManualClock
from engine.config import Settings
from engine.db import Base, Database, utcnow
from engine.events import service as ingestion
from engine.events.models import Event, Source
from engine.events.vocabulary import Vocabulary, parse_datetime
from engine.expressions import budget
from engine.notify.models import Notification
from engine.org import service as org
from engine.org.models import OrgUnit
from engine.processes import path, spiff
from engine.processes.models import RUNNING, ProcessInstance
from engine.rules import RuleMatcher, parse_rules
from engine.rules.format import REPEAT_WORDS, Join
from engine.scenarios import service
from engine.scenarios.bpmn_checks import NS
from engine.scenarios.problems import ScenarioInvalid
from engine.scenarios.yamlsource import load_yaml
from engine.services import Services
from engine.sla.models import SlaClock
from engine.tasks.models import Task
from engine.timers.models import BPMN, RULE, SLA, Timer
from engine.violations.models import RuleMatch, Violation
from engine.worktime.calendar import CalendarError, WorkingCalendar
from engine.xmlsafe import parse
from integrations.simulator import SimulatorError, generate

ORG_FILE = paths.ORGANISATION_FILE
MAX_EVENTS = 5000
MAX_SIMULATED_HOURS = 24 * 7
# A repeating timer with a short period and a long settle could otherwise run for ever.
MAX_TIMER_PASSES = 5000
# Seconds of scenario code (conditions, scripts, timers) one whole dry run may spend: 20 events
# through `while True: pass` would otherwise hold the request 20 × the script timeout.
CODE_BUDGET_S = 10.0
MANUAL_SOURCE = "/designer/dry-run"
ACTOR = "dry-run"


class DryRunInputError(Exception):
    """Sample events that cannot be used; `problems` is [{index, field, message}]."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__("; ".join(p["message"] for p in problems))


def _problem(index: int | None, field: str, message: str) -> dict:
    """A problem of one item, Vietnamese first then English (messages of ingestion are English)."""
    where_vi = f"Sự kiện [{index}]: " if index is not None else ""
    where_en = f"event [{index}]: " if index is not None else ""
    vi = f"thiếu {field}" if message == "is required" else f"{field or 'sự kiện'} không hợp lệ"
    return {"index": index, "field": field,
            "message": f"{where_vi}{vi} / {where_en}{field + ' ' if field else ''}{message}"}


# -- where sample events come from ------------------------------------------------------------

def parse_manual(text: str, vocabulary: Vocabulary | None = None,
                 session: Session | None = None) -> list[dict]:
    """Events typed by hand: a JSON array of CloudEvents as POST /api/v1/events takes them.

    specversion, id and source may be left out (they are filled in); each item is checked like
    ingestion does, and organisation units too when `session` (the real database) is given.
    """
    try:
        items = json.loads(text)
    except (TypeError, ValueError) as exc:
        where = f" (dòng {exc.lineno}, cột {exc.colno})" if hasattr(exc, "lineno") else ""
        where_en = f" at line {exc.lineno}, column {exc.colno}" if hasattr(exc, "lineno") else ""
        raise DryRunInputError([{"index": None, "field": "", "message":
                                 f"Không đọc được JSON{where} / not valid JSON{where_en}"}]) \
            from None
    if not isinstance(items, list) or not items:
        raise DryRunInputError([{"index": None, "field": "", "message":
                                 "Cần một mảng JSON có ít nhất một sự kiện / expected a JSON "
                                 "array of at least one event"}])
    _check_count(len(items), "events")
    vocabulary = vocabulary or Vocabulary.load()
    source = Source(name=ACTOR, allowed_types=[])
    problems, events = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(_problem(index, "", "must be a JSON object"))
            continue
        event = _envelope(item, f"manual-{index}")
        found = ingestion.validate(session, event, source, vocabulary,
                                   None if session is not None else (lambda _key: True))
        problems += [_problem(index, p["field"], p["message"]) for p in found]
        events.append(event)
    if problems:
        raise DryRunInputError(problems)
    return events


def _envelope(item: dict, ce_id: str) -> dict:
    """The event with the CloudEvents fields a person need not type (kept when given)."""
    return {"specversion": "1.0", "id": ce_id, "source": MANUAL_SOURCE, **item}


def recorded(session: Session, event_types: set[str], since: datetime, until: datetime,
             limit: int = 1000) -> list[dict]:
    """Stored events of these types in [since, until), oldest first (reads the real store only)."""
    problems = [_problem(None, name, "must be a date-time with a time zone")
                for name, value in (("since", since), ("until", until))
                if not isinstance(value, datetime) or value.tzinfo is None]
    if not problems and since >= until:
        problems.append(_problem(None, "until", "must be after since"))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        problems.append(_problem(None, "limit", f"must be a whole number from 1 to {MAX_EVENTS}"))
    if problems:
        raise DryRunInputError(problems)
    if not event_types:
        return []
    moment = func.coalesce(Event.time, Event.received_at)
    rows = session.scalars(select(Event).where(
        Event.type.in_(sorted(event_types)), moment >= since, moment < until)
        .order_by(moment, Event.id).limit(limit))
    return [_cloud_event(e) for e in rows]


def _cloud_event(event: Event) -> dict:
    out = {"specversion": "1.0", "id": event.ce_id, "source": event.ce_source,
           "type": event.type, "time": (event.time or event.received_at).isoformat(),
           "data": event.data}
    if event.subject:
        out["subject"] = event.subject
    return out


def simulated(event_types: set[str], start: datetime, hours: float, seed: int = 1) -> list[dict]:
    """The simulator's events of these types in [start, start + hours), oldest first."""
    problems = []
    if not isinstance(start, datetime) or start.tzinfo is None:
        problems.append(_problem(None, "start", "must be a date-time with a time zone"))
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or \
            not 0 < hours <= MAX_SIMULATED_HOURS:
        problems.append(_problem(None, "hours", f"must be more than 0 and at most "
                                               f"{MAX_SIMULATED_HOURS}"))
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(_problem(None, "seed", "must be a whole number"))
    if problems:
        raise DryRunInputError(problems)
    try:
        plan = generate(seed, start, float(hours))
    except (SimulatorError, ValueError) as exc:
        raise DryRunInputError([_problem(None, "start", str(exc))]) from None
    events = [dict(p.event) for p in plan if p.event["type"] in event_types]
    _check_count(len(events), "hours")
    return events


def _check_count(count: int, field: str) -> None:
    if count > MAX_EVENTS:
        raise DryRunInputError([_problem(None, field, f"gives {count} events; a dry run takes at "
                                                      f"most {MAX_EVENTS}")])


def event_types(files: dict[str, str], vocabulary: Vocabulary) -> set[str]:
    """The event types a draft's rules and BPMN message events listen to (what it can parse)."""
    try:
        manifest, _ = load_yaml(files.get(service.MANIFEST) or "", service.MANIFEST)
    except ScenarioInvalid:
        manifest = None
    manifest = manifest if isinstance(manifest, dict) else {}
    rules_name = str(manifest.get("rules", "rules.yaml"))
    known = vocabulary.field_types()
    types: set[str] = set()
    if rules_name in files:
        try:
            types |= parse_rules(files[rules_name], rules_name, known).event_types
        except ScenarioInvalid:
            pass  # a broken rule file listens to nothing yet
    process = files.get(str(manifest.get("process", "process.bpmn")))
    if process:
        try:
            root = parse(process)
        except etree.XMLSyntaxError:
            return types
        names = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", NS)}
        for definition in root.iterfind(".//bpmn:messageEventDefinition", NS):
            name = names.get(definition.get("messageRef"))
            if name in known:
                types.add(name)
    return types


# -- the sandbox ------------------------------------------------------------------------------

class _SandboxMatcher(RuleMatcher):
    """A rule matcher whose durable-rules names start with a prefix no scenario key can have."""

    def __init__(self) -> None:
        super().__init__()
        # Scenario keys are lower-case words and '-'; ':' never appears in a real name.
        self.prefix = f"dry-run:{uuid.uuid4().hex}:"

    def load(self, name: str, definition) -> None:
        """Load under the prefixed name."""
        super().load(self.prefix + name, definition)

    def unload(self, name: str) -> bool:
        """Unload the prefixed name."""
        return super().unload(self.prefix + name)

    def post(self, name: str, message):
        """Post to the prefixed name."""
        return super().post(self.prefix + name, message)

    def names(self) -> list[str]:
        """The loaded names, without the prefix."""
        return [n.removeprefix(self.prefix) for n in super().names()]


class _Timeline:
    """Maps the real time at which something was written to the sandbox clock's time then.

    Some records carry real timestamps (audit, rule matches, notifications, SpiffWorkflow's
    state changes; violations, instances and tasks carry the engine clock's); the clock stands
    still during each pass, so a record belongs to the first pass that ended after it.
    """

    def __init__(self, clock: ManualClock):
        self.clock = clock
        self.real: list[datetime] = []
        self.sandbox: list[datetime] = []

    def mark(self) -> None:
        """A pass ended: everything written so far happened at or before the clock's now."""
        self.real.append(utcnow())
        self.sandbox.append(self.clock.now())

    def at(self, real: datetime | float | None) -> datetime | None:
        """The sandbox moment of something written at `real` (a datetime or a POSIX time)."""
        if real is None or not self.real:
            return None
        if not isinstance(real, datetime):
            real = datetime.fromtimestamp(real, timezone.utc)
        i = bisect.bisect_left(self.real, real)
        return self.sandbox[min(i, len(self.sandbox) - 1)]


def _no_sync(dbapi_conn, _record) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


class _Sandbox:
    """A throw-away engine on a temporary SQLite database and a ManualClock."""

    def __init__(self, folder: str, vocabulary: Vocabulary, calendar: WorkingCalendar,
                 start: datetime):
        import engine.models  # noqa: F401 - registers every model on Base.metadata

        self.db = Database(f"sqlite:///{Path(folder) / 'dry-run.sqlite3'}")
        # Thrown away afterwards: waiting for the disk at every commit buys nothing.
        sa_event.listen(self.db.engine, "connect", _no_sync)
        Base.metadata.create_all(self.db.engine)
        self.clock = ManualClock(start)
        self.ioc = Services(Settings(database_url=self.db.url), db=self.db, vocabulary=vocabulary,
                            clock=self.clock, calendar=calendar)
        self.ioc.pipeline.matcher = _SandboxMatcher()
        self.timeline = _Timeline(self.clock)
        self.timer_passes = 0

    def close(self) -> None:
        """Unload the rules from durable-rules and close the database."""
        for name in self.ioc.pipeline.matcher.names():
            self.ioc.pipeline.matcher.unload(name)
        self.db.dispose()

    def copy_organisation(self, real: Session | None) -> set[str]:
        """The organisation's units, copied from the real database (or the shipped file)."""
        with self.db.session() as s:
            if real is None:
                org.load_file(s, ORG_FILE)
            else:
                columns = [c.key for c in OrgUnit.__table__.columns if c.key != "id"]
                for unit in real.scalars(select(OrgUnit).order_by(OrgUnit.id)):
                    s.add(OrgUnit(**{c: getattr(unit, c) for c in columns}))
            s.flush()
            return org.known_keys(s)

    def publish(self, scenario: service.Scenario) -> int:
        """Publish the draft and add a source allowed every type; return the source's id."""
        with self.db.session() as s:
            service.publish(s, scenario, actor=ACTOR)
            source, _ = auth.create_source(s, ACTOR, actor=ACTOR)
            return source.id

    def run_until(self, moment: datetime) -> None:
        """Fire the timers due up to `moment` one moment at a time, then move the clock there."""
        while self.timer_passes < MAX_TIMER_PASSES:
            due = self.ioc.scheduler.next_due()
            if due is None or due > moment:
                break
            self.timer_passes += 1
            if due > self.clock.now():
                self.clock.set(due)
            self.ioc.run_pending()
            self.timeline.mark()
        if moment > self.clock.now():
            self.clock.set(moment)  # every timer due by then has fired in the loop


# -- the run ----------------------------------------------------------------------------------

def _moments(events: list[Any], now: datetime) -> list[datetime]:
    """Each event's time; one without a (valid) time comes a second after the one before."""
    out, previous = [], None
    for raw in events:
        given = raw.get("time") if isinstance(raw, dict) else None
        moment = parse_datetime(given) if isinstance(given, str) else None
        if moment is None:
            moment = previous + timedelta(seconds=1) if previous else now
        out.append(moment)
        previous = moment
    return out


def dry_run(files: dict[str, str], events: list[dict], *, vocabulary: Vocabulary,
            calendar: WorkingCalendar, organisation: Session | None = None,
            settle: timedelta | None = None) -> dict:
    """Run a draft against `events` in a sandbox; what would happen, as JSON-able data.

    Raises ScenarioInvalid if the files do not check, DryRunInputError if the events or
    `settle` cannot be used. `settle` is wall time let pass after the last event.
    """
    if not isinstance(events, list):
        raise DryRunInputError([_problem(None, "events", "must be a list of events")])
    _check_count(len(events), "events")
    if settle is not None and (not isinstance(settle, timedelta) or settle < timedelta(0)
                               or settle > timedelta(days=366)):
        raise DryRunInputError([_problem(None, "settle", "must be a duration from 0 to 366 days")])
    moments = _moments(events, utcnow().replace(microsecond=0))
    start = min(moments, default=utcnow())
    with tempfile.TemporaryDirectory(prefix="ioc-dry-run-") as folder:
        box = _Sandbox(folder, vocabulary, calendar, start)
        try:
            departments = box.copy_organisation(organisation)
            scenario = service.check(files, vocabulary, departments)
            source_id = box.publish(scenario)
            box.timeline.mark()
            with budget(CODE_BUDGET_S, "Lần chạy thử / the dry run"):
                ids = _feed(box, source_id, events, moments)
                if settle:
                    box.run_until(box.clock.now() + settle)
            return _report(box, scenario, events, moments, ids, start)
        finally:
            box.close()


def _feed(box: _Sandbox, source_id: int, events: list, moments: list[datetime]) -> dict:
    """Store and process each event at its moment, in time order: index → event id or refusal."""
    out: dict[int, int | str] = {}
    for index in sorted(range(len(events)), key=lambda i: moments[i]):
        box.run_until(moments[index])
        raw = events[index]
        if isinstance(raw, dict):
            # Our own id: recorded events of several sources may share one; the time as fed.
            raw = {**_envelope(raw, ""), "id": f"dry-run-{index}",
                   "time": moments[index].isoformat()}
        result = ingestion.ingest(box.db, source_id, [raw], box.ioc.vocabulary, box.ioc.clock)
        if result.accepted:
            out[index] = result.accepted[0].id
        else:
            refusal = result.refused[0].problems if result.refused else []
            out[index] = "; ".join(_problem(index, p["field"], p["message"])["message"]
                                   for p in refusal) or "refused"
        box.ioc.run_pending()
        box.timeline.mark()
    return out


# -- what happened ----------------------------------------------------------------------------

def _report(box: _Sandbox, scenario: service.Scenario, events: list, moments: list[datetime],
            ids: dict, start: datetime) -> dict:
    tz = box.ioc.calendar.tz

    def iso(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment else None

    def at(real) -> str | None:
        return iso(box.timeline.at(real))

    index_of = {v: k for k, v in ids.items() if isinstance(v, int)}
    with box.db.read() as s:
        stored = {e.id: e for e in s.scalars(select(Event))}
        out_events = []
        for index, raw in enumerate(events):
            ref = ids.get(index)
            row = stored.get(ref) if isinstance(ref, int) else None
            raw = raw if isinstance(raw, dict) else {}
            out_events.append({
                "index": index, "type": raw.get("type"), "time": iso(moments[index]),
                "subject": raw.get("subject"),
                "status": "processed" if row is not None and row.status == "processed"
                else "failed",
                "error": (row.error if row is not None else ref)})
        windows = _windows(s)
        matches = [{"rule": m.rule_key, "rule_name": _rule_name(scenario, m.rule_key),
                    "event_indexes": [index_of[i] for i in m.event_ids if i in index_of],
                    "at": at(m.matched_at),
                    "correlation": _correlation(scenario, m.rule_key, windows.get(m.id))}
                   for m in s.scalars(select(RuleMatch).order_by(RuleMatch.id))]
        violations = [{"id": v.id, "kind": v.kind, "title": {"vi": v.title_vi, "en": v.title_en},
                       "severity": v.severity, "subject": v.subject, "rule": v.rule_key,
                       "status": v.status, "instance_id": v.instance_id, "at": iso(v.opened_at)}
                      for v in s.scalars(select(Violation).order_by(Violation.id))]
        flows = _flow_ids(scenario)
        instances, workflows = [], {}
        for instance in s.scalars(select(ProcessInstance).order_by(ProcessInstance.id)):
            workflow = spiff.load_state(scenario.spec, instance.state,
                                        box.ioc.settings.script_timeout_s, box.clock)
            workflows[instance.id] = workflow
            instances.append(_instance(s, instance, workflow, flows, at))
        tasks = [{"id": t.id, "instance_id": t.instance_id, "element": t.bpmn_id,
                  "name": t.name, "department": t.department_key, "status": t.status,
                  "form": [f["id"] for f in (t.form or {}).get("fields", [])],
                  "escalated_to": t.escalated_to, "at": iso(t.created_at)}
                 for t in s.scalars(select(Task).order_by(Task.id))]
        notifications = [{"kind": n.kind, "channel": n.channel,
                          "to": n.department_key or (f"user:{n.user_id}" if n.user_id else None),
                          "role": n.role, "subject": n.subject, "text": n.text,
                          "instance_id": n.instance_id, "at": at(n.created_at)}
                         for n in s.scalars(select(Notification).order_by(Notification.id))]
        timers = [_timer(s, t, workflows, iso)
                  for t in s.scalars(select(Timer).order_by(Timer.due_at, Timer.id))]
        now = box.clock.now()
        slas = [_sla(box, c, now) for c in s.scalars(select(SlaClock).order_by(SlaClock.id))]
    summary = {"events": len(events),
               "processed": sum(e["status"] == "processed" for e in out_events),
               "failed": sum(e["status"] == "failed" for e in out_events),
               "matches": len(matches), "violations": len(violations),
               "instances": len(instances), "tasks": len(tasks),
               "notifications": len(notifications),
               "timers_fired": sum(t["status"] == "fired" for t in timers),
               "timers_pending": sum(t["status"] == "pending" for t in timers),
               # Stopped early: a timer kept repeating past MAX_TIMER_PASSES.
               "truncated": box.timer_passes >= MAX_TIMER_PASSES}
    return {"events": out_events, "matches": matches, "violations": violations,
            "instances": instances, "tasks": tasks, "notifications": notifications,
            "timers": timers, "slas": slas, "summary": summary,
            "clock": {"start": iso(start), "end": iso(now)}}


def _sla(box: _Sandbox, clock: SlaClock, now: datetime) -> dict:
    """An SLA clock as the SLA views show it (its bare state if the calendar lacks the year)."""
    try:
        return box.ioc.sla.item(clock, now)
    except CalendarError as exc:
        return {"id": clock.id, "sla": clock.sla_key, "instance_id": clock.instance_id,
                "task_id": clock.task_id, "status": clock.status, "level": clock.level,
                "error": str(exc)}


def _windows(session: Session) -> dict[int, dict]:
    """Rule match id → the window its detection carried (kept in its "rule.matched" record)."""
    records = session.scalars(select(AuditRecord).where(
        AuditRecord.action == "rule.matched", AuditRecord.subject_type == "rule_match"))
    return {int(r.subject_id): r.details["window"] for r in records
            if isinstance(r.details, dict) and isinstance(r.details.get("window"), dict)}


def _correlation(scenario: service.Scenario, key: str, window: dict | None) -> dict | None:
    """How an `all:` match was repeated: the rule's `repeat`, in words, and the key it shared.

    None for the matches of other rules (one pattern, temporal)."""
    if not window or window.get("form") != "all":
        return None
    try:
        join = scenario.ruleset.rule(key).join
    except KeyError:
        join = None
    repeat = str(window.get("repeat") or "consume")
    once_per = join.once_per if join is not None and repeat == "once" else None
    vi, en = REPEAT_WORDS.get(repeat, (repeat, repeat))
    if once_per is not None:
        span_vi, span_en = once_per.words()
        vi, en = f"Một lần trong mỗi {span_vi}", f"once per {span_en}"
    text = str(window.get("key") or "")
    return {"repeat": repeat, "once_per": once_per.words()[1] if once_per else None,
            "label": {"vi": vi, "en": en}, "key": text,
            "key_fields": _key_fields(join, text)}


def _key_fields(join: Join | None, text: str) -> dict | None:
    """The key's values by the first pattern's field names: {"dossier_id": "HS-1"}.

    None when the key was too long and is stored as its hash, or the rule is not known."""
    if join is None or text.startswith("sha256:"):
        return None
    try:
        values = json.loads(text)
    except ValueError:
        return None
    groups = next(iter(join.key.values()), ())
    if not isinstance(values, list) or len(values) != len(groups):
        return None
    return {fields[0]: value for fields, value in zip(groups, values)}


def _rule_name(scenario: service.Scenario, key: str) -> dict:
    try:
        return dict(scenario.ruleset.rule(key).name)
    except KeyError:
        return {}


def _flow_ids(scenario: service.Scenario) -> dict[tuple[str, str], str]:
    """(sourceRef, targetRef) → sequence flow id of the scenario's process."""
    return path.flow_ids(scenario.files[scenario.manifest.get("process", "process.bpmn")])


def _instance(session: Session, instance: ProcessInstance, workflow, flows: dict, at) -> dict:
    """An instance with the BPMN ids it went through (nodes and flows) and where it waits."""
    went = path.taken(workflow, flows, instance.status == RUNNING)
    started = session.scalars(select(AuditRecord).where(
        AuditRecord.instance_id == instance.id, AuditRecord.action == "instance.started")).first()
    return {"id": instance.id, "rule": started.details.get("rule") if started else None,
            "status": instance.status, "subject": instance.subject, "data": instance.data,
            "error": instance.error, "path": went["path"], "waiting": went["waiting"],
            "steps": [{"element": element, "name": name, "at": at(when)}
                      for element, name, when in went["steps"]]}


def _timer(session: Session, timer: Timer, workflows: dict, iso) -> dict:
    """A timer with the BPMN element it belongs to, when there is one."""
    element, about = None, timer.kind
    if timer.kind == BPMN:
        workflow = workflows.get(timer.instance_id)
        task = workflow.get_task_from_id(uuid.UUID(timer.ref.split(":", 1)[1])) \
            if workflow is not None else None
        element = task.task_spec.bpmn_id if task is not None else None
        about = f"bpmn:{element}"
    elif timer.kind == SLA:
        clock = session.get(SlaClock, int(timer.ref))
        task = session.get(Task, clock.task_id) if clock and clock.task_id else None
        element = task.bpmn_id if task is not None else None
        about = f"sla:{clock.sla_key if clock else timer.ref}:level {timer.payload.get('level')}"
    elif timer.kind == RULE:
        about = f"rule:{timer.payload.get('rule')}"
    return {"kind": timer.kind, "element": element, "about": about,
            "due_at": iso(timer.due_at), "status": timer.status,
            "fired_at": iso(timer.fired_at), "instance_id": timer.instance_id,
            "error": timer.error}
