"""The side panels' XML edits: each kind read, written and read back; nothing else touched; the
edited files still pass the scenario checks and run in the engine."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from engine.scenarios import service
from engine.scenarios.bpmn_checks import NS
from engine.scenarios.bpmn_edit import EditError, apply_properties, element_kind, read_properties
from engine.timers.models import Timer
from tests.conftest import SCENARIOS, load_scenarios
from tests.scenario_files import write_scenario
from tests.time_helpers import Drive, local


def shipped(key: str) -> bytes:
    return (Path(SCENARIOS) / key / "process.bpmn").read_bytes()


# What bpmn-js writes for a freshly drawn diagram: no camunda or xsi namespace yet.
DRAWN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
    xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" id="Definitions_1"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:collaboration id="Collaboration_1">
    <bpmn:participant id="Participant_1" processRef="Process_1"/>
  </bpmn:collaboration>
  <bpmn:process id="Process_1" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_1" name="trung-tam-phvhcc">
        <bpmn:flowNodeRef>Start</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="Start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="Wait"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:intermediateCatchEvent>
    <bpmn:userTask id="Handle" name="X\xe1\xbb\xad l\xc3\xbd"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="Late" attachedToRef="Handle"><bpmn:outgoing>f6</bpmn:outgoing>
    </bpmn:boundaryEvent>
    <bpmn:exclusiveGateway id="Choice"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f4</bpmn:outgoing><bpmn:outgoing>f5</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:parallelGateway id="Fork"/>
    <bpmn:scriptTask id="Close"><bpmn:incoming>f4</bpmn:incoming>
      <bpmn:outgoing>f7</bpmn:outgoing></bpmn:scriptTask>
    <bpmn:serviceTask id="Call"/>
    <bpmn:endEvent id="End"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="End2"><bpmn:incoming>f6</bpmn:incoming><bpmn:incoming>f7</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="Start" targetRef="Wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="Wait" targetRef="Handle"/>
    <bpmn:sequenceFlow id="f3" sourceRef="Handle" targetRef="Choice"/>
    <bpmn:sequenceFlow id="f4" name="Xong" sourceRef="Choice" targetRef="Close"/>
    <bpmn:sequenceFlow id="f5" sourceRef="Choice" targetRef="End"/>
    <bpmn:sequenceFlow id="f6" sourceRef="Late" targetRef="End2"/>
    <bpmn:sequenceFlow id="f7" sourceRef="Close" targetRef="End2"/>
    <bpmn:textAnnotation id="Note"><bpmn:text>ghi ch\xc3\xba</bpmn:text></bpmn:textAnnotation>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="Diagram_1">
    <bpmndi:BPMNPlane id="Plane_1" bpmnElement="Collaboration_1">
      <bpmndi:BPMNShape id="Handle_di" bpmnElement="Handle">
        <dc:Bounds x="270" y="80" width="100" height="80"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


# The smallest process a scenario needs, as drawn: the wait has no definition yet. (Not "Start"
# as an id: SpiffWorkflow names its own start task so.)
RUNNABLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Definitions_1"
    targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="Process_1" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_1" name="trung-tam-phvhcc">
        <bpmn:flowNodeRef>StartEvent_1</bpmn:flowNodeRef><bpmn:flowNodeRef>Wait</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>Handle</bpmn:flowNodeRef><bpmn:flowNodeRef>EndEvent_1</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="StartEvent_1"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="Wait"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:intermediateCatchEvent>
    <bpmn:userTask id="Handle"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="EndEvent_1"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="StartEvent_1" targetRef="Wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="Wait" targetRef="Handle"/>
    <bpmn:sequenceFlow id="f3" sourceRef="Handle" targetRef="EndEvent_1"/>
  </bpmn:process>
</bpmn:definitions>
"""


def rest(xml: bytes, *ids: str) -> bytes:
    """The document without the elements of these ids, whitespace aside, canonical."""
    root = etree.fromstring(xml, etree.XMLParser(remove_blank_text=True))
    for el in [e for e in root.iter() if isinstance(e.tag, str) and e.get("id") in ids]:
        el.getparent().remove(el)
    return etree.tostring(root, method="c14n2", strip_text=True)


