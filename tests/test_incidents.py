"""Scenarios are isolated: a scenario that fails on an event, a message, a timer or a person's
answer becomes a process incident of its own instance; the other scenarios handle the same event,
the person's answer is kept, and the incident is retried once the scenario (or what it needs) is
fixed, or resolved with a reason. Visible to inspectors and administrators over the API."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine.audit import service as audit
from engine.events.models import Event
from engine.incidents.models import ProcessIncident
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task
from engine.timers.models import Timer
from tests.conftest import SCENARIOS, load_scenarios
from tests.scenario_files import HEAD, correlated_message, write_scenario
from tests.spine_helpers import auth
from tests.time_helpers import Drive, local

# Starts on a hotline ticket, as the shipped hotline scenario does; its script fails on the
# ticket's data (a ward key is no number): an inspector's mistake the validator cannot see.
BROKEN_START = HEAD + """
  <bpmn:process id="count_ward" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="parse_ward" name="Đọc số phường"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="look" name="Xem"><bpmn:extensionElements><camunda:formData>
      <camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="parse_ward"/>
    <bpmn:sequenceFlow id="f2" sourceRef="parse_ward" targetRef="look"/>
    <bpmn:sequenceFlow id="f3" sourceRef="look" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# A person answers which unit takes the case over; the next task goes to that unit's inbox.
HAND_OVER = HEAD + correlated_message("dossier.step_completed") + """
  <bpmn:process id="hand_over" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="lane_centre" name="trung-tam-phvhcc"><bpmn:flowNodeRef>choose</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="lane_next" name="=next_unit"><bpmn:flowNodeRef>follow_up</bpmn:flowNodeRef>
      </bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="choose" name="Chọn đơn vị"><bpmn:extensionElements><camunda:formData>
      <camunda:formField id="next_unit" type="string"/></camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="follow_up" name="Xử lý tiếp"><bpmn:extensionElements><camunda:formData>
      <camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="choose"/>
    <bpmn:sequenceFlow id="f2" sourceRef="choose" targetRef="follow_up"/>
    <bpmn:sequenceFlow id="f3" sourceRef="follow_up" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# Waits for the citizen's step (a message), or a day; both paths run a script that fails.
WAIT_THEN_FAIL = HEAD + correlated_message("dossier.step_completed") + """
  <bpmn:process id="wait_then_fail" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="gw"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>fm</bpmn:outgoing><bpmn:outgoing>ft</bpmn:outgoing></bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="citizen"><bpmn:incoming>fm</bpmn:incoming>
      <bpmn:outgoing>fm2</bpmn:outgoing><bpmn:messageEventDefinition messageRef="msg"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="a_day"><bpmn:incoming>ft</bpmn:incoming>
      <bpmn:outgoing>ft2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"P1D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="use_step"><bpmn:incoming>fm2</bpmn:incoming><bpmn:outgoing>fm3</bpmn:outgoing>
      <bpmn:script>n = int(dossier_id)</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="late"><bpmn:incoming>ft2</bpmn:incoming><bpmn:outgoing>ft3</bpmn:outgoing>
      <bpmn:script>n = int(dossier_id)</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end_step"><bpmn:incoming>fm3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_late"><bpmn:incoming>ft3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw"/>
    <bpmn:sequenceFlow id="fm" sourceRef="gw" targetRef="citizen"/>
    <bpmn:sequenceFlow id="ft" sourceRef="gw" targetRef="a_day"/>
    <bpmn:sequenceFlow id="fm2" sourceRef="citizen" targetRef="use_step"/>
    <bpmn:sequenceFlow id="ft2" sourceRef="a_day" targetRef="late"/>
    <bpmn:sequenceFlow id="fm3" sourceRef="use_step" targetRef="end_step"/>
    <bpmn:sequenceFlow id="ft3" sourceRef="late" targetRef="end_late"/>
  </bpmn:process>
