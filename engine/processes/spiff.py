"""SpiffWorkflow, configured once for the engine: parser, serializer, script engine.

User tasks use Camunda's `camunda:formData` (a form format the bpmn-js Camunda moddle edits);
message events use plain BPMN message definitions, whose payload merges into the instance data and
whose correlation properties are evaluated on the message itself (Camunda's variant wraps the
payload and breaks that).

Timer events (timeDate, timeDuration, timeCycle) read "now" from the clock attached to the
workflow's script engine instead of the system time, and store their due moment in the task the
first time it waits, so a test drives time with a ManualClock and a scheduler reads what is due
(`waiting_timers`) and fires it (`fire_due_timers`). Timers never fire by themselves.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    BoundaryEventParser,
    EndEventParser,
    EventBasedGatewayParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.config import (
    MessageEventDefinition as BpmnMessageEventDefinition,
)
from SpiffWorkflow.bpmn.serializer.default import (
    EventConverter,
    MessageEventDefinitionConverter,
    TimerConditionalEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway as SpiffEventBasedGateway
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG as CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import (
    MessageEventDefinition as CamundaMessageEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from engine.clock import SYSTEM_CLOCK, Clock, ManualClock
from engine.expressions import ExpressionError, make_script_engine

TIMER_KINDS = ("timeDate", "timeDuration", "timeCycle")


# -- timer values --------------------------------------------------------------------------------

def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time (such as "
                         "2026-03-02T08:00:00+07:00)") from None
    if moment.tzinfo is None:
        # Spiff would read it in the server's zone: the due moment would move with the host.
        raise ValueError(f"{text!r} has no UTC offset; add Z or an offset such as +07:00")
    return moment.astimezone(timezone.utc)


def _duration(text: str, start: datetime) -> timedelta:
    if not text.upper().startswith("P"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (such as PT2H or P1D)")
    try:
        parsed = TimerEventDefinition.parse_iso_duration(text)
    except Exception:  # Spiff raises a bare Exception
        raise ValueError(f"{text!r} is not an ISO 8601 duration (such as PT2H or P1D)") from None
    if not parsed:
        raise ValueError(f"{text!r} is an empty duration")
    return TimerEventDefinition.get_timedelta_from_start(parsed, start)


def _cycle(text: str, now: datetime) -> tuple[int, datetime, timedelta]:
    example = "such as R3/PT1H, R/P1D or R2/2026-03-02T08:00Z/PT1H"
    parts = text.upper().replace("--", "/").split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R") or \
            not (parts[0][1:] == "" or parts[0][1:].isdigit()):
        raise ValueError(f"{text!r} is not an ISO 8601 recurring interval ({example})")
    if len(parts) == 2:
        # Spiff's parse_iso_recurring_interval reads the system time here; first run: now + period.
        period = _duration(parts[1], now)
        cycles = int(parts[0][1:]) if parts[0][1:] else -1
        first = now + period
    else:
        for part in parts[1:]:
            if not part.startswith("P"):
                _moment(part)  # refuses a start or end without offset
        try:
            cycles, first, period = TimerEventDefinition.parse_iso_recurring_interval(text)
        except Exception:  # Spiff raises bare Exceptions (and AttributeErrors on odd input)
            raise ValueError(f"{text!r} is not an ISO 8601 recurring interval ({example})") \
                from None
    if period <= timedelta(0):
        raise ValueError(f"{text!r} repeats with a period of zero")
    return cycles, first.astimezone(timezone.utc), period


def parse_timer_value(kind: str, value: object,
                      now: datetime) -> datetime | tuple[int, datetime, timedelta]:
    """A timer expression's value: due moment (timeDate, timeDuration) or (cycles, first, period).

    Raises ValueError with a readable reason. A timeDate may also be an aware datetime.
    """
    if kind == "timeDate" and isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("the date-time has no time zone; use an aware datetime")
        return value.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"gives {type(value).__name__} {value!r}; a timer needs an ISO 8601 "
                         "string (in quotes)")
    text = value.strip()
    if kind == "timeDate":
        return _moment(text)
    if kind == "timeDuration":
        return now + _duration(text, now)
    if kind == "timeCycle":
        return _cycle(text, now)
    raise ValueError(f"unknown timer kind {kind!r}")


def timer_value_problem(kind: str, text: str) -> str | None:
    """Why `text` is not a valid literal for a timer of `kind` (timeDate, ...); None if it is."""
    try:
        parse_timer_value(kind, text, SYSTEM_CLOCK.now())
    except ValueError as exc:
        return str(exc)
    return None


# -- timer event definitions ---------------------------------------------------------------------

def workflow_clock(workflow) -> Clock:
    """The clock timers of `workflow` read (attached to its script engine; else real time)."""
    return getattr(workflow.script_engine, "clock", None) or SYSTEM_CLOCK


class _ClockTimer:
    """Mixin for Spiff timers: "now" comes from the workflow's clock; the due moment is kept.

    Spiff stores the due moment in the task's internal data (`event_value`) when the task is first
    updated; so do we, so that a due moment never moves once a task waits (states stay JSON).
    """

    kind = ""

    def _now(self, my_task) -> datetime:
        return workflow_clock(my_task.workflow).now()

    def _keys(self, my_task) -> tuple[str, str]:
        """Internal-data keys for (due value, fired) of this timer in `my_task`."""
        definition = my_task.task_spec.event_definition
        if not isinstance(definition, MultipleEventDefinition):
            return "event_value", "event_fired"
        # An event-based gateway's task waits for all its events: with Spiff's shared keys a
        # second timer would read the first one's due moment and fire with it.
        slot = next(i for i, d in enumerate(definition.event_definitions) if d is self)
        return f"timer_{slot}_value", f"timer_{slot}_fired"

    def _get(self, my_task, which: int):
        return my_task._get_internal_data(self._keys(my_task)[which])

    def _set(self, my_task, which: int, value) -> None:
        my_task.internal_data[self._keys(my_task)[which]] = value

    def _parse(self, my_task):
        where = f"timer {my_task.task_spec.bpmn_id!r} ({self.kind}) expression {self.expression!r}"
        try:
            value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        except Exception as exc:
            # Our script engine wraps the sandbox's reason: keep just the reason, name the timer.
            reason = exc.__cause__ if isinstance(exc.__cause__, ExpressionError) else exc
            raise WorkflowTaskException(f"{where}: {reason}", task=my_task,
                                        exception=exc) from exc
        try:
            return parse_timer_value(self.kind, value, self._now(my_task))
        except ValueError as exc:
            raise WorkflowTaskException(f"{where}: {exc}", task=my_task, exception=exc) from exc

    def due(self, my_task) -> datetime:
        """The aware UTC moment the timer fires, computed once and stored in the task."""
        value = self._get(my_task, 0)
        if value is None:
            value = self._parse(my_task).isoformat()
            self._set(my_task, 0, value)
        return datetime.fromisoformat(value)

    def has_fired(self, my_task) -> bool:
        """Fired once the clock reaches the due moment (Spiff waits for strictly after)."""
        if not self._get(my_task, 1) and self.due(my_task) <= self._now(my_task):
            self._set(my_task, 1, True)
        return bool(self._get(my_task, 1))


class ClockTimeDateEventDefinition(_ClockTimer, TimeDateEventDefinition):
    """A timeDate timer on the workflow's clock; the expression gives an ISO string or datetime."""

    kind = "timeDate"


