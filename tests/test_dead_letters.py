"""Dead letters: listed, retried after the cause is fixed, discarded with a reason; audited."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.app import create_app
from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.events.models import Event
from engine.tasks.models import Task
from tests.faults import FAULT, failing_on
from tests.spine_helpers import auth, send, ticket

# The shipped hotline scenario routes environment tickets to this department (routing.dmn).
COMPETENT = "so-nong-nghiep-moi-truong"
LIST = "/api/v1/dead-letters"


@pytest.fixture
def app(loaded):
    loaded.pipeline.max_attempts = 1  # the first failure makes a dead letter
    return create_app(services=loaded)


@pytest.fixture
def client(app):
    return app.test_client()


def _dead_ticket(client, ioc, token: str, ticket_id: str) -> int:
    """Send an environment ticket while the engine fails on it; return its (dead) event id.

    (A scenario's own failure is an incident of its instance, not a dead letter: only a fault
    of the engine itself, here injected, stops an event for every scenario.)"""
    with failing_on(ioc.pipeline, ticket_id):
        assert send(client, token, ticket(ticket_id)).status_code == 202
        ioc.pipeline.drain()
    with ioc.db.read() as s:
        event = s.scalars(select(Event).where(Event.subject == ticket_id)).one()
    assert event.status == "failed" and event.error == FAULT
    return event.id


def _audits(ioc, action: str) -> list[AuditRecord]:
    with ioc.db.read() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action == action)))


def _chain_ok(ioc) -> bool:
    with ioc.db.read() as s:
        return audit.verify(s).ok


def test_listed_for_admins_only_and_filtered(client, loaded, source, people):
    dead = _dead_ticket(client, loaded, source[1], "1022-d1")
    send(client, source[1], ticket("1022-ok", category="traffic"))
    loaded.pipeline.drain()
    admin = auth(people["admin"][1])
    body = client.get(LIST, headers=admin).get_json()
    assert [(e["event_id"], e["status"], e["attempts"]) for e in body] == [(dead, "failed", 1)]
    assert body[0]["type"] == "hotline.ticket.created" and "partition" in body[0]
    assert body[0]["error"] == FAULT
    assert client.get(LIST, query_string={"type": "hotline.ticket.created"},
                      headers=admin).get_json()[0]["event_id"] == dead
    assert client.get(LIST, query_string={"type": "dossier.received"}, headers=admin
                      ).get_json() == []
    assert client.get(LIST, query_string={"source": "/elsewhere"}, headers=admin).get_json() == []
    bad = client.get(LIST, query_string={"limit": "0"}, headers=admin)
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "limit"
    for who in ("phvhcc", "inspector"):
        refused = client.get(LIST, headers=auth(people[who][1]))
        assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert client.get(LIST).status_code == 401


def test_retry_after_the_fix_processes_the_event_and_is_audited(client, loaded, source, people):
    dead = _dead_ticket(client, loaded, source[1], "1022-d2")
    admin = auth(people["admin"][1])
    resp = client.post(f"{LIST}/{dead}/retry", headers=admin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    # The last error stays visible until the next attempt replaces or clears it.
    assert (body["status"], body["attempts"]) == ("pending", 0) and body["error"]
    assert client.get(LIST, headers=admin).get_json() == []
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        event = s.get(Event, dead)
        assert (event.status, event.error) == ("processed", None)
        assert [t.department_key for t in s.scalars(select(Task))] == [COMPETENT]
    [retried] = _audits(loaded, "event.retried")
    assert (retried.actor, retried.subject_id) == ("user:admin", str(dead))
    assert retried.details["attempts"] == 1 and retried.details["error"] == FAULT
    assert _chain_ok(loaded)
    # Once processed it is no dead letter any more: a second retry conflicts.
    again = client.post(f"{LIST}/{dead}/retry", headers=admin)
    assert again.status_code == 409 and "dead letter" in again.get_json()["detail"]


def test_a_retry_that_fails_again_is_a_dead_letter_again(client, loaded, source, people):
    dead = _dead_ticket(client, loaded, source[1], "1022-d3")
    assert client.post(f"{LIST}/{dead}/retry", headers=auth(people["admin"][1])).status_code == 200
    with failing_on(loaded.pipeline, "1022-d3"):  # the cause is not fixed
        loaded.pipeline.drain()
    with loaded.db.read() as s:
        assert (s.get(Event, dead).status, s.get(Event, dead).attempts) == ("failed", 1)
    assert len(_audits(loaded, "event.failed")) == 2


def test_discard_needs_a_reason_then_leaves_the_list_and_is_audited(client, loaded, source,
                                                                     people):
    dead = _dead_ticket(client, loaded, source[1], "1022-d4")
    admin = auth(people["admin"][1])
    url = f"{LIST}/{dead}/discard"
    for body in (None, {}, {"reason": "   "}, {"reason": 7}, {"reason": "x" * 501}):
        resp = client.post(url, json=body, headers=admin) if body is not None \
            else client.post(url, headers=admin)
        assert resp.status_code == 422, body
        assert resp.mimetype == "application/problem+json"
        assert [e["field"] for e in resp.get_json()["errors"]] == ["reason"]
    assert client.post(url, json=["reason"], headers=admin).status_code == 400
    assert client.post(url, data="{", headers={**admin, "Content-Type": "application/json"}
                       ).status_code == 400
    with loaded.db.read() as s:
        assert s.get(Event, dead).status == "failed"  # nothing half-done by the refusals
    resp = client.post(url, json={"reason": " Phản ánh trùng, đã xử lý qua điện thoại "},
                       headers=admin)
    assert resp.status_code == 200 and resp.get_json()["status"] == "discarded"
    assert client.get(LIST, headers=admin).get_json() == []
    assert client.get("/api/v1/events", query_string={"status": "discarded"}, headers=admin
                      ).get_json()[0]["event_id"] == dead
    [discarded] = _audits(loaded, "event.discarded")
    assert discarded.details["reason"] == "Phản ánh trùng, đã xử lý qua điện thoại"
    assert discarded.actor == "user:admin" and discarded.details["attempts"] == 1
    assert _chain_ok(loaded)
    # Discarded is final: no retry, no second discard; it is never processed.
    assert client.post(f"{LIST}/{dead}/retry", headers=admin).status_code == 409
    assert client.post(url, json={"reason": "again"}, headers=admin).status_code == 409
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        assert s.get(Event, dead).status == "discarded"


def test_unknown_or_live_events_are_refused(client, loaded, source, people):
    admin = auth(people["admin"][1])
    send(client, source[1], ticket("1022-live", category="traffic"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        live = s.scalars(select(Event.id)).one()
    for action, body in (("retry", None), ("discard", {"reason": "r"})):
        missing = client.post(f"{LIST}/999999/{action}", json=body, headers=admin)
        assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
        conflict = client.post(f"{LIST}/{live}/{action}", json=body, headers=admin)
        assert conflict.status_code == 409 and "processed" in conflict.get_json()["detail"]
    refused = client.post(f"{LIST}/{live}/retry", headers=auth(people["phvhcc"][1]))
    assert refused.status_code == 403
    assert _audits(loaded, "event.retried") == _audits(loaded, "event.discarded") == []


# -- the administrators' page ---------------------------------------------------------------

def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def _login(client, username: str) -> str:
    page = client.get("/login")
    client.post("/login", data={"username": username, "password": "password-123",
                                "csrf_token": _csrf(page.get_data(as_text=True))})
    return _csrf(client.get("/sla").get_data(as_text=True))


def test_the_page_lists_dead_letters_and_its_buttons_work(app, loaded, source, people):
    api = app.test_client()
    first = _dead_ticket(api, loaded, source[1], "1022-w1")
    second = _dead_ticket(api, loaded, source[1], "1022-w2")
    web = app.test_client()
    token = _login(web, "admin")
    html = web.get("/dead-letters").get_data(as_text=True)
    assert 'href="/dead-letters">Sự kiện lỗi <small>Dead letters</small>' in html  # nav link
    for event_id in (first, second):
        assert f'id="event-{event_id}"' in html
        assert f'action="/dead-letters/{event_id}/retry"' in html
        assert f'action="/dead-letters/{event_id}/discard"' in html
    assert "1022-w1" in html and "injected fault" in html

    resp = web.post(f"/dead-letters/{second}/discard", data={"csrf_token": token, "reason": " "})
    assert resp.status_code == 422
    assert "Thiếu lý do / A reason is required" in resp.get_data(as_text=True)
    assert web.post(f"/dead-letters/{second}/discard", data={"reason": "x"}).status_code == 400

    resp = web.post(f"/dead-letters/{first}/retry", data={"csrf_token": token},
                    follow_redirects=True)
    assert f"Đã đưa sự kiện {first} vào hàng đợi xử lý lại" in resp.get_data(as_text=True)
    resp = web.post(f"/dead-letters/{second}/discard",
                    data={"csrf_token": token, "reason": "Sự kiện thử nghiệm"},
                    follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert f"Đã bỏ qua sự kiện {second}" in html
    assert "Không có sự kiện lỗi" in html
    # Acting twice on the same row (a stale page) says why, Vietnamese first.
    resp = web.post(f"/dead-letters/{second}/discard",
                    data={"csrf_token": token, "reason": "again"}, follow_redirects=True)
    assert f"Sự kiện {second} không phải sự kiện lỗi" in resp.get_data(as_text=True)
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        assert (s.get(Event, first).status, s.get(Event, second).status) == (
            "processed", "discarded")
    assert [r.actor for r in _audits(loaded, "event.retried") + _audits(
        loaded, "event.discarded")] == ["user:admin", "user:admin"]
    assert _chain_ok(loaded)


def test_the_page_is_for_administrators(app, loaded, people):
    web = app.test_client()
    token = _login(web, "inspector")
    assert web.get("/dead-letters").status_code == 403
    assert web.post("/dead-letters/1/retry", data={"csrf_token": token}).status_code == 403
    assert "Dead letters" not in web.get("/sla").get_data(as_text=True)
    assert app.test_client().get("/dead-letters").status_code == 302  # to the login page
