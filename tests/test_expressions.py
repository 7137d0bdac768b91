"""The restricted evaluator: normal use works, escapes and runaway code fail with ExpressionError."""
from __future__ import annotations

import sys
import threading
import time

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.util.task import TaskState

from engine.expressions import (
    ExpressionError,
    RestrictedEnvironment,
    check_expression,
    check_script,
    evaluate,
    execute,
    make_script_engine,
)
from engine.expressions.guards import guarded_getattr

NAMES = {
    "x": 3,
    "finding": "confirmed",
    "category": "flood",
    "event": {"kind": "flood", "levels": [1, 5, 9], "where": {"district": "Ba Dinh"}},
    "name": "Nguyen Van A",
    "tags": ["water", "road"],
}


@pytest.mark.parametrize("src, expected", [
    ("1 + 2 * 3", 7),
    ("x ** 2 - 1", 8),
    ("7 // 2, 7 % 2, 7 / 2", (3, 1, 3.5)),
    ("x > 2 and x <= 3", True),
    ('finding == "confirmed"', True),
    ('category in ["fire", "flood"]', True),
    ('category not in ["fire"]', True),
    ('event["where"]["district"]', "Ba Dinh"),
    ('event["levels"][-1]', 9),
    ('event.get("missing", "none")', "none"),
    ("name.upper()", "NGUYEN VAN A"),
    ("name.split()[0].lower()", "nguyen"),
    ('", ".join(tags)', "water, road"),
    ("[t.upper() for t in tags if t != 'road']", ["WATER"]),
    ("{k: len(k) for k in tags}", {"water": 5, "road": 4}),
    ("sum(v for v in event['levels'])", 15),
    ("max(event['levels']) if event['levels'] else None", 9),
    ("sorted(tags, key=lambda t: len(t))", ["road", "water"]),
    ("[i * j for i, j in zip(range(3), [4, 5, 6])]", [0, 5, 12]),
    ("list(enumerate(tags))", [(0, "water"), (1, "road")]),
    ("f'{name} ({x:03d})'", "Nguyen Van A (003)"),
    ("round(abs(-2.567), 1)", 2.6),
    ("str(x) + '!' * 3", "3!!!"),
    ("any(t == 'road' for t in tags) and all([1, True])", True),
    ("{**event}['kind']", "flood"),
    ("2 ** 64", 2 ** 64),
    ("  x == 3  ", True),  # whitespace around a condition, as BPMN XML often has
])
def test_expressions_evaluate(src, expected):
    assert evaluate(src, NAMES) == expected


def test_script_assigns_variables_into_data():
    data = {"severity": 4, "tags": ["a"]}
    execute(
        "points = severity * 2\n"
        "level = 'high' if points > 5 else 'low'\n"
        "counts = {}\n"
        "for tag in tags + ['b', 'a']:\n"
        "    counts[tag] = counts.get(tag, 0) + 1\n"
        "first, (second, third) = 1, [2, 3]\n"
        "total = 0\n"
        "for _ in range(10):\n"
        "    total += first\n"
        "tags.append('c')\n",
        data,
    )
    assert data == {
        "severity": 4, "tags": ["a", "c"], "points": 8, "level": "high",
        "counts": {"a": 2, "b": 1}, "tag": "a", "first": 1, "second": 2, "third": 3,
        "total": 10,
    }


def test_script_can_delete_and_define_helpers_it_removes():
    data = {"old": 1}
    execute("def double(v):\n    return v * 2\nnew = double(old)\ndel old\ndel double", data)
    assert data == {"new": 2}


@pytest.mark.parametrize("script, variable, kind", [
    ("def helper():\n    return 1", "helper", "function"),
    ("f = len", "f", "builtin_function_or_method"),
    ("pair = (1, 2)", "pair", "tuple"),
    ("g = (v for v in [1])", "g", "generator"),
    ("keys = {'a': 1}.keys()", "keys", "dict_keys"),
    ("nested = {'a': [1, {2, 3}]}", "nested", "set"),
])
def test_script_leaving_non_plain_values_is_refused(script, variable, kind):
    data = {"keep": "me"}
    with pytest.raises(ExpressionError) as info:
        execute(script, data)
    assert repr(variable) in str(info.value) and kind in str(info.value)
    assert data == {"keep": "me"}  # nothing half-applied


def test_failed_script_leaves_data_untouched():
    data = {"a": 1}
    with pytest.raises(ExpressionError):
        execute("a = 2\nb = 3\nc = 1 / 0", data)
    assert data == {"a": 1}