class ClockDurationTimerEventDefinition(_ClockTimer, DurationTimerEventDefinition):
    """A timeDuration timer, due that long after the task starts waiting (workflow's clock)."""

    kind = "timeDuration"


class ClockCycleTimerEventDefinition(_ClockTimer, CycleTimerEventDefinition):
    """A timeCycle timer: each occurrence runs the outgoing flow once (workflow's clock).

    The value keeps Spiff's shape {cycles, next, duration}; once no cycles are left, `next`
    stays at the last occurrence (the event is due at once to finish) and the value stays.
    """

    kind = "timeCycle"

    def _value(self, my_task) -> dict:
        value = self._get(my_task, 0)
        if value is None:
            cycles, first, period = self._parse(my_task)
            value = {"cycles": cycles, "next": first.isoformat(),
                     "duration": period.total_seconds()}
            self._set(my_task, 0, value)
        return value

    def due(self, my_task) -> datetime:
        """The next occurrence (the last one once all have run)."""
        return datetime.fromisoformat(self._value(my_task)["next"])

    def has_fired(self, my_task) -> bool:
        """The event itself completes once every cycle has run."""
        if self._keys(my_task)[0] != "event_value":
            # Spiff repeats cycles only on the timer's own task; in an event-based gateway the
            # path is taken once, at the first occurrence.
            return super().has_fired(my_task)
        if self._value(my_task)["cycles"] == 0:
            # Spiff needs one more refresh after the last cycle for this; we finish at once.
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)

    def cycle_complete(self, my_task) -> bool:
        """True when an occurrence is due now: Spiff's update_task then starts the flow once."""
        value = self._value(my_task)
        if value["cycles"] == 0:
            return False
        moment = datetime.fromisoformat(value["next"])
        if moment > self._now(my_task):
            return False
        value = {**value, "cycles": value["cycles"] - 1}
        if value["cycles"] != 0:
            value["next"] = (moment + timedelta(seconds=value["duration"])).isoformat()
        my_task._set_internal_data(event_value=value)
        return True


