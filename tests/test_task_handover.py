"""A task's life between claim and completion (issue 23): its holder gives it back or hands it
to a colleague, the department's head reassigns any task of the department, nobody else may;
every move audited; roles that only read see no buttons that would refuse them."""
from __future__ import annotations

import pytest

from engine.app import create_app
from engine.audit.models import AuditRecord
from engine.auth import service as auth_service
from engine.tasks.models import Task
from tests.spine_helpers import auth, complete, dossier, send
from tests.test_web import _csrf, _login


@pytest.fixture
def client(loaded):
    return create_app(services=loaded).test_client()


@pytest.fixture
def task_id(client, loaded, source, people):
    """An open verification task of the Public Administration Service Centre, and its head."""
    with loaded.db.session() as s:
        auth_service.create_user(s, "phvhcc.truong", "department_head", "trung-tam-phvhcc",
                                 password="password-123", with_token=False)
    send(client, source[1], dossier("dossier.supplement_requested", "H05.1"),
         dossier("dossier.supplement_requested", "H05.1"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        return s.query(Task).one().id


def _post(client, token, url, body=None):
    return client.post(url, json=body, headers=auth(token)) if body is not None else \
        client.post(url, headers=auth(token))


def _task(loaded, task_id):
    with loaded.db.read() as s:
        task = s.get(Task, task_id)
        return task.status, task.assignee_id


def _moves(loaded):
    with loaded.db.read() as s:
        return [(r.action, r.actor, r.details.get("from"), r.details.get("to"))
                for r in s.query(AuditRecord).filter(AuditRecord.action.in_(
                    ("task.claimed", "task.released", "task.assigned")))
                .order_by(AuditRecord.seq)]


def test_the_holder_releases_and_hands_on_the_head_reassigns_others_may_not(
        client, loaded, people, task_id):
    me, colleague = people["phvhcc"], people["phvhcc2"]
    base = f"/api/v1/tasks/{task_id}"
    assert _post(client, me[1], f"{base}/release").status_code == 409  # nobody holds it yet
    assert _post(client, me[1], f"{base}/claim").status_code == 200
    # Another officer of the unit may neither give it back nor take it over.
    assert _post(client, colleague[1], f"{base}/release").status_code == 403
    assert _post(client, colleague[1], f"{base}/assign", {"to": "phvhcc2"}).status_code == 403
    assert _post(client, me[1], f"{base}/release").status_code == 200
    assert _task(loaded, task_id) == ("open", None)
    assert _post(client, me[1], f"{base}/claim").status_code == 200
    # The holder hands it to a colleague of the unit, not to someone of another unit.
    wrong = _post(client, me[1], f"{base}/assign", {"to": "thudaumot"})
    assert wrong.status_code == 422 and wrong.get_json()["errors"][0]["field"] == "to"
    assert _post(client, me[1], f"{base}/assign", {}).status_code == 422
    assert _post(client, me[1], f"{base}/assign", {"to": "phvhcc2"}).status_code == 200
    assert _task(loaded, task_id) == ("claimed", colleague[0])
    assert complete(client, me[1], task_id, {"finding": "unfounded",
                                             "verification_note": "n"}).status_code == 409
    # The head gives it back to the first officer, who completes it.
    with loaded.db.session() as s:
        _, head_token = auth_service.create_user(s, "phvhcc.pho", "department_head",
                                                 "trung-tam-phvhcc", with_token=True)
    assert _post(client, head_token, f"{base}/assign", {"to": "phvhcc"}).status_code == 200
    assert complete(client, me[1], task_id, {"finding": "unfounded",
                                             "verification_note": "Đã xác minh"}
                    ).status_code == 200
    # Nothing moves a completed task.
    assert _post(client, head_token, f"{base}/release").status_code == 409
    assert _post(client, head_token, f"{base}/assign", {"to": "phvhcc2"}).status_code == 409
    assert _moves(loaded) == [
        ("task.claimed", "user:phvhcc", None, None),
        ("task.released", "user:phvhcc", "phvhcc", None),
        ("task.claimed", "user:phvhcc", None, None),
        ("task.assigned", "user:phvhcc", "phvhcc", "phvhcc2"),
        ("task.assigned", "user:phvhcc.pho", "phvhcc2", "phvhcc")]


def test_a_reader_is_refused_and_a_head_of_another_unit_cannot_reach_it(
        client, loaded, people, task_id):
    base = f"/api/v1/tasks/{task_id}"
    assert _post(client, people["phvhcc"][1], f"{base}/claim").status_code == 200
    # The auditor reads every unit's tasks but moves none.
    assert _post(client, people["auditor"][1], f"{base}/release").status_code == 403
    assert _post(client, people["auditor"][1], f"{base}/assign",
                 {"to": "phvhcc2"}).status_code == 403
    with loaded.db.session() as s:
        _, other_head = auth_service.create_user(s, "xaydung.truong", "department_head",
                                                 "so-xay-dung", with_token=True)
    assert _post(client, other_head, f"{base}/release").status_code == 404
    assert _task(loaded, task_id) == ("claimed", people["phvhcc"][0])


def test_the_task_page_shows_only_what_the_role_may_do(client, loaded, people, task_id):
    assert _login(client, "phvhcc").status_code == 302
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Nhận và hoàn thành" in page and 'id="release"' not in page
    # The task's information box reads as words: names, labels, the violation's title.
    assert "Phường Thủ Dầu Một" in page and "Mã hồ sơ / dossier number" in page
    for raw in ("phuong-thu-dau-mot", "rule_window", "{'", "repeated-supplement-request",
                "dossier-violations"):
        assert raw not in page, raw
    assert 'id="assign-form"' not in page  # an open task: an officer claims it, not assigns
    client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(page)})
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="release"' in page and 'id="assign-form"' in page
    assert '<option value="phvhcc2">' in page and 'value="thudaumot"' not in page
    moved = client.post(f"/tasks/{task_id}/assign", data={"to": "phvhcc2",
                                                          "csrf_token": _csrf(page)})
    assert moved.status_code == 302
    assert _task(loaded, task_id) == ("claimed", people["phvhcc2"][0])
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Nhiệm vụ do người khác đang xử lý" in page and 'id="release"' not in page

    auditor = create_app(services=loaded).test_client()
    assert _login(auditor, "auditor").status_code == 302
    inbox = auditor.get("/inbox").get_data(as_text=True)
    assert "Nhận xử lý" not in inbox and "Xem <small>View</small>" in inbox
    page = auditor.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "chỉ được xem" in page and 'id="complete"' not in page and 'id="release"' not in page

    head = create_app(services=loaded).test_client()
    assert _login(head, "phvhcc.truong").status_code == 302
    page = head.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="release"' in page and '<option value="phvhcc">' in page
    released = head.post(f"/tasks/{task_id}/release", data={"csrf_token": _csrf(page)})
    assert released.status_code == 302 and _task(loaded, task_id) == ("open", None)


def test_an_officer_opens_the_history_of_the_cases_they_worked_on_and_no_other(
        client, loaded, people, task_id):
    with loaded.db.read() as s:
        instance_id = s.get(Task, task_id).instance_id
    assert _login(client, "phvhcc").status_code == 302
    assert client.get(f"/instances/{instance_id}").status_code == 404  # not theirs yet
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert f"/instances/{instance_id}" not in page
    client.post(f"/tasks/{task_id}/claim", data={"csrf_token": _csrf(page)})
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert f"/instances/{instance_id}" in page
    history = client.get(f"/instances/{instance_id}")
    assert history.status_code == 200 and "Nhận xử lý / Task claimed" in \
        history.get_data(as_text=True)
    assert client.get(f"/cases/{instance_id}").status_code == 200
    # A colleague who never held it, and the API's case lists, stay closed to officers.
    colleague = create_app(services=loaded).test_client()
    assert _login(colleague, "phvhcc2").status_code == 302
    assert colleague.get(f"/instances/{instance_id}").status_code == 404
    assert client.get("/api/v1/instances", headers=auth(people["phvhcc"][1])).status_code == 403
    assert client.get("/cases").status_code == 403
