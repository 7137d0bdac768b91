"""The process editor's side panels through the web app: show a panel, apply it, see the errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.app import create_app
from engine.scenarios.bpmn_edit import read_properties
from tests.conftest import SCENARIOS
from tests.test_web import _csrf


def shipped(key: str) -> str:
    return (Path(SCENARIOS) / key / "process.bpmn").read_text(encoding="utf-8")


@pytest.fixture
def app(ioc):
    return create_app(services=ioc)


def signed_in(app, username: str):
    """A test client logged in as `username`, and its CSRF token."""
    client = app.test_client()
    token = _csrf(client.get("/login").get_data(as_text=True))
    resp = client.post("/login", data={"username": username, "password": "password-123",
                                       "csrf_token": token})
    assert resp.status_code == 302
    return client, token


@pytest.fixture
def inspector(app, people):
    return signed_in(app, "inspector")


def panel(signed, xml: str, element_id: str, action: str = "show", **fields):
    client, token = signed
    return client.post("/designer/panel", data={"xml": xml, "element_id": element_id,
                                                "action": action, "csrf_token": token, **fields})


def test_show_renders_the_lane_form_with_its_department_selected(inspector):
    resp = panel(inspector, shipped("hot-topic"), "lane_khcn")
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["element_id"], body["kind"]) == ("lane_khcn", "lane")
    assert body["title"].startswith("Làn")
    html = body["html"]
    assert '<form class="panel-form" data-kind="lane"' in html
    assert re.search(r'<option selected value="so-khoa-hoc-cong-nghe">Sở Khoa học và Công nghệ '
                     r'\(Department of Science and Technology\) — so-khoa-hoc-cong-nghe</option>',
                     html)
    assert html.count("selected") == 1
    assert "Áp dụng / Apply" in html
    for hidden in ("csrf_token", 'name="xml"', 'name="element_id"', 'name="action"'):
        assert hidden not in html
    # Departments in Vietnamese order: "Sở Khoa học…" before "Sở Xây dựng", "Ủy ban…" last.
    labels = re.findall(r'<option (?:selected )?value="[^"]+">([^<]+)</option>', html)
    assert labels.index(next(x for x in labels if x.startswith("Sở Khoa học"))) < \
        labels.index(next(x for x in labels if x.startswith("Sở Xây dựng")))


def test_apply_returns_the_new_xml(inspector):
    resp = panel(inspector, shipped("hot-topic"), "lane_khcn", "apply",
                 department="so-xay-dung", expression="")
    body = resp.get_json()
    assert resp.status_code == 200 and body["message"] == "Đã cập nhật / Updated"
    assert "html" not in body
    assert read_properties(body["xml"].encode(), "lane_khcn") == {"department": "so-xay-dung"}


def test_a_lane_expression_is_shown_and_kept(inspector):
    xml = shipped("dossier-overdue")
    html = panel(inspector, xml, "lane_unit").get_json()["html"]
    assert 'name="expression" type="text" value="unit"' in html
    body = panel(inspector, xml, "lane_unit", "apply", department="",
                 expression="dossier_unit").get_json()
    assert read_properties(body["xml"].encode(), "lane_unit") == {"department": "=dossier_unit"}
    body = panel(inspector, xml, "lane_unit", "apply", department="so-xay-dung",
                 expression="unit").get_json()
    assert "xml" not in body and "không cả hai" in body["html"]


def test_the_user_task_form_shows_its_rows_and_applies_them(inspector):
    xml = shipped("hot-topic")
    html = panel(inspector, xml, "assess_topic").get_json()["html"]
    assert 'name="fields-0-id" type="text" value="outcome"' in html
    assert "misinformation = Thông tin sai sự thật / Misinformation" in html
    assert 'name="fields-3-id" type="text" value=""' in html  # two empty rows to add fields
    assert 'name="fields-4-id"' not in html
    body = panel(inspector, xml, "assess_topic", "apply", **{
        "name": "Đánh giá / Assess",
        "fields-0-id": "outcome", "fields-0-label": "Đánh giá", "fields-0-type": "enum",
        "fields-0-required": "y", "fields-0-choices": "true_story = Đúng\nfalse_story = Sai\n",
        "fields-1-id": "", "fields-1-type": "string",
        "fields-2-id": "source_url", "fields-2-label": "Nguồn / Source", "fields-2-type": "string",
    }).get_json()
    assert read_properties(body["xml"].encode(), "assess_topic") == {
        "name": "Đánh giá / Assess", "fields": [
            {"id": "outcome", "label": "Đánh giá", "type": "enum", "required": True,
             "multiline": False, "choices": [("true_story", "Đúng"), ("false_story", "Sai")]},
            {"id": "source_url", "label": "Nguồn / Source", "type": "string", "required": False,
             "multiline": False, "choices": []}]}


def test_a_form_field_id_clash_comes_back_next_to_its_row(inspector):
    body = panel(inspector, shipped("hot-topic"), "assess_topic", "apply", **{
        "name": "Đánh giá", "fields-0-id": "outcome", "fields-0-type": "enum",
        "fields-0-choices": "a = A", "fields-1-id": "end", "fields-1-type": "string",
    }).get_json()
    assert "xml" not in body and body["kind"] == "user_task"
    html = body["html"]
    row = re.search(r'name="fields-1-id"[^>]*>(.*?)</td>', html, re.S)
    assert row and "Dòng 2: mã trường &#39;end&#39; trùng mã một phần tử" in row.group(1)
    assert 'value="end"' in html  # what was typed stays


def test_a_bad_condition_comes_back_with_its_error(inspector):
    xml = shipped("air-quality")
    html = panel(inspector, xml, "to_respond").get_json()["html"]
    assert 'incident_type == &#34;pm25-exceedance&#34;' in html and 'name="is_default"' in html
    body = panel(inspector, xml, "to_respond", "apply", name="", condition="import os").get_json()
    assert "xml" not in body
    field = re.search(r'data-field="condition".*?</div>', body["html"], re.S).group(0)
    assert "Biểu thức không hợp lệ / Invalid expression" in field
    body = panel(inspector, xml, "to_respond", "apply", name="PM2.5",
                 condition='incident_type == "pm25"').get_json()
    assert read_properties(body["xml"].encode(), "to_respond")["condition"] == \
        'incident_type == "pm25"'


def test_a_message_field_must_belong_to_the_chosen_event_type(inspector):
    xml = shipped("dossier-overdue")
    html = panel(inspector, xml, "result_returned").get_json()["html"]
    assert '<option selected value="dossier.completed">' in html
    assert '<option selected value="dossier_id">' in html
    body = panel(inspector, xml, "result_returned", "apply", name="x",
                 event_type="dossier.completed", correlate_on="ticket_id").get_json()
    assert "xml" not in body and "không có trường ticket_id" in body["html"]
    body = panel(inspector, xml, "result_returned", "apply", name="x",
                 event_type="hotline.ticket.resolved", correlate_on="ticket_id").get_json()
    assert read_properties(body["xml"].encode(), "result_returned")["event_type"] == \
        "hotline.ticket.resolved"


def test_a_message_event_says_which_fields_the_instance_takes(inspector):
    xml = shipped("hotline-ticket")
    html = panel(inspector, xml, "resolved_at_call_centre").get_json()["html"]
    taken = re.search(r'<select[^>]*name="takes".*?</select>', html, re.S).group(0)
    assert '<option selected value="answer">' in taken
    body = panel(inspector, xml, "resolved_at_call_centre", "apply", name="x",
                 event_type="hotline.ticket.resolved", correlate_on="ticket_id",
                 takes=["answer", "ticket_id"]).get_json()
    assert read_properties(body["xml"].encode(), "resolved_at_call_centre")["takes"] == [
        "answer", "ticket_id"]
    assert '<camunda:outputParameter name="ticket_id">${ticket_id}</camunda:outputParameter>' \
        in body["xml"]
    body = panel(inspector, xml, "resolved_at_call_centre", "apply", name="x",
                 event_type="hotline.ticket.resolved", correlate_on="ticket_id",
                 takes=["answer", "category"]).get_json()
    assert "xml" not in body and "không có trường category" in body["html"]
    body = panel(inspector, xml, "resolved_at_call_centre", "apply", name="x",
                 event_type="hotline.ticket.resolved", correlate_on="ticket_id").get_json()
    assert "camunda:inputOutput" not in body["xml"]  # nothing chosen: nothing taken


def test_a_catch_event_asks_what_it_waits_for_then_shows_the_timer(inspector):
    xml = shipped("dossier-overdue").replace(
        """<bpmn:timerEventDefinition id="new_date_timer">
        <bpmn:timeDate>new_appointment + "T17:00:00+07:00"</bpmn:timeDate>
      </bpmn:timerEventDefinition>""", "")
    body = panel(inspector, xml, "new_date_passed").get_json()
    assert body["kind"] == "catch_event" and 'name="definition"' in body["html"]
    xml = panel(inspector, xml, "new_date_passed", "apply", name="Hết hạn",
                definition="timer").get_json()["xml"]
    body = panel(inspector, xml, "new_date_passed").get_json()
    assert body["kind"] == "timer_event" and 'name="interrupting"' not in body["html"]
    xml = panel(inspector, xml, "new_date_passed", "apply", name="Hết hạn", mode="working_days",
                amount="2").get_json()["xml"]
    assert read_properties(xml.encode(), "new_date_passed")["amount"] == 2
    body = panel(inspector, xml, "new_date_passed", "apply", name="Hết hạn", mode="wall",
                 hours="0", minutes="0").get_json()
    assert "Nhập số giờ hoặc số phút" in re.search(r'data-field="hours".*?</div>', body["html"],
                                                    re.S).group(0)


@pytest.mark.parametrize("fields, message", [
    ({"xml": "<bpmn:definitions", "element_id": "x"}, "XML không hợp lệ"),
    ({"element_id": "nope"}, "Không có phần tử 'nope'"),
    ({"element_id": "start", "action": "delete"}, "action must be show or apply"),
])
def test_bad_requests_get_a_400_with_the_reason(inspector, fields, message):
    resp = panel(inspector, **{"xml": shipped("hot-topic"), **fields})
    assert resp.status_code == 400 and message in resp.get_json()["error"]


def test_only_designers_and_only_with_the_csrf_token(app, people, inspector):
    civil = signed_in(app, "phvhcc")
    assert panel(civil, shipped("hot-topic"), "lane_khcn").status_code == 403
    client, _ = inspector
    resp = client.post("/designer/panel", data={"xml": shipped("hot-topic"),
                                                "element_id": "lane_khcn", "action": "show"})
    assert resp.status_code == 400
    assert panel(signed_in(app, "admin"), shipped("hot-topic"), "start").status_code == 200
