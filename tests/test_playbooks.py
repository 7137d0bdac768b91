"""Emergency playbooks (issue 19): a commander starts one with its start form; orders go at once
to the chosen wards and the province's forces, each acknowledged on wall time; a storm warning
only suggests the playbook, and a person starts or dismisses it, all audited."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.app import create_app
from engine.audit.models import AuditRecord
from engine.auth import service as auth_service
from engine.notify.models import Notification
from engine.org import service as org
from engine.playbooks import service as playbooks
from engine.playbooks.models import Suggestion
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task
from tests.conftest import load_scenarios
from tests.spine_helpers import auth, event, send
from tests.time_helpers import Drive, local

RUNS = "/api/v1/playbooks/flood-storm/runs"
WARDS = ["phuong-thu-dau-mot", "phuong-di-an", "xa-bac-tan-uyen"]
FORCES = {"order_military": "bch-quan-su", "order_police": "cong-an",
          "order_health": "so-y-te", "order_dykes": "so-nong-nghiep-moi-truong"}


def storm_warning(identifier: str = "VN-NCHMF-2026-0917", event_name: str = "Bão số 9",
                  severity: str = "Severe", msg_type: str = "Alert") -> dict:
    """A CAP storm warning of the national hydro-meteorological centre, as integrations/cap.py
    maps it to an event."""
    return event("emergency.alert", {
        "identifier": identifier, "sender": "nchmf.gov.vn", "sent": "2026-09-17T08:00:00+07:00",
        "status": "Actual", "msg_type": msg_type, "event": event_name, "category": ["Met"],
        "urgency": "Immediate", "severity": severity, "certainty": "Likely",
        "headline": "Bão số 9 đổ bộ Nam Bộ", "instruction": "Sơ tán dân vùng trũng thấp"},
        id_=f"cap-{identifier}-{msg_type}")


@pytest.fixture
def client(loaded):
    return create_app(services=loaded).test_client()


@pytest.fixture
def commander(loaded):
    with loaded.db.session() as s:
        user, token = auth_service.create_user(s, "chihuy", "commander", "van-phong-ubnd",
                                               password="password-123", with_token=True)
        return user.id, token


def _count(loaded, model) -> int:
    with loaded.db.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def _actions(loaded, *names) -> list[AuditRecord]:
    with loaded.db.read() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action.in_(names))
                              .order_by(AuditRecord.seq)))


def test_a_commander_starts_the_flood_playbook_and_orders_reach_every_unit_at_once(
        client, loaded, commander):
    listed = client.get("/api/v1/playbooks", headers=auth(commander[1])).get_json()
    flood = next(p for p in listed if p["key"] == "flood-storm")
    assert [lv["level"] for lv in flood["levels"]] == [1, 2, 3, 4, 5]
    answer = client.post(RUNS, json={"level": 3, "wards": WARDS, "notes": "Triều cường kết hợp"
                                     " mưa lớn"}, headers=auth(commander[1]))
    assert answer.status_code == 201, answer.get_json()
    run = answer.get_json()
    assert run["data"]["wards"] == WARDS and run["data"]["level"] == 3
    assert "Cấp độ 3" in run["subject"]
    with loaded.db.read() as s:
        orders = {(t.bpmn_id, t.department_key) for t in s.scalars(
            select(Task).where(Task.instance_id == run["instance_id"]))}
    # One order to each ward of the area (the lane is the ward itself), one to each force.
    assert orders == {("order_wards", ward) for ward in WARDS} | set(FORCES.items())
    [started] = _actions(loaded, "playbook.started")
    assert started.actor == "user:chihuy" and started.details["wards"] == WARDS
    assert started.details["level"] == 3 and started.instance_id == run["instance_id"]


def test_the_whole_area_means_every_current_ward_and_commune(client, loaded, commander):
    answer = client.post(RUNS, json={"level": 2, "whole_area": True},
                         headers=auth(commander[1]))
    assert answer.status_code == 201, answer.get_json()
    with loaded.db.read() as s:
        areas = {u.key for u in org.units(s, kinds=("ward", "commune"))}
        wards = {t.department_key for t in s.scalars(select(Task).where(
            Task.bpmn_id == "order_wards"))}
    assert wards == areas and len(areas) >= 30  # no district: those were abolished in 2025


@pytest.mark.parametrize(("body", "status", "fields"), [
    ({"wards": WARDS}, 422, ["level"]),
    ({"level": 9, "wards": WARDS}, 422, ["level"]),
    ({"level": 3}, 422, ["wards"]),
    ({"level": 3, "wards": ["phuong-thu-dau-mot", "thanh-pho-ben-cat"]}, 422, ["wards"]),
    ({"level": 3, "wards": ["so-y-te"]}, 422, ["wards"]),  # a department is not an area
    ({"level": 3, "wards": WARDS, "notes": "x" * 2001}, 422, ["notes"]),
    ({"level": "3", "wards": "phuong-di-an"}, 400, ["level", "wards"]),
    ({"level": 3, "wards": WARDS, "ward": "typo"}, 400, ["ward"]),
    ([3], 400, ["body"]),
])
def test_a_bad_start_form_names_its_fields_and_starts_nothing(client, loaded, commander, body,
                                                              status, fields):
    answer = client.post(RUNS, json=body, headers=auth(commander[1]))
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    assert [e["field"] for e in answer.get_json()["errors"]] == fields
    assert _count(loaded, ProcessInstance) == 0 and _actions(loaded, "playbook.started") == []


def test_a_former_district_is_refused_naming_what_replaced_it(client, loaded, commander):
    answer = client.post(RUNS, json={"level": 3, "wards": ["thanh-pho-ben-cat"]},
                         headers=auth(commander[1]))
    assert "thanh-pho-ben-cat (→ phuong-ben-cat)" in answer.get_json()["errors"][0]["message"]


def test_only_commanders_start_playbooks_and_only_published_ones(client, loaded, commander,
                                                                 people):
    body = {"level": 1, "wards": WARDS[:1]}
    assert client.post(RUNS, json=body, headers=auth(people["thudaumot"][1])).status_code == 403
    assert client.post(RUNS, json=body, headers=auth(people["admin"][1])).status_code == 403
    missing = client.post("/api/v1/playbooks/no-such/runs", json=body,
                          headers=auth(commander[1]))
    assert missing.status_code == 404
    # A response scenario is not a playbook: nobody starts it by hand.
    other = client.post("/api/v1/playbooks/hotline-ticket/runs", json=body,
                        headers=auth(commander[1]))
    assert other.status_code == 404 and _count(loaded, ProcessInstance) == 0


def test_a_storm_warning_only_suggests_the_playbook_once(client, loaded, source, commander):
    send(client, source[1], storm_warning())
    loaded.pipeline.drain()
    send(client, source[1], storm_warning())  # the same alert again: a duplicate event
    send(client, source[1], storm_warning(identifier="VN-2", severity="Minor"))  # too weak
    send(client, source[1], storm_warning(identifier="VN-3", event_name="Nắng nóng"))  # heat
    loaded.pipeline.drain()
    assert _count(loaded, ProcessInstance) == 0  # a person decides
    [card] = client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json()
    assert card["playbook"] == "flood-storm" and card["status"] == "open"
    assert card["title"]["vi"].startswith("Bão số 9: đề xuất kích hoạt")
    assert card["data"]["instruction"] == "Sơ tán dân vùng trũng thấp"
    with loaded.db.read() as s:
        told = s.scalars(select(Notification).where(Notification.kind == "playbook.suggested",
                                                    Notification.user_id == commander[0]))
        assert len(list(told)) == 1
    assert [r.actor for r in _actions(loaded, "playbook.suggested")] == [
        "rule:flood-storm/storm-or-flood-warning"]


def test_a_suggestion_is_started_or_dismissed_once_with_the_decision_audited(
        client, loaded, source, commander):
    send(client, source[1], storm_warning(), storm_warning(identifier="VN-4", event_name="Lũ"))
    loaded.pipeline.drain()
    second, first = client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json()
    base = "/api/v1/suggestions"
    no_reason = client.post(f"{base}/{first['id']}/dismiss", json={"reason": "  "},
                            headers=auth(commander[1]))
    assert no_reason.status_code == 422 and no_reason.get_json()["errors"][0]["field"] == "reason"
    started = client.post(f"{base}/{first['id']}/start", json={"level": 4, "wards": WARDS[:2]},
                          headers=auth(commander[1]))
    assert started.status_code == 201
    assert started.get_json()["data"]["suggestion_id"] == first["id"]
    again = client.post(f"{base}/{first['id']}/dismiss", json={"reason": "trùng"},
                        headers=auth(commander[1]))
    assert again.status_code == 409  # already decided: started
    dismissed = client.post(f"{base}/{second['id']}/dismiss",
                            json={"reason": "Cùng cơn bão, đã kích hoạt"},
                            headers=auth(commander[1]))
    assert dismissed.status_code == 200 and dismissed.get_json()["status"] == "dismissed"
    with loaded.db.read() as s:
        decided = {x.id: (x.status, x.decided_by, x.instance_id) for x in s.scalars(
            select(Suggestion))}
    assert decided == {first["id"]: ("started", "user:chihuy",
                                     started.get_json()["instance_id"]),
                       second["id"]: ("dismissed", "user:chihuy", None)}
    [record] = _actions(loaded, "playbook.dismissed")
    assert record.details["reason"] == "Cùng cơn bão, đã kích hoạt"
    assert _actions(loaded, "playbook.started")[0].details["suggestion"] == first["id"]
    assert client.get(f"{base}?status=bogus", headers=auth(commander[1])).status_code == 400
    assert [x["id"] for x in client.get(f"{base}?status=all",
                                        headers=auth(commander[1])).get_json()] == \
        [second["id"], first["id"]]


def test_an_order_not_acknowledged_in_30_minutes_escalates_day_or_night(ioc, tmp_path):
    load_scenarios(ioc)
    sunday_night = local("2026-09-20 02:00")  # a Sunday: emergencies ignore office hours
    drive = Drive(ioc.db, ioc.vocabulary, sunday_night, source_id=0)
    with drive.db.session() as s:
        instance = playbooks.start(s, drive.ioc.runtime, "flood-storm",
                                   playbooks.StartForm(level=3, wards=WARDS[:1]),
                                   actor="user:chihuy", now=drive.clock.now())
        instance_id = instance.id
    police = next(t for t in drive.tasks("order_police") if t.instance_id == instance_id)
    drive.advance(minutes=20)
    with drive.db.session() as s:  # the police take their order in time
        from engine.tasks import service as tasks
        officer = auth_service.create_user(s, "ca.an", "civil_servant", "cong-an",
                                           password="password-123", with_token=False)[0]
        tasks.claim(s, officer, police.id, drive.ioc.runtime)
    drive.at(sunday_night + timedelta(minutes=31))
    escalated = {r.subject_id for r in _actions(drive, "task.escalated")}
    ward = next(t for t in drive.tasks("order_wards"))
    assert str(ward.id) in escalated and str(police.id) not in escalated
    drive.at(sunday_night + timedelta(minutes=61))
    levels = [(r.subject_id, r.details["to"]) for r in _actions(drive, "task.escalated")
              if r.subject_id == str(ward.id)]
    assert levels == [(str(ward.id), WARDS[0]), (str(ward.id), "ioc")]


def _problems(files: dict) -> list[tuple[str, int | None, str, str]]:
    """The problems `check` finds in a playbook folder's files (file, line, path, message)."""
    from engine.events.vocabulary import Vocabulary
    from engine.scenarios import service as scenarios
    from engine.scenarios.problems import ScenarioInvalid

    with pytest.raises(ScenarioInvalid) as refused:
        scenarios.check(files, Vocabulary.load(), DEPARTMENTS)
    return [(p.file, p.line, p.path, p.message) for p in refused.value.problems]