def test_check_does_not_run():
    check_expression("1 / 0")
    check_script("while True:\n    pass")
    with pytest.raises(ExpressionError) as info:
        check_script("a = 1\nb = 2\nimport os")
    assert info.value.line == 3
    assert info.value.message == "import is not allowed"
    assert str(info.value) == "line 3: import is not allowed"


def test_error_messages_and_lines():
    with pytest.raises(ExpressionError) as info:
        execute("a = 1\nb = os.getcwd()", {})
    assert (info.value.line, info.value.message) == (2, "name 'os' is not defined")
    with pytest.raises(ExpressionError) as info:
        evaluate("x ==", {})
    assert info.value.line == 1 and "syntax" in info.value.message
    with pytest.raises(ExpressionError) as info:
        evaluate("event['nope']", NAMES)
    assert str(info.value) == "line 1: KeyError: 'nope'"
    with pytest.raises(ExpressionError, match="empty expression"):
        check_expression("   ")


# Each of these must be refused, whether at compile time or at run time.
ESCAPES = [
    "__import__('os')",
    "open('/etc/hostname')",
    "().__class__.__base__.__subclasses__()",
    "getattr(x, '__class__')",
    "eval('1')",
    "exec('x=1')",
    "globals()",
    "vars()",
    "type(x)",
    "compile('1', 'f', 'eval')",
    "'{0.__class__}'.format(1)",
    "'{0.__class__}'.format_map({})",
    "(lambda: '{0.__class__}'.format(1))()",
    "f'{x.__class__}'",
    "(lambda: 0).__code__",
    "(x for x in []).gi_frame.f_globals",
    "(x for x in []).gi_code",
    "str.mro()",
    "x._private",
    "print('hi')",
]


@pytest.mark.parametrize("src", ESCAPES)
def test_escapes_refused_in_expressions(src):
    with pytest.raises(ExpressionError):
        evaluate(src, NAMES)
    with pytest.raises(ExpressionError):
        check_expression(src)


SCRIPT_ESCAPES = [f"result = {src}" for src in ESCAPES] + [
    "import os",
    "from os import path",
    "import os as _os",
    "x.attr = 1",
    "class A:\n    pass",
    "try:\n    pass\nexcept Exception:\n    pass",
    "with x:\n    pass",
    "def f():\n    global y\n    y = 1",
    "__builtins__['open']('/etc/hostname')",
]


@pytest.mark.parametrize("src", SCRIPT_ESCAPES)
def test_escapes_refused_in_scripts(src):
    data = dict(NAMES)
    with pytest.raises(ExpressionError):
        execute(src, data)
    assert data == NAMES


def test_str_format_is_refused_at_run_time_too():
    # Belt and braces for the compile-time check: the attribute guard refuses it as well.
    with pytest.raises(ExpressionError):
        guarded_getattr("{0.__class__}", "format")
    with pytest.raises(ExpressionError):
        guarded_getattr("x", "__class__")
    with pytest.raises(ExpressionError):
        guarded_getattr(str, "maketrans")


@pytest.mark.parametrize("src", [
    "sum(range(10**12))",
    "len(range(10**30))",
    "'x' * 10**10",
    "[0] * 10**10",
    "2 ** 10**12",
    "10 ** 10**8",
    "1 << 10**10",
    "'a'.ljust(10**10)",
    "'a'.zfill(10**10)",
    "('a' * 1000).replace('', 'b' * 1000)",
    "'-'.join(['x' * 1000] * 10000)",
    "sum([[0] * 1000] * 1000, [])",
])
def test_huge_results_are_refused_quickly(src):
    start = time.monotonic()
    with pytest.raises(ExpressionError, match="too large|only adds numbers"):
        evaluate(src, {}, timeout_s=5.0)
    assert time.monotonic() - start < 0.5


def test_huge_repetition_in_a_loop_is_refused():
    with pytest.raises(ExpressionError, match="too large"):
        execute("s = 'ab'\nwhile True:\n    s = s + s", {}, timeout_s=5.0)
    with pytest.raises(ExpressionError, match="too large"):
        execute("s = [1]\nwhile True:\n    s *= 2", {}, timeout_s=5.0)


@pytest.mark.parametrize("src", [
    "while True: pass",
    "while True:\n    pass",
    "while 1: continue",
    "n = 0\nwhile True:\n    n += 1",
    "def spin():\n    while True: pass\nspin()",
    "r = [a * b for a in range(100000) for b in range(100000)]",
    "r = sum(1 for a in range(100000) for b in range(100000))",
])
def test_runaway_scripts_time_out(src):
    start = time.monotonic()
    with pytest.raises(ExpressionError, match=r"timed out after 0\.2 s"):
        execute(src, {}, timeout_s=0.2)
    assert time.monotonic() - start < 1.5


