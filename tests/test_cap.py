"""POST /integrations/cap/alerts: OASIS CAP 1.2 messages become emergency.alert events.

The four example messages of the standard (Appendix A) and a composed storm warning of the
national hydro-meteorological forecasting centre are accepted; what breaks the schema, is not XML,
is too large or declares entities is refused whole, named by place and line, and counted.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.app import create_app
from engine.events.models import Event, Source
from integrations import cap

DATA = Path(__file__).parent / "data" / "cap"
URL = "/integrations/cap/alerts"


@pytest.fixture
def client(ioc):
    return create_app(services=ioc).test_client()


def _xml(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _post(client, token: str, body: bytes, ctype: str = "application/cap+xml"):
    return client.post(URL, data=body, headers={"Authorization": f"Bearer {token}",
                                                "Content-Type": ctype})


def _events(ioc) -> list[Event]:
    with ioc.db.read() as s:
        return s.query(Event).order_by(Event.id).all()


def _source(ioc, source_id: int) -> Source:
    with ioc.db.read() as s:
        return s.get(Source, source_id)


def _data(ioc) -> list[dict]:
    return [e.data for e in _events(ioc)]


# ------------------------------------------------------------------------- the standard's examples

EXAMPLES = [
    ("homeland-security-advisory.xml", "43b080713727", "hsas@dhs.gov", 1),
    ("severe-thunderstorm-warning.xml", "KSTO1055887203", "KSTO@NWS.NOAA.GOV", 1),
    ("earthquake-report.xml", "TRI13970876.2", "trinet@caltech.edu", 1),
    ("amber-alert.xml", "KAR0-0306112239-SW", "KARO@CLETS.DOJ.CA.GOV", 2),
    ("nchmf-storm-warning.xml", "NCHMF-20251105-1600-BAO09", "tinbao@nchmf.gov.vn", 2),
]


@pytest.mark.parametrize("name, identifier, sender, infos", EXAMPLES)
def test_each_example_gives_one_event_per_info(client, ioc, source, name, identifier, sender,
                                                infos):
    _, token = source
    resp = _post(client, token, _xml(name))
    assert resp.status_code == 202, resp.get_json()
    ids = [f"{identifier}#{n}" for n in range(1, infos + 1)]
    assert resp.get_json()["accepted"] == infos
    assert resp.get_json()["accepted_ids"] == ids
    stored = _events(ioc)
    assert [e.ce_id for e in stored] == ids
    for event in stored:
        assert event.type == "emergency.alert"
        assert event.ce_source == f"/cap/{sender}"
        assert event.subject == identifier
        assert event.data["identifier"] == identifier and event.data["sender"] == sender
        assert event.time is not None


@pytest.mark.parametrize("ctype", ["application/xml", "text/xml",
                                   "application/cap+xml; charset=utf-8"])
def test_every_xml_content_type_is_taken(client, ioc, source, ctype):
    _, token = source
    assert _post(client, token, _xml("earthquake-report.xml"), ctype).status_code == 202


def test_the_homeland_security_advisory_maps_every_field(client, ioc, source):
    _, token = source
    _post(client, token, _xml("homeland-security-advisory.xml"))
    (data,) = _data(ioc)
    assert data == {
        "identifier": "43b080713727", "sender": "hsas@dhs.gov",
        "sent": "2003-04-02T14:39:01-05:00", "status": "Actual", "msg_type": "Alert",
        "event": "Homeland Security Advisory System Update", "category": ["Security"],
        "urgency": "Immediate", "severity": "Severe", "certainty": "Likely",
        "headline": "Homeland Security Sets Code ORANGE",
        "description": "The Department of Homeland Security has elevated the Homeland Security "
                       "Advisory System threat level to ORANGE / High in response to intelligence "
                       "which may indicate a heightened threat of terrorism.",
        "instruction": "A High Condition is declared when there is a high risk of terrorist "
                       "attacks. In addition to the Protective Measures taken in the previous "
                       "Threat Conditions, Federal departments and agencies should consider "
                       "agency-specific Protective Measures in accordance with their existing "
                       "plans.",
        # No <language>: CAP 1.2 says en-US is assumed.
        "language": "en-US",
        "areas": [{"desc": "U.S. nationwide and interests worldwide", "polygons": [],
                   "circles": [], "geocodes": []}],
    }
    (event,) = _events(ioc)
    assert event.time.isoformat().startswith("2003-04-02T19:39:01")  # 14:39:01-05:00 in UTC


def test_the_thunderstorm_warning_keeps_its_polygon_geocodes_and_expiry(client, ioc, source):
    _, token = source
    _post(client, token, _xml("severe-thunderstorm-warning.xml"))
    (data,) = _data(ioc)
    assert (data["event"], data["category"], data["urgency"], data["severity"],
            data["certainty"]) == ("SEVERE THUNDERSTORM", ["Met"], "Immediate", "Severe", "Observed")
    assert data["expires"] == "2003-06-17T16:00:00-07:00"
    assert data["description"].startswith("AT 254 PM PDT")  # surrounding blanks trimmed
    assert data["instruction"] == "TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES."
    (area,) = data["areas"]
    assert area["polygons"] == [[[38.47, -120.14], [38.34, -119.95], [38.52, -119.74],
                                 [38.62, -119.89], [38.47, -120.14]]]
    assert area["circles"] == []
    assert area["geocodes"] == [{"name": "SAME", "value": v} for v in ("006109", "006009", "006003")]


def test_the_earthquake_update_keeps_its_own_identifier_and_circle(client, ioc, source):
    _, token = source
    _post(client, token, _xml("earthquake-report.xml"))
    (data,) = _data(ioc)
    assert data["msg_type"] == "Update" and data["identifier"] == "TRI13970876.2"
    assert (data["urgency"], data["severity"], data["certainty"]) == ("Past", "Minor", "Observed")
    assert "references" not in data  # the vocabulary has no field for it (docs/integrations/cap.md)
    assert "expires" not in data and "instruction" not in data
    (area,) = data["areas"]
    assert area["circles"] == [{"lat": 32.9525, "lon": -115.5527, "radius_km": 0.0}]


def test_the_amber_alert_gives_one_event_per_language(client, ioc, source):
    _, token = source
    _post(client, token, _xml("amber-alert.xml"))
    english, spanish = _data(ioc)
    assert (english["language"], english["event"]) == ("en-US", "Child Abduction")
    assert (spanish["language"], spanish["event"]) == ("es-US", "Abducción de Niño")
    assert spanish["headline"] == "Alerta Amber en el condado de Los Ángeles"
    assert english["category"] == spanish["category"] == ["Rescue"]
    assert spanish["areas"][0]["geocodes"] == [{"name": "SAME", "value": "006037"}]


def test_the_storm_warning_names_the_wards_it_can_resolve(client, ioc, source):
    _, token = source
    _post(client, token, _xml("nchmf-storm-warning.xml"))
    vietnamese, english = _data(ioc)
    assert (vietnamese["language"], vietnamese["event"]) == ("vi-VN", "Bão")
    assert vietnamese["headline"] == "TIN BÃO KHẨN CẤP (Bão số 9)"
    assert vietnamese["expires"] == "2025-11-07T16:00:00+07:00"
    inland, sea = vietnamese["areas"]
    assert inland["polygons"][0][0] == [11.5, 106.35]
    assert inland["geocodes"] == [
        {"name": "province", "value": "79"},
        {"name": "ward", "value": "phuong-thu-dau-mot", "ward": "phuong-thu-dau-mot"},
        {"name": "ward", "value": "phuong-di-an", "ward": "phuong-di-an"},
        # An old district key follows its successor on the day the alert was sent.
        {"name": "ward", "value": "thanh-pho-thuan-an", "ward": "phuong-thuan-an"},
        # Outside the organisation: kept as sent, without a ward.
        {"name": "ward", "value": "phuong-ben-thanh"},
    ]
    assert sea["circles"] == [{"lat": 10.2, "lon": 109.8, "radius_km": 150.0}]
    assert english["event"] == "Typhoon"
    assert english["areas"][0]["geocodes"][0]["ward"] == "phuong-thu-dau-mot"


def test_a_message_sent_again_is_a_duplicate(client, ioc, source):
    source_id, token = source
    assert _post(client, token, _xml("amber-alert.xml")).get_json()["accepted"] == 2
    again = _post(client, token, _xml("amber-alert.xml"))
    assert again.status_code == 202
    body = again.get_json()
    assert (body["accepted"], body["duplicates"]) == (0, 2)
    assert body["duplicate_ids"] == ["KAR0-0306112239-SW#1", "KAR0-0306112239-SW#2"]
    assert len(_events(ioc)) == 2
    src = _source(ioc, source_id)
    assert (src.accepted_count, src.duplicate_count, src.refused_count) == (2, 2, 0)


# ------------------------------------------------------------------------------------- refusals

THUNDER = _xml("severe-thunderstorm-warning.xml")
ENTITY = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>&lol2;</identifier>
</alert>
"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&secret;</identifier></alert>
"""


