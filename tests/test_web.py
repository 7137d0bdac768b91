"""The web app as a civil servant uses it: log in, see the inbox, claim and complete a task."""
from __future__ import annotations

import re

import pytest

from engine.app import create_app
from tests.spine_helpers import dossier, send


@pytest.fixture
def app(loaded):
    return create_app(services=loaded)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def _login(client, username, password="password-123"):
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": _csrf(page.get_data(as_text=True))})


@pytest.fixture
def open_violation(app, loaded, source):
    client = app.test_client()
    send(client, source[1], dossier("dossier.supplement_requested", "H03.1"),
         dossier("dossier.supplement_requested", "H03.1"))
    loaded.pipeline.drain()


def test_pages_need_login(app):
    client = app.test_client()
    resp = client.get("/inbox")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_wrong_password(app, people):
    resp = _login(app.test_client(), "phvhcc", "wrong-password")
    assert resp.status_code == 401
    assert "Sai tên đăng nhập" in resp.get_data(as_text=True)


def test_claim_and_complete_in_the_inbox(app, people, open_violation, loaded):
    client = app.test_client()
    assert _login(client, "phvhcc").status_code == 302
    inbox = client.get("/inbox").get_data(as_text=True)
    assert "Hộp công việc" in inbox and "Xác minh vi phạm" in inbox
    assert "Trung tâm Phục vụ hành chính công" in inbox
    task_id = int(re.search(r'/tasks/(\d+)"', inbox).group(1))

    # A POST without the CSRF token is refused.
    assert client.post(f"/tasks/{task_id}/claim").status_code == 400
    resp = client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(inbox)})
    assert resp.status_code == 302
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Kết luận xác minh" in page and "H03.1" in page

    # A required field left empty: the form comes back with the error, nothing completes.
    resp = client.post(f"/tasks/{task_id}", data={"csrf_token": _csrf(page), "finding": "confirmed"})
    assert resp.status_code == 422
    assert "Bắt buộc" in resp.get_data(as_text=True)

    resp = client.post(f"/tasks/{task_id}", data={
        "csrf_token": _csrf(page), "finding": "confirmed",
        "verification_note": "Xác minh: yêu cầu bổ sung hai lần"})
    assert resp.status_code == 302
    after = client.get("/inbox").get_data(as_text=True)
    assert f'/tasks/{task_id}"' not in after
    done = client.get("/inbox?state=completed&mine=y").get_data(as_text=True)
    assert f'/tasks/{task_id}"' in done and 'id="task-total">1<' in done

    # The remedy task went to the ward, whose officer sees it and nobody else's.
    ward = app.test_client()
    _login(ward, "thudaumot")
    assert "Khắc phục vi phạm" in ward.get("/inbox").get_data(as_text=True)
    assert ward.get(f"/tasks/{task_id}").status_code == 404


def test_history_page_shows_the_audit_trail(app, people, open_violation):
    client = app.test_client()
    _login(client, "auditor")
    page = client.get("/violations").get_data(as_text=True)
    instance_id = int(re.search(r'/instances/(\d+)"', page).group(1))
    history = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert "Bắt đầu quy trình / Process started" in history
    assert "Giao nhiệm vụ / Task assigned to the unit" in history
    assert "Trung tâm Phục vụ hành chính công" in history  # the unit by its name
    # Issue 23: no step codes, unit keys, Python reprs or rule internals on the page.
    for raw in ("instance.started", "task.created", "trung-tam-phvhcc", "{'", "rule_window",
                "rule:dossier-violations"):
        assert raw not in history, raw


def test_who_read_which_case_file_is_audited(app, loaded, people, open_violation):
    """Reading a case (the page, the API's history) is recorded: who, which case, how; the
    case's own history does not change by being read."""
    from sqlalchemy import select

    from engine.audit.models import AuditRecord

    client = app.test_client()
    _login(client, "auditor")
    page = client.get("/violations").get_data(as_text=True)
    instance_id = int(re.search(r'/instances/(\d+)"', page).group(1))
    first = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    token = people["auditor"][1]
    client.get(f"/api/v1/instances/{instance_id}/history",
               headers={"Authorization": f"Bearer {token}"})
    assert client.get(f"/instances/{instance_id}").get_data(as_text=True).count("<tr") == \
        first.count("<tr")
    with loaded.db.read() as s:
        views = s.scalars(select(AuditRecord).where(AuditRecord.action == "case.viewed")
                          .order_by(AuditRecord.seq)).all()
    assert [(v.actor, v.subject_id, v.details["via"], v.instance_id) for v in views] == [
        ("user:auditor", str(instance_id), "web", None),
        ("user:auditor", str(instance_id), "api", None),
        ("user:auditor", str(instance_id), "web", None)]


def test_history_shows_vietnamese_as_written(app, people, open_violation):
    client = app.test_client()
    _login(client, "auditor")
    page = client.get("/violations").get_data(as_text=True)
    instance_id = int(re.search(r'/instances/(\d+)"', page).group(1))
    history = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert "Xác minh vi phạm" in history and "\\u" not in history


def test_error_pages_have_the_layout_both_languages_and_a_way_back(app, people):
    """403 and 404 are pages of the app (the menu, Vietnamese then English, links home and back),
    not bare server pages; the API keeps answering problem+json."""
    client = app.test_client()
    _login(client, "phvhcc")
    denied = client.get("/audit", headers={"Referer": "http://localhost/inbox"})
    page = denied.get_data(as_text=True)
    assert denied.status_code == 403 and "Hộp công việc" in page  # the menu is there
    assert "Bạn không có quyền mở trang này" in page and "You may not open this page" in page
    assert 'href="/"' in page and 'id="back"' in page and 'href="/inbox"' in page
    missing = client.get("/khong-co-trang-nay")
    assert missing.status_code == 404 and "Không tìm thấy" in missing.get_data(as_text=True)
    assert 'id="back"' not in missing.get_data(as_text=True)  # no referrer, no back link
    foreign = client.get("/audit", headers={"Referer": "https://evil.example/x"})
    assert 'href="https://evil.example' not in foreign.get_data(as_text=True)
    api = client.get("/api/v1/khong-co")
    assert api.status_code == 404 and api.mimetype == "application/problem+json"
    assert client.get("/designer").status_code in (301, 302, 308)  # redirects pass through