_CLOCK_TIMERS = {
    TimeDateEventDefinition: ClockTimeDateEventDefinition,
    DurationTimerEventDefinition: ClockDurationTimerEventDefinition,
    CycleTimerEventDefinition: ClockCycleTimerEventDefinition,
}


class _ClockTimerParsing:
    """Event parser mixin: Spiff parses the timer, we swap in the clock-driven class."""

    def parse_timer_event(self, event):
        """Our timer definition for a bpmn:timerEventDefinition (Spiff's parsing and errors)."""
        spiff_timer = super().parse_timer_event(event)
        if not (spiff_timer.expression or "").strip():
            raise ValidationException("Time Specification Error. The timer expression is empty",
                                      node=self.node, file_name=self.filename)
        return _CLOCK_TIMERS[type(spiff_timer)](spiff_timer.name, spiff_timer.expression,
                                                description=spiff_timer.description)


class EventBasedGateway(SpiffEventBasedGateway):
    """An event-based gateway that takes exactly one branch.

    Spiff runs every event its task has seen: a message caught while a timer was due but not yet
    refreshed, or two timers found due by one late scheduler pass, ran two branches. Here the
    first event wins: a message (the runtime fires the timers due before a message arrived
    before it delivers the message, so a message still caught came first), else the timer due
    soonest. The others are dropped, and their branches never start.
    """

    def _run_hook(self, my_task):
        seen = my_task.internal_data.get("seen_events", [])
        if len(seen) > 1:
            my_task.internal_data["seen_events"] = [min(seen, key=lambda e: _moment_of(my_task, e))]
        return super()._run_hook(my_task)


def _moment_of(gateway_task, event) -> datetime:
    """When an event seen by a gateway happened, for choosing the winner: a timer's due moment;
    a message sorts first (see EventBasedGateway)."""
    definition = event.event_definition
    if isinstance(definition, _ClockTimer):
        return definition.due(gateway_task)
    return datetime.min.replace(tzinfo=timezone.utc)


class _StartEventParser(_ClockTimerParsing, StartEventParser):
    pass


class _IntermediateCatchEventParser(_ClockTimerParsing, IntermediateCatchEventParser):
    pass


class _IntermediateThrowEventParser(_ClockTimerParsing, IntermediateThrowEventParser):
    pass


class _BoundaryEventParser(_ClockTimerParsing, BoundaryEventParser):
    pass


class ScenarioParser(CamundaParser):
    """Camunda user-task forms and business rule tasks (DMN), standard BPMN events."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("startEvent"): (_StartEventParser, StartEvent),
        full_tag("endEvent"): (EndEventParser, EndEvent),
        full_tag("intermediateCatchEvent"): (_IntermediateCatchEventParser,
                                             IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (_IntermediateThrowEventParser,
                                             IntermediateThrowEvent),
        full_tag("boundaryEvent"): (_BoundaryEventParser, BoundaryEvent),
        full_tag("eventBasedGateway"): (EventBasedGatewayParser, EventBasedGateway),
    }


def _serializer_config() -> dict:
    config = deepcopy(CAMUNDA_CONFIG)
    config.pop(CamundaMessageEventDefinition)
    config[BpmnMessageEventDefinition] = MessageEventDefinitionConverter
    for spiff_timer, clock_timer in _CLOCK_TIMERS.items():
        # Our parser never makes Spiff's own timers (they read the system time).
        config.pop(spiff_timer, None)
        config[clock_timer] = TimerConditionalEventDefinitionConverter
    # Ours under Spiff's name: specs stored before it deserialize to the one-branch gateway.
    config.pop(SpiffEventBasedGateway, None)
    config[EventBasedGateway] = EventConverter
    return config


@lru_cache(maxsize=1)
def serializer() -> BpmnWorkflowSerializer:
    """The serializer for our specs and workflow states (one per process)."""
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_serializer_config()))


def spec_to_dict(top_spec, subprocess_specs: dict) -> dict:
    """Serialize a process spec (and its subprocess specs) once, for the scenario version."""
    ser = serializer()
    return {"spec": ser.to_dict(top_spec),
            "subprocess_specs": {k: ser.to_dict(v) for k, v in subprocess_specs.items()}}


def spec_from_dict(spec: dict) -> tuple:
    """The (top spec, subprocess specs) objects of a stored spec; shareable by many workflows."""
    ser = serializer()
    spec = deepcopy(spec)  # the deserializer pops keys from the dicts it is given
    return (ser.from_dict(spec["spec"]),
            {k: ser.from_dict(v) for k, v in spec["subprocess_specs"].items()})


def new_workflow(specs: tuple, timeout_s: float, clock: Clock | None = None,
                 functions: dict | None = None) -> BpmnWorkflow:
    """A fresh workflow of (top spec, subprocess specs) objects (see spec_from_dict).

    Its timers read `clock` (real time when None).
    """
    top, subs = specs
    return BpmnWorkflow(top, subs, script_engine=make_script_engine(timeout_s, clock, functions))


def dump_state(workflow: BpmnWorkflow) -> dict:
    """The workflow's own state, without the spec that every instance of a version shares."""
    state = serializer().to_dict(workflow)
    state.pop("spec", None)
    state.pop("subprocess_specs", None)
    return state


