"""POST /api/v1/events: validation, idempotency, batches, authentication."""
from __future__ import annotations

import pytest

from engine.app import create_app
from engine.events.models import Event
from tests.spine_helpers import BATCH, auth, dossier, event, send, ticket


@pytest.fixture
def client(loaded):
    app = create_app(services=loaded)
    return app.test_client()


def _events(ioc):
    with ioc.db.session() as s:
        return s.query(Event).order_by(Event.id).all()


def test_a_resend_is_acknowledged_and_not_processed_twice(client, loaded, source, people):
    _, src = source
    ev = dossier("dossier.supplement_requested", "H01.X", reason="a")
    first = send(client, src, ev)
    assert first.status_code == 202
    assert first.get_json()["accepted"] == 1
    again = send(client, src, ev)
    assert again.status_code == 202
    assert (again.get_json()["accepted"], again.get_json()["duplicates"]) == (0, 1)
    assert again.get_json()["duplicate_ids"] == [ev["id"]]
    loaded.pipeline.drain()
    # Had the resend been processed, it would pair with the first as a "second request".
    assert client.get("/api/v1/violations", headers=auth(people["inspector"][1])).get_json() == []
    assert len(_events(loaded)) == 1


def test_the_same_id_from_two_sources_is_two_events(client, loaded, source):
    from engine.auth import service as auth_service

    _, src = source
    with loaded.db.session() as s:
        _, other = auth_service.create_source(s, "second-source")
    ev = ticket("1022-77")
    assert send(client, src, ev).get_json()["accepted"] == 1
    assert send(client, other, ev).get_json()["accepted"] == 1
    assert len(_events(loaded)) == 2


def test_a_bad_event_gets_problem_json_naming_the_field(client, loaded, source):
    _, src = source
    bad = dossier("dossier.received", "H01.Y")
    del bad["data"]["due_at"]
    bad["time"] = "yesterday"
    resp = send(client, src, bad)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == 422 and body["title"] == "Invalid Event"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"time", "data.due_at"}
    assert _events(loaded) == []


@pytest.mark.parametrize("mutate, field", [
    (lambda e: e.update(specversion="0.3"), "specversion"),
    (lambda e: e.pop("id"), "id"),
    (lambda e: e.update(id=""), "id"),
    (lambda e: e.pop("source"), "source"),
    (lambda e: e.update(type="dossier.lost"), "type"),
    (lambda e: e.update(datacontenttype="text/xml"), "datacontenttype"),
    (lambda e: e.pop("data"), "data"),
    (lambda e: e["data"].update(unit="quan-9"), "data.unit"),
    (lambda e: e["data"].update(dossier_id=17), "data.dossier_id"),
])
def test_each_envelope_and_data_problem_is_named(client, source, mutate, field):
    _, src = source
    ev = dossier("dossier.returned", "H01.Z", reason="r")
    mutate(ev)
    resp = send(client, src, ev)
    assert resp.status_code == 422
    assert field in {e["field"] for e in resp.get_json()["errors"]}


def test_a_batch_keeps_the_good_events_and_names_the_refused(client, loaded, source):
    _, src = source
    good1, good2 = ticket("1022-1"), ticket("1022-2")
    bad = ticket("1022-3")
    bad["data"]["location"] = {"lat": 123, "lon": 106}
    resp = send(client, src, good1, bad, good2)
    assert resp.status_code == 202
    body = resp.get_json()
    assert (body["accepted"], body["duplicates"], body["refused"]) == (2, 0, 1)
    assert body["errors"] == [{"index": 1, "id": bad["id"], "errors": [
        {"field": "data.location.lat", "message": "123 is greater than the maximum of 90"}]}]
    assert [e.ce_id for e in _events(loaded)] == [good1["id"], good2["id"]]


def test_a_request_is_one_audit_record_naming_its_events(client, loaded, source):
    from sqlalchemy import select

    from engine.audit import service as audit
    from engine.audit.models import AuditRecord

    _, src = source
    first, second = ticket("1022-a1"), dossier("dossier.received", "H01.A1")
    bad = dossier("dossier.received", "H01.A2", unit="no-such-unit")
    assert send(client, src, first, bad, second).get_json()["refused"] == 1
    assert send(client, src, first).get_json()["duplicates"] == 1  # nothing new: no record
    with loaded.db.read() as s:
        [record] = s.scalars(select(AuditRecord).where(AuditRecord.action == "events.accepted"))
        stored = {e.ce_id: e for e in s.scalars(select(Event))}
        assert audit.verify(s).ok
    assert (record.actor, record.subject_type) == ("source:test-source", "source")
    assert record.details["count"] == 2
    assert record.details["events"] == [
        {"event_id": stored[e["id"]].id, "id": e["id"], "type": e["type"],
         "subject": e.get("subject")} for e in (first, second)]