def test_runaway_expression_times_out():
    with pytest.raises(ExpressionError) as info:
        evaluate("[0 for a in range(100000) for b in range(100000)]", {}, timeout_s=0.2)
    assert str(info.value) == "line 1: timed out after 0.2 s"


def test_timeout_works_outside_the_main_thread():
    outcome = []

    def run():
        try:
            execute("while True: pass", {}, timeout_s=0.2)
        except ExpressionError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5)
    assert outcome == ["line 1: timed out after 0.2 s"]


def test_previous_trace_function_is_restored():
    seen = []

    def outer_tracer(frame, event, arg):
        seen.append(event)
        return None

    original = sys.gettrace()
    sys.settrace(outer_tracer)
    try:
        assert evaluate("x + 1", {"x": 1}) == 2
        assert sys.gettrace() is outer_tracer
        with pytest.raises(ExpressionError):
            execute("while True: pass", {}, timeout_s=0.1)
        assert sys.gettrace() is outer_tracer
        with pytest.raises(ExpressionError):
            evaluate("1 / 0", {})
        assert sys.gettrace() is outer_tracer
    finally:
        sys.settrace(original)


def test_normal_loops_are_fast_enough():
    data: dict = {}
    start = time.monotonic()
    execute("t = 0\nfor i in range(100000):\n    t += i", data)
    assert data["t"] == sum(range(100000))
    assert time.monotonic() - start < 1.0


# --- SpiffWorkflow --------------------------------------------------------------------------

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="defs" targetNamespace="http://example.org/ioc">
  <bpmn:process id="triage" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="score"/>
    <bpmn:scriptTask id="score" name="Score">
      <bpmn:script>SCORE_SCRIPT</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="score" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="to_log"/>
    <bpmn:sequenceFlow id="to_escalate" sourceRef="gw" targetRef="escalate">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">
        level == "high" and category in ["flood", "fire"]
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_log" sourceRef="gw" targetRef="log"/>
    <bpmn:scriptTask id="escalate" name="Escalate">
      <bpmn:script>path = "escalated"</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:scriptTask id="log" name="Log">
      <bpmn:script>path = "logged"</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="escalate" targetRef="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="log" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

SCORE = "points = severity * 2\nlevel = &quot;high&quot; if points &gt; 5 else &quot;low&quot;"


def _workflow(score_script: str = SCORE, timeout_s: float = 1.0) -> BpmnWorkflow:
    parser = CamundaParser()
    parser.add_bpmn_str(BPMN.replace("SCORE_SCRIPT", score_script).encode())
    return BpmnWorkflow(parser.get_spec("triage"), script_engine=make_script_engine(timeout_s))


def _run(workflow: BpmnWorkflow, **data) -> BpmnWorkflow:
    workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
    workflow.do_engine_steps()
    return workflow


def _completed(workflow: BpmnWorkflow) -> set[str]:
    return {t.task_spec.name for t in workflow.get_tasks(state=TaskState.COMPLETED)}


def test_workflow_takes_the_escalation_path():
    workflow = _run(_workflow(), severity=4, category="flood")
    assert workflow.is_completed()
    assert workflow.data["path"] == "escalated"
    assert workflow.data["level"] == "high" and workflow.data["points"] == 8
    assert "escalate" in _completed(workflow) and "log" not in _completed(workflow)


def test_workflow_takes_the_default_path():
    workflow = _run(_workflow(), severity=1, category="flood")
    assert workflow.is_completed()
    assert workflow.data["path"] == "logged"
    assert "log" in _completed(workflow) and "escalate" not in _completed(workflow)


def test_workflow_script_task_importing_os_raises():
    workflow = _workflow("points = 1\nimport os\nlevel = os.getcwd()")
    with pytest.raises(WorkflowTaskException) as info:
        _run(workflow, severity=1, category="flood")
    assert info.value.error_type == "ExpressionError"
    assert "import is not allowed" in str(info.value)
    assert info.value.line_number == 2
    assert not workflow.is_completed()


def test_workflow_runaway_script_task_times_out():
    workflow = _workflow("while True: pass", timeout_s=0.2)
    with pytest.raises(WorkflowTaskException, match="timed out after 0.2 s"):
        _run(workflow, severity=1, category="flood")


def test_workflow_gateway_condition_errors_raise():
    # The condition reads `level`, which this script does not set.
    workflow = _workflow("points = 1")
    with pytest.raises(WorkflowTaskException) as info:
        _run(workflow, severity=1, category="flood")
    assert "name 'level' is not defined" in str(info.value)