def edit(xml: bytes, element_id: str, props: dict) -> bytes:
    """Apply, check that only `element_id` changed, and return the new XML."""
    out = apply_properties(xml, element_id, props)
    assert rest(out, element_id) == rest(xml, element_id)
    return out


@pytest.mark.parametrize("xml, element_id, kind", [
    (DRAWN, "Lane_1", "lane"), (DRAWN, "Handle", "user_task"), (DRAWN, "Close", "script_task"),
    (DRAWN, "Call", "task"), (DRAWN, "Start", "start_event"), (DRAWN, "End", "end_event"),
    (DRAWN, "Wait", "catch_event"), (DRAWN, "Late", "catch_event"),
    (DRAWN, "Choice", "exclusive_gateway"), (DRAWN, "Fork", "gateway"),
    (DRAWN, "f4", "sequence_flow"), (DRAWN, "Participant_1", "participant"),
    (DRAWN, "Note", "other"), (DRAWN, "Process_1", "other"),
    (shipped("dossier-overdue"), "new_date_passed", "timer_event"),
    (shipped("dossier-overdue"), "result_returned", "message_event"),
    (shipped("hotline-ticket"), "resolved_at_call_centre", "message_event"),
    (shipped("hotline-ticket"), "route", "task"),
])
def test_each_element_has_its_kind(xml, element_id, kind):
    assert element_kind(xml, element_id) == kind


@pytest.mark.parametrize("xml, message", [
    (b"<bpmn:definitions", "Not well-formed XML"),
    (b"<definitions/>", "Not a BPMN 2.0 file"),
    (b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
     b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&e;'
     b"</bpmn:definitions>", "DOCTYPE"),
    (DRAWN, "No element 'Nope'"),
])
def test_bad_xml_and_unknown_elements_are_refused(xml, message):
    for call in (lambda: element_kind(xml, "Nope"), lambda: read_properties(xml, "Nope"),
                 lambda: apply_properties(xml, "Nope", {"name": "x"})):
        with pytest.raises(EditError) as err:
            call()
        assert message in err.value.message and " / " in err.value.message


def test_a_lane_names_a_department_or_an_expression():
    assert read_properties(DRAWN, "Lane_1") == {"department": "trung-tam-phvhcc"}
    out = edit(DRAWN, "Lane_1", {"department": "so-xay-dung"})
    assert read_properties(out, "Lane_1") == {"department": "so-xay-dung"}
    out = edit(out, "Lane_1", {"department": "= unit"})
    assert read_properties(out, "Lane_1") == {"department": "=unit"}
    for bad, field in (("Sở Xây dựng", "department"), ("=__import__('os')", "department")):
        with pytest.raises(EditError) as err:
            apply_properties(DRAWN, "Lane_1", {"department": bad})
        assert err.value.field == field


FIELDS = [
    {"id": "finding", "label": "Kết luận / Finding", "type": "enum", "required": True,
     "multiline": False, "choices": [("confirmed", "Có vi phạm / Confirmed"),
                                     ("unfounded", "Không có / Unfounded")]},
    {"id": "note", "label": "Ghi chú / Note", "type": "string", "required": False,
     "multiline": True, "choices": []},
    {"id": "visits", "label": "Số lần / Visits", "type": "long", "required": True,
     "multiline": False, "choices": []},
]


def test_a_user_task_form_round_trips_and_drops_empty_rows():
    out = edit(DRAWN, "Handle", {"name": "Xác minh / Verify",
                                 "fields": FIELDS[:1] + [{"id": " "}] + FIELDS[1:]})
    assert read_properties(out, "Handle") == {"name": "Xác minh / Verify", "fields": FIELDS}
    root = etree.fromstring(out)
    assert root.nsmap["camunda"] == "http://camunda.org/schema/1.0/bpmn"  # declared on the root
    assert b"ns0" not in out
    # Fewer fields, then none: the form goes, and so does the empty extensionElements.
    out = edit(out, "Handle", {"fields": FIELDS[1:2]})
    assert read_properties(out, "Handle")["fields"] == FIELDS[1:2]
    out = edit(out, "Handle", {"fields": [{"id": ""}]})
    assert read_properties(out, "Handle") == {"name": "Xác minh / Verify", "fields": []}
    assert b"extensionElements" not in out


