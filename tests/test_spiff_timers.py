"""BPMN timer events on an injectable clock: due moments, firing, serialization, checks."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.clock import SYSTEM_CLOCK, ManualClock
from engine.expressions import make_script_engine
from engine.processes import spiff
from engine.scenarios.bpmn_checks import check_bpmn
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="https://example.test/timers">
  <bpmn:process id="p" isExecutable="true">
"""
TAIL = """  </bpmn:process>
</bpmn:definitions>
"""


def _timer(kind: str, expr: str) -> str:
    return (f'<bpmn:timerEventDefinition id="{kind}_def"><bpmn:{kind}>{expr}</bpmn:{kind}>'
            "</bpmn:timerEventDefinition>")


def intermediate(kind: str, expr: str) -> str:
    """start → timer catch `wait` → script `after` (sets done) → end."""
    return HEAD + f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait">{_timer(kind, expr)}</bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="after"/>
    <bpmn:scriptTask id="after"><bpmn:script>done = True</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""" + TAIL


def boundary(kind: str, expr: str, interrupting: bool) -> str:
    """start → user task `review` → end; a timer `remind` on review → script `note` → end2."""
    cancel = "true" if interrupting else "false"
    return HEAD + f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review"><bpmn:extensionElements><camunda:formData><camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:boundaryEvent id="remind" attachedToRef="review" cancelActivity="{cancel}">
      {_timer(kind, expr)}
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="remind" targetRef="note"/>
    <bpmn:scriptTask id="note"><bpmn:script>reminded = True</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="note" targetRef="end2"/>
    <bpmn:endEvent id="end2"/>
""" + TAIL


def timer_start(kind: str, expr: str) -> str:
    """A timer start event `start` → script `after` → end."""
    return HEAD + f"""
    <bpmn:startEvent id="start">{_timer(kind, expr)}</bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="after"/>
    <bpmn:scriptTask id="after"><bpmn:script>done = True</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="after" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""" + TAIL


class Instance:
    """One workflow driven like the engine does: state serialized between every step."""

    def __init__(self, bpmn: str, clock: ManualClock, **data):
        parser = spiff.ScenarioParser()
        parser.add_bpmn_str(bpmn.encode())
        self.spec = spiff.spec_to_dict(parser.get_spec("p"), parser.get_subprocess_specs("p"))
        self.clock = clock
        workflow = spiff.new_workflow(spiff.spec_from_dict(self.spec), 1.0, clock)
        workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
        workflow.do_engine_steps()
        self.state = spiff.dump_state(workflow)

    def load(self) -> BpmnWorkflow:
        """The workflow rebuilt from the stored state (a fresh one each time)."""
        return spiff.load_state(self.spec, self.state, 1.0, self.clock)

    def save(self, workflow: BpmnWorkflow) -> None:
        self.state = json.loads(json.dumps(spiff.dump_state(workflow)))  # states stay JSON

    def tick(self, **delta: float) -> bool:
        """Advance the clock, fire what is due and run on (the scheduler's pass)."""
        self.clock.advance(**delta)
        workflow = self.load()
        fired = spiff.fire_due_timers(workflow)
        workflow.do_engine_steps()
        self.save(workflow)
        return fired

    def timers(self) -> list[tuple[str, datetime]]:
        return [(t.task_spec.bpmn_id, due) for t, due in spiff.waiting_timers(self.load())]

    def states(self, bpmn_id: str) -> list[str]:
        return [TaskState.get_name(t.state) for t in self.load().get_tasks()
                if t.task_spec.bpmn_id == bpmn_id]

    def complete(self, bpmn_id: str) -> None:
        workflow = self.load()
        [task] = [t for t in workflow.get_tasks(state=TaskState.READY)
                  if t.task_spec.bpmn_id == bpmn_id]
        task.run()
        workflow.do_engine_steps()
        self.save(workflow)

    @property
    def completed(self) -> bool:
        return self.load().completed


def _fresh(bpmn: str, clock: ManualClock, **data) -> BpmnWorkflow:
    """A workflow run to its first wait, kept in memory (no serialization)."""
    parser = spiff.ScenarioParser()
    parser.add_bpmn_str(bpmn.encode())
    workflow = spiff.new_workflow((parser.get_spec("p"), parser.get_subprocess_specs("p")), 1.0,
                                  clock)
    workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
    workflow.do_engine_steps()
    return workflow


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


