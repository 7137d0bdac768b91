"""Run process instances: start, complete user tasks, deliver messages; persist after every step.

Every step runs inside the caller's transaction: instance state, department tasks, message waits
and audit records commit together or not at all. Instance rows carry a version counter, so two
concurrent steps on one instance cannot both win (the loser gets StaleDataError and retries).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from uuid import UUID

from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway, InclusiveGateway, ScriptTask
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.clock import SYSTEM_CLOCK, Clock
from engine.expressions import ExpressionError, evaluate
from engine.incidents import service as incidents
from engine.incidents.models import MESSAGE, START, TASK, TIMER
from engine.ops.logs import log_context
from engine.org import service as org
from engine.processes import message_fields, spiff
from engine.processes.models import COMPLETED, ERROR, RUNNING, MessageWait, ProcessInstance
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.tasks import forms
from engine.tasks.models import ACTIVE, CANCELLED, Task
from engine.tasks.models import COMPLETED as TASK_COMPLETED
from engine.timers import service as timers
from engine.timers.models import BPMN, PENDING, Timer
from engine.timers.models import CANCELLED as TIMER_CANCELLED
from engine.timers.models import FAILED as TIMER_FAILED
from engine.violations.models import Violation
from engine.worktime.calendar import WorkingCalendar
from engine.worktime.functions import scenario_functions

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProcessError(Exception):
    """A process step failed because of the scenario (bad expression, unknown department…);
    `element`: the BPMN element it failed at, when known."""

    def __init__(self, message: str, element: str | None = None):
        super().__init__(message)
        self.element = element


class TaskWithdrawn(ProcessError):
    """The task a person answers is no longer waiting (a deadline or a message came first):
    not a fault of the scenario, and nothing to retry."""


def _element_of(exc: Exception) -> str | None:
    """The BPMN id SpiffWorkflow's error names (its task's spec), if any."""
    task = getattr(exc, "task", None)
    spec = getattr(task, "task_spec", None) or getattr(exc, "task_spec", None)
    return getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _message_definitions(task) -> list[MessageEventDefinition]:
    """The messages a waiting task catches: its own, or those after an event-based gateway."""
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        return [d for d in definition.event_definitions
                if isinstance(d, MessageEventDefinition)]
    return [definition] if isinstance(definition, MessageEventDefinition) else []


def _gateway_decision(task) -> dict | None:
    if isinstance(task.task_spec, (ExclusiveGateway, InclusiveGateway)):
        return {"gateway": task.task_spec.bpmn_id, "name": task.task_spec.bpmn_name,
                "taken": [c.task_spec.bpmn_id for c in task.children]}
    return None


class StepObserver(Protocol):
    """Something that follows instances step by step (the SLA engine)."""

    def after_step(self, session: Session, instance: ProcessInstance, version: ScenarioVersion,
                   workflow: BpmnWorkflow, tasks: list[Task] | None = None) -> None:
        """Called after each step of `instance`, in the step's transaction; `tasks` are all its
        tasks when the runtime knows them (a new instance), else None."""

    def task_claimed(self, session: Session, task: Task) -> None:
        """Called when someone claims `task`, in the claim's transaction."""