DEPARTMENTS = {"ioc", "bch-quan-su", "cong-an", "so-y-te", "so-nong-nghiep-moi-truong",
               "trung-tam-phvhcc"}


def _flood_files() -> dict[str, str]:
    from engine.scenarios import service as scenarios
    return scenarios.read_folder(Path(__file__).resolve().parents[1] / "scenarios" / "flood-storm")


def test_a_playbook_manifest_is_checked_with_lines():
    files = _flood_files()
    manifest = files["scenario.yaml"]
    twice = manifest.replace('    - {level: 2, vi: "Cấp độ 2', '    - {level: 1, vi: "Cấp độ 2')
    [problem] = _problems({**files, "scenario.yaml": twice})
    assert problem[2] == "playbook.levels.1" and "level 1 is listed twice" in problem[3]
    assert problem[1] == manifest.splitlines().index(
        next(line for line in manifest.splitlines() if "level: 2," in line)) + 1
    shapeless = manifest.replace('en: "Level 5 – catastrophe"}', 'fr: "Niveau 5"}')
    found = _problems({**files, "scenario.yaml": shapeless})
    assert [p[2] for p in found] == ["playbook.levels.4", "playbook.levels.4"]  # no en, fr
    no_levels = manifest[:manifest.index("playbook:")]
    assert "needs `playbook:`" in _problems({**files, "scenario.yaml": no_levels})[0][3]
    response = manifest.replace("kind: playbook", "kind: response")
    messages = [p[3] for p in _problems({**files, "scenario.yaml": response})]
    assert "`playbook:` is only for `kind: playbook`" in messages
    assert any("`open: suggestion` is for playbooks" in m for m in messages)


