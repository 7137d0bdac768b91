"""The SLA board and notifications through the API, and time left in the web inbox."""
from __future__ import annotations

from datetime import datetime

import pytest

from engine.app import create_app
from tests.conftest import load_scenarios
from tests.spine_helpers import auth
from tests.time_helpers import Drive, local


@pytest.fixture
def drive(ioc, source):
    load_scenarios(ioc)
    return Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])


@pytest.fixture
def client(drive):
    app = create_app(services=drive.ioc)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app.test_client()


def _ticket(drive, ticket_id="1022-700"):
    drive.send("hotline.ticket.created", {"ticket_id": ticket_id, "category": "environment",
                                          "ward": "phuong-di-an", "description": "Mùi hôi"},
               subject=ticket_id)


def test_sla_board_per_department_and_scenario(drive, client):
    head = drive.user("lanhdao.nnmt", "department_head", "so-nong-nghiep-moi-truong")
    other = drive.user("lanhdao.xd", "department_head", "so-xay-dung")
    inspector = drive.user("thanhtra", "inspector", "thanh-tra")
    _ticket(drive)
    drive.at(local("2026-03-02 15:00"))  # 4.5 of 8 working hours used (lunch 11:30–13:00)

    resp = client.get("/api/v1/sla", headers=auth(head.token))
    assert resp.status_code == 200, resp.get_json()
    board = resp.get_json()
    [dept] = board["departments"]
    assert (dept["key"], dept["open"], dept["at_risk"], dept["breached"]) == \
        ("so-nong-nghiep-moi-truong", 2, 0, 0)
    ack = next(i for i in board["items"] if i["sla"] == "acknowledge")
    assert (ack["basis"], ack["elapsed_seconds"], ack["remaining_seconds"]) == \
        ("working", 4.5 * 3600, 3.5 * 3600)
    assert datetime.fromisoformat(ack["due_at"]) == local("2026-03-03 09:00")

    drive.at(local("2026-03-02 16:30"))  # 6 of 8 hours, 75 %: at risk
    ack = next(i for i in client.get("/api/v1/sla", headers=auth(inspector.token))
               .get_json()["items"] if i["sla"] == "acknowledge")
    assert ack["at_risk"] and not ack["breached"]
    scenarios = client.get("/api/v1/sla?scenario=hotline-ticket",
                           headers=auth(inspector.token)).get_json()["scenarios"]
    assert [s["key"] for s in scenarios] == ["hotline-ticket"]

    # A head sees only their own department; the board is empty for another one.
    assert client.get("/api/v1/sla?department=so-nong-nghiep-moi-truong",
                      headers=auth(other.token)).status_code == 403
    assert client.get("/api/v1/sla", headers=auth(other.token)).get_json()["items"] == []


@pytest.mark.parametrize("query, field", [("since=yesterday", "since"),
                                          ("until=2026-03-02T10:00:00", "until"),
                                          ("since=2026-03-05&until=2026-03-01", "since")])
def test_sla_board_refuses_bad_periods(drive, client, query, field):
    inspector = drive.user("thanhtra", "inspector", "thanh-tra")
    resp = client.get(f"/api/v1/sla?{query}", headers=auth(inspector.token))
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["field"] == field


def test_sla_board_needs_a_user(client):
    assert client.get("/api/v1/sla").status_code == 401


def test_escalation_reaches_the_heads_notifications_and_inbox(drive, client):
    head = drive.user("lanhdao.nnmt", "department_head", "so-nong-nghiep-moi-truong")
    officer = drive.user("canbo.nnmt", "civil_servant", "so-nong-nghiep-moi-truong")
    _ticket(drive)
    assert client.post("/login", data={"username": "canbo.nnmt",
                                       "password": "password-123"}).status_code == 302
    page = client.get("/inbox").get_data(as_text=True)
    assert "còn 1 ngày làm việc" in page and "breached" not in page

    drive.at(local("2026-03-03 09:30"))  # acknowledgement overdue by half an hour
    page = client.get("/inbox").get_data(as_text=True)
    assert 'class="open breached"' in page
    assert "quá hạn 0,5 giờ làm việc / 0.5 h of working time late" in page
    assert "Đã chuyển lên cấp 1" in page

    notes = client.get("/api/v1/notifications", headers=auth(head.token)).get_json()
    assert [n["kind"] for n in notes] == ["sla.escalate"]
    assert "Quá hạn" in notes[0]["subject"]
    # Escalations go to the heads, not to every officer of the department.
    assert client.get("/api/v1/notifications", headers=auth(officer.token)).get_json() == []
    assert client.get("/api/v1/notifications?unread=maybe",
                      headers=auth(officer.token)).status_code == 400

    client.post("/logout")
    client.post("/login", data={"username": "lanhdao.nnmt", "password": "password-123"})
    board = client.get("/sla").get_data(as_text=True)
    assert "Tiếp nhận phản ánh" in board and "Sở Nông nghiệp và Môi trường" in board
