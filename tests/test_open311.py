"""The 1022 hotline's Open311 GeoReport v2 interface, through the real HTTP protocol."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.app import create_app
from engine.auth import service as auth
from engine.events.guard import SIGNATURE_HEADER, sign
from engine.events.models import Event, Source
from engine.org import service as org
from tests.spine_helpers import auth as bearer
from tests.spine_helpers import complete, send, tasks_of, ticket

PROBLEM = "application/problem+json"
NNMT_NAME = "Sở Nông nghiệp và Môi trường"


@pytest.fixture
def client(loaded):
    app = create_app(services=loaded)
    app.config["TESTING"] = True
    return app.test_client()


def _form(**extra) -> dict:
    """A valid GeoReport POST, form fields as a citizen app sends them."""
    form = {"service_code": "environment", "lat": "10.9046", "long": "106.7698",
            "description": "Khói bụi từ xưởng gỗ gây ô nhiễm khu dân cư",
            "attribute[ward]": "phuong-di-an"}
    form.update(extra)
    return {k: v for k, v in form.items() if v is not None}


def _post(client, token, headers=None, **fields):
    return client.post("/open311/v2/requests.json", data=_form(api_key=token, **fields),
                       headers=headers or {})


def _get(client, token, request_id):
    return client.get(f"/open311/v2/requests/{request_id}.json", headers=bearer(token))


def _events(ioc) -> list[Event]:
    with ioc.db.read() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


# ------------------------------------------------------------------------------ services


def test_services_are_the_hotline_categories(client, loaded, source):
    _, token = source
    resp = client.get("/open311/v2/services.json", headers=bearer(token))
    assert resp.status_code == 200
    services = resp.get_json()
    expected = loaded.vocabulary.get("hotline.ticket.created").fields["category"].schema["enum"]
    assert [s["service_code"] for s in services] == expected
    env = services[0]
    assert env["service_name"] == "Môi trường"
    assert (env["metadata"], env["type"]) == (True, "realtime")
    assert env["description"] and env["group"] and "ô nhiễm" in env["keywords"]
    assert {s["service_name"] for s in services} >= {"Giao thông", "Trật tự đô thị", "Y tế"}

    xml = client.get("/open311/v2/services.xml", headers=bearer(token))
    assert xml.status_code == 404 and xml.mimetype == PROBLEM


def test_service_definition_lists_todays_wards(client, source):
    _, token = source
    resp = client.get("/open311/v2/services/environment.json", headers=bearer(token))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["service_code"] == "environment"
    ward, channel = body["attributes"]
    assert (ward["code"], ward["datatype"], ward["required"]) == ("ward", "singlevaluelist", True)
    assert {"key": "phuong-di-an", "name": "Phường Dĩ An"} in ward["values"]
    keys = {v["key"] for v in ward["values"]}
    assert len(keys) == 36  # 24 wards and 12 communes since 1 July 2025
    assert "thanh-pho-di-an" not in keys  # the former city: no longer a unit
    assert not any(k.startswith("so-") for k in keys)  # departments are not places
    assert (channel["code"], channel["required"]) == ("channel", False)
    assert {v["key"] for v in channel["values"]} == {"phone", "app", "web", "chat"}

    unknown = client.get("/open311/v2/services/potholes.json", headers=bearer(token))
    assert unknown.status_code == 404 and unknown.mimetype == PROBLEM


# ------------------------------------------------------------------------------ the life of a request


def test_a_request_is_filed_routed_and_answered(client, loaded, source, people):
    _, token = source
    resp = _post(client, token, email="an@example.vn", first_name="An", last_name="Nguyễn",
                 phone="0912345678", device_id="abc-123")
    assert resp.status_code == 201, resp.get_json()
    [ack] = resp.get_json()
    assert set(ack) == {"service_request_id", "service_notice", "account_id"}
    assert ack["account_id"] is None and ack["service_notice"]
    request_id = ack["service_request_id"]

    # Stored as a hotline.ticket.created event, without the citizen's personal data.
    [event] = _events(loaded)
    assert (event.type, event.subject) == ("hotline.ticket.created", request_id)
    assert event.data == {"ticket_id": request_id, "category": "environment",
                          "ward": "phuong-di-an", "channel": "app",
                          "description": "Khói bụi từ xưởng gỗ gây ô nhiễm khu dân cư",
                          "location": {"lat": 10.9046, "lon": 106.7698}}
    assert "0912345678" not in str(event.data) and "example.vn" not in str(event.data)

    # Accepted but not yet through the pipeline.
    [pending] = _get(client, token, request_id).get_json()
    assert pending["status"] == "open"
    assert pending["service_notice"] == "đang tiếp nhận / being received"
    assert pending["agency_responsible"] is None
    assert pending["requested_datetime"].endswith("+07:00")

    loaded.pipeline.drain()
    resp = _get(client, token, request_id)
    assert resp.status_code == 200
    [running] = resp.get_json()
    assert running["service_request_id"] == request_id
    assert running["status"] == "open"
    assert running["agency_responsible"] == NNMT_NAME
    assert (running["service_code"], running["service_name"]) == ("environment", "Môi trường")
    assert (running["lat"], running["long"]) == (10.9046, 106.7698)
    assert running["description"] == "Khói bụi từ xưởng gỗ gây ô nhiễm khu dân cư"
    assert running["expected_datetime"].endswith("+07:00")  # the ticket's resolve SLA
    assert running["updated_datetime"].endswith("+07:00")

    nnmt = people["nnmt"][1]
    [task] = tasks_of(client, nnmt, status="open")
    answer = "Đã kiểm tra, lập biên bản xử phạt cơ sở"
    assert complete(client, nnmt, task["id"], {"answer": answer}).status_code == 200
    [closed] = _get(client, token, request_id).get_json()
    assert closed["status"] == "closed"
    assert closed["status_notes"] == answer
    assert closed["agency_responsible"] == NNMT_NAME
    assert closed["expected_datetime"] is None


def test_a_resolution_at_the_call_centre_closes_the_request(client, loaded, source):
    _, token = source
    request_id = _post(client, token, service_code="traffic").get_json()[0]["service_request_id"]
    loaded.pipeline.drain()
    [running] = _get(client, token, request_id).get_json()
    assert running["agency_responsible"] == "Sở Xây dựng"
    send(client, token, {"specversion": "1.0", "id": "resolved-o311", "source": "/test/1022",
                         "type": "hotline.ticket.resolved",
                         "data": {"ticket_id": request_id, "answer": "Đã sửa đèn tín hiệu"}})
    loaded.pipeline.drain()
    [closed] = _get(client, token, request_id).get_json()
    assert (closed["status"], closed["status_notes"]) == ("closed", "Đã sửa đèn tín hiệu")
    assert "tổng đài" in closed["service_notice"]


def test_json_body_bearer_token_address_and_ward_by_name(client, loaded, source):
    _, token = source
    resp = client.post("/open311/v2/requests.json", headers=bearer(token), json={
        "service_code": "urban-order", "description": "Lấn chiếm vỉa hè bán hàng",
        "address_string": "12 Đường Yersin", "attribute": {"ward": "Phường Thủ Dầu Một",
                                                           "channel": "web"}})
    assert resp.status_code == 201, resp.get_json()
    request_id = resp.get_json()[0]["service_request_id"]
    [event] = _events(loaded)
    assert (event.data["ward"], event.data["channel"]) == ("phuong-thu-dau-mot", "web")
    assert "location" not in event.data
    # The department sees the address with the report (the vocabulary has no address field).
    assert "12 Đường Yersin" in event.data["description"]
    loaded.pipeline.drain()
    [req] = _get(client, token, request_id).get_json()
    assert (req["description"], req["address"]) == ("Lấn chiếm vỉa hè bán hàng", "12 Đường Yersin")
    assert (req["lat"], req["long"]) == (None, None)
    assert req["agency_responsible"] == "Phường Thủ Dầu Một"  # urban order goes to the ward


def test_an_old_key_of_the_ward_is_resolved(client, loaded, source):
    _, token = source
    assert _post(client, token, **{"attribute[ward]": "thanh-pho-di-an"}).status_code == 201
    assert _events(loaded)[0].data["ward"] == "phuong-di-an"


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("fields, named", [
    ({"service_code": None}, {"service_code"}),
    ({"service_code": "potholes"}, {"service_code"}),
    ({"attribute[ward]": "phuong-khong-co"}, {"attribute[ward]"}),
    ({"attribute[ward]": "so-nong-nghiep-moi-truong"}, {"attribute[ward]"}),  # not a place
    ({"attribute[ward]": None}, {"attribute[ward]"}),
    ({"lat": "95.5"}, {"lat"}),
    ({"long": "abc"}, {"long"}),
    ({"long": None}, {"long"}),
    ({"lat": None, "long": None}, {"lat"}),
    ({"description": "   "}, {"description"}),
    ({"attribute[channel]": "fax"}, {"attribute[channel]"}),
    ({"attribute[colour]": "red"}, {"attribute[colour]"}),
    ({"service_code": None, "lat": "-91", "attribute[ward]": "x"},
     {"service_code", "lat", "attribute[ward]"}),
])
def test_refused_input_names_each_open311_field(client, loaded, source, fields, named):
    source_id, token = source
    resp = _post(client, token, **fields)
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == PROBLEM
    assert {e["field"] for e in resp.get_json()["errors"]} == named
    assert _events(loaded) == []  # nothing half-stored
    with loaded.db.read() as s:
        assert s.get(Source, source_id).refused_count == 1


def test_bad_bodies(client, source):
    _, token = source
    not_json = client.post("/open311/v2/requests.json", data=b"{oops", headers=bearer(token),
                           content_type="application/json")
    assert not_json.status_code == 400 and not_json.mimetype == PROBLEM
    xml = client.post("/open311/v2/requests.json", data=b"<x/>", headers=bearer(token),
                      content_type="text/xml")
    assert xml.status_code == 415 and xml.mimetype == PROBLEM
    other_format = client.post("/open311/v2/requests.xml", data=_form(api_key=token))
    assert other_format.status_code == 404 and other_format.mimetype == PROBLEM


def test_a_source_not_allowed_tickets_is_forbidden(client, loaded):
    with loaded.db.session() as s:
        _, token = auth.create_source(s, "quan-trac-o311", ["environment.reading"])
    resp = _post(client, token)
    assert resp.status_code == 403 and resp.mimetype == PROBLEM
    assert _events(loaded) == []


# ------------------------------------------------------------------------------ idempotency


def test_idempotency_key_gives_the_same_request_once(client, loaded, source):
    source_id, token = source
    first = _post(client, token, headers={"Idempotency-Key": "app-42-report-7"})
    again = _post(client, token, headers={"Idempotency-Key": "app-42-report-7"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.get_json() == again.get_json()
    assert len(_events(loaded)) == 1
    with loaded.db.read() as s:
        src = s.get(Source, source_id)
        assert (src.accepted_count, src.duplicate_count) == (1, 1)

    other = _post(client, token, headers={"Idempotency-Key": "app-42-report-8"})
    assert other.get_json()[0]["service_request_id"] != first.get_json()[0]["service_request_id"]
    reused = _post(client, token, headers={"Idempotency-Key": "app-42-report-7"},
                   description="Một phản ánh khác")
    assert reused.status_code == 422 and reused.mimetype == PROBLEM
    assert reused.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(_events(loaded)) == 2


def test_the_same_key_from_another_source_is_another_request(client, loaded, source):
    _, token = source
    with loaded.db.session() as s:
        _, other = auth.create_source(s, "ung-dung-khac")
    a = _post(client, token, headers={"Idempotency-Key": "k-1"}).get_json()[0]
    b = _post(client, other, headers={"Idempotency-Key": "k-1"}).get_json()[0]
    assert a["service_request_id"] != b["service_request_id"]
    assert len(_events(loaded)) == 2


def test_without_a_key_each_post_is_a_new_request(client, loaded, source):
    _, token = source
    ids = {_post(client, token).get_json()[0]["service_request_id"] for _ in range(2)}
    assert len(ids) == 2 and len(_events(loaded)) == 2


# ------------------------------------------------------------------------------ authentication


def test_tokens_are_required_and_checked(client, loaded, source):
    _, token = source
    for resp in (_post(client, "iocs_wrong"),
                 client.post("/open311/v2/requests.json", data=_form()),
                 client.post("/open311/v2/requests.json", data=_form(),
                             headers=bearer("iocs_wrong")),
                 client.get("/open311/v2/services.json"),
                 client.get("/open311/v2/requests.json?api_key=iocs_wrong"),
                 client.get("/open311/v2/requests/1022-x.json")):
        assert resp.status_code == 401, resp.get_data(as_text=True)
        assert resp.mimetype == PROBLEM
    assert _events(loaded) == []
    # The spec's api_key works in the query string for reading.
    assert client.get(f"/open311/v2/services.json?api_key={token}").status_code == 200


def test_api_key_keeps_the_sources_signature_check(client, loaded):
    secret = "bi-mat-ung-dung-cong-dan"
    with loaded.db.session() as s:
        _, token = auth.create_source(s, "app-ky", hmac_secret=secret)
    from urllib.parse import urlencode

    body = urlencode(_form(api_key=token)).encode()
    form = "application/x-www-form-urlencoded"
    unsigned = client.post("/open311/v2/requests.json", data=body, content_type=form)
    assert unsigned.status_code == 401 and SIGNATURE_HEADER in unsigned.get_json()["detail"]
    signed = client.post("/open311/v2/requests.json", data=body, content_type=form,
                         headers={SIGNATURE_HEADER: sign(secret, body)})
    assert signed.status_code == 201, signed.get_json()
    assert len(_events(loaded)) == 1


def test_unknown_request_is_404(client, source):
    _, token = source
    resp = _get(client, token, "1022-khong-co")
    assert resp.status_code == 404 and resp.mimetype == PROBLEM


# ------------------------------------------------------------------------------ listing


def test_list_filters(client, loaded, source, people):
    _, token = source
    env = _post(client, token).get_json()[0]["service_request_id"]
    traffic = _post(client, token, service_code="traffic").get_json()[0]["service_request_id"]
    loaded.pipeline.drain()
    nnmt = people["nnmt"][1]
    [task] = tasks_of(client, nnmt, status="open")
    complete(client, nnmt, task["id"], {"answer": "Đã xử lý"})

    def listed(**params):
        resp = client.get("/open311/v2/requests.json", query_string=params,
                          headers=bearer(token))
        assert resp.status_code == 200, resp.get_json()
        return [r["service_request_id"] for r in resp.get_json()]

    assert listed() == [traffic, env]  # newest first
    assert listed(service_code="traffic") == [traffic]
    assert listed(service_code="traffic,environment") == [traffic, env]
    assert listed(status="closed") == [env]
    assert listed(status="open") == [traffic]
    assert listed(status="open,closed") == [traffic, env]
    assert listed(service_request_id=f"{env},nope,{traffic}") == [env, traffic]
    # With ids, the other filters are ignored (the spec).
    assert listed(service_request_id=env, status="open") == [env]
    today = org.today()  # the province's date, as the API reads dates
    assert listed(start_date=str(today - timedelta(days=1))) == [traffic, env]
    assert listed(start_date=str(today + timedelta(days=2))) == []
    assert listed(end_date=str(today - timedelta(days=2))) == []
    assert listed(start_date=str(today - timedelta(days=1)), end_date=str(today)) == [traffic, env]

    for params, field in (({"start_date": "2026-01-01", "end_date": "2026-06-01"}, "end_date"),
                          ({"start_date": "2026-06-01", "end_date": "2026-01-01"}, "end_date"),
                          ({"start_date": "hôm qua"}, "start_date"),
                          ({"status": "pending"}, "status"),
                          ({"service_code": "potholes"}, "service_code")):
        resp = client.get("/open311/v2/requests.json", query_string=params,
                          headers=bearer(token))
        assert resp.status_code == 400 and resp.mimetype == PROBLEM, params
        assert resp.get_json()["errors"][0]["field"] == field


def test_the_call_centre_reads_its_own_cloudevents_tickets(client, loaded, source):
    _, token = source
    send(client, token, ticket("1022-0777"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 1
    [req] = _get(client, token, "1022-0777").get_json()
    assert (req["status"], req["agency_responsible"]) == ("open", NNMT_NAME)
    assert req["requested_datetime"] == "2026-11-20T08:30:00+07:00"


def test_a_source_reads_only_the_requests_it_filed(client, loaded, source):
    _, token = source
    with loaded.db.session() as s:
        _, app_token = auth.create_source(s, "ung-dung-cong-dan")
    mine = _post(client, app_token).get_json()[0]["service_request_id"]
    send(client, token, ticket("1022-0778"))
    loaded.pipeline.drain()
    # The app's key ships inside the app: it must not open the call centre's tickets.
    assert _get(client, app_token, "1022-0778").status_code == 404
    assert _get(client, token, mine).status_code == 404
    listed = client.get("/open311/v2/requests.json", headers=bearer(app_token)).get_json()
    assert [r["service_request_id"] for r in listed] == [mine]
    by_ids = client.get(f"/open311/v2/requests.json?service_request_id={mine},1022-0778",
                        headers=bearer(app_token)).get_json()
    assert [r["service_request_id"] for r in by_ids] == [mine]