def test_a_form_keeps_what_the_panel_does_not_edit():
    xml = shipped("hot-topic").replace(
        b'<camunda:formField id="response"',
        b'<camunda:formField id="response" defaultValue="Ch\xc6\xb0a c\xc3\xb3"').replace(
        b"<camunda:formData>", b'<camunda:properties><camunda:property name="icon" value="x"/>'
                               b"</camunda:properties><camunda:formData>")
    fields = read_properties(xml, "assess_topic")["fields"]
    fields[1]["required"] = True
    out = edit(xml, "assess_topic", {"fields": fields})
    assert read_properties(out, "assess_topic")["fields"] == fields
    assert 'defaultValue="Chưa có"' in out.decode()
    assert b'<camunda:property name="icon" value="x"/>' in out


@pytest.mark.parametrize("row, field, message", [
    ({"id": "Start", "type": "string"}, "fields-1-id", "Row 2: field id 'Start' is also the id"),
    ({"id": "2nd", "type": "string"}, "fields-1-id", "must be a name"),
    ({"id": "finding", "type": "string"}, "fields-1-id", "appears twice"),
    ({"id": "kind", "type": "enum"}, "fields-1-choices", "needs at least one choice"),
    ({"id": "kind", "type": "string", "choices": [("a", "A")]}, "fields-1-choices", "only enum"),
    ({"id": "kind", "type": "enum", "choices": [("a b", "A")]}, "fields-1-choices", "unique id"),
    ({"id": "kind", "type": "long", "multiline": True}, "fields-1-multiline", "only string"),
    ({"id": "kind", "type": "text"}, "fields-1-type", "is not one of"),
])
def test_bad_form_fields_are_refused_naming_the_row(row, field, message):
    with pytest.raises(EditError) as err:
        apply_properties(DRAWN, "Handle", {"fields": [FIELDS[0], row]})
    assert err.value.field == field
    assert message in err.value.message and err.value.message.startswith("Dòng 2: ")


@pytest.mark.parametrize("props, xml_text", [
    ({"mode": "wall", "hours": 2, "minutes": 30}, '<bpmn:timeDuration xsi:type="bpmn:tFormal'
                                                  'Expression">"PT2H30M"</bpmn:timeDuration>'),
    ({"mode": "working_hours", "amount": 4}, ">add_working_hours(now(), 4)</bpmn:timeDate>"),
    ({"mode": "working_days", "amount": 2.5}, ">add_working_days(now(), 2.5)</bpmn:timeDate>"),
    ({"mode": "date", "value": "2026-12-01T08:00"}, '>"2026-12-01T08:00:00+07:00"</bpmn:timeDate>'),
    ({"mode": "cycle", "amount": 3, "hours": 1, "minutes": 0}, '>"R3/PT1H"</bpmn:timeCycle>'),
    ({"mode": "cycle", "amount": None, "hours": 0, "minutes": 15}, '>"R/PT15M"</bpmn:timeCycle>'),
    ({"mode": "expression", "timer_kind": "timeDate", "value": "add_working_days(received_at, 5)"},
     ">add_working_days(received_at, 5)</bpmn:timeDate>"),
])
def test_a_catch_event_becomes_a_timer_in_each_mode(props, xml_text):
    timer = edit(DRAWN, "Wait", {"definition": "timer"})
    assert element_kind(timer, "Wait") == "timer_event"
    assert read_properties(timer, "Wait")["mode"] == "wall"  # what the panel proposes first
    out = edit(timer, "Wait", {"name": "Chờ / Wait", **props})
    assert xml_text in out.decode()
    back = read_properties(out, "Wait")
    assert back["name"] == "Chờ / Wait" and back["interrupting"] is None
    assert {k: back[k] for k in props} == props
    # Changing the mode replaces the one timer value.
    again = edit(out, "Wait", {"mode": "wall", "hours": 1})
    assert read_properties(again, "Wait")["mode"] == "wall"
    assert len(re.findall(rb"<bpmn:time(?:Date|Duration|Cycle)\b", again)) == 1


