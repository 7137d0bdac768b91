"""Public warnings (issue 19): a commander drafts a CAP 1.2 warning from a playbook run and
approves it; only then is it on the public feed, valid against the OASIS schema and readable by
our own CAP intake; updates and cancellations reference it; every step is audited."""
from __future__ import annotations

from lxml import etree
from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.notify.models import Notification
from integrations import cap
from tests import test_playbooks as playbook_tests
from tests.spine_helpers import auth
from tests.test_playbooks import RUNS, WARDS

client, commander = playbook_tests.client, playbook_tests.commander  # the same fixtures

ATOM = "{http://www.w3.org/2005/Atom}"
WARNING = {"event": "Bão số 9", "category": "Met", "urgency": "Immediate", "severity": "Severe",
           "certainty": "Likely",
           "headline_vi": "Bão số 9: sơ tán dân vùng trũng thấp Thủ Dầu Một, Dĩ An",
           "headline_en": "Typhoon 9: evacuate low-lying parts of Thu Dau Mot and Di An",
           "instruction_vi": "Di chuyển đến điểm sơ tán gần nhất; không đi qua vùng ngập sâu.",
           "instruction_en": "Go to the nearest shelter; do not cross deep water.",
           "expires_hours": 12}


def _run(client, commander) -> int:
    answer = client.post(RUNS, json={"level": 3, "wards": WARDS[:2]}, headers=auth(commander[1]))
    return answer.get_json()["instance_id"]


def _feed(client) -> etree._Element:
    answer = client.get("/public/warnings.atom")
    assert answer.status_code == 200 and answer.mimetype == "application/atom+xml"
    return etree.fromstring(answer.data)


def test_a_warning_is_public_only_once_a_commander_approves_it(client, loaded, commander):
    run = _run(client, commander)
    drafted = client.post(f"/api/v1/instances/{run}/warnings", json=WARNING,
                          headers=auth(commander[1]))
    assert drafted.status_code == 201, drafted.get_json()
    warning = drafted.get_json()
    assert warning["status"] == "draft" and warning["wards"] == WARDS[:2]  # the run's area
    assert _feed(client).findall(f"{ATOM}entry") == []  # nothing public yet
    published = client.post(f"/api/v1/warnings/{warning['id']}/publish",
                            headers=auth(commander[1]))
    assert published.status_code == 200
    identifier = published.get_json()["identifier"]
    [entry] = _feed(client).findall(f"{ATOM}entry")
    link = entry.find(f"{ATOM}link").get("href")
    assert link.endswith(f"/public/warnings/{identifier}.xml")
    alert = client.get(link.split("localhost", 1)[1])
    assert alert.mimetype == "application/cap+xml"
    # The OASIS schema takes it, and our own CAP intake reads it back: one event per language.
    root = cap.read(alert.data)
    events, _ = cap.to_events(root)
    assert [e["data"]["language"] for e in events] == ["vi-VN", "en-US"]
    assert events[0]["data"]["headline"] == WARNING["headline_vi"]
    assert {g["value"] for g in events[0]["data"]["areas"][0]["geocodes"]} == set(WARDS[:2])
    assert "Phường Thủ Dầu Một" in events[0]["data"]["areas"][0]["desc"]
    again = client.post(f"/api/v1/warnings/{warning['id']}/publish", headers=auth(commander[1]))
    assert again.status_code == 409
    with loaded.db.read() as s:
        actions = [r.action for r in s.scalars(select(AuditRecord).where(
            AuditRecord.subject_type == "warning").order_by(AuditRecord.seq))]
        hooks = s.scalars(select(Notification).where(Notification.kind == "warning.published"))
        assert actions == ["warning.drafted", "warning.published"]
        assert list(hooks) == []  # no webhook subscriber here: nothing queued, nothing lost


def test_an_update_and_a_cancel_reference_the_alert_they_change(client, loaded, commander):
    run = _run(client, commander)
    first = client.post(f"/api/v1/instances/{run}/warnings", json=WARNING,
                        headers=auth(commander[1])).get_json()
    early = client.post(f"/api/v1/instances/{run}/warnings",
                        json={**WARNING, "msg_type": "Cancel", "references_id": first["id"]},
                        headers=auth(commander[1]))
    assert early.status_code == 422  # the alert is not published yet: nothing to cancel
    assert early.get_json()["errors"][0]["field"] == "references_id"
    client.post(f"/api/v1/warnings/{first['id']}/publish", headers=auth(commander[1]))
    cancel = client.post(f"/api/v1/instances/{run}/warnings",
                         json={**WARNING, "msg_type": "Cancel", "references_id": first["id"],
                               "headline_vi": "Hủy cảnh báo bão số 9",
                               "headline_en": "Typhoon 9 warning cancelled"},
                         headers=auth(commander[1])).get_json()
    client.post(f"/api/v1/warnings/{cancel['id']}/publish", headers=auth(commander[1]))
    entries = _feed(client).findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text.split(":")[0] for e in entries] == ["Cancel", "Alert"]
    xml = client.get(entries[0].find(f"{ATOM}link").get("href").split("localhost", 1)[1]).data
    root = cap.read(xml)
    [references] = root.findall(f"{{{cap.NS}}}references")
    sender, identifier, sent = references.text.split(",")
    assert identifier == client.get("/api/v1/warnings", headers=auth(commander[1])).get_json(
        )[1]["identifier"]


def test_a_bad_warning_names_its_fields_and_only_commanders_write(client, loaded, commander,
                                                                 people):
    run = _run(client, commander)
    bad = client.post(f"/api/v1/instances/{run}/warnings",
                      json={**WARNING, "severity": "Huge", "headline_en": "",
                            "wards": ["thanh-pho-di-an"], "expires_hours": 0},
                      headers=auth(commander[1]))
    assert bad.status_code == 422
    assert [e["field"] for e in bad.get_json()["errors"]] == [
        "severity", "headline_en", "expires_hours", "wards"]
    typed = client.post(f"/api/v1/instances/{run}/warnings", json={**WARNING, "wards": "x",
                                                                   "colour": "red"},
                        headers=auth(commander[1]))
    assert typed.status_code == 400
    assert {e["field"] for e in typed.get_json()["errors"]} == {"wards", "colour"}
    assert client.post(f"/api/v1/instances/{run}/warnings", json=WARNING,
                       headers=auth(people["thudaumot"][1])).status_code == 403
    # Only a playbook's run can warn the public.
    assert client.post("/api/v1/instances/999/warnings", json=WARNING,
                       headers=auth(commander[1])).status_code == 404
    assert client.get("/public/warnings/nothing.xml").status_code == 404


def test_webhook_subscribers_of_the_ioc_hear_of_a_published_warning(client, loaded, commander):
    from engine.notify import service as notify

    with loaded.db.session() as s:
        hook = notify.add_webhook(s, "https://app.example.vn/hooks/ioc", "s" * 20,
                                  department_key="ioc").id
    run = _run(client, commander)
    warning = client.post(f"/api/v1/instances/{run}/warnings", json=WARNING,
                          headers=auth(commander[1])).get_json()
    with loaded.db.read() as s:  # a draft tells nobody
        assert s.scalars(select(Notification).where(Notification.webhook_id == hook)).all() == []
    client.post(f"/api/v1/warnings/{warning['id']}/publish", headers=auth(commander[1]))
    with loaded.db.read() as s:
        [queued] = s.scalars(select(Notification).where(Notification.webhook_id == hook)).all()
        assert queued.kind == "warning.published" and WARNING["headline_en"] in queued.text
