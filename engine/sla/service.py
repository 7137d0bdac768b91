"""Run SLA clocks: start, pause, resume and stop them as processes move; fire escalation levels.

The runtime calls `after_step` after every process step (in the step's transaction) and the task
service calls `task_claimed`; the scheduler calls `fire` when a level's timer is due. Elapsed time
is kept as seconds counted before the last resume plus the time since, in working time (the
calendar) or wall time, so a pause costs nothing and a restart changes nothing.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.clock import Clock
from engine.formats import moment, number
from engine.notify import service as notify
from engine.processes.models import ProcessInstance
from engine.scenarios.models import ScenarioVersion
from engine.scenarios.problems import ScenarioInvalid
from engine.sla.definitions import SLA_FILE, Level, SlaDefinition, parse_slas, render_text
from engine.sla.models import BREACHED, MET, OPEN_STATES, PAUSED, RUNNING, SlaClock
from engine.tasks.models import ACTIVE, CLAIMED, OPEN, Task
from engine.timers import service as timers
from engine.timers.models import SLA, Timer
from engine.worktime.calendar import WorkingCalendar

AT_RISK_PERCENT = 75.0  # an open item past this share of its target is "at risk"
ACTOR = "sla"


def sla_file(version: ScenarioVersion) -> str | None:
    """The text of a version's SLA file, if it has one."""
    return version.files.get(version.manifest.get("sla", SLA_FILE))


