"""Scenario drafts: start, edit, check, publish, discard; retiring by hand; version history."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from engine.app import create_app
from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.processes.models import ProcessInstance
from engine.rules.format import parse_rules
from engine.scenarios import drafts
from engine.scenarios.models import ScenarioDraft, ScenarioVersion
from engine.tasks.models import Task
from engine.violations.models import Violation
from tests.conftest import SCENARIOS
from tests.spine_helpers import auth, dossier, draw_task, send

KEY = "tra-ho-so-im-lang"
BPMN_NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
           "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
           "dc": "http://www.omg.org/spec/DD/20100524/DC"}
NEW = {"key": KEY, "name": {"vi": "Trả hồ sơ không nêu lý do", "en": "Dossier returned silently"},
       "owner": "trung-tam-phvhcc", "severity": "high",
       "description": {"vi": "Hồ sơ bị trả lại mà không có lý do.", "en": "No reason given."}}
RULES = """\
# Quy tắc phát hiện / detection rules
rules:
  - key: returned-silently
    name: {vi: Trả hồ sơ không lý do, en: Returned without a reason}
    when:
      event: dossier.returned
      where:
        reason: {empty: true}
    then:
      open: violation
      title: {vi: "Hồ sơ {event.dossier_id} bị trả", en: "Dossier {event.dossier_id} returned"}
      subject: "{event.dossier_id}"
      data: {dossier_id: "{event.dossier_id}"}
