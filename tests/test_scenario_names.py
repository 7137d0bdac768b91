"""Validation knows the names: a condition, script, timer or lane expression that reads a variable
the process cannot have at that point is refused with file:line and the nearest known name."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.events.vocabulary import Vocabulary
from engine.scenarios import service
from engine.scenarios.names import check_names, free_names
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS

VOCABULARY = Vocabulary.load()
DEPARTMENTS = {"ioc"}

MANIFEST = """key: name-check
version: 1
name: {vi: Kiểm tra tên, en: Name check}
owner: ioc
severity: low
"""
RULES = """rules:
  - key: returned
    name: {vi: Trả hồ sơ, en: Dossier returned}
    when:
      event: dossier.returned
    then:
      open: violation
      title: {vi: "Hồ sơ {event.dossier_id}"}
      subject: "{event.dossier_id}"
      data: {dossier_id: "{event.dossier_id}", unit: "{event.unit}"}
"""
# start → prepare (script) → early (gateway) → review (a form: decision) → decide (gateway) → end;
# review has a timer boundary event; {placeholders} are what each test varies.
PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="https://ioc.test">
  <bpmn:message id="msg_completed" name="dossier.completed"/>
  <bpmn:process id="p" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_review" name="{lane}">
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare"/>
    <bpmn:scriptTask id="prepare">
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="early"/>
    <bpmn:exclusiveGateway id="early" default="f3"/>
    <bpmn:sequenceFlow id="f3" sourceRef="early" targetRef="review"/>
    <bpmn:sequenceFlow id="f_early" sourceRef="early" targetRef="end_early">
      <bpmn:conditionExpression>{early}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:userTask id="review">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="decision" type="enum">
            <camunda:value id="vi_pham" name="Vi phạm / Violation"/>
            <camunda:value id="khong" name="Không / None"/>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="late" attachedToRef="review">
      <bpmn:timerEventDefinition>
        <bpmn:timeDate>{timer}</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f_late" sourceRef="late" targetRef="end_late"/>
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="decide"/>
    <bpmn:exclusiveGateway id="decide" default="f6"/>
    <bpmn:sequenceFlow id="f5" sourceRef="decide" targetRef="end_violation">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f6" sourceRef="decide" targetRef="end_none"/>
    <bpmn:endEvent id="end_early"/>
    <bpmn:endEvent id="end_late"/>
    <bpmn:endEvent id="end_violation"/>
    <bpmn:endEvent id="end_none"/>
  </bpmn:process>
</bpmn:definitions>
"""
SOUND = {"lane": "ioc", "script": 'level = "cao" if dossier_id else "thap"',
         "early": 'dossier_id == ""', "timer": '"2030-01-01T17:00:00+07:00"',
         "condition": 'decision == "vi_pham"'}


def _folder(tmp_path: Path, **changes: str) -> Path:
    """A scenario folder whose process has SOUND's expressions, with `changes`."""
    (tmp_path / "scenario.yaml").write_text(MANIFEST, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "process.bpmn").write_text(PROCESS.format(**{**SOUND, **changes}),
                                           encoding="utf-8")
    return tmp_path


def _problems(tmp_path: Path, **changes: str) -> list:
    try:
        service.check_folder(_folder(tmp_path, **changes), VOCABULARY, DEPARTMENTS)
    except ScenarioInvalid as exc:
        return exc.problems
    return []


def _line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "process.bpmn").read_text(encoding="utf-8").splitlines()
    [number] = [i for i, line in enumerate(lines, 1) if text in line]
    return number


def test_the_sound_process_passes(tmp_path):
    assert _problems(tmp_path) == []


def test_a_typo_in_a_condition_is_refused_at_its_line_with_the_nearest_name(tmp_path):
    [problem] = _problems(tmp_path, condition='decison == "vi_pham"')
    line = _line_of(tmp_path, "decison")
    assert str(problem).startswith(f"{tmp_path / 'process.bpmn'}:{line}: f5: ")
    assert (problem.file, problem.line, problem.path) == (str(tmp_path / "process.bpmn"),
                                                          line, "f5")
    assert "`decison`" in problem.message
    assert "did you mean `decision`?" in problem.message
    assert " / " in problem.message  # Vietnamese first, then English


def test_a_name_set_by_an_upstream_script_is_accepted(tmp_path):
    assert _problems(tmp_path, condition='level == "cao" and decision == "vi_pham"') == []
    assert _problems(tmp_path, early='level == "thap"') == []