class SlaEngine:
    """SLA clocks of every scenario, against one working calendar and one clock."""

    def __init__(self, calendar: WorkingCalendar, clock: Clock, email: bool = False):
        self.calendar, self.clock = calendar, clock
        self.email = email  # the e-mail channel is on: levels reach people's mailboxes too
        self._defs: dict[int, dict[str, SlaDefinition]] = {}

    def definitions(self, version: ScenarioVersion) -> dict[str, SlaDefinition]:
        """The version's SLAs by key (checked when it was published)."""
        if version.id not in self._defs:
            text = sla_file(version)
            try:
                parsed = parse_slas(text, f"{version.key}/{SLA_FILE}") if text else ()
            except ScenarioInvalid as exc:  # published files were checked; say so if not
                raise RuntimeError(f"{version.key}@{version.version}: {exc}") from exc
            self._defs[version.id] = {d.key: d for d in parsed}
        return self._defs[version.id]

    # -- time ---------------------------------------------------------------------------------

    def _between(self, clock: SlaClock, start: datetime, end: datetime) -> float:
        if clock.working:
            return self.calendar.working_time_between(start, end).total_seconds()
        return (end - start).total_seconds()

    def elapsed(self, clock: SlaClock, now: datetime | None = None) -> float:
        """Seconds counted so far (office seconds for a working-time SLA)."""
        now = now or self.clock.now()
        running = self._between(clock, clock.resumed_at, now) if clock.resumed_at else 0.0
        return clock.elapsed_seconds + max(running, 0.0)

    def _provisional(self, clock: SlaClock) -> bool:
        """True if the clock's due moment is counted through computed (provisional) holidays."""
        if not clock.working or clock.due_at is None:
            return False
        return bool(self.calendar.provisional_years_between(clock.started_at, clock.due_at))

    def _moment(self, clock: SlaClock, total_seconds: float) -> datetime:
        # When the count reaches total_seconds, if it keeps running from resumed_at.
        rest = timedelta(seconds=max(total_seconds - clock.elapsed_seconds, 0.0))
        if clock.working:
            return self.calendar.add_working_time(clock.resumed_at, rest)
        return clock.resumed_at + rest

    # -- following processes -------------------------------------------------------------------

    def after_step(self, session: Session, instance: ProcessInstance, version: ScenarioVersion,
                   workflow: BpmnWorkflow, tasks: list[Task] | None = None) -> None:
        """Start, pause, resume or stop the instance's clocks after a process step (`tasks`: all
        the instance's tasks when the runtime knows them, a new instance that has no clock)."""
        defs = self.definitions(version)
        if not defs:
            return
        now = self.clock.now()
        clocks = {} if tasks is not None else {(c.sla_key, c.task_id): c for c in session.scalars(
            select(SlaClock).where(SlaClock.instance_id == instance.id))}
        here = {t.task_spec.bpmn_id for t in workflow.get_tasks(
            state=TaskState.WAITING | TaskState.READY)}
        done = {t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.COMPLETED)}
        started: list[tuple[SlaClock, SlaDefinition, bool]] = []
        for d in defs.values():
            paused = bool(d.pause_while & here)
            if d.measures == "instance":
                stop = workflow.completed or bool(d.stop_at and d.stop_at in done)
                clock = clocks.get((d.key, None))
                if clock is None:
                    if stop or (d.start_at and d.start_at not in done):
                        continue
                    started.append((self._new(session, d, version, instance, None,
                                              self._instance_department(session, instance,
                                                                        version, tasks), now),
                                    d, paused))
                    continue
                self._apply(session, clock, d, stop, paused, now)
                continue
            if tasks is None:
                tasks = list(session.scalars(select(Task).where(
                    Task.instance_id == instance.id).order_by(Task.id)))
            for task in tasks:
                if not d.measures_task(task.bpmn_id):
                    continue
                stop = task.status not in ACTIVE or (d.until == "claimed"
                                                     and task.claimed_at is not None)
                clock = clocks.get((d.key, task.id))
                if clock is None:
                    if stop:
                        continue
                    started.append((self._new(session, d, version, instance, task,
                                              task.department_key, now), d, paused))
                    continue
                self._apply(session, clock, d, stop, paused, now)
        if started:
            self._started(session, started, now)

    def task_claimed(self, session: Session, task: Task) -> None:
        """Stop the clocks that end when this task is claimed (acknowledged)."""
        now = self.clock.now()
        for clock in session.scalars(select(SlaClock).where(
                SlaClock.task_id == task.id, SlaClock.status.in_(OPEN_STATES))):
            d = self._definition(session, clock)
            if d is not None and d.until == "claimed":
                self._stop(session, clock, d, now)

    def _instance_department(self, session: Session, instance: ProcessInstance,
                             version: ScenarioVersion, tasks: list[Task] | None) -> str:
        if tasks is not None:
            task = min((t for t in tasks if t.status in ACTIVE), key=lambda t: t.id, default=None)
        else:
            task = session.scalars(select(Task).where(
                Task.instance_id == instance.id, Task.status.in_(ACTIVE)).order_by(Task.id)).first()
        return task.department_key if task else version.owner_department

    def _new(self, session: Session, d: SlaDefinition, version: ScenarioVersion,
             instance: ProcessInstance, task: Task | None, department: str,
             now: datetime) -> SlaClock:
        clock = SlaClock(
            scenario_version_id=version.id, scenario_key=version.key, sla_key=d.key,
            name_vi=d.name.get("vi", d.key), name_en=d.name.get("en", d.name.get("vi", d.key)),
            instance_id=instance.id, task_id=task.id if task else None, subject=instance.subject,
            department_key=department, working=d.target.working,
            target_seconds=d.target.length(self.calendar).total_seconds(), status=RUNNING,
            started_at=now, resumed_at=now, elapsed_seconds=0.0)
        clock.due_at = self._moment(clock, clock.target_seconds)
        session.add(clock)
        return clock

    def _started(self, session: Session, started: list[tuple[SlaClock, SlaDefinition, bool]],
                 now: datetime) -> None:
        # The step's new clocks are stored together (one INSERT), then get their timers: they
        # need the clocks' ids.
        session.flush()
        for clock, d, paused in started:
            self._schedule_next(session, clock, d, new=True)
            audit.record(session, "sla.started", actor=ACTOR, subject_type="sla",
                         subject_id=clock.id, instance_id=clock.instance_id,
                         details={"sla": d.key, "task_id": clock.task_id,
                                  "department": clock.department_key, "target": str(d.target),
                                  "due_at": clock.due_at,
                                  **({"provisional": True} if self._provisional(clock) else {})})
            self._apply(session, clock, d, False, paused, now)

    def _apply(self, session: Session, clock: SlaClock, d: SlaDefinition, stop: bool,
               paused: bool, now: datetime) -> None:
        if clock.status not in OPEN_STATES:
            return
        if stop:
            self._stop(session, clock, d, now)
        elif paused and clock.status == RUNNING:
            clock.elapsed_seconds = self.elapsed(clock, now)
            clock.resumed_at, clock.due_at, clock.status = None, None, PAUSED
            timers.cancel(session, SLA, str(clock.id))
            audit.record(session, "sla.paused", actor=ACTOR, subject_type="sla",
                         subject_id=clock.id, instance_id=clock.instance_id,
                         details={"sla": clock.sla_key, "elapsed_s": round(clock.elapsed_seconds)})
        elif not paused and clock.status == PAUSED:
            clock.resumed_at, clock.status = now, RUNNING
            self._schedule_next(session, clock, d)
            audit.record(session, "sla.resumed", actor=ACTOR, subject_type="sla",
                         subject_id=clock.id, instance_id=clock.instance_id,
                         details={"sla": clock.sla_key, "due_at": clock.due_at})

    def _stop(self, session: Session, clock: SlaClock, d: SlaDefinition, now: datetime) -> None:
        clock.elapsed_seconds = self.elapsed(clock, now)
        clock.resumed_at, clock.stopped_at = None, now
        # Breached once over the target, or once its 100 % level has fired (people were told).
        late = clock.elapsed_seconds > clock.target_seconds or clock.breached_at is not None
        clock.status = BREACHED if late else MET
        if clock.status == BREACHED and clock.breached_at is None:
            clock.breached_at = now
        timers.cancel(session, SLA, str(clock.id))
        audit.record(session, "sla.stopped", actor=ACTOR, subject_type="sla",
                     subject_id=clock.id, instance_id=clock.instance_id,
                     details={"sla": clock.sla_key, "outcome": clock.status,
                              "elapsed_s": round(clock.elapsed_seconds),
                              "target_s": round(clock.target_seconds)})

    def _schedule_next(self, session: Session, clock: SlaClock, d: SlaDefinition,
                       new: bool = False) -> None:
        # A new clock has no timer yet: nothing to look up, cancel or move.
        clock.due_at = self._moment(clock, clock.target_seconds)
        index = clock.level + 1
        if index >= len(d.levels):
            if not new:
                timers.cancel(session, SLA, str(clock.id))
            return
        due = self._moment(clock, clock.target_seconds * d.levels[index].percent / 100)
        arm = timers.schedule if new else timers.reschedule
        arm(session, SLA, str(clock.id), due, payload={"level": index},
            instance_id=clock.instance_id)

    def _definition(self, session: Session, clock: SlaClock) -> SlaDefinition | None:
        version = session.get(ScenarioVersion, clock.scenario_version_id)
        return self.definitions(version).get(clock.sla_key)

    # -- escalation --------------------------------------------------------------------------

    def fire(self, session: Session, timer: Timer) -> None:
        """A level's moment came (scheduler handler for SLA timers): act, then arm the next."""
        clock = session.get(SlaClock, int(timer.ref))
        index = int(timer.payload["level"])
        if clock is None or clock.status != RUNNING or index <= clock.level:
            return
        d = self._definition(session, clock)
        level = d.levels[index]
        clock.level = index
        if level.breach and clock.breached_at is None:
            clock.breached_at = timer.due_at
        self._act(session, clock, level, index)
        self._schedule_next(session, clock, d)

    def _act(self, session: Session, clock: SlaClock, level: Level, index: int) -> None:
        task = session.get(Task, clock.task_id) if clock.task_id else session.scalars(
            select(Task).where(Task.instance_id == clock.instance_id,
                               Task.status.in_(ACTIVE)).order_by(Task.id)).first()
        percent = f"{level.percent:g}%"
        used = _duration(self.elapsed(clock), clock.working)
        target = _duration(clock.target_seconds, clock.working)
        what = f"«{clock.name_vi}» – {clock.subject or f'#{clock.instance_id}'}"
        subject = (f"[{percent}] Quá hạn: {what}" if level.breach
                   else f"[{percent}] Sắp đến hạn: {what}")
        if level.text:
            text = self._text(clock, level, percent)
        else:
            text = (f"{clock.name_vi}: đã dùng {used} trên thời hạn {target} ({percent}).\n"
                    f"{clock.name_en}: {used} used of {target} ({percent}).")
        details = {"sla": clock.sla_key, "level": index, "at": level.percent,
                   "action": level.action, "to": level.to, "task_id": task.id if task else None}
        audit.record(session, "sla.level_reached", actor=ACTOR, subject_type="sla",
                     subject_id=clock.id, instance_id=clock.instance_id, details=details)
        department = task.department_key if task else clock.department_key
        common = {"kind": f"sla.{level.action}", "subject": subject, "actor": ACTOR,
                  "instance_id": clock.instance_id, "task_id": task.id if task else None,
                  "email": self.email}
        if level.action == "reassign":
            if task is not None and task.department_key != level.to:
                self._reassign(session, task, level.to, clock)
            notify.send(session, department_key=level.to, text=text, **common)
            return
        if level.to == "assignee" and task is not None and task.assignee_id is not None:
            notify.send(session, user_id=task.assignee_id, text=text, **common)
        elif level.to in ("assignee", "department"):
            notify.send(session, department_key=department, text=text, **common)
        else:
            target_dept = department if level.to == "head" else level.to
            notify.send(session, department_key=target_dept, role="department_head", text=text,
                        **common)
            if level.action == "escalate" and task is not None:
                task.escalated_to, task.escalation_level = target_dept, index + 1
                audit.record(session, "task.escalated", actor=ACTOR, subject_type="task",
                             subject_id=task.id, instance_id=task.instance_id,
                             details={"to": target_dept, "level": index + 1,
                                      "sla": clock.sla_key})

    def _text(self, clock: SlaClock, level: Level, percent: str) -> str:
        # The scenario's own wording (checked when published): Vietnamese, then English.
        elapsed = self.elapsed(clock)
        due = moment(clock.due_at, "clock_first")
        common = {"subject": clock.subject or f"#{clock.instance_id}", "percent": percent,
                  "due": due}
        vi = common | {"name": clock.name_vi, "used": _duration(elapsed, clock.working),
                       "target": _duration(clock.target_seconds, clock.working)}
        en = common | {"name": clock.name_en, "used": _duration_en(elapsed, clock.working),
                       "target": _duration_en(clock.target_seconds, clock.working)}
        lines = [render_text(level.text["vi"], vi)]
        if level.text.get("en"):
            lines.append(render_text(level.text["en"], en))
        return "\n".join(lines)

    def _reassign(self, session: Session, task: Task, department: str, clock: SlaClock) -> None:
        previous = task.department_key
        task.department_key = department
        if task.status == CLAIMED:
            task.status, task.assignee_id, task.claimed_at = OPEN, None, None
        clock.department_key = department
        audit.record(session, "task.reassigned", actor=ACTOR, subject_type="task",
                     subject_id=task.id, instance_id=task.instance_id,
                     details={"from": previous, "to": department, "sla": clock.sla_key})

    # -- reading -------------------------------------------------------------------------------

    def item(self, clock: SlaClock, now: datetime | None = None) -> dict:
        """One clock as the API and the inbox show it."""
        now = now or self.clock.now()
        elapsed = self.elapsed(clock, now) if clock.status in OPEN_STATES \
            else clock.elapsed_seconds
        percent = 100.0 * elapsed / clock.target_seconds if clock.target_seconds else 0.0
        breached = clock.status == BREACHED or clock.breached_at is not None \
            or elapsed > clock.target_seconds
        return {
            "id": clock.id, "sla": clock.sla_key, "name": {"vi": clock.name_vi,
                                                           "en": clock.name_en},
            "scenario": clock.scenario_key, "instance_id": clock.instance_id,
            "task_id": clock.task_id, "subject": clock.subject,
            "department": clock.department_key, "status": clock.status,
            "basis": "working" if clock.working else "wall",
            "target_seconds": clock.target_seconds, "elapsed_seconds": round(elapsed, 1),
            "remaining_seconds": round(clock.target_seconds - elapsed, 1),
            "percent": round(percent, 1), "level": clock.level,
            "at_risk": clock.status in OPEN_STATES and not breached
            and (clock.level >= 0 or percent >= AT_RISK_PERCENT),
            "breached": breached,
            "due_at": clock.due_at.isoformat() if clock.due_at else None,
            # Counted through a year whose holidays are computed, not yet the official ones.
            "provisional": self._provisional(clock),
            "started_at": clock.started_at.isoformat(),
            "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
        }

    def for_tasks(self, session: Session, tasks: list[Task]) -> dict[int, dict]:
        """The most urgent open clock of each task (its own, else its instance's), by task id."""
        if not tasks:
            return {}
        now = self.clock.now()
        ids = [t.id for t in tasks]
        instances = {t.instance_id for t in tasks}
        clocks = session.scalars(select(SlaClock).where(
            SlaClock.status.in_(OPEN_STATES),
            or_(SlaClock.task_id.in_(ids),
                (SlaClock.task_id.is_(None)) & SlaClock.instance_id.in_(instances))))
        own: dict[int, list[dict]] = defaultdict(list)
        shared: dict[int, list[dict]] = defaultdict(list)
        for clock in clocks:
            entry = self.item(clock, now)
            (own[clock.task_id] if clock.task_id else shared[clock.instance_id]).append(entry)
        out = {}
        for task in tasks:
            found = own.get(task.id) or shared.get(task.instance_id)
            if found:
                out[task.id] = min(found, key=lambda e: e["remaining_seconds"])
        return out

    def report(self, session: Session, *, since: datetime, until: datetime,
               department: str | None = None, scenario: str | None = None) -> dict:
        """Open, at-risk and breached items and compliance % over [since, until)."""
        now = self.clock.now()
        query = select(SlaClock).where(or_(
            SlaClock.status.in_(OPEN_STATES),
            (SlaClock.stopped_at >= since) & (SlaClock.stopped_at < until)))
        if department:
            query = query.where(SlaClock.department_key == department)
        if scenario:
            query = query.where(SlaClock.scenario_key == scenario)
        items = [self.item(c, now) for c in session.scalars(query.order_by(SlaClock.due_at))]
        return {"since": since.isoformat(), "until": until.isoformat(), "now": now.isoformat(),
                "departments": _summary(items, "department"),
                "scenarios": _summary(items, "scenario"),
                "items": [i for i in items if i["status"] in OPEN_STATES]}