def load_state(spec: dict, state: dict, timeout_s: float,
               clock: Clock | None = None, functions: dict | None = None) -> BpmnWorkflow:
    """Rebuild a workflow from its stored state and its version's spec; timers read `clock`."""
    # The deserializer pops keys from the dicts it is given: hand it copies.
    workflow = serializer().from_dict(deepcopy({**state, "spec": spec["spec"],
                                                "subprocess_specs": spec["subprocess_specs"]}))
    workflow.script_engine = make_script_engine(timeout_s, clock, functions)
    return workflow


# -- firing timers -------------------------------------------------------------------------------

def _timer_due(task) -> datetime | None:
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, _ClockTimer):
        return definition.due(task)
    if isinstance(definition, MultipleEventDefinition):
        # An event-based gateway waits on its events' definitions in its own task.
        dues = [d.due(task) for d in definition.event_definitions if isinstance(d, _ClockTimer)]
        return min(dues) if dues else None
    return None


def waiting_timers(workflow: BpmnWorkflow) -> list[tuple]:
    """(task, aware UTC due moment) of each waiting timer, soonest first (cycles: next run).

    Also lists a timer that fired but has not run yet (READY): do_engine_steps ends with Spiff's
    own timer refresh, which can make a timer READY without running it.
    """
    found = []
    for task in workflow.get_tasks(state=TaskState.WAITING | TaskState.READY):
        due = _timer_due(task)
        if due is not None:
            found.append((task, due))
    return sorted(found, key=lambda pair: pair[1])


@contextmanager
def clock_at(workflow: BpmnWorkflow, moment: datetime) -> Iterator[None]:
    """Within the block, the workflow's timers read `moment` as now (a message is handled at the
    moment it arrived, not when a worker got to it)."""
    engine = workflow.script_engine
    kept = getattr(engine, "clock", None)
    engine.clock = ManualClock(moment)
    try:
        yield
    finally:
        engine.clock = kept


def fire_due(workflow: BpmnWorkflow) -> list:
    """Fire the timers due by the workflow's clock; the tasks that were due (run
    do_engine_steps next). A timer counts as due until it has run (see waiting_timers)."""
    now = workflow_clock(workflow).now()
    due = [task for task, moment in waiting_timers(workflow) if moment <= now]
    for task in due:
        if task.state == TaskState.WAITING:
            # What Spiff's refresh_timers does, for the due tasks only.
            task.task_spec._update(task)
    return due


def fire_due_timers(workflow: BpmnWorkflow) -> bool:
    """Fire the timers due by the workflow's clock; True if any is due: step the workflow."""
    return bool(fire_due(workflow))


def bpmn_message_names(bpmn: str) -> set[str]:
    """The names of the messages a BPMN file defines (the event types it can wait for)."""
    from lxml import etree

    from engine.xmlsafe import parse

    try:
        root = parse(bpmn)
    except (etree.XMLSyntaxError, ValueError):
        return set()
    return {m.get("name") for m in root.iter("{http://www.omg.org/spec/BPMN/20100524/MODEL}"
                                            "message") if m.get("name")}
