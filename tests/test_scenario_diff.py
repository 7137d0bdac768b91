"""The diff between two scenario versions: what an inspector changed, element by element and
rule by rule, with layout apart, and broken drafts compared as text without raising."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.scenarios import service
from engine.scenarios.diff import diff
from tests.conftest import SCENARIOS


def _files(name: str) -> dict[str, str]:
    return service.read_folder(Path(SCENARIOS) / name)


def _edit(files: dict[str, str], name: str, old: str, new: str) -> dict[str, str]:
    assert files[name].count(old) == 1, f"{old!r} is not once in {name}"
    return dict(files, **{name: files[name].replace(old, new)})


def _status(result: dict) -> dict[str, str]:
    return {f["name"]: f["status"] for f in result["files"]}


def test_the_same_files_have_no_changes():
    files = _files("hotline-ticket")
    result = diff(files, dict(files))
    assert set(_status(result).values()) == {"same"}
    assert all(f["unified"] == "" for f in result["files"])
    assert (result["manifest"], result["rules"], result["elements"], result["sla"]) == \
        ([], [], [], [])
    assert result["layout_changed"] is False
    assert [result[f"{s}_note"] for s in ("manifest", "rules", "elements", "sla")] == [None] * 4
    json.dumps(result)  # plain data, ready for the web page


def test_a_renamed_task():
    old = _files("hotline-ticket")
    new = _edit(old, "process.bpmn", 'name="Trả lời phản ánh / Answer the citizen"',
                'name="Trả lời công dân / Reply to the citizen"')
    result = diff(old, new)
    assert result["elements"] == [{
        "id": "answer_ticket", "type": "userTask", "name": "Trả lời công dân / Reply to the citizen",
        "change": "changed", "fields": [{"path": "name",
                                         "old": "Trả lời phản ánh / Answer the citizen",
                                         "new": "Trả lời công dân / Reply to the citizen"}]}]
    assert result["layout_changed"] is False
    assert _status(result) == {"process.bpmn": "changed", "routing.dmn": "same",
                               "rules.yaml": "same", "scenario.yaml": "same", "sla.yaml": "same"}
    unified = next(f["unified"] for f in result["files"] if f["name"] == "process.bpmn")
    assert unified.startswith("--- a/process.bpmn\n+++ b/process.bpmn\n@@")
    assert '-    <bpmn:userTask id="answer_ticket" name="Trả lời phản ánh' in unified
    assert '+    <bpmn:userTask id="answer_ticket" name="Trả lời công dân' in unified


def test_a_changed_condition():
    old = _files("dossier-violations")
    new = _edit(old, "process.bpmn", 'finding == "confirmed"',
                'finding in ("confirmed", "partly")')
    assert diff(old, new)["elements"] == [{
        "id": "confirmed_flow", "type": "sequenceFlow", "name": "Có vi phạm", "change": "changed",
        "fields": [{"path": "condition", "old": 'finding == "confirmed"',
                    "new": 'finding in ("confirmed", "partly")'}]}]


def test_a_moved_shape_is_layout_only():
    old = _files("dossier-violations")
    new = _edit(old, "process.bpmn", '<dc:Bounds x="270" y="110" width="120" height="80"/>',
                '<dc:Bounds x="300" y="140" width="120" height="80"/>')
    result = diff(old, new)
    assert result["elements"] == [] and result["layout_changed"] is True
    assert _status(result)["process.bpmn"] == "changed"


def test_reformatting_the_xml_changes_nothing():
    old = _files("dossier-violations")
    new = _edit(old, "process.bpmn", '<bpmn:sequenceFlow id="to_verify" sourceRef="start" '
                'targetRef="verify"/>', '<bpmn:sequenceFlow   targetRef="verify"\n'
                '        id="to_verify" sourceRef="start" ></bpmn:sequenceFlow>')
    result = diff(old, new)
    assert (result["elements"], result["layout_changed"]) == ([], False)


def test_a_rule_threshold_change():
    old = _files("air-quality")
    new = _edit(old, "rules.yaml", "while: {value: {gt: 50}}", "while: {value: {gt: 75}}")
    assert diff(old, new)["rules"] == [{
        "key": "pm25-sustained", "change": "changed",
        "name": {"vi": "PM2.5 vượt ngưỡng kéo dài", "en": "Sustained PM2.5 exceedance"},
        "fields": [{"path": "when.sustained.while.value.gt", "old": 50, "new": 75}]}]


def test_rules_added_removed_and_list_paths():
    old = _files("dossier-violations")
    new = _edit(old, "rules.yaml", "  - key: returned-without-reason",
                "  - key: returned-without-a-reason")
    new = _edit(new, "rules.yaml", "          as: second\n", "          as: later\n")
    rules = {r["key"]: r for r in diff(old, new)["rules"]}
    assert {k: r["change"] for k, r in rules.items()} == {
        "repeated-supplement-request": "changed", "returned-without-a-reason": "added",
        "returned-without-reason": "removed"}
    assert rules["repeated-supplement-request"]["fields"] == [
        {"path": "when.all[1].as", "old": "second", "new": "later"}]
    assert rules["returned-without-reason"]["fields"] == []


def test_an_added_lane():
    old = _files("hotline-ticket")
    new = _edit(old, "process.bpmn", "    </bpmn:laneSet>",
                '      <bpmn:lane id="lane_inspection" name="thanh-tra">\n'
                "        <bpmn:flowNodeRef>close_answered</bpmn:flowNodeRef>\n"
                "      </bpmn:lane>\n    </bpmn:laneSet>")
    new = _edit(new, "process.bpmn", "        <bpmn:flowNodeRef>close_answered</bpmn:flowNodeRef>\n"
                "        <bpmn:flowNodeRef>end_answered", "        <bpmn:flowNodeRef>end_answered")
    elements = diff(old, new)["elements"]
    assert elements == [
        {"id": "lane_inspection", "type": "lane", "name": "thanh-tra", "change": "added",
         "fields": []},
        {"id": "close_answered", "type": "scriptTask", "name": "Đóng: đã trả lời / Close as answered",
         "change": "changed",
         "fields": [{"path": "lane", "old": "lane_competent", "new": "lane_inspection"}]}]


def test_form_fields_timers_messages_and_flows():
    old = _files("dossier-overdue")
    new = _edit(old, "process.bpmn", 'new_appointment + "T17:00:00+07:00"',
                'new_appointment + "T11:30:00+07:00"')
    new = _edit(new, "process.bpmn", 'label="Lý do trễ hạn / Reason for the delay" type="string"',
                'label="Lý do / Reason" type="string"')
    fields = {e["id"]: e["fields"] for e in diff(old, new)["elements"]}
    assert fields["new_date_passed"] == [{"path": "timer.timeDate",
                                          "old": 'new_appointment + "T17:00:00+07:00"',
                                          "new": 'new_appointment + "T11:30:00+07:00"'}]
    [task] = [k for k, v in fields.items() if v[0]["path"].startswith("form.delay_reason")]
    assert fields[task] == [{"path": "form.delay_reason.label",
                             "old": "Lý do trễ hạn / Reason for the delay",
                             "new": "Lý do / Reason"}]

    hotline = _files("hotline-ticket")
    rerouted = _edit(hotline, "process.bpmn", 'messageRef="msg_resolved"/>',
                     'messageRef="msg_other"/>')
    rerouted = _edit(rerouted, "process.bpmn", 'id="to_close_answered" sourceRef="answer_ticket"',
                     'id="to_close_answered" sourceRef="route"')
    fields = {e["id"]: e["fields"] for e in diff(hotline, rerouted)["elements"]}
    assert fields["resolved_at_call_centre"] == [
        {"path": "messageRef", "old": "msg_resolved", "new": "msg_other"},
        {"path": "message", "old": "hotline.ticket.resolved", "new": None}]
    assert fields["to_close_answered"] == [
        {"path": "sourceRef", "old": "answer_ticket", "new": "route"}]


def test_a_gateway_default_and_a_new_required_field():
    old = _files("air-quality")
    new = _edit(old, "process.bpmn", 'default="to_restore"', 'default="to_respond"')
    new = _edit(new, "process.bpmn",
                '<camunda:formField id="restored" label="Trạm đã gửi lại số liệu / Reporting '
                'again" type="boolean"/>',
                '<camunda:formField id="restored" label="Trạm đã gửi lại số liệu / Reporting '
                'again" type="boolean"/>\n<camunda:formField id="ticket" label="Phiếu / Ticket" '
                'type="string"><camunda:validation><camunda:constraint name="required"/>'
                '</camunda:validation></camunda:formField>')
    changes = {e["id"]: e["fields"] for e in diff(old, new)["elements"]}
    assert changes["kind_gateway"] == [{"path": "default", "old": "to_restore",
                                        "new": "to_respond"}]
    [added] = [f for fs in changes.values() for f in fs if f["path"] == "form.ticket"]
    assert added["old"] is None
    assert added["new"] == {"label": "Phiếu / Ticket", "type": "string", "required": True}


def test_manifest_and_sla_changes():
    old = _files("air-quality")
    new = _edit(old, "scenario.yaml", "severity: medium", "severity: high")
    new = _edit(new, "sla.yaml", "target: 4h", "target: 2h")
    result = diff(old, new)
    assert result["manifest"] == [{"field": "severity", "old": "medium", "new": "high"}]
    assert [(s["key"], s["change"], s["fields"]) for s in result["sla"]] == [
        ("respond", "changed", [{"path": "target", "old": "4h", "new": "2h"}])]
    without_sla = {k: v for k, v in old.items() if k != "sla.yaml"}
    gone = diff(old, without_sla)
    assert _status(gone)["sla.yaml"] == "removed"
    assert [(s["key"], s["change"]) for s in gone["sla"]] == [("respond", "removed"),
                                                              ("repair", "removed")]
    assert diff(without_sla, without_sla)["sla"] == []


def test_an_unparsable_draft_still_gets_its_text_diff():
    old = _files("hotline-ticket")
    draft = _edit(old, "process.bpmn", "</bpmn:process>", "</bpmn:proces>")
    draft = _edit(draft, "rules.yaml", "    when:\n      event: hotline.ticket.created",
                  "    when: [\n      event: hotline.ticket.created")
    result = diff(old, draft)
    assert result["elements"] is None and result["layout_changed"] is None
    assert result["rules"] is None
    assert "process.bpmn (bản mới)" in result["elements_note"]
    assert "process.bpmn (new version) does not parse" in result["elements_note"]
    assert "rules.yaml (new version) does not parse" in result["rules_note"]
    assert result["sla"] == [] and result["manifest"] == []  # what parses is still compared
    by_name = {f["name"]: f for f in result["files"]}
    assert "+  </bpmn:proces>" in by_name["process.bpmn"]["unified"]
    assert "+    when: [" in by_name["rules.yaml"]["unified"]
    # The other way round the old side is the broken one.
    back = diff(draft, old)
    assert "(old version)" in back["elements_note"] and "(bản cũ)" in back["rules_note"]


@pytest.mark.parametrize("broken", [
    {"scenario.yaml": "- a list\n"},
    {"scenario.yaml": "key: [\n"},
    {"scenario.yaml": "rules: 7\nprocess: [x]\n"},
    {"rules.yaml": "rules: {a: 1}\n"},
    {"rules.yaml": "rules: &r [*r]\n"},
    {"rules.yaml": "rules: [1, {key: 2}, {key: a}, {key: a}]\n"},
    {"sla.yaml": "slas:\n  - key: a\n    target: !!binary aGk=\n"},
    {"process.bpmn": ""},
    {"process.bpmn": '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'},
    {"process.bpmn": None},
    {},
])
def test_bad_drafts_never_raise(broken):
    old = _files("hotline-ticket")
    result = diff(old, {**old, **broken} if broken else {})
    json.dumps(result)
    for section in ("manifest", "rules", "elements", "sla"):
        assert (result[section] is None) == (result[f"{section}_note"] is not None)
    assert diff({**old, **broken} if broken else {}, old)["files"]


def test_a_value_that_contains_itself_is_a_note():
    result = diff({"rules.yaml": "rules: [{key: a, x: &r [*r]}]"},
                  {"rules.yaml": "rules: [{key: a, x: &r [1, *r]}]"})
    assert result["rules"] is None and "contains itself" in result["rules_note"]


def test_entities_are_not_expanded():
    bpmn = ('<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/hostname">]>'
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">'
            '<bpmn:process id="p"><bpmn:task id="t" name="Kiểm tra">'
            '<bpmn:documentation>&secret;</bpmn:documentation></bpmn:task></bpmn:process>'
            '</bpmn:definitions>')
    result = diff({"process.bpmn": bpmn}, {"process.bpmn": bpmn.replace("&secret;", "Công khai")})
    assert result["elements"] == [{"id": "t", "type": "task", "name": "Kiểm tra",
                                   "change": "changed", "fields": [
                                       {"path": "documentation", "old": "", "new": "Công khai"}]}]
