"""The BPMN graph checks: each problem names its element and line; sound diagrams pass."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.scenarios.bpmn_checks import check_bpmn
from tests.conftest import ORG_FILE, SCENARIOS
from tests.scenario_files import HEAD as DEFINITIONS
from tests.scenario_files import correlated_message

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="https://ioc.test">
  <bpmn:process id="p" isExecutable="true">
"""
TAIL = """  </bpmn:process>
</bpmn:definitions>
"""
FORM = ('<bpmn:extensionElements><camunda:formData><camunda:formField id="outcome" '
        'type="string"/></camunda:formData></bpmn:extensionElements>')
TIMER = ('<bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration>'
         '</bpmn:timerEventDefinition>')
# start → review (a user task with a form) → end
SOUND = f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review">{FORM}</bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:endEvent id="end"/>
"""


def _check(body: str, head: str = HEAD):
    text = head + body + TAIL
    problems, _ = check_bpmn("process.bpmn", text.encode(), {"ioc", "so-xay-dung"}, {})
    return problems, text.splitlines()


def _only(body: str, element: str, *phrases: str, head: str = HEAD):
    """The single problem of `body`: on `element`, at its line, saying `phrases`."""
    problems, lines = _check(body, head)
    assert [p.path for p in problems] == [element], problems
    [problem] = problems
    assert problem.file == "process.bpmn"
    assert f'id="{element}"' in lines[problem.line - 1], problem
    for phrase in phrases:
        assert phrase in problem.message
    # Vietnamese first, then English.
    assert " / " in problem.message
    return problem


def test_a_sound_diagram_has_no_problem():
    assert _check(SOUND)[0] == []


@pytest.mark.parametrize("folder", sorted(p.name for p in Path(SCENARIOS).iterdir()
                                          if (p / "process.bpmn").is_file()))
def test_the_shipped_diagrams_pass_the_graph_checks(folder):
    text = (Path(SCENARIOS) / folder / "process.bpmn").read_bytes()
    # Every unit of the organisation file: playbooks give orders to forces and wards too.
    departments = {unit["key"] for unit in yaml.safe_load(Path(ORG_FILE).read_text())["units"]}
    events = {"dossier.completed": {"dossier_id": "string"},
              "hotline.ticket.resolved": {"ticket_id": "string", "answer": "string"}}
    assert check_bpmn("process.bpmn", text, departments, events)[0] == []


# -- reachability ---------------------------------------------------------------------------

def test_a_node_no_start_event_reaches_is_reported():
    _only(SOUND + """
    <bpmn:scriptTask id="orphan"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="orphan" targetRef="end"/>
""", "orphan", "cannot be reached from a start event", "Không thể tới")


def test_a_boundary_event_is_reached_through_its_activity():
    body = SOUND + f"""
    <bpmn:boundaryEvent id="late" attachedToRef="review">{TIMER}</bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="remind"/>
    <bpmn:scriptTask id="remind"><bpmn:script>late = True</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="remind" targetRef="end"/>
"""
    assert _check(body)[0] == []


def test_the_boundary_event_of_an_unreachable_activity_is_not_reported_twice():
    _only(SOUND + f"""
    <bpmn:userTask id="lost">{FORM}</bpmn:userTask>
    <bpmn:sequenceFlow id="f3" sourceRef="lost" targetRef="end"/>
    <bpmn:boundaryEvent id="late" attachedToRef="lost">{TIMER}</bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="late" targetRef="end"/>
""", "lost", "cannot be reached")


def test_an_event_subprocess_and_its_nodes_are_reachable_by_their_trigger():
    body = SOUND + f"""
    <bpmn:subProcess id="on_timeout" triggeredByEvent="true">
      <bpmn:startEvent id="timeout" isInterrupting="false">{TIMER}</bpmn:startEvent>
      <bpmn:sequenceFlow id="s1" sourceRef="timeout" targetRef="note"/>
      <bpmn:scriptTask id="note"><bpmn:script>late = True</bpmn:script></bpmn:scriptTask>
      <bpmn:sequenceFlow id="s2" sourceRef="note" targetRef="noted"/>
      <bpmn:endEvent id="noted"/>
    </bpmn:subProcess>
"""
    assert _check(body)[0] == []


def test_a_node_inside_a_subprocess_is_checked_against_the_subprocess_start():
    _only("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="sub_start"/>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="sub_end"/>
      <bpmn:endEvent id="sub_end"/>
      <bpmn:scriptTask id="stray"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
      <bpmn:sequenceFlow id="s2" sourceRef="stray" targetRef="sub_end"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", "stray", "cannot be reached")


def test_link_events_carry_the_path_on():
    body = """
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="jump"/>
    <bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="A"/>
    </bpmn:intermediateThrowEvent>
    <bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="A"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="land" targetRef="end"/>
    <bpmn:endEvent id="end"/>
"""
    assert _check(body)[0] == []
    # A catch event of another link is reached by nothing, nor is what follows it.
    problems, lines = _check(body.replace('name="A"/>\n    </bpmn:intermediateCatchEvent>',
                                          'name="B"/>\n    </bpmn:intermediateCatchEvent>'))
    assert [p.path for p in problems] == ["land", "end"]
    assert 'id="land"' in lines[problems[0].line - 1]


def test_a_process_without_a_start_event_says_so():
    _only("""
    <bpmn:scriptTask id="only"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="only" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", "p", "no start event")