"""


@pytest.fixture
def client(ioc):
    return create_app(services=ioc).test_client()


@pytest.fixture
def insp(people):
    return auth(people["inspector"][1])


def _put(client, headers, draft_id: int, name: str, text: str | bytes, **extra_headers):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.put(f"/api/v1/scenarios/drafts/{draft_id}/files/{name}", data=data,
                      headers={**headers, **extra_headers}, content_type="text/plain")


def _start_new(client, headers) -> dict:
    resp = client.post("/api/v1/scenarios/drafts", json=NEW, headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _publish_ready(client, headers, task_name: str = "Xem xét / Review") -> dict:
    """A new draft with rules and a user task, published as version 1; returns the version."""
    draft = _start_new(client, headers)
    assert _put(client, headers, draft["id"], "rules.yaml", RULES).status_code == 200
    bpmn = draw_task(draft["files"]["process.bpmn"], task_name)
    assert _put(client, headers, draft["id"], "process.bpmn", bpmn).status_code == 200
    resp = client.post(f"/api/v1/scenarios/drafts/{draft['id']}/publish", headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _returned(client, source, dossier_id: str):
    resp = send(client, source[1], dossier("dossier.returned", dossier_id, reason=""))
    assert resp.status_code == 202, resp.get_json()


def _matches(ioc, version_id: int) -> list[str]:
    with ioc.db.read() as s:
        return sorted(s.scalars(select(Violation.subject).where(
            Violation.scenario_version_id == version_id)))


def _actions(ioc, key: str) -> list[str]:
    with ioc.db.read() as s:
        return list(s.scalars(select(AuditRecord.action).where(
            AuditRecord.subject_id.like(f"{key}@%")).order_by(AuditRecord.seq)))


# -- a new scenario --------------------------------------------------------------------------


def test_a_new_draft_starts_from_a_template_bpmn_js_can_render(ioc, client, insp):
    draft = _start_new(client, insp)
    assert (draft["key"], draft["base_version"], draft["revision"]) == (KEY, None, 1)
    assert draft["file_names"] == ["process.bpmn", "rules.yaml", "scenario.yaml"]

    manifest = draft["files"]["scenario.yaml"]
    assert manifest.startswith("#") and "vi: Trả hồ sơ không nêu lý do" in manifest
    assert yaml.safe_load(manifest) == {
        "key": KEY, "version": 1, "name": NEW["name"], "owner": "trung-tam-phvhcc",
        "severity": "high", "description": NEW["description"]}
    assert parse_rules(draft["files"]["rules.yaml"], "rules.yaml", {}).rules == ()

    root = etree.fromstring(draft["files"]["process.bpmn"].encode())
    shipped = etree.parse(str(Path(SCENARIOS) / "hot-topic" / "process.bpmn")).getroot()
    assert root.nsmap == shipped.nsmap
    [participant] = root.findall("bpmn:collaboration/bpmn:participant", BPMN_NS)
    assert participant.get("name") == "Trả hồ sơ không nêu lý do / Dossier returned silently"
    [process] = root.findall("bpmn:process", BPMN_NS)
    assert participant.get("processRef") == process.get("id") == "process_tra_ho_so_im_lang"
    assert process.get("isExecutable") == "true"
    [lane] = process.findall("bpmn:laneSet/bpmn:lane", BPMN_NS)
    assert lane.get("name") == "trung-tam-phvhcc"
    [start] = process.findall("bpmn:startEvent", BPMN_NS)
    assert [r.text for r in lane.findall("bpmn:flowNodeRef", BPMN_NS)] == [start.get("id")]
    [plane] = root.findall("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", BPMN_NS)
    assert plane.get("bpmnElement") == root.find("bpmn:collaboration", BPMN_NS).get("id")
    shapes = {s.get("bpmnElement"): s for s in plane.findall("bpmndi:BPMNShape", BPMN_NS)}
    assert set(shapes) == {participant.get("id"), lane.get("id"), start.get("id")}
    for shape in shapes.values():
        bounds = shape.find("dc:Bounds", BPMN_NS)
        assert float(bounds.get("width")) > 0 and float(bounds.get("height")) > 0

    # The manifest and the empty rules are fine; the lone start event waits to be connected.
    problems = client.get(f"/api/v1/scenarios/drafts/{draft['id']}/problems", headers=insp)
    lines = draft["files"]["process.bpmn"].splitlines()
    for problem in problems.get_json()["problems"]:
        assert (problem["file"], problem["path"]) == ("process.bpmn", "start"), problem
        assert 'id="start"' in lines[problem["line"] - 1]
    assert _actions(ioc, KEY) == ["scenario.draft.created"]


def test_starting_a_draft_checks_every_field(ioc, client, insp, people):
    def start(**changes):
        body = {**NEW, **changes}
        return client.post("/api/v1/scenarios/drafts", json=body, headers=insp)

    for changes, field in [({"key": "Tra Ho So"}, "key"), ({"key": 17}, "key"),
                           ({"owner": "so-khong-co"}, "owner"), ({"severity": "urgent"},
                                                                 "severity"),
                           ({"name": {"vi": " ", "en": "x"}}, "name.vi"),
                           ({"name": {"vi": "x"}}, "name.en"), ({"name": "x"}, "name"),
                           ({"description": "x"}, "description")]:
        resp = start(**changes)
        assert resp.status_code == 422, (changes, resp.get_json())
        assert resp.mimetype == "application/problem+json"
        [error] = resp.get_json()["errors"]
        assert error["field"] == field, (changes, error)
        assert " / " in error["message"]  # Vietnamese first, then English
    assert client.post("/api/v1/scenarios/drafts", data="not json", headers=insp,
                       content_type="application/json").status_code == 400
    assert client.post("/api/v1/scenarios/drafts", json=NEW,
                       headers=auth(people["phvhcc"][1])).status_code == 403
    assert client.get("/api/v1/scenarios/drafts",
                      headers=auth(people["phvhcc"][1])).status_code == 403

    assert start().status_code == 201
    again = start()
    assert again.status_code == 409 and again.get_json()["errors"][0]["field"] == "key"
    with ioc.db.read() as s:
        assert [d.key for d in drafts.list_drafts(s)] == [KEY]
    assert _actions(ioc, KEY) == ["scenario.draft.created"]


def test_a_key_with_versions_is_started_from_a_version(loaded, client, insp):
    resp = client.post("/api/v1/scenarios/drafts", json={**NEW, "key": "hot-topic"},
                       headers=insp)
    assert resp.status_code == 409
    assert "start a draft from" in resp.get_json()["detail"]
    missing = client.post("/api/v1/scenarios/drafts",
                          json={"from": {"key": "hot-topic", "version": 9}}, headers=insp)
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["field"] == "from"


# -- publishing --------------------------------------------------------------------------------


def test_an_edited_draft_publishes_and_its_rules_match_events(ioc, client, insp, source):
    version = _publish_ready(client, insp)
    assert (version["key"], version["version"], version["status"]) == (KEY, 1, "published")
    assert version["loaded_by"] == "user:inspector"
    assert client.get("/api/v1/scenarios/drafts", headers=insp).get_json() == []

    _returned(client, source, "H01.1")
    ioc.run_pending()
    assert _matches(ioc, version["id"]) == ["H01.1"]
    with ioc.db.read() as s:
        [task] = s.scalars(select(Task))
        assert (task.name, task.department_key) == ("Xem xét / Review", "trung-tam-phvhcc")
        assert audit.verify(s).ok
    assert _actions(ioc, KEY) == ["scenario.draft.created", "scenario.draft.saved",
                                  "scenario.draft.saved", "scenario.published",
                                  "scenario.draft.published"]


def test_a_new_version_retires_the_old_one_and_running_instances_stay(ioc, client, insp,
                                                                       source):
    v1 = _publish_ready(client, insp, "Xem xét (v1)")
    _returned(client, source, "H01.1")
    ioc.run_pending()

    resp = client.post("/api/v1/scenarios/drafts", json={"from": {"key": KEY, "version": 1}},
                       headers=insp)
    assert resp.status_code == 201, resp.get_json()
    draft = resp.get_json()
    assert draft["base_version"] == 1
    manifest = draft["files"]["scenario.yaml"]
    assert "version: 2\n" in manifest and manifest.startswith("# Tệp khai báo kịch bản")
    with ioc.db.read() as s:
        old_files = s.get(ScenarioVersion, v1["id"]).files
    assert manifest == old_files["scenario.yaml"].replace("version: 1\n", "version: 2\n")
    second = client.post("/api/v1/scenarios/drafts", json={"from": {"key": KEY, "version": 1}},
                         headers=insp)
    assert second.status_code == 409

    bpmn = draft["files"]["process.bpmn"].replace("Xem xét (v1)", "Xem xét (v2)")
    assert _put(client, insp, draft["id"], "process.bpmn", bpmn).get_json()["changed"] == [
        "process.bpmn"]
    resp = client.post(f"/api/v1/scenarios/drafts/{draft['id']}/publish", headers=insp)
    assert resp.status_code == 201, resp.get_json()
    v2 = resp.get_json()
    assert v2["version"] == 2

    _returned(client, source, "H01.2")
    ioc.run_pending()
    assert _matches(ioc, v1["id"]) == ["H01.1"]  # the retired version matched nothing new
    assert _matches(ioc, v2["id"]) == ["H01.2"]
    with ioc.db.read() as s:
        assert s.get(ScenarioVersion, v1["id"]).status == "retired"
        instances = {i.subject: i for i in s.scalars(select(ProcessInstance))}
        assert instances["H01.1"].scenario_version_id == v1["id"]
        assert instances["H01.1"].status == "running"
        assert instances["H01.2"].scenario_version_id == v2["id"]
        names = {t.instance_id: t.name for t in s.scalars(select(Task))}
        assert names[instances["H01.1"].id] == "Xem xét (v1)"
        assert names[instances["H01.2"].id] == "Xem xét (v2)"

    history = client.get(f"/api/v1/scenarios/{KEY}/versions", headers=insp).get_json()
    assert [e["at"] for e in history] == sorted((e["at"] for e in history), reverse=True)
    versions = [(e["version"], e["status"]) for e in history if e["kind"] == "version"]
    assert versions == [(2, "published"), (1, "retired")]
    actions = [(e["action"], e["subject"]) for e in history if e["kind"] == "audit"]
    assert actions[:5] == [("scenario.draft.published", f"{KEY}@draft"),
                           ("scenario.published", f"{KEY}@2"),
                           ("scenario.retired", f"{KEY}@1"),
                           ("scenario.draft.saved", f"{KEY}@draft"),
                           ("scenario.draft.created", f"{KEY}@draft")]
    published = next(e for e in history if e.get("action") == "scenario.draft.published")
    assert published["details"] == {"version": 2, "base_version": 1}
    assert published["actor"] == "user:inspector"
    one = client.get(f"/api/v1/scenarios/{KEY}/versions/2", headers=insp).get_json()
    assert one["files"]["process.bpmn"] == bpmn and one["status"] == "published"
    assert client.get(f"/api/v1/scenarios/{KEY}/versions/3", headers=insp).status_code == 404
    assert client.get("/api/v1/scenarios/nothing/versions", headers=insp).status_code == 404
    with ioc.db.read() as s:
        assert audit.verify(s).ok


def test_an_invalid_draft_is_refused_listing_every_problem(ioc, client, insp):
    draft = _start_new(client, insp)
    rules = RULES.replace("reason: {empty: true}", "reasons: {empty: true}")
    bpmn = draw_task(draft["files"]["process.bpmn"], "Xem xét").replace(
        'name="trung-tam-phvhcc"', 'name="phong-khong-co"')
    manifest = draft["files"]["scenario.yaml"].replace("severity: high", "severity: urgent")
    for name, text in [("rules.yaml", rules), ("process.bpmn", bpmn),
                       ("scenario.yaml", manifest)]:
        assert _put(client, insp, draft["id"], name, text).status_code == 200

    resp = client.post(f"/api/v1/scenarios/drafts/{draft['id']}/publish", headers=insp)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    errors = resp.get_json()["errors"]
    texts = {"rules.yaml": rules, "process.bpmn": bpmn, "scenario.yaml": manifest}
    assert {e["file"] for e in errors} == set(texts)
    needles = {"rules.yaml": "reasons", "process.bpmn": "phong-khong-co",
               "scenario.yaml": "severity: urgent"}
    for error in errors:
        line = texts[error["file"]].splitlines()[error["line"] - 1]
        assert needles[error["file"]] in line, error
    listed = client.get(f"/api/v1/scenarios/drafts/{draft['id']}/problems", headers=insp)
    assert listed.get_json()["problems"] == errors
    with ioc.db.read() as s:
        assert s.scalars(select(ScenarioVersion)).all() == []
        assert drafts.get(s, draft["id"]) is not None
    assert "scenario.draft.published" not in _actions(ioc, KEY)


def test_a_version_lower_than_a_loaded_one_is_a_problem_on_its_line(ioc, client, insp):
    _publish_ready(client, insp)
    draft = client.post("/api/v1/scenarios/drafts", json={"from": {"key": KEY, "version": 1}},
                        headers=insp).get_json()
    manifest = draft["files"]["scenario.yaml"].replace("version: 2", "version: 1")
    assert _put(client, insp, draft["id"], "scenario.yaml", manifest).status_code == 200
    resp = client.post(f"/api/v1/scenarios/drafts/{draft['id']}/publish", headers=insp)
    assert resp.status_code == 422
    [error] = resp.get_json()["errors"]
    assert error["path"] == "version" and "version 2 or more" in error["message"]
    assert manifest.splitlines()[error["line"] - 1] == "version: 1"


# -- editing -----------------------------------------------------------------------------------


def test_file_names_and_contents_are_checked(ioc, client, insp):
    draft_id = _start_new(client, insp)["id"]
    with ioc.db.session() as s:
        draft = drafts.get(s, draft_id)
        for name in ("../x.yaml", "a/b.yaml", "a\\b.yaml", "..x.yaml", "x.txt", "", "x.py"):
            with pytest.raises(drafts.DraftError) as err:
                drafts.save_files(s, draft, {name: "a: 1\n"}, actor="user:inspector")
            assert err.value.field == "name", name
        with pytest.raises(drafts.DraftError) as err:
            drafts.save_files(s, draft, {"notes.md": "x" * 1_000_001}, actor="user:inspector")
        assert err.value.field == "notes.md"
        with pytest.raises(drafts.DraftError) as err:
            drafts.delete_file(s, draft, "scenario.yaml", actor="user:inspector")
        assert err.value.field == "name"

    assert _put(client, insp, draft_id, "x.txt", "hello").status_code == 422
    assert _put(client, insp, draft_id, "notes.md", b"\xff\xfe bad").status_code == 400
    text = client.get(f"/api/v1/scenarios/drafts/{draft_id}", headers=insp).get_json()["files"]
    renamed = text["scenario.yaml"].replace(f"key: {KEY}", "key: another-key")
    resp = _put(client, insp, draft_id, "scenario.yaml", renamed)
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["field"] == "key"
    # Nothing above changed the draft or wrote to the audit chain.
    after = client.get(f"/api/v1/scenarios/drafts/{draft_id}", headers=insp).get_json()
    assert after["files"] == text and after["revision"] == 1
    assert _actions(ioc, KEY) == ["scenario.draft.created"]

    same = _put(client, insp, draft_id, "rules.yaml", text["rules.yaml"])
    assert same.status_code == 200 and same.get_json()["changed"] == []
    added = _put(client, insp, draft_id, "notes.md", "# Ghi chú\n")
    assert added.get_json()["changed"] == ["notes.md"] and added.get_json()["revision"] == 2
    gone = client.delete(f"/api/v1/scenarios/drafts/{draft_id}/files/notes.md", headers=insp)
    assert gone.status_code == 200 and "notes.md" not in gone.get_json()["files"]
    assert _actions(ioc, KEY) == ["scenario.draft.created", "scenario.draft.saved",
                                  "scenario.draft.file_deleted"]


def test_two_saves_of_one_revision_do_not_lose_either(ioc, client, insp):
    draft_id = _start_new(client, insp)["id"]
    with ioc.db.read() as s:
        stale = drafts.get(s, draft_id)  # what a second editor loaded, now out of its session
    with ioc.db.session() as s:
        drafts.save_files(s, drafts.get(s, draft_id), {"notes.md": "first\n"},
                          actor="user:inspector")
    with pytest.raises(StaleDataError):
        with ioc.db.session() as s:
            s.add(stale)
            drafts.save_files(s, stale, {"notes.md": "second\n"}, actor="user:admin")
    with ioc.db.read() as s:
        kept = s.get(ScenarioDraft, draft_id)
        assert (kept.files["notes.md"], kept.revision, kept.updated_by) == (
            "first\n", 2, "user:inspector")

    old = _put(client, insp, draft_id, "notes.md", "third\n", **{"If-Match": '"1"'})
    assert old.status_code == 412 and old.get_json()["revision"] == 2
    ok = _put(client, insp, draft_id, "notes.md", "third\n", **{"If-Match": '"2"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"3"'
    assert _put(client, insp, draft_id, "notes.md", "x", **{"If-Match": "abc"}).status_code == 400
    assert _actions(ioc, KEY).count("scenario.draft.saved") == 2


def test_a_discarded_draft_is_gone_and_audited(ioc, client, insp):
    draft_id = _start_new(client, insp)["id"]
    assert client.delete(f"/api/v1/scenarios/drafts/{draft_id}", headers=insp).status_code == 204
    assert client.get(f"/api/v1/scenarios/drafts/{draft_id}", headers=insp).status_code == 404
    assert client.delete(f"/api/v1/scenarios/drafts/{draft_id}", headers=insp).status_code == 404
    history = client.get(f"/api/v1/scenarios/{KEY}/versions", headers=insp).get_json()
    assert [e["action"] for e in history] == ["scenario.draft.discarded",
                                              "scenario.draft.created"]
    assert _start_new(client, insp)["key"] == KEY  # the key is free again


# -- retiring ----------------------------------------------------------------------------------


def test_retiring_by_hand_stops_the_rules_matching(ioc, client, insp, source, people):
    version = _publish_ready(client, insp)
    _returned(client, source, "H01.1")
    ioc.run_pending()
    assert _matches(ioc, version["id"]) == ["H01.1"]

    url = f"/api/v1/scenarios/{KEY}/versions/1/retire"
    assert client.post(url, headers=auth(people["phvhcc"][1])).status_code == 403
    resp = client.post(url, headers=insp)
    assert resp.status_code == 200 and resp.get_json()["status"] == "retired"
    # Nothing else changed since the pipeline last looked: it must still notice the retirement.
    _returned(client, source, "H01.2")
    ioc.run_pending()
    assert _matches(ioc, version["id"]) == ["H01.1"]
    assert f"{KEY}@1" not in ioc.pipeline.live

    again = client.post(url, headers=insp)
    assert again.status_code == 409 and again.get_json()["errors"][0]["field"] == "status"
    assert client.post(f"/api/v1/scenarios/{KEY}/versions/7/retire",
                       headers=insp).status_code == 404
    history = client.get(f"/api/v1/scenarios/{KEY}/versions", headers=insp).get_json()
    assert history[0]["action"] == "scenario.retired"
    assert history[0]["details"] == {"by_hand": True}
    with ioc.db.read() as s:
        assert audit.verify(s).ok


def test_an_imported_folder_becomes_a_draft_of_its_key(loaded):
    from engine.scenarios import service

    files = service.read_folder(Path(SCENARIOS) / "hot-topic")
    files["scenario.yaml"] = files["scenario.yaml"].replace("version: 1", "version: 2")
    with loaded.db.session() as s:
        with pytest.raises(drafts.DraftError) as err:
            drafts.import_files(s, {**files, "../evil.yaml": "x"}, actor="user:inspector")
        assert err.value.field == "name"
        draft = drafts.import_files(s, files, actor="user:inspector")
        assert (draft.key, draft.base_version.version) == ("hot-topic", 1)
        assert drafts.problems(s, draft, loaded.vocabulary) == []
        with pytest.raises(drafts.DraftConflict):
            drafts.import_files(s, files, actor="user:inspector")
    assert _actions(loaded, "hot-topic")[-1] == "scenario.draft.created"