# -- intermediate timers -------------------------------------------------------------------------

def test_duration_timer_fires_once_when_the_clock_reaches_it(clock):
    inst = Instance(intermediate("timeDuration", '"PT2H"'), clock)
    assert inst.timers() == [("wait", T0 + timedelta(hours=2))]
    assert inst.states("wait") == ["WAITING"]

    assert inst.tick(hours=1, minutes=59, seconds=59) is False
    assert inst.states("wait") == ["WAITING"] and inst.states("after") == ["FUTURE"]

    assert inst.tick(seconds=1) is True  # due exactly now: fires (Spiff alone waits for after)
    assert inst.states("after") == ["COMPLETED"] and inst.completed
    assert inst.timers() == []

    assert inst.tick(hours=5) is False
    assert inst.states("after") == ["COMPLETED"]


def test_time_date_timer_with_an_offset(clock):
    inst = Instance(intermediate("timeDate", '"2026-03-02T10:30:00+07:00"'), clock)
    assert inst.timers() == [("wait", datetime(2026, 3, 2, 3, 30, tzinfo=timezone.utc))]
    assert inst.tick(hours=2) is False
    assert inst.tick(minutes=30) is True
    assert inst.completed


def test_due_moment_survives_serialization_and_does_not_move(clock):
    inst = Instance(intermediate("timeDuration", '"PT2H"'), clock)
    assert inst.state == json.loads(json.dumps(inst.state))
    for _ in range(3):
        inst.tick(minutes=30)  # each pass reloads at a later now; the due moment stays put
        assert inst.timers() == [("wait", T0 + timedelta(hours=2))]
    assert inst.tick(minutes=30) is True and inst.completed


def test_timer_expressions_use_task_data(clock):
    inst = Instance(intermediate("timeDate", "deadline"), clock, deadline="2026-03-02T04:30:00Z")
    assert inst.timers() == [("wait", datetime(2026, 3, 2, 4, 30, tzinfo=timezone.utc))]

    inst = Instance(intermediate("timeDuration", "sla"), clock, sla="PT45M")
    assert inst.timers() == [("wait", T0 + timedelta(minutes=45))]
    assert inst.tick(minutes=45) is True and inst.completed


def test_time_date_expression_may_give_an_aware_datetime(clock):
    moment = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=7)))
    workflow = _fresh(intermediate("timeDate", "deadline"), clock, deadline=moment)
    [(task, due)] = spiff.waiting_timers(workflow)
    assert due == moment and due.tzinfo == timezone.utc
    assert task._get_internal_data("event_value") == "2026-03-02T02:00:00+00:00"  # JSON-able


def test_a_timer_in_the_past_fires_at_once(clock):
    workflow = _fresh(intermediate("timeDate", '"2026-03-01T00:00:00Z"'), clock)
    assert workflow.completed


def test_a_timer_made_ready_by_do_engine_steps_is_still_listed(clock):
    workflow = _fresh(intermediate("timeDuration", '"PT2H"'), clock)
    clock.advance(hours=2)
    # Spiff's own refresh at the end of do_engine_steps makes the timer READY without running it.
    workflow.do_engine_steps()
    [wait] = [t for t in workflow.get_tasks() if t.task_spec.bpmn_id == "wait"]
    assert wait.state == TaskState.READY
    assert spiff.waiting_timers(workflow) == [(wait, T0 + timedelta(hours=2))]
    assert spiff.fire_due_timers(workflow) is True
    workflow.do_engine_steps()
    assert workflow.completed


def test_intermediate_cycle_runs_its_flow_once_per_occurrence(clock):
    inst = Instance(intermediate("timeCycle", '"R2/PT1H"'), clock)
    assert inst.timers() == [("wait", T0 + timedelta(hours=1))]
    assert inst.tick(hours=1) is True
    assert inst.timers() == [("wait", T0 + timedelta(hours=2))]
    assert inst.tick(hours=1) is True
    assert inst.states("after") == ["COMPLETED", "COMPLETED"]
    inst.tick(hours=3)
    assert inst.states("after") == ["COMPLETED", "COMPLETED"]
    assert inst.timers() == [] and inst.completed


# -- boundary timers -----------------------------------------------------------------------------