def test_an_expression_timer_falls_back_to_the_raw_text():
    props = read_properties(shipped("dossier-overdue"), "new_date_passed")
    assert (props["mode"], props["timer_kind"], props["value"]) == (
        "expression", "timeDate", 'new_appointment + "T17:00:00+07:00"')


def test_a_boundary_timer_can_stop_interrupting():
    timer = edit(DRAWN, "Late", {"definition": "timer"})
    assert read_properties(timer, "Late")["interrupting"] is True
    out = edit(timer, "Late", {"mode": "cycle", "amount": 2, "hours": 1, "interrupting": False})
    assert read_properties(out, "Late")["interrupting"] is False
    assert b'cancelActivity="false"' in out
    with pytest.raises(EditError) as err:  # a cycle cannot interrupt at its first occurrence
        apply_properties(out, "Late", {"interrupting": True, "mode": "cycle", "amount": 2,
                                       "hours": 1})
    assert err.value.field == "mode"


@pytest.mark.parametrize("props, field, message", [
    ({"mode": "wall", "hours": 0, "minutes": 0}, "hours", "Enter the hours or the minutes"),
    ({"mode": "wall", "hours": 1, "minutes": 75}, "minutes", "from 0 to 59"),
    ({"mode": "working_hours", "amount": "-1"}, "amount", "from 0"),
    ({"mode": "working_days", "amount": ""}, "amount", "above 0"),
    ({"mode": "date", "value": "01/12/2026"}, "value", "date and time"),
    ({"mode": "cycle", "amount": 1.5, "hours": 1}, "amount", "whole number"),
    ({"mode": "expression", "timer_kind": "timeDuration", "value": "PT1H"}, "value", "quotes"),
    ({"mode": "expression", "timer_kind": "timeDuration", "value": '"1 hour"'}, "value",
     "not an ISO 8601 duration"),
    ({"mode": "expression", "timer_kind": "timeDate", "value": "__import__('os')"}, "value",
     "Invalid expression"),
    ({"mode": "expression", "timer_kind": "soon", "value": '"PT1H"'}, "timer_kind", "Choose"),
    ({"mode": "later"}, "mode", "Choose how"),
])
def test_bad_timer_values_are_refused_naming_the_field(props, field, message):
    timer = apply_properties(DRAWN, "Wait", {"definition": "timer"})
    with pytest.raises(EditError) as err:
        apply_properties(timer, "Wait", props)
    assert err.value.field == field and message in err.value.message


def test_a_message_event_reuses_or_creates_its_message_and_drops_the_unused_one():
    xml = shipped("dossier-overdue")
    assert read_properties(xml, "result_returned") == {
        "name": "Đã trả kết quả / Result returned", "event_type": "dossier.completed",
        "correlate_on": "dossier_id", "takes": []}
    out = apply_properties(xml, "result_returned", {"event_type": "dossier.returned",
                                                    "correlate_on": "dossier_id"})
    assert read_properties(out, "result_returned")["event_type"] == "dossier.returned"
    # The old message and its retrieval expression went; the correlation property is shared.
    assert b"msg_completed" not in out and out.count(b"<bpmn:correlationProperty ") == 1
    assert rest(out, "result_returned", "msg_completed", "msg_dossier_returned", "cp_dossier_id") \
        == rest(xml, "result_returned", "msg_completed", "msg_dossier_returned", "cp_dossier_id")
    out = apply_properties(out, "result_returned", {"event_type": "dossier.returned",
                                                    "correlate_on": "procedure"})
    assert read_properties(out, "result_returned")["correlate_on"] == "procedure"
    assert b"cp_dossier_id" not in out and b'name="procedure"' in out


def test_a_message_shared_by_two_events_stays_for_the_other():
    xml = re.sub(rb'<bpmn:timerEventDefinition id="new_date_timer">.*?</bpmn:timerEventDefinition>',
                 b'<bpmn:messageEventDefinition id="passed" messageRef="msg_completed"/>',
                 shipped("dossier-overdue"), flags=re.S)
    out = apply_properties(xml, "new_date_passed", {"event_type": "dossier.returned",
                                                    "correlate_on": "dossier_id"})
    assert b'<bpmn:message id="msg_completed"' in out
    assert read_properties(out, "result_returned")["event_type"] == "dossier.completed"
    assert read_properties(out, "new_date_passed")["event_type"] == "dossier.returned"


