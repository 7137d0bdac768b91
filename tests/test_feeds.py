"""The feed adapters: cameras, social monitoring, Wazuh alerts, health case reports, dossier logs.

Each through its real entry point (the HTTP endpoint with a source token, or `ioc import`), with
refused input naming its field, re-delivery stored once, and a shipped scenario reacting where
there is one (hot topic, overdue dossier).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.app import create_app
from engine.cli import main
from engine.events.models import Event, Source
from engine.violations.models import Violation
from integrations import security
from tests.spine_helpers import auth

DATA = Path(__file__).resolve().parent / "data" / "feeds"


@pytest.fixture
def client(ioc):
    """A test client of the app on the engine without scenarios."""
    return create_app(services=ioc).test_client()


@pytest.fixture
def loaded_client(loaded):
    """A test client of the app on the engine with the shipped scenarios."""
    return create_app(services=loaded).test_client()


def _sample(name: str):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _events(ioc, type_: str | None = None) -> list[Event]:
    with ioc.db.read() as s:
        query = select(Event).order_by(Event.id)
        if type_:
            query = query.where(Event.type == type_)
        return list(s.scalars(query))


def _fields(body: dict) -> set[str]:
    """Every field a 422 answer names, for a single item or a batch."""
    errors = body.get("errors", [])
    return {e["field"] for e in errors if "field" in e} | {
        p["field"] for e in errors for p in e.get("errors", [])}


def _import(ioc, monkeypatch, kind: str, path: Path, source: str = "test-source"):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    out = CliRunner().invoke(main, ["import", kind, str(path), "--source", source])
    body = json.loads(out.output.splitlines()[0]) if out.output.startswith("{") else None
    return out, body


# ---------------------------------------------------------------------------------------- cameras


def test_camera_detections_become_events(client, ioc, source):
    resp = client.post("/integrations/cameras/detections", json=_sample("cameras-detections.json"),
                       headers=auth(source[1]))
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["accepted"] == 2
    first, second = _events(ioc, "camera.detection")
    assert first.ce_id == "det-88121" and first.subject == "CAM-DA-0142"
    assert first.data == {"detection_id": "det-88121", "camera_id": "CAM-DA-0142",
                          "detection_type": "traffic-violation", "confidence": 0.875,
                          "ward": "phuong-di-an", "location": {"lat": 10.9046, "lon": 106.7698},
                          "snapshot_url": "https://vms.example/snap/88121.jpg"}
    assert first.time == datetime.fromisoformat("2026-11-27T01:15:02+00:00")
    # No detection_id from the firmware: one made from camera, moment (UTC) and type.
    assert second.ce_id == "CAM-TDM-0007/2026-11-27T12:40:00+00:00/crowd"
    assert (second.data["people_count"], second.data["confidence"]) == (240, 0.93)


def test_a_refused_detection_names_its_fields(client, ioc, source):
    resp = client.post("/integrations/cameras/detections", headers=auth(source[1]), json={
        "camera_id": "CAM-1", "type": "parking", "confidence": 150,
        "location": {"lat": 95, "lon": 106.7}, "ward": "Quận 1",
        "detected_at": "2026-11-27 08:15:02"})
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert _fields(resp.get_json()) == {"type", "confidence", "location.lat", "ward",
                                        "detected_at"}
    assert _events(ioc) == []
    with ioc.db.read() as s:  # counted for the source, like the engine's own refusals
        assert s.get(Source, source[0]).refused_count == 1


def test_a_batch_keeps_its_good_detections(client, ioc, source):
    good, _ = _sample("cameras-detections.json")
    resp = client.post("/integrations/cameras/detections", headers=auth(source[1]),
                       json=[good, {"camera_id": "CAM-2", "type": "crowd", "confidence": 0.5}])
    assert resp.status_code == 202
    body = resp.get_json()
    assert (body["accepted"], body["refused"]) == (1, 1)
    assert body["errors"] == [{"index": 1, "id": None,
                               "errors": [{"field": "detected_at", "message": "is required"}]}]


def test_a_detection_delivered_again_is_a_duplicate(client, ioc, source):
    _, crowd = _sample("cameras-detections.json")
    assert client.post("/integrations/cameras/detections", json=crowd,
                       headers=auth(source[1])).status_code == 202
    # The same instant written in UTC: the same detection, though the text differs.
    again = dict(crowd, detected_at="2026-11-27T12:40:00Z", type="Crowd")
    resp = client.post("/integrations/cameras/detections", json=again, headers=auth(source[1]))
    assert resp.status_code == 202
    assert (resp.get_json()["accepted"], resp.get_json()["duplicates"]) == (0, 1)
    assert len(_events(ioc)) == 1


def test_the_webhook_needs_a_source_token(client):
    resp = client.post("/integrations/cameras/detections", json=[])
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"


# ----------------------------------------------------------------------------------------- social


def test_one_event_per_matched_keyword(client, ioc, source):
    resp = client.post("/integrations/social/posts", json=_sample("social-page.json"),
                       headers=auth(source[1]))
    assert resp.status_code == 202, resp.get_json()
    events = _events(ioc, "social.post")
    assert [e.ce_id for e in events] == ["p-8801#ngập đường Dĩ An", "p-8801#ĐT743",
                                         "yt-5521#ngập đường Dĩ An"]
    assert events[0].data == {"post_id": "p-8801", "platform": "facebook",
                              "keyword": "ngập đường Dĩ An", "author": "Nguyễn Văn A",
                              "text": "Đường ĐT743 ngập sâu sau mưa lớn, xe chết máy hàng loạt",
                              "url": "https://mxh.example/p-8801", "reach": 1200}
    assert events[2].data["platform"] == "youtube"
    assert events[2].time == datetime.fromisoformat("2026-11-27T14:04:10+00:00")


def test_a_refused_post_names_its_fields(client, ioc, source):
    page = {"posts": [{"id": "p-1", "platform": "myspace", "matched_keywords": [],
                       "reach": -3}]}
    resp = client.post("/integrations/social/posts", json=page, headers=auth(source[1]))
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["errors"][0]["index"] == 0
    assert _fields(body) == {"platform", "published_at", "matched_keywords", "reach"}
    not_a_page = client.post("/integrations/social/posts", json=[{"id": "p-1"}],
                             headers=auth(source[1]))
    assert not_a_page.status_code == 422 and _fields(not_a_page.get_json()) == {"posts"}
    assert _events(ioc) == []


def test_a_page_delivered_again_is_stored_once(client, ioc, source):
    page = _sample("social-page.json")
    client.post("/integrations/social/posts", json=page, headers=auth(source[1]))
    resp = client.post("/integrations/social/posts", json=page, headers=auth(source[1]))
    assert resp.status_code == 202
    assert (resp.get_json()["accepted"], resp.get_json()["duplicates"]) == (0, 3)
    assert len(_events(ioc)) == 3
    empty = client.post("/integrations/social/posts", json={"posts": []}, headers=auth(source[1]))
    assert empty.status_code == 202 and empty.get_json()["accepted"] == 0


def test_twenty_posts_on_one_keyword_open_the_hot_topic_incident(loaded_client, loaded, source):
    start = datetime.fromisoformat("2026-11-27T21:00:00+07:00")
    posts = [{"id": f"p-{i}", "platform": "facebook", "url": f"https://mxh.example/p-{i}",
              "published_at": (start + timedelta(seconds=24 * i)).isoformat(),
              "matched_keywords": ["ngập đường Dĩ An"], "reach": 100 + i} for i in range(20)]
    resp = loaded_client.post("/integrations/social/posts", json={"posts": posts[:19]},
                              headers=auth(source[1]))
    assert resp.get_json()["accepted"] == 19
    loaded.run_pending()
    with loaded.db.read() as s:
        assert list(s.scalars(select(Violation))) == []
    loaded_client.post("/integrations/social/posts", json={"posts": posts},
                       headers=auth(source[1]))  # the next page overlaps: 19 duplicates, 1 new
    loaded.run_pending()
    with loaded.db.read() as s:
        [incident] = s.scalars(select(Violation))
    assert (incident.kind, incident.subject) == ("incident", "ngập đường Dĩ An")


# --------------------------------------------------------------------------------------- security


def test_a_wazuh_alert_becomes_a_security_alert(client, ioc, source):
    resp = client.post("/integrations/security/alerts", json=_sample("wazuh-alert.json"),
                       headers=auth(source[1]))
    assert resp.status_code == 202, resp.get_json()
    [event] = _events(ioc, "security.alert")
    assert event.ce_id == "1732669502.4471203" and event.subject == "mc-web-01"
    assert event.data == {"alert_id": "1732669502.4471203", "rule_id": "5763",
                          "description": "sshd: brute force trying to get access to the "
                                         "system. Authentication failed.",
                          "level": 10, "severity": "high", "category": "intrusion",
                          "host": "mc-web-01", "indicator": "203.0.113.45",
                          "unit": "trung-tam-phvhcc"}
    # Wazuh's "+0700" offset, to the millisecond.
    assert event.time == datetime.fromisoformat("2026-11-27T01:15:02.123+00:00")


@pytest.mark.parametrize("level, expected", [(0, "low"), (6, "low"), (7, "medium"),
                                             (9, "medium"), (10, "high"), (12, "high"),
                                             (13, "critical"), (15, "critical")])
def test_severity_from_the_rule_level(level, expected):
    assert security.severity(level) == expected


@pytest.mark.parametrize("groups, expected", [
    (["ossec", "rootcheck"], "malware"), (["virustotal"], "malware"),
    (["web", "accesslog", "attack"], "intrusion"), (["ids", "suricata"], "intrusion"),
    (["syslog", "sshd", "authentication_failures"], "intrusion"),
    (["apt", "malware"], "targeted-attack"), (["sca"], "policy"), (["policy"], "policy"),
    (["syslog", "pam"], "other"), ([], "other")])
def test_category_from_the_rule_groups(groups, expected):
    assert security.category(groups) == expected


def test_a_hash_is_the_indicator_when_there_is_no_address(client, ioc, source):
    alert = _sample("wazuh-alert.json")
    alert.update(id="1732669600.1", data={"virustotal": {"source": {"sha1": "ab12cd"}}},
                 rule=dict(alert["rule"], level=12, groups=["virustotal"]))
    del alert["agent"]["labels"]
    assert client.post("/integrations/security/alerts", json=[alert],
                       headers=auth(source[1])).status_code == 202
    [event] = _events(ioc)
    assert (event.data["indicator"], event.data["category"]) == ("ab12cd", "malware")
    assert "unit" not in event.data


def test_a_refused_alert_names_its_fields(client, ioc, source):
    alert = _sample("wazuh-alert.json")
    alert["rule"] = {"id": "5763", "description": "x", "level": 16, "groups": "sshd"}
    alert["agent"] = {"id": "014", "labels": {"unit": "so-khong-co"}}
    alert["timestamp"] = "27/11/2026 08:15"
    resp = client.post("/integrations/security/alerts", json=alert, headers=auth(source[1]))
    assert resp.status_code == 422
    assert _fields(resp.get_json()) == {"timestamp", "rule.level", "rule.groups", "agent.name",
                                        "agent.labels.unit"}
    no_rule = client.post("/integrations/security/alerts", headers=auth(source[1]),
                          json={k: v for k, v in _sample("wazuh-alert.json").items()
                                if k != "rule"})
    assert no_rule.status_code == 422 and _fields(no_rule.get_json()) == {"rule"}
    assert _events(ioc) == []


def test_an_alert_sent_again_is_a_duplicate(client, ioc, source):
    alert = _sample("wazuh-alert.json")
    client.post("/integrations/security/alerts", json=alert, headers=auth(source[1]))
    resp = client.post("/integrations/security/alerts", json=alert, headers=auth(source[1]))
    assert (resp.status_code, resp.get_json()["duplicates"]) == (202, 1)
    assert len(_events(ioc)) == 1


# ----------------------------------------------------------------------------------------- health


def test_health_csv_import(ioc, source, monkeypatch):
    out, body = _import(ioc, monkeypatch, "health", DATA / "health-reports.csv")
    assert out.exit_code == 0, out.output
    assert (body["accepted"], body["refused"]) == (3, 0)
    events = _events(ioc, "health.case_report")
    # By key, by Vietnamese name, and by the old district key (followed to its successor).
    assert [e.data["ward"] for e in events] == ["phuong-di-an", "phuong-thu-dau-mot",
                                                "xa-bau-bang"]
    assert events[1].data == {"report_id": "SXH-20261127-TDM", "disease": "sot-xuat-huyet",
                              "ward": "phuong-thu-dau-mot", "report_date": "2026-11-27",
                              "cases": 5}
    assert events[2].data["report_date"] == "2026-11-27" and events[2].data["deaths"] == 1
    assert events[0].time == datetime.fromisoformat("2026-11-26T17:00:00+00:00")

    again, body = _import(ioc, monkeypatch, "health", DATA / "health-reports.csv")
    assert again.exit_code == 0 and (body["accepted"], body["duplicates"]) == (0, 3)
    assert len(_events(ioc)) == 3


def test_health_csv_bad_rows_are_named_and_good_rows_kept(ioc, source, monkeypatch):
    out, body = _import(ioc, monkeypatch, "health", DATA / "health-bad-rows.csv")
    assert out.exit_code == 0, out.output
    assert (body["accepted"], body["refused"]) == (2, 2)
    fields = [p["field"] for r in body["errors"] for p in r["errors"]]
    assert fields == ["row 3: ward", "row 4: report_date", "row 4: cases"]
    assert "Phường Không Có" in body["errors"][0]["errors"][0]["message"]
    assert [e.data["ward"] for e in _events(ioc)] == ["phuong-thuan-an", "xa-bau-bang"]


def test_a_health_file_by_district_is_refused(ioc, source, monkeypatch):
    out, body = _import(ioc, monkeypatch, "health", DATA / "health-by-district.csv")
    assert out.exit_code != 0
    [problem] = body["errors"][0]["errors"]
    assert problem["field"] == "column district"
    assert "ward or commune" in problem["message"]
    assert _events(ioc) == []


def test_health_case_reports_over_http(client, ioc, source):
    reports = [{"report_id": "SXH-1", "disease": "sot-xuat-huyet", "ward": "Xã Dầu Tiếng",
                "report_date": "2026-11-27", "cases": 2},
               {"report_id": "SXH-2", "disease": "sot-xuat-huyet", "district": "huyen-dau-tieng",
                "ward": "xa-dau-tieng", "report_date": "2026-11-27", "cases": 1}]
    resp = client.post("/integrations/health/case-reports", json=reports, headers=auth(source[1]))
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert (body["accepted"], body["refused"]) == (1, 1)
    [problem] = body["errors"][0]["errors"]
    assert problem["field"] == "district" and "ward or commune" in problem["message"]
    again = client.post("/integrations/health/case-reports", json=reports[0],
                        headers=auth(source[1]))
    assert (again.status_code, again.get_json()["duplicates"]) == (202, 1)
    [event] = _events(ioc)
    assert event.data["ward"] == "xa-dau-tieng"


# --------------------------------------------------------------------------------------- dossiers


def test_dossier_log_csv_import(ioc, source, monkeypatch):
    out, body = _import(ioc, monkeypatch, "dossiers", DATA / "dossier-log.csv")
    assert out.exit_code == 0, out.output
    assert (body["accepted"], body["refused"]) == (6, 0)
    events = _events(ioc)
    assert [e.type for e in events] == [
        "dossier.received", "dossier.received", "dossier.step_started", "dossier.step_completed",
        "dossier.supplement_requested", "dossier.completed"]
    assert events[0].ce_id == "H47.99-261116-0101/received/2026-11-16T08:10:00+07:00"
    assert events[0].subject == "H47.99-261116-0101"
    # Only the columns a type has go into data: the note left in `reason` on a received row not.
    assert events[1].data == {"dossier_id": "H47.99-261116-0102", "procedure": "1.004227",
                              "unit": "phuong-di-an", "officer": "le.van.hai",
                              "due_at": "2026-11-19T17:00:00+07:00"}
    assert events[2].data["allotted_hours"] == 8 and events[2].data["step"] == "tham-dinh"
    assert events[4].data["reason"] == "Thiếu bản sao CCCD, giấy ủy quyền"

    again, body = _import(ioc, monkeypatch, "dossiers", DATA / "dossier-log.csv")
    assert again.exit_code == 0 and (body["accepted"], body["duplicates"]) == (0, 6)


def test_dossier_log_bad_rows_are_named(ioc, source, monkeypatch):
    out, body = _import(ioc, monkeypatch, "dossiers", DATA / "dossier-log-bad-rows.csv")
    assert out.exit_code == 0, out.output
    assert (body["accepted"], body["refused"]) == (1, 4)
    problems = {p["field"]: p["message"] for r in body["errors"] for p in r["errors"]}
    assert set(problems) == {"row 3: type", "row 4: allotted_hours", "row 5: due_at",
                             "row 6: unit"}
    assert problems["row 4: allotted_hours"] == "is required for step_started"
    assert "UTC offset" in problems["row 5: due_at"]
    assert "quan-1" in problems["row 6: unit"]  # found by the engine, named as the row's column
    [event] = _events(ioc)
    assert event.data["dossier_id"] == "H47.99-261116-0201"


def test_dossier_log_json_import_and_an_unreadable_file(ioc, source, monkeypatch, tmp_path):
    out, body = _import(ioc, monkeypatch, "dossiers", DATA / "dossier-log.json")
    assert out.exit_code == 0, out.output
    assert body["accepted"] == 2
    returned = _events(ioc, "dossier.returned")[0]
    assert returned.data["reason"].startswith("Hồ sơ không thuộc")
    assert "step" not in returned.data  # an empty value is dropped, not sent as ""

    latin1 = tmp_path / "log.csv"
    latin1.write_bytes("time,type,dossier_id,procedure,unit\n,received,HS-é,1,x\n"
                       .encode("latin-1"))
    bad, body = _import(ioc, monkeypatch, "dossiers", latin1)
    assert bad.exit_code != 0 and body["errors"][0]["errors"][0]["field"] == "file"
    no_header = tmp_path / "log2.csv"
    no_header.write_text("time,type,dossier_id\n", encoding="utf-8")
    bad, body = _import(ioc, monkeypatch, "dossiers", no_header)
    assert {p["field"] for p in body["errors"][0]["errors"]} == {"column procedure",
                                                                  "column unit"}


def test_dossier_log_over_http(client, ioc, source):
    log = _sample("dossier-log.json")
    resp = client.post("/integrations/dossiers/log", json=log, headers=auth(source[1]))
    assert resp.status_code == 202 and resp.get_json()["accepted"] == 2
    again = client.post("/integrations/dossiers/log", json=log + [{"type": "completed"}],
                        headers=auth(source[1]))
    body = again.get_json()
    assert (again.status_code, body["duplicates"], body["refused"]) == (202, 2, 1)
    assert body["errors"][0]["index"] == 2
    assert _fields(body) == {"time", "dossier_id", "procedure", "unit"}
    not_a_list = client.post("/integrations/dossiers/log", json=log[0], headers=auth(source[1]))
    assert not_a_list.status_code == 422
    assert len(_events(ioc)) == 2


def test_an_imported_log_with_a_missed_deadline_opens_the_overdue_violation(
        loaded, source, monkeypatch):
    out, body = _import(loaded, monkeypatch, "dossiers", DATA / "dossier-log.csv")
    assert body["accepted"] == 6, out.output
    loaded.run_pending()
    with loaded.db.read() as s:
        violations = list(s.scalars(select(Violation)))
    # 0101 was received, due 20/11, never completed; 0102 was completed in time, its step too.
    assert [(v.subject, v.rule_key) for v in violations] == [
        ("H47.99-261116-0101", "not-returned-by-deadline")]