def test_interrupting_boundary_timer_cancels_the_user_task(clock):
    inst = Instance(boundary("timeDuration", '"PT1H"', interrupting=True), clock)
    assert inst.states("review") == ["READY"]
    assert inst.timers() == [("remind", T0 + timedelta(hours=1))]  # known right away

    assert inst.tick(minutes=59) is False
    assert inst.states("review") == ["READY"]
    assert inst.tick(minutes=1) is True
    assert inst.states("review") == ["CANCELLED"]
    assert inst.states("note") == ["COMPLETED"]
    assert inst.completed and inst.load().data.get("reminded") is True


def test_non_interrupting_boundary_timer_runs_its_branch_and_keeps_the_task(clock):
    inst = Instance(boundary("timeDuration", '"PT1H"', interrupting=False), clock)
    assert inst.tick(hours=1) is True
    assert inst.states("review") == ["READY"]
    assert inst.states("note") == ["COMPLETED"]
    assert inst.timers() == [] and not inst.completed
    assert inst.tick(hours=5) is False
    assert inst.states("note") == ["COMPLETED"]

    inst.complete("review")
    assert inst.completed


def test_non_interrupting_cycle_runs_twice_then_stops(clock):
    inst = Instance(boundary("timeCycle", '"R2/PT1H"', interrupting=False), clock)
    assert inst.timers() == [("remind", T0 + timedelta(hours=1))]

    assert inst.tick(minutes=59) is False
    assert inst.states("note") == []
    assert inst.tick(minutes=1) is True
    assert inst.states("note") == ["COMPLETED"]
    assert inst.timers() == [("remind", T0 + timedelta(hours=2))]
    assert inst.tick(hours=1) is True
    assert inst.states("note") == ["COMPLETED", "COMPLETED"]
    assert inst.states("review") == ["READY"]

    for _ in range(3):
        inst.tick(hours=1)
    assert inst.states("note") == ["COMPLETED", "COMPLETED"]
    assert inst.timers() == []
    inst.complete("review")
    assert inst.completed


def test_completing_the_task_first_cancels_its_timer(clock):
    inst = Instance(boundary("timeDuration", '"PT1H"', interrupting=True), clock)
    inst.complete("review")
    assert inst.completed and inst.timers() == []
    assert inst.tick(hours=2) is False
    assert inst.states("note") == []


# -- timer start event ---------------------------------------------------------------------------

def test_timer_start_event_waits(clock):
    inst = Instance(timer_start("timeDuration", '"PT30M"'), clock)
    assert inst.states("start") == ["WAITING"] and inst.states("after") == ["FUTURE"]
    assert inst.timers() == [("start", T0 + timedelta(minutes=30))]
    assert inst.tick(minutes=29) is False
    assert inst.tick(minutes=1) is True
    assert inst.completed


# -- event-based gateway -------------------------------------------------------------------------

def test_event_based_gateway_keeps_each_timer_due_moment(clock):
    bpmn = HEAD + f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:eventBasedGateway id="gw"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="late"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="early"/>
    <bpmn:intermediateCatchEvent id="late">{_timer("timeDuration", '"PT2H"')}
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="early">{_timer("timeDate", '"2026-03-02T02:00Z"')}
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="late" targetRef="end_late"/>
    <bpmn:sequenceFlow id="f5" sourceRef="early" targetRef="end_early"/>
    <bpmn:endEvent id="end_late"/>
    <bpmn:endEvent id="end_early"/>