def test_a_playbook_rule_may_only_suggest():
    files = _flood_files()
    opens = files["rules.yaml"].replace("open: suggestion", "open: incident")
    [problem] = _problems({**files, "rules.yaml": opens})
    assert problem[0] == "rules.yaml" and "write `open: suggestion`" in problem[3]


def test_the_commander_messages_every_unit_with_an_order_in_a_run(client, loaded, commander):
    run = client.post(RUNS, json={"level": 2, "wards": WARDS[:1]},
                      headers=auth(commander[1])).get_json()["instance_id"]
    url = f"/api/v1/instances/{run}/messages"
    empty = client.post(url, json={"text": " "}, headers=auth(commander[1]))
    assert empty.status_code == 422 and empty.get_json()["errors"][0]["field"] == "text"
    assert client.post(url, json={"txt": "x"}, headers=auth(commander[1])).status_code == 400
    assert client.post("/api/v1/instances/999/messages", json={"text": "x"},
                       headers=auth(commander[1])).status_code == 404
    sent = client.post(url, json={"text": "Báo cáo tình hình mỗi 2 giờ"},
                       headers=auth(commander[1]))
    assert sent.status_code == 201
    units = {WARDS[0], *FORCES.values()}
    assert set(sent.get_json()["units"]) == units
    with loaded.db.read() as s:
        told = {n.department_key for n in s.scalars(select(Notification).where(
            Notification.kind == "playbook.message", Notification.channel == "in-app"))}
    assert told == units
    [record] = _actions(loaded, "playbook.message_sent")
    assert record.details["text"] == "Báo cáo tình hình mỗi 2 giờ"