@pytest.fixture
def spiff_task():
    workflow = _workflow()
    task = workflow.get_tasks(state=TaskState.READY)[0]
    task.data.update(NAMES)
    return task


@pytest.mark.parametrize("src", ESCAPES)
def test_escapes_refused_by_the_spiff_engine_expressions(spiff_task, src):
    engine = make_script_engine()
    with pytest.raises(WorkflowTaskException) as info:
        engine.evaluate(spiff_task, src)
    assert info.value.error_type == "ExpressionError"
    assert isinstance(info.value.__cause__, ExpressionError)


@pytest.mark.parametrize("src", SCRIPT_ESCAPES)
def test_escapes_refused_by_the_spiff_engine_scripts(spiff_task, src):
    engine = make_script_engine()
    with pytest.raises(WorkflowTaskException) as info:
        engine.execute(spiff_task, src)
    assert info.value.error_type == "ExpressionError"


def test_spiff_engine_timeouts(spiff_task):
    engine = make_script_engine(timeout_s=0.2)
    start = time.monotonic()
    with pytest.raises(WorkflowTaskException, match="timed out"):
        engine.execute(spiff_task, "while True: pass")
    with pytest.raises(WorkflowTaskException, match="too large"):
        engine.evaluate(spiff_task, "sum(range(10**12))")
    assert time.monotonic() - start < 1.5


def test_spiff_engine_validate():
    engine = make_script_engine()
    engine.validate("x > 5")
    with pytest.raises(SyntaxError):  # SpiffWorkflow's DMN engine relies on SyntaxError here
        engine.validate("> 5")
    with pytest.raises(ExpressionError):
        engine.validate("__import__('os')")


def test_environment_extra_names_are_visible_but_not_stored():
    env = RestrictedEnvironment(environment_globals={"limit": 10})
    assert env.evaluate("x < limit", {"x": 3}, {"bonus": 1}) is True
    assert env.evaluate("x + bonus", {"x": 3}, {"bonus": 1}) == 4
    context = {"x": 3}
    assert env.execute("y = x + limit + bonus", context, {"bonus": 1}) is True
    assert context == {"x": 3, "y": 14}


DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d"
    namespace="http://example.org/ioc">
  <decision id="routing" name="Routing">
    <decisionTable id="t">
      <input id="in1" label="Category">
        <inputExpression id="ie1" typeRef="string"><text>category</text></inputExpression>
      </input>
      <input id="in2" label="Severity">
        <inputExpression id="ie2" typeRef="integer"><text>severity</text></inputExpression>
      </input>
      <output id="out1" name="department" typeRef="string"/>
      <rule id="r1">
        <inputEntry id="r1a"><text>"flood"</text></inputEntry>
        <inputEntry id="r1b"><text>SEVERITY_CELL</text></inputEntry>
        <outputEntry id="r1o"><text>"civil-defence"</text></outputEntry>
      </rule>
      <rule id="r2">
        <inputEntry id="r2a"><text>"fire"</text></inputEntry>
        <inputEntry id="r2b"><text></text></inputEntry>
        <outputEntry id="r2o"><text>ward.upper()</text></outputEntry>
      </rule>
      <rule id="r3">
        <inputEntry id="r3a"><text></text></inputEntry>
        <inputEntry id="r3b"><text></text></inputEntry>
        <outputEntry id="r3o"><text>"ioc"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>"""

DMN_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs"
    targetNamespace="http://example.org/ioc">
  <bpmn:process id="route" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:businessRuleTask id="decide" camunda:decisionRef="routing"/>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def _route(severity_cell: str = "&gt;= 3", **data) -> BpmnWorkflow:
    parser = CamundaParser()
    parser.add_bpmn_str(DMN_BPMN.encode())
    parser.add_dmn_str(DMN.replace("SEVERITY_CELL", severity_cell).encode())
    workflow = BpmnWorkflow(parser.get_spec("route"), script_engine=make_script_engine())
    return _run(workflow, **data)


@pytest.mark.parametrize("category, severity, department", [
    ("flood", 4, "civil-defence"),
    ("flood", 1, "ioc"),
    ("fire", 1, "WARD-7"),
    ("other", 9, "ioc"),
])
def test_dmn_cells_run_in_the_sandbox(category, severity, department):
    workflow = _route(category=category, severity=severity, ward="ward-7")
    assert workflow.is_completed()
    assert workflow.data["department"] == department


def test_dmn_cell_escape_raises():
    with pytest.raises(WorkflowTaskException) as info:
        _route("__import__('os') is None", category="flood", severity=4, ward="w")
    assert "'__import__' is not allowed" in str(info.value)