class ProcessRuntime:
    """Starts and advances SpiffWorkflow instances of loaded scenario versions."""

    def __init__(self, script_timeout_s: float = 1.0, clock: Clock = SYSTEM_CLOCK,
                 calendar: WorkingCalendar | None = None):
        self.script_timeout_s = script_timeout_s
        self.clock = clock
        # Working-time arithmetic for scenario expressions (now(), add_working_days()…).
        self.functions = scenario_functions(calendar, clock) if calendar else {}
        # Parsed specs by (version id, content hash): a version's spec never changes.
        self._specs: dict[tuple[int, str], tuple] = {}
        # The incident whose step `retry` is running again (it closes itself).
        self._retrying: int | None = None
        # Versions as read once by this process (see `version`).
        self._versions: dict[int, ScenarioVersion] = {}
        # Told after every step and every claim, in the same transaction (the SLA engine).
        self.observers: list[StepObserver] = []

    def _spec(self, version: ScenarioVersion) -> tuple:
        key = (version.id, version.content_hash)
        if key not in self._specs:
            self._specs[key] = spiff.spec_from_dict(version.spec)
        return self._specs[key]

    def version(self, session: Session, version_id: int) -> ScenarioVersion | None:
        """Version `version_id`, read from the database once per process: what a version holds
        never changes after publishing (its status does; read that from the database)."""
        # Each step used to read the whole row again, five JSON documents (measured: one
        # statement in ten of a worker's batches).
        version = self._versions.get(version_id)
        if version is None:
            version = session.get(ScenarioVersion, version_id)
            if version is not None:
                # Detached at once, whole: a rollback of this session must not expire it.
                session.expunge(version)
                self._versions[version_id] = version
        return version

    # -- public steps ------------------------------------------------------------------------

    def start(self, session: Session, version: ScenarioVersion, data: dict, *, actor: str,
              subject: str | None = None, details: dict | None = None,
              isolate: bool = False) -> ProcessInstance:
        """Start an instance of `version` with `data` on its start task and run to its first wait.

        `isolate`: a failure of the scenario (ProcessError) leaves the instance stored unstarted,
        in status `error`, with an open incident to retry; nothing else is rolled back.
        """
        if not isolate:
            return self._start(session, version, data, actor, subject, details)
        return self._isolated(
            session, lambda: self._start(session, version, data, actor, subject, details),
            lambda exc: self._start_failed(session, version, data, actor, subject, details, exc))

    def _fresh(self, version: ScenarioVersion, data: dict) -> BpmnWorkflow:
        workflow = spiff.new_workflow(self._spec(version), self.script_timeout_s, self.clock,
                                      self.functions)
        workflow.get_tasks(state=TaskState.READY)[0].data.update(_plain(data))
        return workflow

    def _start(self, session: Session, version: ScenarioVersion, data: dict, actor: str,
               subject: str | None, details: dict | None) -> ProcessInstance:
        workflow = self._fresh(version, data)
        # Run to the first wait before the row exists: it is written once, with that state
        # (not inserted empty, then updated).
        done = self._steps(workflow)
        instance = self._insert(session, version, workflow, data, actor, subject, details)
        with log_context(instance_id=instance.id):
            self._keep(session, instance, version, workflow, actor, done, fresh=True)
        return instance

    def _insert(self, session: Session, version: ScenarioVersion, workflow: BpmnWorkflow,
                data: dict, actor: str, subject: str | None, details: dict | None,
                failed: ProcessError | None = None) -> ProcessInstance:
        """Write a new instance's row (once, with its state) and its `instance.started`; it
        started at the engine's clock, as its deadlines count from it."""
        error = str(failed)[:2000] if failed is not None else None
        instance = ProcessInstance(
            scenario_version_id=version.id, scenario_key=version.key, subject=subject,
            started_at=self.clock.now(),
            state=spiff.dump_state(workflow), status=ERROR if failed else RUNNING, error=error,
            data=ProcessRuntime._data(workflow, _plain(data)) if not failed else _plain(data))
        session.add(instance)
        session.flush()
        audit.record(session, "instance.started", actor=actor, subject_type="instance",
                     subject_id=instance.id, instance_id=instance.id,
                     details={"scenario": version.key, "version": version.version,
                              "data": _plain(data), **({"failed": error} if failed else {}),
                              **(details or {})})
        return instance

    def _start_failed(self, session: Session, version: ScenarioVersion, data: dict, actor: str,
                      subject: str | None, details: dict | None,
                      exc: ProcessError) -> ProcessInstance:
        # Stored as it was before its first step, so that a retry runs that step again.
        instance = self._insert(session, version, self._fresh(version, data), data, actor,
                                subject, details, failed=exc)
        incidents.open_incident(session, kind=START, scenario_key=version.key,
                                version_id=version.id, instance_id=instance.id,
                                element=exc.element, error=str(exc), actor=actor)
        return instance

    def _isolated(self, session: Session, step: Callable[[], T],
                  on_failure: Callable[[ProcessError], T]) -> T:
        """`step` in a savepoint: a failure of the scenario rolls back only the step, and
        `on_failure(error)` answers for it (a person's withdrawn task is no failure)."""
        try:
            with session.begin_nested():
                return step()
        except TaskWithdrawn:
            raise
        except ProcessError as exc:
            log.warning("a step failed: %s", exc)
            return on_failure(exc)

    def keep_failure(self, session: Session, instance_id: int, kind: str, exc: ProcessError,
                     actor: str, payload: dict, identity: tuple[str, ...] | None = None):
        """Keep the failure of a step of a running instance as an incident (returned); the
        instance stays as it was before the step (rolled back), its error shown."""
        instance = session.get(ProcessInstance, instance_id)
        instance.error = str(exc)[:2000]
        return incidents.open_incident(session, kind=kind, scenario_key=instance.scenario_key,
                                       version_id=instance.scenario_version_id,
                                       instance_id=instance_id, element=exc.element,
                                       error=str(exc), actor=actor, payload=payload,
                                       identity=identity)

    def _settle_incidents(self, session: Session, instance: ProcessInstance,
                          workflow: BpmnWorkflow, actor: str) -> None:
        """Close the open incidents whose step no longer applies: the process moved on without
        it (a deadline after a failed message, a withdrawn task…). Clear the instance's error
        once none is left (the incident being retried closes itself)."""
        still = False
        for incident in incidents.open_for_instance(session, instance.id):
            if incident.id == self._retrying:
                continue
            if self._still_applies(session, instance, workflow, incident):
                still = True
                continue
            incidents.close(session, incident, actor=actor, action="incident.superseded",
                            resolution="the process moved on without this step")
            if incident.kind == TIMER:  # its failed timer no longer matters either
                timer = session.get(Timer, incident.payload.get("timer_id"))
                if timer is not None and timer.status == TIMER_FAILED:
                    timer.status = TIMER_CANCELLED
        if not still:
            instance.error = None

    @staticmethod
    def _still_applies(session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                       incident) -> bool:
        """True while the failed step of `incident` is still ahead of the instance."""
        payload = incident.payload
        if incident.kind == TIMER:
            return payload.get("ref") in {f"{instance.id}:{task.id}"
                                          for task, _ in spiff.waiting_timers(workflow)}
        if incident.kind == MESSAGE:
            return any(d.name == payload.get("type")
                       for t in workflow.get_tasks(state=TaskState.WAITING)
                       for d in _message_definitions(t))
        if incident.kind == TASK:
            task = session.get(Task, payload.get("task_id"))
            spiff_task = workflow.get_task_from_id(UUID(task.spiff_task_id)) if task else None
            return spiff_task is not None and spiff_task.state == TaskState.READY
        return True

    def complete_task(self, session: Session, task: Task, answers: dict, *, actor: str,
                      user_id: int | None) -> ProcessInstance:
        """Complete a user task with already-checked form answers and run on to the next wait."""
        instance, version, workflow = self._load(session, task.instance_id)
        # A deadline that passed before this completion came first, whether or not the
        # scheduler has fired it yet (an interrupting boundary timer withdraws the task).
        fired = self._fire_due(workflow)
        if fired:
            self._steps_audited(session, instance, workflow, "scheduler", fired)
        spiff_task = workflow.get_task_from_id(UUID(task.spiff_task_id))
        if spiff_task is None or spiff_task.state != TaskState.READY:
            if fired:
                raise TaskWithdrawn(f"task {task.bpmn_id}: its deadline ({', '.join(fired)}) "
                                    "passed before this answer; the process moved on without it",
                                    task.bpmn_id)
            raise TaskWithdrawn(f"task {task.id} is no longer waiting in its process", task.bpmn_id)
        spiff_task.data.update(_plain(answers))
        try:
            spiff_task.run()
        except (SpiffWorkflowException, ExpressionError) as exc:
            raise ProcessError(f"task {task.bpmn_id}: {exc}", _element_of(exc) or task.bpmn_id) \
                from exc
        task.status, task.result = TASK_COMPLETED, _plain(answers)
        task.completed_at, task.completed_by_id = self.clock.now(), user_id
        audit.record(session, "task.completed", actor=actor, subject_type="task",
                     subject_id=task.id, instance_id=instance.id,
                     details={"task": task.bpmn_id, "department": task.department_key,
                              "answers": task.result})
        self._advance(session, instance, version, workflow, actor)
        return instance

    def deliver_message(self, session: Session, instance_id: int, name: str, payload: dict, *,
                        actor: str, event_id: int | None = None,
                        received_at: datetime | None = None, isolate: bool = False) -> bool:
        """Give a message to an instance waiting for it; False if it no longer waits.

        The message is handled at the moment it was received (default: now) on the engine's
        clock: a timer due before that moment fires first, even if the scheduler has not got to
        it, and wins an event-based gateway; one due later loses to the message.
        `isolate`: a failure of the scenario becomes an incident of the instance (False).
        """
        def deliver() -> bool:
            return self._deliver(session, instance_id, name, payload, actor, event_id,
                                 received_at)
        def failed(exc: ProcessError) -> bool:
            # The message itself is kept: a retry delivers it as it came, at its moment.
            moment = received_at or self.clock.now()
            self.keep_failure(session, instance_id, MESSAGE, exc, actor, {
                "event_id": event_id, "type": name, "data": _plain(payload),
                "received_at": moment.isoformat()})
            return False
        return self._isolated(session, deliver, failed) if isolate else deliver()

    def _deliver(self, session: Session, instance_id: int, name: str, payload: dict, actor: str,
                 event_id: int | None, received_at: datetime | None) -> bool:
        instance, version, workflow = self._load(session, instance_id)
        if instance.status != RUNNING:
            return False
        # A timer due at the very moment of receipt loses: "due before the message" wins.
        moment = (received_at or self.clock.now()) - timedelta(microseconds=1)
        with spiff.clock_at(workflow, moment):
            fired = self._fire_due(workflow)
            if fired:
                self._steps_audited(session, instance, workflow, "scheduler", fired)
            waiting = [(t, d) for t in workflow.get_tasks(state=TaskState.WAITING)
                       for d in _message_definitions(t) if d.name == name]
            if waiting:
                definition = waiting[0][1]
                try:
                    correlations = definition.calculate_correlations(
                        workflow.script_engine, definition.correlation_properties, payload)
                    # Only what the catch events declare reaches the instance's data.
                    taken = self._declared(version, [t for t, _ in waiting], definition, payload)
                    workflow.send_event(BpmnEvent(definition, _plain(taken), correlations))
                except (SpiffWorkflowException, ExpressionError) as exc:
                    raise ProcessError(f"message {name}: {exc}", _element_of(exc)) from exc
                audit.record(session, "message.correlated", actor=actor, subject_type="instance",
                             subject_id=instance.id, instance_id=instance.id,
                             details={"message": name, "event_id": event_id,
                                      "caught_by": [t.task_spec.bpmn_id for t, _ in waiting]})
                self._steps_audited(session, instance, workflow, actor)
        if not waiting and not fired:
            return False
        if not waiting:
            audit.record(session, "message.late", actor=actor, subject_type="instance",
                         subject_id=instance.id, instance_id=instance.id,
                         details={"message": name, "event_id": event_id, "timers": fired})
        self._advance(session, instance, version, workflow, actor)
        return bool(waiting)

    @staticmethod
    def _declared(version: ScenarioVersion, tasks: list, definition, payload: dict) -> dict:
        """The message fields the waiting catch events declare (message_fields), with the one
        it correlates on."""
        bpmn = version.files.get(version.manifest.get("process", "process.bpmn"), "")
        mappings = message_fields.declared(bpmn)
        mapping = {name: field for task in tasks
                   for name, field in mappings.get(task.task_spec.bpmn_id, {}).items()}
        paths = [p.retrieval_expression for p in definition.correlation_properties]
        return message_fields.take(mapping, paths[0] if paths else None, payload)

    def fire_timer(self, session: Session, timer: Timer) -> None:
        """A BPMN timer of an instance is due (scheduler handler): fire it and run on. A failure
        of the scenario becomes an incident of the instance; the timer is marked failed."""
        def failed(exc: ProcessError) -> None:
            timer.status, timer.error = TIMER_FAILED, str(exc)[:2000]
            # One incident per timer event (its ref), whichever row fired it last.
            self.keep_failure(session, timer.instance_id, TIMER, exc, "scheduler",
                              {"timer_id": timer.id, "ref": timer.ref}, identity=("ref",))
        self._isolated(session, lambda: self._fire_timer(session, timer), failed)

    def _fire_timer(self, session: Session, timer: Timer) -> None:
        instance, version, workflow = self._load(session, timer.instance_id)
        if instance.status != RUNNING:
            return
        due = self._fire_due(workflow)
        if not due:
            return  # a message or a completion fired it already, in its own step
        audit.record(session, "timer.fired", actor="scheduler", subject_type="instance",
                     subject_id=instance.id, instance_id=instance.id,
                     details={"timers": due, "due_at": timer.due_at})
        self._advance(session, instance, version, workflow, "scheduler")

    # -- incidents ---------------------------------------------------------------------------

    def retry(self, session: Session, incident, actor: str) -> str | None:
        """Run the failed step of an incident again (in a savepoint); None when it went
        through, else the error it failed with again."""
        def step() -> None:
            if incident.kind == START:
                self._restart(session, incident.instance_id, actor)
            elif incident.kind == MESSAGE:
                message = incident.payload
                if not self._deliver(session, incident.instance_id, message["type"],
                                     message["data"], actor, message.get("event_id"),
                                     datetime.fromisoformat(message["received_at"])):
                    raise ProcessError("the instance no longer waits for this message")
            elif incident.kind == TIMER:
                self._fire_timer(session, session.get(Timer, incident.payload["timer_id"]))
            elif incident.kind == TASK:
                answer = incident.payload
                task = session.get(Task, answer["task_id"])
                if task is None or task.status not in ACTIVE:
                    raise ProcessError(f"task {answer['task_id']} is no longer open")
                self.complete_task(session, task, answer["answers"], actor=answer["actor"],
                                   user_id=answer["user_id"])
            else:
                raise ProcessError(f"an incident of kind {incident.kind} cannot be retried")
        self._retrying = incident.id
        try:
            with session.begin_nested():
                step()
        except ProcessError as exc:
            return str(exc)
        finally:
            self._retrying = None
        return None

    def _restart(self, session: Session, instance_id: int, actor: str) -> None:
        """Run the first steps of an instance that failed to start, on the scenario's
        published version (a fixed scenario is a new version)."""
        instance = session.get(ProcessInstance, instance_id, with_for_update=True,
                               populate_existing=True)
        if instance.status != ERROR:
            raise ProcessError(f"instance {instance_id} is {instance.status}, not waiting to start")
        version = self.version(session, instance.scenario_version_id)
        published = session.scalars(select(ScenarioVersion.id).where(
            ScenarioVersion.key == instance.scenario_key,
            ScenarioVersion.status == PUBLISHED)).first()
        if published is not None and published != version.id:
            version = self.version(session, published)
            instance.scenario_version_id = version.id
        workflow = self._fresh(version, instance.data)
        instance.status, instance.error = RUNNING, None
        audit.record(session, "instance.restarted", actor=actor, subject_type="instance",
                     subject_id=instance.id, instance_id=instance.id,
                     details={"scenario": version.key, "version": version.version})
        self._advance(session, instance, version, workflow, actor)

    def workflow_of(self, session: Session, instance: ProcessInstance):
        """The instance's workflow as stored, to read (nothing locked, nothing run)."""
        version = self.version(session, instance.scenario_version_id)
        return spiff.load_state(version.spec, instance.state, self.script_timeout_s,
                                self.clock, self.functions)

    # -- internals ---------------------------------------------------------------------------

    def _load(self, session: Session, instance_id: int):
        # The instance's row is locked before anything else of it (its timers, waits, tasks):
        # every step takes this order, so the worker, the scheduler and the web never deadlock.
        instance = session.get(ProcessInstance, instance_id, with_for_update=True,
                               populate_existing=True)
        if instance is None:
            raise ProcessError(f"instance {instance_id} does not exist")
        version = self.version(session, instance.scenario_version_id)
        workflow = spiff.load_state(version.spec, instance.state, self.script_timeout_s,
                                    self.clock, self.functions)
        return instance, version, workflow

    def _fire_due(self, workflow: BpmnWorkflow) -> list[str]:
        """Fire the timers due by the workflow's clock; the ids of their events."""
        try:
            return [task.task_spec.bpmn_id for task in spiff.fire_due(workflow)]
        except (SpiffWorkflowException, ExpressionError) as exc:
            due = [task.task_spec.bpmn_id for task, at in spiff.waiting_timers(workflow)
                   if at <= spiff.workflow_clock(workflow).now()]
            raise ProcessError(f"timer {', '.join(due)}: {exc}",
                               _element_of(exc) or (due[0] if due else None)) from exc

    def _steps_audited(self, session: Session, instance: ProcessInstance,
                       workflow: BpmnWorkflow, actor: str, fired: list[str] | None = None) -> None:
        """Run to the next wait now, within a step, auditing what ran (and the timers fired)."""
        if fired:
            audit.record(session, "timer.fired", actor="scheduler", subject_type="instance",
                         subject_id=instance.id, instance_id=instance.id,
                         details={"timers": fired, "due_at": None})
        for task in self._steps(workflow):
            self._audit_step(session, instance, task, actor)

    def _advance(self, session: Session, instance: ProcessInstance, version: ScenarioVersion,
                 workflow: BpmnWorkflow, actor: str) -> None:
        with log_context(instance_id=instance.id):  # every log line of the step names it
            done = self._steps(workflow)
            instance.state = spiff.dump_state(workflow)
            instance.data = self._data(workflow, instance.data)
            self._keep(session, instance, version, workflow, actor, done, fresh=False)

    @staticmethod
    def _steps(workflow: BpmnWorkflow) -> list:
        """Run the engine's steps to the next wait; the tasks they completed."""
        done: list = []
        try:
            workflow.do_engine_steps(did_complete_task=done.append)
        except (SpiffWorkflowException, ExpressionError) as exc:
            raise ProcessError(str(exc), _element_of(exc)) from exc
        return done

    @staticmethod
    def _data(workflow: BpmnWorkflow, before: dict) -> dict:
        """The instance's data after a step: the last task's (the workflow's once completed)."""
        last = workflow.last_task
        return _plain(workflow.data if workflow.completed else
                      (last.data if last is not None else before))

    def _keep(self, session: Session, instance: ProcessInstance, version: ScenarioVersion,
              workflow: BpmnWorkflow, actor: str, done: list, fresh: bool) -> None:
        # Audit the steps and store what they left: tasks, message waits, timers. `fresh`: the
        # instance was just created, so it has no task, wait or timer rows yet and nothing
        # needs reading back (a third of an instance start's statements, measured).
        for task in done:
            self._audit_step(session, instance, task, actor)
        created = self._sync_tasks(session, instance, version, workflow, actor, fresh)
        self._sync_waits(session, instance, workflow, fresh)
        self._sync_timers(session, instance, workflow, fresh)
        if instance.error and instance.status == RUNNING:
            self._settle_incidents(session, instance, workflow, actor)
        for observer in self.observers:
            observer.after_step(session, instance, version, workflow,
                                tasks=created if fresh else None)
        if workflow.completed:  # last: nothing of the instance is recorded after its end
            self._finish(session, instance, actor)

    def task_claimed(self, session: Session, task: Task) -> None:
        """Tell the observers that a task was claimed."""
        for observer in self.observers:
            observer.task_claimed(session, task)

    def _audit_step(self, session: Session, instance: ProcessInstance, task, actor: str) -> None:
        decision = _gateway_decision(task)
        spec = task.task_spec
        if decision:
            audit.record(session, "gateway.decided", actor=actor, subject_type="instance",
                         subject_id=instance.id, instance_id=instance.id, details=decision)
        elif isinstance(spec, ScriptTask):
            audit.record(session, "script.ran", actor=actor, subject_type="instance",
                         subject_id=instance.id, instance_id=instance.id,
                         details={"task": spec.bpmn_id, "name": spec.bpmn_name})
        elif isinstance(spec, EndEvent):
            audit.record(session, "end_event.reached", actor=actor, subject_type="instance",
                         subject_id=instance.id, instance_id=instance.id,
                         details={"event": spec.bpmn_id, "name": spec.bpmn_name})

    def _department(self, session: Session, spiff_task, version: ScenarioVersion) -> str:
        lane = (spiff_task.task_spec.lane or "").strip()
        if not lane:
            key = version.owner_department
        elif lane.startswith("="):
            try:
                # The functions scripts and conditions have (validation counts on them too).
                key = evaluate(lane[1:].strip(), {**self.functions, **spiff_task.data},
                               timeout_s=self.script_timeout_s)
            except ExpressionError as exc:
                raise ProcessError(f"lane {lane!r}: {exc}", spiff_task.task_spec.bpmn_id) from exc
        else:
            key = lane
        unit = org.resolve(session, str(key)) if key else None
        if unit is None:
            raise ProcessError(f"task {spiff_task.task_spec.bpmn_id}: lane {lane!r} gives "
                               f"{key!r}, which is not a department of the organisation",
                               spiff_task.task_spec.bpmn_id)
        return unit.key

    def _sync_tasks(self, session: Session, instance: ProcessInstance, version: ScenarioVersion,
                    workflow: BpmnWorkflow, actor: str, fresh: bool) -> list[Task]:
        """Store the user tasks that became ready, cancel those that are no longer; return the
        new ones."""
        ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
        active = {} if fresh else {t.spiff_task_id: t for t in session.scalars(
            select(Task).where(Task.instance_id == instance.id, Task.status.in_(ACTIVE)))}
        created = []
        for tid, spiff_task in ready.items():
            if tid in active:
                continue
            spec = spiff_task.task_spec
            row = Task(instance_id=instance.id, spiff_task_id=tid, bpmn_id=spec.bpmn_id,
                       name=spec.bpmn_name or spec.bpmn_id,
                       department_key=self._department(session, spiff_task, version),
                       form=forms.form_from_spec(spec), context=_plain(spiff_task.data),
                       created_at=self.clock.now())
            session.add(row)
            session.flush()
            created.append(row)
            audit.record(session, "task.created", actor=actor, subject_type="task",
                         subject_id=row.id, instance_id=instance.id,
                         details={"task": row.bpmn_id, "name": row.name,
                                  "department": row.department_key})
        for tid, row in active.items():
            if tid not in ready:
                row.status = CANCELLED
                audit.record(session, "task.cancelled", actor=actor, subject_type="task",
                             subject_id=row.id, instance_id=instance.id,
                             details={"task": row.bpmn_id, "reason": "the process moved on"})
        return created

    def _sync_waits(self, session: Session, instance: ProcessInstance,
                    workflow: BpmnWorkflow, fresh: bool) -> None:
        if not fresh:
            session.execute(delete(MessageWait).where(MessageWait.instance_id == instance.id))
        for task in workflow.get_tasks(state=TaskState.WAITING):
            for definition in _message_definitions(task):
                self._add_waits(session, instance, task, definition)

    @staticmethod
    def _add_waits(session: Session, instance: ProcessInstance, task, definition) -> None:
        for prop in definition.correlation_properties or [None]:
            field = prop.retrieval_expression.strip() if prop else None
            value = task.data.get(field) if field else None
            session.add(MessageWait(instance_id=instance.id, message_name=definition.name,
                                    correlation_property=field,
                                    correlation_value=json.dumps(value, ensure_ascii=False)))

    def _sync_timers(self, session: Session, instance: ProcessInstance,
                     workflow: BpmnWorkflow, fresh: bool) -> None:
        # One pending timer row per waiting timer event, found again by "<instance>:<task>".
        wanted = {f"{instance.id}:{task.id}": due for task, due in spiff.waiting_timers(workflow)}
        stored = [] if fresh else session.scalars(select(Timer).where(
            Timer.instance_id == instance.id, Timer.kind == BPMN, Timer.status == PENDING))
        for row in stored:
            due = wanted.pop(row.ref, None)
            if due is None:
                row.status = TIMER_CANCELLED
            elif row.due_at != due:
                row.due_at = due
        for ref, due in wanted.items():
            timers.schedule(session, BPMN, ref, due, instance_id=instance.id)

    def _finish(self, session: Session, instance: ProcessInstance, actor: str) -> None:
        instance.status, instance.ended_at = COMPLETED, self.clock.now()
        outcome = instance.data.get("outcome")
        audit.record(session, "instance.ended", actor=actor, subject_type="instance",
                     subject_id=instance.id, instance_id=instance.id,
                     details={"status": COMPLETED, "outcome": outcome})
        for violation in session.scalars(select(Violation).where(
                Violation.instance_id == instance.id, Violation.status == "open")):
            violation.status, violation.closed_at = "closed", self.clock.now()
            violation.outcome = str(outcome) if outcome is not None else "completed"
            audit.record(session, "violation.closed", actor=actor, subject_type="violation",
                         subject_id=violation.id, instance_id=instance.id,
                         details={"outcome": violation.outcome})


def to_dict(instance: ProcessInstance, tasks: list[Task] | None = None) -> dict:
    """An instance as the API shows it."""
    out = {"id": instance.id, "scenario": instance.scenario_key,
           "scenario_version_id": instance.scenario_version_id, "status": instance.status,
           "subject": instance.subject, "data": instance.data, "error": instance.error,
           "started_at": instance.started_at.isoformat(),
           "ended_at": instance.ended_at.isoformat() if instance.ended_at else None}
    if tasks is not None:
        out["open_tasks"] = [{"id": t.id, "name": t.name, "department": t.department_key,
                              "status": t.status} for t in tasks]
    return out