def test_a_form_field_of_a_later_task_is_refused_before_it(tmp_path):
    [problem] = _problems(tmp_path, early='decision != "khong"')
    assert (problem.path, problem.line) == ("f_early", _line_of(tmp_path, "decision !="))
    assert "`decision`" in problem.message
    assert "only review sets it" in problem.message


def test_the_start_data_are_known(tmp_path):
    # The rule's data, and what the pipeline adds when the rule opens a violation.
    assert _problems(tmp_path, early='unit == "ioc" and violation_id > 0') == []
    assert _problems(tmp_path, lane="=unit") == []


def test_a_name_the_rules_never_give_is_refused(tmp_path):
    [problem] = _problems(tmp_path, early="rule_window is None")  # not a temporal rule
    assert "`rule_window`" in problem.message


def test_the_evaluator_functions_and_builtins_are_known(tmp_path):
    assert _problems(tmp_path, timer="add_working_days(now(), 2)",
                     early="len(dossier_id) > 3 and working_hours_between(now(), now()) != 1",
                     condition='any(c == "x" for c in dossier_id) and sorted([1]) == [1]') == []


def test_a_lane_expression_names_its_task_and_suggests(tmp_path):
    [problem] = _problems(tmp_path, lane="=unt")
    assert (problem.path, problem.line) == ("lane_review", _line_of(tmp_path, 'name="=unt"'))
    assert "at task review" in problem.message
    assert "did you mean `unit`?" in problem.message


def test_a_script_reports_the_line_of_the_name(tmp_path):
    script = "\n        total = 1\n        total = totl + 1\n      "
    [problem] = _problems(tmp_path, script=script)
    assert (problem.path, problem.line) == ("prepare", _line_of(tmp_path, "totl"))
    assert "did you mean `total`?" in problem.message


def test_a_boundary_timer_does_not_see_the_answers_of_its_task(tmp_path):
    # The timer starts when the task does, before anyone answers.
    [problem] = _problems(tmp_path, timer='decision + "T17:00:00+07:00"')
    assert problem.path == "late"
    assert "`decision`" in problem.message


def test_names_bound_inside_an_expression_are_not_read():
    tree = ast.parse("[x for x in items if (lambda y: y)(x)] + [z := 1, z]", mode="eval")
    assert [n.id for n in free_names(tree)] == ["items"]


MESSAGE_AND_DMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="https://ioc.test">
  <bpmn:message id="m" name="dossier.completed"/>
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route"/>
    <bpmn:businessRuleTask id="route" camunda:decisionRef="routing"/>
    <bpmn:sequenceFlow id="f2" sourceRef="route" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:outputParameter name="officer">${{officer}}</camunda:outputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
      <bpmn:messageEventDefinition messageRef="m"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="close"/>
    <bpmn:scriptTask id="close">
      <bpmn:script>outcome = officer or department{extra}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="close" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_message_fields_and_dmn_outputs_are_known_after_their_step():
    sound = MESSAGE_AND_DMN.format(extra="").encode()
    assert check_names("p.bpmn", sound, frozenset(),
                       {"routing": frozenset({"department"})}) == []
    [problem] = check_names("p.bpmn", sound, frozenset(),
                            {"routing": frozenset({"unit_key"})})
    assert "`department`" in problem.message


def test_a_message_field_the_event_does_not_declare_is_not_known():
    # dossier.completed has `unit`, but the catch event takes only `officer`.
    assert "unit" in VOCABULARY.field_types()["dossier.completed"]
    text = MESSAGE_AND_DMN.format(extra=" or unit").encode()
    [problem] = check_names("p.bpmn", text, frozenset(),
                            {"routing": frozenset({"department"})})
    assert "`unit`" in problem.message


def test_unknown_start_data_still_refuse_a_name_set_only_later(tmp_path):
    (tmp_path / "rules.yaml").write_text("rules: [", encoding="utf-8")
    text = PROCESS.format(**{**SOUND, "early": 'whatever == 1 or decision == "x"'}).encode()
    [problem] = check_names("process.bpmn", text, None)
    assert "`decision`" in problem.message


@pytest.mark.parametrize("folder", sorted(p.name for p in Path(SCENARIOS).iterdir()
                                          if (p / "scenario.yaml").is_file()))
def test_the_shipped_scenarios_pass(ioc, folder):
    from engine.org import service as org

    with ioc.db.session() as s:
        departments = org.known_keys(s)
    service.check_folder(Path(SCENARIOS) / folder, ioc.vocabulary, departments)