# -- dead ends ------------------------------------------------------------------------------

def test_a_node_without_outgoing_flow_is_a_dead_end():
    _only("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:exclusiveGateway id="decide"/>
""", "decide", "no outgoing sequence flow and is not an end event")


def test_an_activity_that_only_leaves_through_its_boundary_event_is_a_dead_end():
    _only(f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review">{FORM}</bpmn:userTask>
    <bpmn:boundaryEvent id="late" attachedToRef="review">{TIMER}</bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="late" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""", "review", "only leaves through its boundary event late", "completing it normally")


def test_a_boundary_event_without_outgoing_flow_is_a_dead_end():
    _only(SOUND + f"""
    <bpmn:boundaryEvent id="late" attachedToRef="review" cancelActivity="false">{TIMER}
    </bpmn:boundaryEvent>
""", "late", "boundary event has no outgoing sequence flow")


# -- forms and lanes ------------------------------------------------------------------------

def test_a_user_task_without_form_fields_says_the_person_has_nothing_to_answer():
    _only(SOUND.replace(f'<bpmn:userTask id="review">{FORM}</bpmn:userTask>',
                        '<bpmn:userTask id="review"/>'),
          "review", "nothing to answer", "không có trường biểu mẫu")


LANES = """
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_ioc" name="ioc">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>sub</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
"""
LANED = LANES + f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:userTask id="review">{FORM}</bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="sub_start"/>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="inner"/>
      <bpmn:userTask id="inner">{FORM}</bpmn:userTask>
      <bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="sub_end"/>
      <bpmn:endEvent id="sub_end"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f3" sourceRef="sub" targetRef="note"/>
    <bpmn:scriptTask id="note"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f4" sourceRef="note" targetRef="end"/>
    <bpmn:endEvent id="end"/>
"""


def test_tasks_in_a_lane_or_in_a_laned_subprocess_have_a_department():
    # The script task is outside every lane, but only inbox tasks are given a department.
    assert _check(LANED)[0] == []


def test_an_inbox_task_outside_every_lane_is_reported():
    _only(LANED.replace("<bpmn:flowNodeRef>review</bpmn:flowNodeRef>", ""),
          "review", "outside every lane", "owner")


def test_without_lanes_every_task_goes_to_the_owner_unremarked():
    assert _check(LANED.replace(LANES, ""))[0] == []


# -- sequence flows -------------------------------------------------------------------------

def test_a_sequence_flow_to_a_missing_node_is_reported():
    _only(SOUND + '    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="ending"/>\n',
          "f3", "targetRef 'ending' does not exist")


def test_a_sequence_flow_without_source_is_reported():
    _only(SOUND + '    <bpmn:sequenceFlow id="f3" targetRef="end"/>\n',
          "f3", "has no sourceRef")


def test_a_sequence_flow_crossing_into_a_subprocess_is_reported():
    _only("""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="sub_start"/>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="sub_end"/>
      <bpmn:endEvent id="sub_end"/>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="start" targetRef="sub_end"/>
    <bpmn:endEvent id="end"/>
""", "f3", "targetRef 'sub_end' is not a flow node of the process or subprocess")


@pytest.mark.parametrize("ident", ["Start", "End", "p.EndJoin"])
def test_ids_the_workflow_engine_reserves_are_refused(ident):
    body = SOUND.replace('id="end"', f'id="{ident}"').replace('targetRef="end"',
                                                               f'targetRef="{ident}"')
    _only(body, ident, "reserved")


# -- what a catch event takes from its message ------------------------------------------------

MESSAGE_HEAD = DEFINITIONS + correlated_message("hotline.ticket.resolved", "ticket_id") + \
    '  <bpmn:process id="p" isExecutable="true">\n'


def _taking(parameters: str) -> list:
    body = f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:extensionElements><camunda:inputOutput>{parameters}</camunda:inputOutput>
      </bpmn:extensionElements>
      <bpmn:messageEventDefinition messageRef="msg"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"/>
"""
    fields = {"hotline.ticket.resolved": {"ticket_id": "string", "answer": "string"}}
    problems, _ = check_bpmn("process.bpmn", (MESSAGE_HEAD + body + TAIL).encode(),
                             {"ioc"}, fields)
    return [(p.line, p.message) for p in problems]


def test_a_catch_event_takes_fields_of_its_message_by_name():
    assert _taking('<camunda:outputParameter name="reply">${answer}</camunda:outputParameter>') \
        == []


def test_a_field_the_message_lacks_is_named_with_the_fields_it_has():
    [(line, message)] = _taking(
        '<camunda:outputParameter name="reply">${anwser}</camunda:outputParameter>')
    assert line == 14 and "has no field 'anwser' for 'reply' (fields: answer, ticket_id)" \
        in message


def test_an_output_parameter_is_a_field_not_an_expression():
    [(line, message)] = _taking(
        '<camunda:outputParameter name="reply">${answer.upper()}</camunda:outputParameter>')
    assert line == 15 and "must be a field of the event, written ${field}" in message