def crowd(detection_id: str, people: int, confidence: float = 0.92) -> dict:
    """A camera analytics detection of a crowd in Phường Thủ Dầu Một."""
    return event("camera.detection", {
        "detection_id": detection_id, "camera_id": "cam-tdm-014", "detection_type": "crowd",
        "confidence": confidence, "ward": "phuong-thu-dau-mot", "people_count": people},
        id_=detection_id)


def case_report(report_id: str, ward: str, day: str, disease: str = "sot-xuat-huyet") -> dict:
    """One day's dengue case report of a ward or commune."""
    return event("health.case_report", {"report_id": report_id, "disease": disease,
                                        "ward": ward, "report_date": day, "cases": 2},
                 id_=report_id)


def test_a_large_crowd_suggests_the_public_order_playbook_for_its_ward(client, loaded, source,
                                                                      commander):
    send(client, source[1], crowd("cam-1", 120), crowd("cam-2", 450, confidence=0.5),
         crowd("cam-3", 450))
    loaded.pipeline.drain()
    [card] = client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json()
    assert card["playbook"] == "public-order-gathering"
    assert card["data"]["ward"] == "phuong-thu-dau-mot" and card["event_ids"]
    # A gathering is local: the whole area is refused, its ward is taken.
    whole = client.post(f"/api/v1/suggestions/{card['id']}/start",
                        json={"level": 1, "whole_area": True}, headers=auth(commander[1]))
    assert whole.status_code == 422 and whole.get_json()["errors"][0]["field"] == "whole_area"
    started = client.post(f"/api/v1/suggestions/{card['id']}/start",
                          json={"level": 2, "wards": ["phuong-thu-dau-mot"]},
                          headers=auth(commander[1]))
    assert started.status_code == 201
    with loaded.db.read() as s:
        orders = {(t.bpmn_id, t.department_key) for t in s.scalars(select(Task))}
    assert orders == {("order_wards", "phuong-thu-dau-mot"), ("order_police", "cong-an"),
                      ("order_medical", "cap-cuu-115"),
                      ("order_information", "so-khoa-hoc-cong-nghe")}