""" + TAIL
    inst = Instance(bpmn, clock)
    # Spiff keeps one due value per task: the second timer would take the first one's moment.
    assert inst.timers() == [("gw", T0 + timedelta(hours=1))]
    assert inst.tick(hours=1) is True
    assert inst.states("end_early") == ["COMPLETED"] and inst.states("end_late") == []
    assert inst.completed


# -- specs, clocks and errors --------------------------------------------------------------------

def test_specs_round_trip_with_clock_timers():
    parser = spiff.ScenarioParser()
    parser.add_bpmn_str(boundary("timeCycle", '"R2/PT1H"', interrupting=False).encode())
    stored = json.loads(json.dumps(spiff.spec_to_dict(parser.get_spec("p"), {})))
    assert stored["spec"]["task_specs"]["remind"]["event_definition"]["typename"] \
        == "ClockCycleTimerEventDefinition"
    top, _ = spiff.spec_from_dict(stored)
    definition = top.task_specs["remind"].event_definition
    assert isinstance(definition, spiff.ClockCycleTimerEventDefinition)
    assert definition.expression == '"R2/PT1H"'


def test_without_a_clock_timers_use_real_time():
    assert make_script_engine().clock is SYSTEM_CLOCK
    parser = spiff.ScenarioParser()
    parser.add_bpmn_str(intermediate("timeDuration", '"PT2H"').encode())
    workflow = spiff.new_workflow((parser.get_spec("p"), {}), 1.0)
    before = datetime.now(timezone.utc)
    workflow.do_engine_steps()
    [(_, due)] = spiff.waiting_timers(workflow)
    assert before + timedelta(hours=2) <= due <= datetime.now(timezone.utc) + timedelta(hours=2)
    assert spiff.fire_due_timers(workflow) is False


@pytest.mark.parametrize("kind, expr, data, message", [
    ("timeDuration", '"PT2X"', {}, "'PT2X' is not an ISO 8601 duration"),
    ("timeDuration", "PT2H", {}, "name 'PT2H' is not defined"),  # unquoted: a Python name
    ("timeDuration", "sla", {}, "name 'sla' is not defined"),
    ("timeDuration", '__import__("os")', {}, "name '__import__' is not allowed"),
    ("timeDate", "deadline", {"deadline": "2026-03-02T05:00:00"}, "no UTC offset"),
    ("timeDate", "deadline", {"deadline": 42}, "a timer needs an ISO 8601 string"),
    ("timeCycle", '"PT1H"', {}, "not an ISO 8601 recurring interval"),
])
def test_a_bad_timer_expression_gives_a_clear_error(clock, kind, expr, data, message):
    with pytest.raises(WorkflowTaskException) as err:
        _fresh(intermediate(kind, expr), clock, **data)
    assert f"timer 'wait' ({kind}) expression {expr!r}: " in str(err.value)
    assert message in str(err.value)


def test_a_naive_datetime_is_refused(clock):
    with pytest.raises(WorkflowTaskException, match="no time zone"):
        _fresh(intermediate("timeDate", "deadline"), clock, deadline=datetime(2026, 3, 2, 5))


def test_an_empty_timer_expression_is_refused_by_the_parser():
    parser = spiff.ScenarioParser()
    with pytest.raises(ValidationException, match="empty"):
        parser.add_bpmn_str(intermediate("timeDuration", " ").encode())
        parser.get_spec("p")


# -- scenario checks -----------------------------------------------------------------------------

def _problems(bpmn: str) -> list[str]:
    problems, _ = check_bpmn("process.bpmn", bpmn.encode(), set(), {})
    return [str(p) for p in problems]


@pytest.mark.parametrize("kind, expr", [
    ("timeDuration", '"PT2H"'),
    ("timeDuration", '"P1DT12H"'),
    ("timeDuration", "sla"),
    ("timeDate", '"2026-03-02T08:00:00+07:00"'),
    ("timeDate", '"2026-03-02T01:00Z"'),
    ("timeDate", "deadline"),
    ("timeCycle", '"R3/PT1H"'),
    ("timeCycle", '"R/P1D"'),
    ("timeCycle", '"R2/2026-03-02T08:00Z/PT1H"'),
])
def test_valid_timers_pass_the_checks(kind, expr):
    assert _problems(intermediate(kind, expr)) == []
    assert _problems(boundary(kind, expr, interrupting=False)) == []
    assert _problems(timer_start(kind, expr)) == []


@pytest.mark.parametrize("kind, expr, reason", [
    ("timeDuration", '"PT2X"', "'PT2X' is not an ISO 8601 duration"),
    ("timeDuration", '"P"', "empty duration"),
    ("timeDuration", "3600", "a timer needs an ISO 8601 string"),
    ("timeDuration", "PT2H", 'write the ISO 8601 value in quotes, "PT2H"'),
    ("timeDate", "2026-03-02T08:00Z", "write the ISO 8601 value in quotes"),
    ("timeDate", '"2026-03-02T08:00"', "no UTC offset"),
    ("timeDate", '"2026-13-02T08:00Z"', "not an ISO 8601 date-time"),
    ("timeDate", '"PT1H"', "not an ISO 8601 date-time"),
    ("timeCycle", '"PT1H"', "not an ISO 8601 recurring interval"),
    ("timeCycle", '"R2/PT0S"', "period of zero"),
    ("timeCycle", '"Rx/PT1H"', "not an ISO 8601 recurring interval"),
    ("timeCycle", '"R2/2026-03-02T08:00/PT1H"', "no UTC offset"),
    ("timeDuration", '__import__("os")', "'__import__' is not allowed"),
    ("timeDuration", " ", "timer timeDuration is empty"),
])
def test_bad_timers_are_reported_on_their_event(kind, expr, reason):
    [problem] = _problems(intermediate(kind, expr))
    # file:line: element: Vietnamese / English, the English naming the timer.
    assert problem.startswith("process.bpmn:8: wait: "), problem
    vi, _, en = problem.removeprefix("process.bpmn:8: wait: ").partition(" / ")
    assert vi and "timer " in en, problem
    assert reason in problem


def test_a_timer_needs_exactly_one_time_element():
    two = _timer("timeDate", '"2026-03-02T08:00Z"').replace(
        "</bpmn:timerEventDefinition>", '<bpmn:timeDuration>"PT1H"</bpmn:timeDuration>'
                                        "</bpmn:timerEventDefinition>")
    bpmn = intermediate("timeDate", "x").replace(_timer("timeDate", "x"), two)
    assert _problems(bpmn) == ["process.bpmn:8: wait: Hẹn giờ cần đúng một trong ngày giờ, "
                               "khoảng thời gian, chu kỳ / timer needs exactly one of timeDate, "
                               "timeDuration or timeCycle (found timeDate, timeDuration)"]
    none = intermediate("timeDate", "x").replace(_timer("timeDate", "x"),
                                                 "<bpmn:timerEventDefinition/>")
    assert "(found none)" in _problems(none)[0]


def test_a_timer_on_a_throw_event_is_refused():
    bpmn = intermediate("timeDuration", '"PT1H"').replace("intermediateCatchEvent",
                                                          "intermediateThrowEvent")
    assert _problems(bpmn) == ["process.bpmn:8: wait: Hẹn giờ chỉ đặt ở sự kiện bắt đầu, chờ "
                               "hoặc biên / a timer can only be a start, intermediate catch or "
                               "boundary event"]


def test_an_interrupting_cycle_is_refused():
    [problem] = _problems(boundary("timeCycle", '"R2/PT1H"', interrupting=True))
    assert problem.startswith("process.bpmn:11: remind: Chu kỳ trên sự kiện biên ngắt không "
                              "ngắt ở lần đầu / a timeCycle on an interrupting "), problem
    assert _problems(boundary("timeDuration", '"PT1H"', interrupting=True)) == []


def test_a_scenario_with_a_timer_boundary_event_loads(ioc, tmp_path):
    from tests.test_scenarios import _check

    folder = tmp_path / "hotline-ticket"
    shutil.copytree(Path(SCENARIOS) / "hotline-ticket", folder)
    bpmn = folder / "process.bpmn"
    reminder = """
    <bpmn:boundaryEvent id="answer_overdue" attachedToRef="answer_ticket" cancelActivity="false">
      <bpmn:outgoing>to_remind</bpmn:outgoing>
      <bpmn:timerEventDefinition id="overdue_timer">
        <bpmn:timeDuration>TIMER</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:scriptTask id="remind" name="Remind">
      <bpmn:incoming>to_remind</bpmn:incoming>
      <bpmn:outgoing>to_reminded</bpmn:outgoing>
      <bpmn:script>reminded = True</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="reminded"><bpmn:incoming>to_reminded</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="to_remind" sourceRef="answer_overdue" targetRef="remind"/>
    <bpmn:sequenceFlow id="to_reminded" sourceRef="remind" targetRef="reminded"/>
  </bpmn:process>"""
    original = bpmn.read_text(encoding="utf-8")
    assert original.count("</bpmn:process>") == 1
    bpmn.write_text(original.replace("</bpmn:process>", reminder.replace("TIMER", '"P2D"')),
                    encoding="utf-8")
    _check(ioc, folder)  # raises ScenarioInvalid on any problem

    bpmn.write_text(original.replace("</bpmn:process>", reminder.replace("TIMER", '"2 days"')),
                    encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as err:
        _check(ioc, folder)
    [problem] = err.value.problems
    assert problem.path == "answer_overdue"
    assert "'2 days' is not an ISO 8601 duration" in str(problem)
    lines = bpmn.read_text(encoding="utf-8").splitlines()
    assert 'id="answer_overdue"' in lines[problem.line - 1]