def test_a_catch_event_becomes_a_message_event():
    caught = edit(DRAWN, "Wait", {"definition": "message"})
    assert read_properties(caught, "Wait") == {"name": "", "event_type": "", "correlate_on": "",
                                            "takes": []}
    out = apply_properties(caught, "Wait", {"event_type": "hotline.ticket.resolved",
                                            "correlate_on": "ticket_id"})
    assert read_properties(out, "Wait")["correlate_on"] == "ticket_id"
    root = etree.fromstring(out)
    [message] = root.findall("bpmn:message", NS)
    [prop] = root.findall("bpmn:correlationProperty", NS)
    assert message.get("name") == "hotline.ticket.resolved" and prop.get("name") == "ticket_id"
    assert prop.find("bpmn:correlationPropertyRetrievalExpression", NS).get("messageRef") == \
        message.get("id")
    # Both go before the collaboration and the process, as in the shipped files.
    assert [etree.QName(e).localname for e in root][:3] == [
        "message", "correlationProperty", "collaboration"]
    with pytest.raises(EditError) as err:
        apply_properties(DRAWN, "Wait", {"definition": "signal"})
    assert err.value.field == "definition"


@pytest.mark.parametrize("props, field", [
    ({"event_type": "", "correlate_on": "dossier_id"}, "event_type"),
    ({"event_type": "dossier.returned", "correlate_on": "dossier id"}, "correlate_on"),
])
def test_bad_message_values_are_refused(props, field):
    with pytest.raises(EditError) as err:
        apply_properties(shipped("dossier-overdue"), "result_returned", props)
    assert err.value.field == field


def test_a_flow_takes_a_condition_or_becomes_the_default():
    assert read_properties(DRAWN, "f4") == {"name": "Xong", "condition": "", "is_default": False,
                                            "from_gateway": True}
    out = edit(DRAWN, "f4", {"condition": 'finding == "confirmed"', "is_default": False})
    assert read_properties(out, "f4")["condition"] == 'finding == "confirmed"'
    assert b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' in out
    assert b'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">' in out
    out = apply_properties(out, "f4", {"condition": "x > 1", "is_default": True})
    assert read_properties(out, "f4")["is_default"] is True
    assert read_properties(out, "f4")["condition"] == ""  # a default flow has no condition
    assert read_properties(out, "Choice")["default"] == "f4"
    out = apply_properties(out, "f4", {"is_default": False, "condition": ""})
    assert read_properties(out, "Choice")["default"] == ""


@pytest.mark.parametrize("element_id, props, field", [
    ("f4", {"condition": "import os"}, "condition"),
    ("f4", {"condition": "finding =="}, "condition"),
    ("f1", {"is_default": True}, "is_default"),
])
def test_bad_flow_values_are_refused(element_id, props, field):
    with pytest.raises(EditError) as err:
        apply_properties(DRAWN, element_id, props)
    assert err.value.field == field and "/" in err.value.message


def test_a_gateway_chooses_its_default_among_its_flows():
    xml = shipped("air-quality")
    props = read_properties(xml, "kind_gateway")
    assert props["default"] == "to_restore"
    assert [f for f, _ in props["outgoing"]] == ["to_respond", "to_restore"]
    out = apply_properties(xml, "kind_gateway", {"default": "to_respond"})
    assert read_properties(out, "kind_gateway")["default"] == "to_respond"
    assert read_properties(out, "to_respond")["condition"] == ""
    with pytest.raises(EditError) as err:
        apply_properties(xml, "kind_gateway", {"default": "to_assess"})
    assert err.value.field == "default"


def test_a_script_is_checked_before_it_is_written():
    out = edit(DRAWN, "Close", {"script": 'outcome = "closed"'})
    assert read_properties(out, "Close") == {"name": "", "script": 'outcome = "closed"'}
    for bad in ("", "import os", "x = (", "__class__ = 1"):
        with pytest.raises(EditError) as err:
            apply_properties(DRAWN, "Close", {"script": bad})
        assert err.value.field == "script"


