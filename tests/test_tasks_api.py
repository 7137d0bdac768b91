"""Task API: department scoping, roles, form validation, conflicts."""
from __future__ import annotations

import pytest

from engine.app import create_app
from tests.spine_helpers import auth, complete, dossier, send, tasks_of


@pytest.fixture
def app(loaded):
    return create_app(services=loaded)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def verify_task(client, loaded, source):
    _, src = source
    send(client, src, dossier("dossier.supplement_requested", "H02.1"),
         dossier("dossier.supplement_requested", "H02.1"))
    loaded.pipeline.drain()
    with loaded.db.session() as s:
        from engine.tasks.models import Task

        return s.query(Task).one().id


def test_a_civil_servant_sees_only_their_department(client, people, verify_task):
    assert [t["id"] for t in tasks_of(client, people["phvhcc"][1])] == [verify_task]
    assert tasks_of(client, people["thudaumot"][1]) == []
    other = client.get("/api/v1/tasks", query_string={"department": "trung-tam-phvhcc"},
                       headers=auth(people["thudaumot"][1]))
    assert other.status_code == 403
    assert client.get(f"/api/v1/tasks/{verify_task}",
                      headers=auth(people["thudaumot"][1])).status_code == 404
    assert client.post(f"/api/v1/tasks/{verify_task}/claim",
                       headers=auth(people["thudaumot"][1])).status_code == 404


def test_roles(client, people, verify_task):
    # An auditor may read every department's tasks but not work on them.
    assert [t["id"] for t in tasks_of(client, people["auditor"][1])] == [verify_task]
    assert client.post(f"/api/v1/tasks/{verify_task}/claim",
                       headers=auth(people["auditor"][1])).status_code == 403
    # An inspector designs scenarios; the inbox is not theirs.
    assert client.get("/api/v1/tasks", headers=auth(people["inspector"][1])).status_code == 403
    assert client.get("/api/v1/audit/verify", headers=auth(people["phvhcc"][1])).status_code == 403
    # A civil servant works on their tasks; whole case files are for readers of cases.
    assert client.get("/api/v1/instances", headers=auth(people["phvhcc"][1])).status_code == 403
    assert client.get("/api/v1/audit/verify",
                      headers=auth(people["auditor"][1])).get_json()["ok"] is True


def test_answers_are_checked_against_the_form(client, people, verify_task):
    tok = people["phvhcc"][1]
    resp = complete(client, tok, verify_task, {"finding": "maybe", "extra": 1})
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    errors = {e["field"]: e["message"] for e in resp.get_json()["errors"]}
    assert set(errors) == {"finding", "extra", "verification_note"}
    assert "confirmed" in errors["finding"]
    # Nothing happened: the task is still open and unclaimed.
    [task] = tasks_of(client, tok)
    assert (task["status"], task["assignee"]) == ("open", None)
    bad_body = client.post(f"/api/v1/tasks/{verify_task}/complete", data="nope",
                           content_type="application/json", headers=auth(tok))
    assert bad_body.status_code == 400


def test_claim_conflicts(client, people, verify_task):
    a, b = people["phvhcc"][1], people["phvhcc2"][1]
    assert client.post(f"/api/v1/tasks/{verify_task}/claim", headers=auth(a)).status_code == 200
    assert client.post(f"/api/v1/tasks/{verify_task}/claim", headers=auth(a)).status_code == 200
    resp = client.post(f"/api/v1/tasks/{verify_task}/claim", headers=auth(b))
    assert resp.status_code == 409
    assert [t["id"] for t in tasks_of(client, b, assignee="phvhcc")] == [verify_task]
    assert tasks_of(client, b, assignee="me") == []
    ok = complete(client, a, verify_task, {"finding": "unfounded", "verification_note": "n"})
    assert ok.status_code == 200
    again = complete(client, a, verify_task, {"finding": "unfounded", "verification_note": "n"})
    assert again.status_code == 409


@pytest.mark.parametrize("query", [{"status": "lost"}, {"limit": "x"}, {"limit": "0"},
                                   {"offset": "-1"}])
def test_bad_filters_are_400(client, people, query):
    resp = client.get("/api/v1/tasks", query_string=query, headers=auth(people["phvhcc"][1]))
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


def test_unknown_api_paths_are_problem_json(client, people):
    resp = client.get("/api/v1/nothing", headers=auth(people["admin"][1]))
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert client.get("/api/v1/instances/999",
                      headers=auth(people["admin"][1])).status_code == 404


def _web_login(client, username: str) -> None:
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": username, "password": "password-123",
                                "csrf_token": token})


def test_a_department_head_reads_the_cases_of_their_own_department_only(app, loaded, people,
                                                                        verify_task):
    """README, Roles: a head reads the cases their department works on, as the task API shows
    its tasks; a commander, an inspector and an auditor read every department's."""
    from engine.auth import service as auth_service
    from engine.tasks.models import Task

    with loaded.db.session() as s:
        instance = s.get(Task, verify_task).instance_id
        tokens = {name: auth_service.create_user(s, name, "department_head", dept,
                                                 password="password-123", with_token=True)[1]
                  for name, dept in (("lanhdao.phvhcc", "trung-tam-phvhcc"),
                                     ("lanhdao.tdm", "phuong-thu-dau-mot"))}
        tokens["chihuy"] = auth_service.create_user(s, "chihuy", "commander", "ioc",
                                                    with_token=True)[1]
    client = app.test_client()

    def read(token, path):
        resp = client.get(f"/api/v1{path}", headers=auth(token))
        return resp.status_code, resp.get_json()

    for reader in (tokens["lanhdao.phvhcc"], tokens["chihuy"], people["inspector"][1],
                   people["auditor"][1]):
        assert [i["id"] for i in read(reader, "/instances")[1]] == [instance]
        assert [v["instance_id"] for v in read(reader, "/violations")[1]] == [instance]
        assert read(reader, f"/instances/{instance}")[0] == 200
        assert read(reader, f"/instances/{instance}/history")[1]
    other = tokens["lanhdao.tdm"]
    assert read(other, "/instances") == (200, [])
    assert read(other, "/violations") == (200, [])
    assert read(other, f"/instances/{instance}")[0] == 404
    assert read(other, f"/instances/{instance}/history")[0] == 404
    # The task API hides the same: one scope for tasks and cases.
    assert tasks_of(client, other) == []

    for username, shown in (("lanhdao.tdm", False), ("lanhdao.phvhcc", True)):
        web = app.test_client()
        _web_login(web, username)
        assert web.get(f"/instances/{instance}").status_code == (200 if shown else 404)
        page = web.get("/violations").get_data(as_text=True)
        assert (f"/instances/{instance}" in page) is shown