def _summary(items: list[dict], by: str) -> list[dict]:
    groups: dict[str, dict] = {}
    for item in items:
        g = groups.setdefault(item[by], {"key": item[by], "open": 0, "at_risk": 0,
                                         "breached": 0, "met": 0, "missed": 0})
        if item["status"] in OPEN_STATES:
            g["open"] += 1
            g["at_risk"] += item["at_risk"]
            g["breached"] += item["breached"]
        elif item["status"] == MET:
            g["met"] += 1
        else:
            g["missed"] += 1
    for g in groups.values():
        # Open items already past their target count against compliance as well.
        judged = g["met"] + g["missed"] + g["breached"]
        g["compliance_pct"] = round(100.0 * g["met"] / judged, 1) if judged else None
    return sorted(groups.values(), key=lambda g: g["key"])


def _duration(seconds: float, working: bool) -> str:
    hours = seconds / 3600
    text = f"{number(hours)} giờ" if hours < 48 or working else f"{number(hours / 24)} ngày"
    return f"{text} làm việc" if working else text


def _duration_en(seconds: float, working: bool) -> str:
    hours = seconds / 3600
    if working:
        return f"{number(hours, locale='en')} working hours"
    return f"{number(hours, locale='en')} hours" if hours < 48 else \
        f"{number(hours / 24, locale='en')} days"