def _swap(old: bytes, new: bytes, body: bytes = THUNDER) -> bytes:
    assert old in body
    return body.replace(old, new, 1)


REFUSALS = [
    ("urgency-soon", _swap(b"<urgency>Immediate</urgency>", b"<urgency>Soon</urgency>"),
     "alert/info[1]/urgency (line 14)", "'Soon'"),
    ("missing-sent", _swap(b"  <sent>2003-06-17T14:57:00-07:00</sent>\n", b""),
     "alert/status (line 6)", "expected sent"),
    ("sent-without-zone", _swap(b"2003-06-17T14:57:00-07:00</sent>", b"2003-06-17T14:57:00</sent>"),
     "alert/sent (line 6)", "pattern"),
    ("category-unknown", _swap(b"<category>Met</category>", b"<category>Weather</category>"),
     "alert/info[1]/category[1] (line 11)", "'Weather'"),
    ("not-xml", b"this is not XML", "body (line 1)", ""),
    ("truncated", THUNDER[: THUNDER.index(b"<area>")], "body (line", ""),
    ("cap-1.1", _swap(b"cap:1.2", b"cap:1.1"), "alert (line 3)", "CAP 1.2"),
    ("no-namespace", _swap(b' xmlns="urn:oasis:names:tc:emergency:cap:1.2"', b""),
     "alert (line 3)", "no namespace"),
    ("other-root", b'<feed xmlns="http://www.w3.org/2005/Atom"/>', "feed (line 1)", "<alert>"),
    ("entity-expansion", ENTITY, "body (line 2)", "DOCTYPE"),
    ("external-entity", EXTERNAL, "body (line 2)", "DOCTYPE"),
    ("open-polygon", _swap(b"38.62,-119.89 38.47,-120.14</polygon>", b"38.62,-119.89</polygon>"),
     "alert/info[1]/area[1]/polygon[1] (line 29)", "not closed"),
    ("latitude-out-of-range", _swap(b"<polygon>38.47,", b"<polygon>98.47,"),
     "alert/info[1]/area[1]/polygon[1] (line 29)", "pair 1 ('98.47,-120.14')"),
    ("bad-circle", _xml("earthquake-report.xml").replace(b"-115.5527 0<", b"-115.5527 -3<"),
     "alert/info[1]/area[1]/circle[1] (line 43)", "radius"),
    ("no-info", THUNDER[: THUNDER.index(b"  <info>")] + b"</alert>\n", "alert (line 3)",
     "no <info>"),
    # Valid for the schema, refused by the vocabulary: named where it is in the XML all the same.
    ("empty-event", _swap(b"<event>SEVERE THUNDERSTORM</event>", b"<event> </event>"),
     "alert/info[1]/event (line 12)", ""),
]