@pytest.mark.parametrize("element_id", ["Call", "Start", "End", "Fork", "Process_1", "Choice"])
def test_the_name_of_any_element_round_trips(element_id):
    out = edit(DRAWN, element_id, {"name": "Bước / Step"})
    assert read_properties(out, element_id)["name"] == "Bước / Step"


def test_names_of_other_elements():
    out = edit(DRAWN, "Participant_1", {"name": "Xử lý / Handling"})
    assert read_properties(out, "Participant_1") == {"name": "Xử lý / Handling"}
    out = edit(out, "Participant_1", {"name": "  "})
    assert b"Participant_1\" name" not in out and read_properties(out, "Participant_1") == {
        "name": ""}
    with pytest.raises(EditError) as err:
        apply_properties(DRAWN, "End", {"name": "x" * 501})
    assert err.value.field == "name"


def _departments(ioc) -> set[str]:
    from engine.org import service as org

    with ioc.db.read() as s:
        return org.known_keys(s)


def test_the_edited_hot_topic_process_still_passes_the_checks(ioc):
    files = service.read_folder(Path(SCENARIOS) / "hot-topic")
    xml = files["process.bpmn"].encode()
    xml = apply_properties(xml, "lane_khcn", {"department": "van-phong-ubnd"})
    fields = read_properties(xml, "assess_topic")["fields"] + [
        {"id": "published_at", "label": "Ngày đăng / Published on", "type": "date",
         "required": True}]
    xml = apply_properties(xml, "assess_topic", {"name": "Đánh giá / Assess", "fields": fields})
    xml = apply_properties(xml, "to_end", {"name": "Xong / Done"})
    scenario = service.check({**files, "process.bpmn": xml.decode()}, ioc.vocabulary,
                             _departments(ioc))
    spec = scenario.spec["spec"]["task_specs"]["assess_topic"]
    assert [f["id"] for f in spec["form"]["fields"]] == ["outcome", "response", "published_at"]
    # And what the checks refuse, the panel refused first: a field named like an element.
    with pytest.raises(EditError):
        apply_properties(xml, "assess_topic", {"fields": fields + [{"id": "end", "type": "long"}]})


def test_a_working_hours_timer_fires_at_the_working_time_moment(ioc, source, tmp_path):
    xml = apply_properties(RUNNABLE, "Wait", {"definition": "timer"})
    xml = apply_properties(xml, "Wait", {"mode": "working_hours", "amount": 4})
    xml = apply_properties(xml, "Handle", {"name": "Xử lý / Handle", "fields": FIELDS[1:2]})
    write_scenario(tmp_path, "wait-working-hours", "dossier.returned", xml.decode())
    load_scenarios(ioc, str(tmp_path))
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 16:00"), source[0])  # a Monday
    drive.send("dossier.returned", {"dossier_id": "HS-1", "procedure": "1.004227",
                                    "unit": "phuong-thu-dau-mot"})
    with ioc.db.read() as s:
        [timer] = s.scalars(select(Timer).where(Timer.kind == "bpmn")).all()
    # 16:00–17:00 on Monday, then 07:30–10:30 on Tuesday: four office hours.
    assert timer.due_at == local("2026-03-03 10:30")
    drive.at(local("2026-03-03 10:29"))
    assert drive.tasks("Handle") == []
    drive.at(local("2026-03-03 10:30"))
    [task] = drive.tasks("Handle")
    assert task.department_key == "trung-tam-phvhcc" and task.status == "open"


@pytest.mark.parametrize("props, field", [
    ({"name": "Bước\x00"}, "name"),
    ({"fields": [{"id": "note", "label": "Ghi\x1bchú", "type": "string"}]}, "fields-0-label"),
    ({"fields": [{"id": "kind", "type": "enum", "choices": [("a", "A\x07")]}]}, "fields-0-choices"),
])
def test_control_characters_xml_cannot_hold_are_refused(props, field):
    with pytest.raises(EditError) as err:
        apply_properties(DRAWN, "Handle", props)
    assert err.value.field == field and "control character" in err.value.message