def test_a_batch_with_only_bad_events_is_refused(client, loaded, source):
    _, src = source
    resp = send(client, src, {"specversion": "1.0"}, "not an event", batch=True)
    assert resp.status_code == 422
    assert [e["index"] for e in resp.get_json()["errors"]] == [0, 1]


@pytest.mark.parametrize("body, ctype, status", [
    (b"{not json", "application/cloudevents+json", 400),
    (b"[]", BATCH, 400),
    (b"{}", BATCH, 400),
    (b"[1]", "application/cloudevents+json", 400),
    (b"<xml/>", "application/xml", 415),
])
def test_malformed_requests(client, source, body, ctype, status):
    _, src = source
    resp = client.post("/api/v1/events", data=body, content_type=ctype, headers=auth(src))
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"


def test_tokens(client, source, people):
    ev = ticket("1022-9")
    assert client.post("/api/v1/events", json=ev).status_code == 401
    assert send(client, "iocs_wrong", ev).status_code == 401
    # A user's token cannot send events, and a source's token cannot read tasks.
    assert send(client, people["admin"][1], ev).status_code == 401
    assert client.get("/api/v1/tasks", headers=auth(source[1])).status_code == 401


def test_a_source_sends_only_its_allowed_types(client, loaded):
    from engine.auth import service as auth_service

    with loaded.db.session() as s:
        _, token = auth_service.create_source(s, "hotline-only", ["hotline.ticket.created"])
    assert send(client, token, ticket("1022-5")).status_code == 202
    resp = send(client, token, dossier("dossier.returned", "H01.Q"))
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "type"


def test_an_old_unit_key_is_accepted_through_its_successor(client, loaded, source):
    _, src = source
    resp = send(client, src, event("dossier.received", {
        "dossier_id": "H01.OLD", "procedure": "p", "unit": "so-tai-nguyen-moi-truong",
        "due_at": "2026-12-01T17:00:00+07:00"}))
    assert resp.status_code == 202


def test_a_request_reads_its_source_once_and_counts_it(client, loaded, source):
    from sqlalchemy import event as sa_event

    from engine.events.models import Source

    source_id, src = source
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()))

    sa_event.listen(loaded.db.engine, "before_cursor_execute", seen)
    try:
        first = ticket("1022-c1")
        assert send(client, src, first, ticket("1022-c2")).status_code == 202
        assert send(client, src, first).get_json()["duplicates"] == 1
    finally:
        sa_event.remove(loaded.db.engine, "before_cursor_execute", seen)
    # The token's lookup reads the row; storing the events only moves its counters.
    assert sum(s.startswith("SELECT") and "FROM sources" in s for s in statements) == 2
    with loaded.db.read() as s:
        row = s.get(Source, source_id)
        assert (row.accepted_count, row.duplicate_count, row.refused_count) == (2, 1, 0)
        assert row.last_event_at is not None


def test_a_requests_events_are_written_by_one_statement_of_one_text(client, loaded, source):
    from sqlalchemy import event as sa_event

    _, src = source
    inserts: list[tuple[str, bool]] = []

    def seen(_conn, _cursor, statement, _params, _context, executemany):
        if statement.startswith("INSERT INTO events"):
            inserts.append((statement, executemany))

    sa_event.listen(loaded.db.engine, "before_cursor_execute", seen)
    try:
        sent = [ticket("1022-w1"), ticket("1022-w2"), ticket("1022-w3"), ticket("1022-w4")]
        assert send(client, src, *sent[:3]).get_json()["accepted"] == 3
        assert send(client, src, sent[3]).get_json()["accepted"] == 1
    finally:
        sa_event.remove(loaded.db.engine, "before_cursor_execute", seen)
    # The ids are taken first: one INSERT per request, its text the same whatever the count
    # (parsed once by the driver), nothing returned.
    assert len(inserts) == 2 and inserts[0][0] == inserts[1][0]
    assert "RETURNING" not in inserts[0][0]
    stored = _events(loaded)
    assert [e.ce_id for e in stored] == [e["id"] for e in sent]  # in id order
    assert len({e.received_at for e in stored[:3]}) == 1  # received together