@pytest.mark.parametrize("body, field, words", [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_a_bad_message_is_refused_naming_where_and_nothing_is_stored(client, ioc, source, body,
                                                                      field, words):
    source_id, token = source
    resp = _post(client, token, body)
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert problem["status"] == 422 and problem["detail"]
    first = problem["errors"][0]
    assert first["field"].startswith(field), problem["errors"]
    assert words in first["message"] + problem["detail"], problem
    assert _events(ioc) == []
    src = _source(ioc, source_id)
    assert (src.refused_count, src.accepted_count) == (1, 0)
    assert src.last_errors[0]["errors"] == problem["errors"]


def test_every_schema_error_is_named(client, ioc, source):
    _, token = source
    body = _xml("amber-alert.xml").replace(b"<urgency>Immediate</urgency>",
                                           b"<urgency>Soon</urgency>")
    resp = _post(client, token, body)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == [
        "alert/info[1]/urgency (line 15)", "alert/info[2]/urgency (line 38)"]
    assert "2 place(s)" in resp.get_json()["detail"]


def test_one_bad_info_refuses_the_whole_message(client, ioc, source):
    _, token = source
    body = _xml("amber-alert.xml").replace(b"<event>Abducci\xc3\xb3n de Ni\xc3\xb1o</event>",
                                           b"<event></event>")
    resp = _post(client, token, body)
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == ["alert/info[2]/event (line 37)"]
    assert _events(ioc) == []


def test_a_message_too_large_is_413_and_counted(client, ioc, source):
    source_id, token = source
    padding = b"<!--" + b"x" * cap.MAX_BYTES + b"-->"
    resp = _post(client, token, THUNDER.replace(b"<alert ", padding + b"<alert ", 1))
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["field"] == "body"
    assert _events(ioc) == []
    assert _source(ioc, source_id).refused_count == 1


def test_a_source_not_allowed_emergency_alerts_is_refused(client, ioc):
    from engine.auth import service as auth

    with ioc.db.session() as s:
        src, token = auth.create_source(s, "hotline-only")
        src.allowed_types = ["hotline.ticket.created"]
    resp = _post(client, token, _xml("amber-alert.xml"))
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == ["type"]  # once, not per <info>
    assert _events(ioc) == []


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", ""])
def test_other_content_types_are_415(client, ioc, source, ctype):
    _, token = source
    resp = _post(client, token, THUNDER, ctype)
    assert resp.status_code == 415
    assert resp.mimetype == "application/problem+json"


def test_a_token_is_required(client, ioc):
    resp = client.post(URL, data=THUNDER, headers={"Content-Type": "application/cap+xml"})
    assert resp.status_code == 401
    assert resp.mimetype == "application/problem+json"
    assert _events(ioc) == []