</bpmn:definitions>
"""


TICKET = {"ticket_id": "1022-901", "category": "environment", "ward": "phuong-di-an",
          "description": "Nước thải đổ ra kênh"}
DOSSIER = {"dossier_id": "HS-901", "procedure": "1.004227", "unit": "phuong-thu-dau-mot"}


@pytest.fixture
def drive(ioc, source, tmp_path):
    load_scenarios(ioc)  # the shipped scenarios, the hotline one among them
    write_scenario(tmp_path / "v1", "count-ward", "hotline.ticket.created",
                   BROKEN_START.replace("{script}", "n = int(ward)"),
                   data='{ward: "{event.ward}"}', subject=None)
    write_scenario(tmp_path / "v1", "hand-over", "dossier.received", HAND_OVER, subject=None)
    write_scenario(tmp_path / "v1", "wait-then-fail", "dossier.returned", WAIT_THEN_FAIL)
    load_scenarios(ioc, str(tmp_path / "v1"))
    return Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])


def _incidents(drive) -> list[ProcessIncident]:
    with drive.db.read() as s:
        return list(s.scalars(select(ProcessIncident).order_by(ProcessIncident.id)))


def _instance(drive, scenario: str) -> ProcessInstance:
    with drive.db.read() as s:
        return s.scalars(select(ProcessInstance).where(
            ProcessInstance.scenario_key == scenario)).one()


def test_a_failing_scenario_does_not_stop_the_others_on_the_same_event(drive, tmp_path):
    drive.send("hotline.ticket.created", TICKET, subject="1022-901")
    with drive.db.read() as s:
        assert [e.status for e in s.scalars(select(Event))] == ["processed"]  # no dead letter
    assert [t.bpmn_id for t in drive.tasks()] == ["answer_ticket"]  # the hotline scenario ran
    broken = _instance(drive, "count-ward")
    assert broken.status == "error" and "int" in broken.error
    [incident] = _incidents(drive)
    assert (incident.kind, incident.status, incident.element, incident.instance_id) == \
        ("start", "open", "parse_ward", broken.id)

    # The inspector fixes the scenario (version 2) and retries: it starts on the fix.
    write_scenario(tmp_path / "v2", "count-ward", "hotline.ticket.created",
                   BROKEN_START.replace("{script}", "n = len(ward)"), version=2,
                   data='{ward: "{event.ward}"}', subject=None)
    load_scenarios(drive.ioc, str(tmp_path / "v2"))
    inspector = drive.user("thanhtra.lan", "inspector", "thanh-tra")
    client = drive.ioc_client()
    retried = client.post(f"/api/v1/process-incidents/{incident.id}/retry",
                          headers=auth(inspector.token))
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "resolved"
    fixed = _instance(drive, "count-ward")
    assert (fixed.status, fixed.error) == ("running", None)
    assert [t.bpmn_id for t in drive.tasks()] == ["answer_ticket", "look"]
    with drive.db.read() as s:
        assert audit.verify(s).ok
        actions = [r.action for r in audit.history(s, fixed.id)]
    assert actions[:2] == ["instance.started", "incident.opened"]
    assert "instance.restarted" in actions and "incident.retried" in actions


def test_a_persons_answer_is_kept_when_the_process_fails_after_it(drive):
    officer = drive.user("phvhcc.an", "civil_servant", "trung-tam-phvhcc")
    drive.send("dossier.received", {**DOSSIER, "due_at": "2026-03-20T17:00:00+07:00"},
               subject="HS-901")
    [choose] = drive.tasks("choose")
    client = drive.ioc_client()
    answer = client.post(f"/api/v1/tasks/{choose.id}/complete",
                         json={"data": {"next_unit": "phuong-moi-lap"}},
                         headers=auth(officer.token))
    assert answer.status_code == 202, answer.get_json()  # kept, not refused
    body = answer.get_json()
    assert "Đã lưu kết quả" in body["detail"] and "Your answer is saved" in body["detail"]
    assert body["incident"]["kind"] == "task" and body["incident"]["element"] == "follow_up"
    [choose] = drive.tasks("choose")
    assert (choose.status, choose.assignee_id, choose.result) == \
        ("claimed", officer.id, {"next_unit": "phuong-moi-lap"})

    inspector = drive.user("thanhtra.lan", "inspector", "thanh-tra")
    incident_id = body["incident"]["id"]
    again = client.post(f"/api/v1/process-incidents/{incident_id}/retry",
                        headers=auth(inspector.token))
    assert again.status_code == 409 and "phuong-moi-lap" in again.get_json()["detail"]
    assert again.get_json()["incident"]["attempts"] == 2

    # The organisation gets the new ward; the same answer now goes through, as the officer's.
    from engine.org.models import OrgUnit
    with drive.db.session() as s:
        s.add(OrgUnit(key="phuong-moi-lap", valid_from=date(2025, 7, 1), name_vi="Phường Mới Lập",
                      name_en="Moi Lap Ward", kind="ward"))
    retried = client.post(f"/api/v1/process-incidents/{incident_id}/retry",
                          headers=auth(inspector.token))
    assert retried.status_code == 200, retried.get_json()
    [choose] = drive.tasks("choose")
    assert (choose.status, choose.completed_by_id) == ("completed", officer.id)
    assert drive.tasks("follow_up")[0].department_key == "phuong-moi-lap"


def test_a_failing_message_and_a_failing_timer_are_incidents_of_their_instance(drive):
    drive.send("dossier.returned", DOSSIER, subject="HS-901")
    drive.send("dossier.returned", {**DOSSIER, "dossier_id": "HS-902"}, subject="HS-902")
    drive.send("dossier.step_completed", {**DOSSIER, "officer": "le.an", "step": "bo-sung"},
               subject="HS-901")
    with drive.db.read() as s:
        assert {e.status for e in s.scalars(select(Event))} == {"processed"}
    message = [i for i in _incidents(drive) if i.kind == "message"]
    assert len(message) == 1 and message[0].element == "use_step"
    assert message[0].payload["type"] == "dossier.step_completed"
    # The day passes (and the second that lets a message received just before it commit):
    # both instances still wait at the gateway, and the timer's step fails in both.
    drive.at(local("2026-03-03 09:00:01"))
    timer_incidents = [i for i in _incidents(drive) if i.kind == "timer"]
    assert {i.instance_id for i in timer_incidents} == \
        {_subject_instance(drive, "HS-901"), _subject_instance(drive, "HS-902")}
    timer_incident = next(i for i in timer_incidents
                          if i.instance_id == _subject_instance(drive, "HS-902"))
    assert timer_incident.element == "late"
    with drive.db.read() as s:
        timer = s.get(Timer, timer_incident.payload["timer_id"])
        assert timer.status == "failed" and "int" in timer.error
        statuses = {i.subject: (i.status, bool(i.error)) for i in s.scalars(
            select(ProcessInstance).where(ProcessInstance.scenario_key == "wait-then-fail"))}
    # Both still wait where they were (the failed steps rolled back), their errors shown.
    assert statuses == {"HS-901": ("running", True), "HS-902": ("running", True)}

    admin = drive.user("quantri", "admin", "ioc")
    civil = drive.user("phvhcc.binh", "civil_servant", "trung-tam-phvhcc")
    client = drive.ioc_client()
    listed = client.get("/api/v1/process-incidents", headers=auth(admin.token)).get_json()
    assert sorted(i["kind"] for i in listed) == ["message", "timer", "timer"]
    assert client.get("/api/v1/process-incidents",
                      headers=auth(civil.token)).status_code == 403
    bad = client.get("/api/v1/process-incidents?status=later", headers=auth(admin.token))
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "status"
    no_note = client.post(f"/api/v1/process-incidents/{timer_incident.id}/resolve", json={},
                          headers=auth(admin.token))
    assert no_note.status_code == 422 and no_note.get_json()["errors"][0]["field"] == "note"
    settled = client.post(f"/api/v1/process-incidents/{timer_incident.id}/resolve",
                          json={"note": "Hồ sơ đã xử lý thủ công"}, headers=auth(admin.token))
    assert settled.status_code == 200 and settled.get_json()["status"] == "resolved"
    twice = client.post(f"/api/v1/process-incidents/{timer_incident.id}/retry",
                        headers=auth(admin.token))
    assert twice.status_code == 409
    instance = client.get(f"/api/v1/instances/{timer_incident.instance_id}",
                          headers=auth(admin.token)).get_json()
    assert instance["incidents"] == []
    failing = client.get(f"/api/v1/instances/{message[0].instance_id}",
                         headers=auth(admin.token)).get_json()
    assert [i["kind"] for i in failing["incidents"]] == ["message", "timer"]


def _subject_instance(drive, subject: str) -> int:
    with drive.db.read() as s:
        return s.scalars(select(ProcessInstance.id).where(
            ProcessInstance.subject == subject,
            ProcessInstance.scenario_key == "wait-then-fail")).one()


def test_the_shipped_scenarios_never_open_an_incident_on_the_examples(loaded, source):
    """The isolation does not hide failures of our own: the shipped scenarios on the example
    events open none."""
    import json
    from pathlib import Path

    from engine.events import relative
    from engine.events import service as events

    examples = Path(SCENARIOS).parent / "examples" / "events"
    for path in sorted(examples.glob("*.json")):
        raws = relative.fill(json.loads(path.read_text(encoding="utf-8")))
        events.ingest(loaded.db, source[0], raws if isinstance(raws, list) else [raws],
                      loaded.vocabulary)
    loaded.run_pending()
    with loaded.db.read() as s:
        assert s.scalars(select(ProcessIncident)).all() == []
        assert {e.status for e in s.scalars(select(Event))} == {"processed"}
        assert s.scalars(select(Task)).all()


def test_the_incidents_page_retries_and_resolves_for_inspectors(drive):
    from tests.test_web import _csrf, _login

    drive.send("dossier.returned", DOSSIER, subject="HS-901")
    drive.send("dossier.step_completed", {**DOSSIER, "officer": "le.an", "step": "bo-sung"},
               subject="HS-901")
    [incident] = _incidents(drive)
    drive.user("thanhtra.lan", "inspector", "thanh-tra")
    drive.user("phvhcc.an", "civil_servant", "trung-tam-phvhcc")
    web = drive.ioc_client()
    _login(web, "phvhcc.an")
    assert web.get("/process-incidents").status_code == 403
    web = drive.ioc_client()
    _login(web, "thanhtra.lan")
    page = web.get("/process-incidents").get_data(as_text=True)
    assert f'id="incident-{incident.id}"' in page and "use_step" in page
    assert "Lỗi quy trình" in web.get(f"/instances/{incident.instance_id}").get_data(as_text=True)
    token = _csrf(page)
    again = web.post(f"/process-incidents/{incident.id}/retry", data={"csrf_token": token},
                     follow_redirects=True)
    assert "Vẫn lỗi / Failed again" in again.get_data(as_text=True)  # the same version fails
    empty = web.post(f"/process-incidents/{incident.id}/resolve",
                     data={"csrf_token": token, "reason": "  "})
    assert empty.status_code == 422 and "Thiếu lý do" in empty.get_data(as_text=True)
    done = web.post(f"/process-incidents/{incident.id}/resolve",
                    data={"csrf_token": token, "reason": "Đã trả lời công dân qua điện thoại"},
                    follow_redirects=True)
    assert "resolved" in done.get_data(as_text=True)
    [incident] = _incidents(drive)
    assert (incident.status, incident.resolution, incident.attempts) == \
        ("resolved", "Đã trả lời công dân qua điện thoại", 2)


def test_an_incident_the_process_moved_past_is_closed_as_superseded(ioc, source, tmp_path):
    """The citizen's step failed, then the day passed and the deadline branch ran: the failed
    message no longer applies, so its incident closes by itself and the instance's error goes."""
    load_scenarios(ioc)
    write_scenario(tmp_path, "wait-then-fail", "dossier.returned",
                   WAIT_THEN_FAIL.replace('<bpmn:scriptTask id="late"><bpmn:incoming>ft2'
                                          '</bpmn:incoming><bpmn:outgoing>ft3</bpmn:outgoing>\n'
                                          '      <bpmn:script>n = int(dossier_id)',
                                          '<bpmn:scriptTask id="late"><bpmn:incoming>ft2'
                                          '</bpmn:incoming><bpmn:outgoing>ft3</bpmn:outgoing>\n'
                                          '      <bpmn:script>n = len(dossier_id)'))
    load_scenarios(ioc, str(tmp_path))
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])
    drive.send("dossier.returned", DOSSIER, subject="HS-901")
    drive.send("dossier.step_completed", {**DOSSIER, "officer": "le.an", "step": "bo-sung"},
               subject="HS-901")
    [incident] = _incidents(drive)
    assert incident.kind == "message" and _instance(drive, "wait-then-fail").error
    drive.at(local("2026-03-03 09:00:01"))
    [incident] = _incidents(drive)
    assert (incident.status, incident.resolution) == \
        ("resolved", "the process moved on without this step")
    done = _instance(drive, "wait-then-fail")
    assert (done.status, done.error, done.data["n"]) == ("completed", None, 6)
    with drive.db.read() as s:
        actions = [r.action for r in audit.history(s, done.id)]
    assert actions.index("incident.superseded") < actions.index("instance.ended") == \
        len(actions) - 1