def test_case_reports_clustering_in_one_ward_suggest_the_epidemic_playbook(client, loaded,
                                                                          source, commander):
    send(client, source[1], case_report("yt-1", "phuong-di-an", "2026-09-01"),
         case_report("yt-2", "phuong-di-an", "2026-09-02"),
         case_report("yt-3", "phuong-thuan-an", "2026-09-02"),  # another ward
         case_report("yt-4", "phuong-di-an", "2026-09-03", disease="tay-chan-mieng"))
    loaded.pipeline.drain()
    assert client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json() == []
    send(client, source[1], case_report("yt-5", "phuong-di-an", "2026-09-04"))
    loaded.pipeline.drain()
    [card] = client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json()
    assert card["playbook"] == "epidemic-cluster" and len(card["event_ids"]) == 3
    assert card["data"] == {"ward": "phuong-di-an", "disease": "sot-xuat-huyet"}


def attack(alert_id: str, severity: str = "critical", category: str = "targeted-attack") -> dict:
    """A Wazuh alert on the one-stop shop's server."""
    return event("security.alert", {
        "alert_id": alert_id, "rule_id": "100210", "description": "Mã độc mã hóa dữ liệu",
        "level": 14, "severity": severity, "category": category, "host": "dvc-app-01",
        "indicator": "185.220.101.4", "unit": "trung-tam-phvhcc"}, id_=alert_id)


def test_a_critical_attack_suggests_the_cyber_playbook_which_has_no_area(client, loaded,
                                                                        source, commander):
    send(client, source[1], attack("w-1", severity="high"), attack("w-2", category="malware"),
         attack("w-3"))
    loaded.pipeline.drain()
    [card] = client.get("/api/v1/suggestions", headers=auth(commander[1])).get_json()
    assert card["playbook"] == "cyber-incident" and card["data"]["host"] == "dvc-app-01"
    listed = client.get("/api/v1/playbooks", headers=auth(commander[1])).get_json()
    assert next(p for p in listed if p["key"] == "cyber-incident")["area"] is False
    base = f"/api/v1/suggestions/{card['id']}/start"
    wards = client.post(base, json={"level": 2, "wards": WARDS[:1]}, headers=auth(commander[1]))
    assert wards.status_code == 422 and wards.get_json()["errors"][0]["field"] == "wards"
    started = client.post(base, json={"level": 2}, headers=auth(commander[1]))
    assert started.status_code == 201 and started.get_json()["data"]["wards"] == []
    with loaded.db.read() as s:
        orders = {(t.bpmn_id, t.department_key) for t in s.scalars(select(Task))}
    assert orders == {("order_response", "so-khoa-hoc-cong-nghe"), ("order_police", "cong-an"),
                      ("order_office", "van-phong-ubnd")}
