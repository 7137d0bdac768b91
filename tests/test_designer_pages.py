"""The designer's pages through the web app: drafts, the editor's saves, files, publishing,
versions, diffs, zip import and export, who may use them."""
from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from sqlalchemy import func, select

from engine.app import create_app
from engine.audit import service as audit
from engine.scenarios import archive, drafts
from engine.scenarios.models import PUBLISHED, RETIRED, ScenarioDraft, ScenarioVersion
from engine.tasks.models import Task
from tests.spine_helpers import draw_task, send, ticket
from tests.test_web import _csrf, _login

KEY = "phan-anh-moi-truong"


@pytest.fixture
def app(loaded):
    return create_app(services=loaded)


@pytest.fixture
def inspector(app, people):
    client = app.test_client()
    assert _login(client, "inspector").status_code == 302
    return client


def _new_draft(client) -> tuple[int, str]:
    page = client.get("/designer/new").get_data(as_text=True)
    resp = client.post("/designer/new", data={
        "csrf_token": _csrf(page), "key": KEY, "name_vi": "Phản ánh ô nhiễm môi trường",
        "name_en": "Pollution reports", "owner": "so-nong-nghiep-moi-truong",
        "severity": "medium"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    draft_id = int(re.search(r"/designer/drafts/(\d+)$", resp.headers["Location"]).group(1))
    return draft_id, _csrf(page)


def _config(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="designer-config">(.*?)</script>',
                    html, re.S).group(1)
    return json.loads(raw)


RULES = """rules:
  - key: pollution
    name: {vi: Phản ánh ô nhiễm, en: Pollution report}
    when:
      event: hotline.ticket.created
      where:
        category: environment
    then:
      open: incident
      title: {vi: "Ô nhiễm tại {event.ward}", en: "Pollution in {event.ward}"}
      subject: "{event.ticket_id}"
      data: {ticket_id: "{event.ticket_id}"}
"""


def _save(client, draft_id: int, csrf: str, xml: str, revision: int):
    return client.post(f"/designer/drafts/{draft_id}/process", json={
        "xml": xml, "revision": revision, "csrf_token": csrf}, headers={"X-CSRFToken": csrf})


def test_only_designers_get_in(app, people):
    client = app.test_client()
    assert client.get("/designer/").status_code == 302  # to the login page
    assert _login(client, "phvhcc").status_code == 302
    assert client.get("/designer/").status_code == 403
    assert client.get("/designer/new").status_code == 403


def test_the_list_shows_scenarios_and_the_bpmn_js_files_are_served(inspector):
    page = inspector.get("/designer/").get_data(as_text=True)
    assert "Thiết kế kịch bản" in page and "hot-topic" in page and "dossier-overdue" in page
    script = inspector.get("/designer/vendor/bpmn-js/bpmn-modeler.production.min.js")
    assert script.status_code == 200 and b"BpmnJS" in script.data
    assert inspector.get("/designer/vendor/bpmn-js/../package.json").status_code == 404
    assert inspector.get("/designer/vendor/left-pad/index.js").status_code == 404


def test_a_new_scenario_form_names_its_bad_fields(inspector):
    page = inspector.get("/designer/new").get_data(as_text=True)
    resp = inspector.post("/designer/new", data={"csrf_token": _csrf(page), "key": "Bad Key",
                                                 "name_vi": "", "name_en": "x",
                                                 "owner": "so-khong-co", "severity": "medium"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "lower-case words joined by" in body and "Name is required" in body
    assert "Not a valid choice" in body


def test_draw_save_check_publish_and_the_rule_goes_live(inspector, loaded, source):
    draft_id, csrf = _new_draft(inspector)
    editor = inspector.get(f"/designer/drafts/{draft_id}").get_data(as_text=True)
    config = _config(editor)
    assert "<bpmn:lane" in config["xml"] and config["camunda"]["prefix"] == "camunda"
    assert config["problems"], "the empty template is not ready to publish"

    # Publishing asks first on its own page; an unfinished draft gets its problems, no button.
    ask = inspector.get(f"/designer/drafts/{draft_id}/publish").get_data(as_text=True)
    assert "Not ready" in ask and 'id="confirm-publish"' not in ask
    # Publishing an unfinished draft is refused and nothing is stored.
    resp = inspector.post(f"/designer/drafts/{draft_id}/publish", data={"csrf_token": csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/drafts/{draft_id}")
    with loaded.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ScenarioVersion)
                        .where(ScenarioVersion.key == KEY)) == 0

    drawn = draw_task(config["xml"], "Kiểm tra hiện trường / Inspect the site")
    saved = _save(inspector, draft_id, csrf, drawn, config["revision"])
    assert saved.status_code == 200, saved.get_json()
    body = saved.get_json()
    assert body["saved"] is True and body["revision"] == config["revision"] + 1
    # The process is fine now; only the missing rule remains.
    assert all(p["file"].endswith("rules.yaml") or "rule" in p["message"]
               for p in body["problems"]), body["problems"]

    # A save from a stale page is refused rather than losing the other save.
    stale = _save(inspector, draft_id, csrf, config["xml"], config["revision"])
    assert stale.status_code == 409 and "reload" in stale.get_json()["error"]

    page = inspector.get(f"/designer/drafts/{draft_id}/files/rules.yaml").get_data(as_text=True)
    resp = inspector.post(f"/designer/drafts/{draft_id}/files/rules.yaml",
                          data={"csrf_token": _csrf(page), "text": RULES})
    assert resp.status_code == 302
    assert inspector.get(f"/designer/drafts/{draft_id}/problems.json").get_json() == {
        "problems": []}

    ask = inspector.get(f"/designer/drafts/{draft_id}/publish").get_data(as_text=True)
    assert 'id="confirm-publish"' in ask and "first version" in ask
    assert "Kiểm tra hiện trường" in ask  # the new task among what changes
    resp = inspector.post(f"/designer/drafts/{draft_id}/publish", data={"csrf_token": csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/scenarios/{KEY}")
    with loaded.db.read() as s:
        version = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == KEY)).one()
        assert (version.version, version.status, version.loaded_by) == (1, PUBLISHED,
                                                                        "inspector")
        assert s.get(ScenarioDraft, draft_id) is None
    history = inspector.get(f"/designer/scenarios/{KEY}").get_data(as_text=True)
    assert "Xuất bản bản nháp" in history and "Tạo bản nháp" in history

    # An event sent to the API now opens the new scenario's task.
    resp = send(inspector.application.test_client(), source[1], ticket("T-9001"))
    assert resp.status_code in (201, 202), resp.get_json()
    loaded.run_pending()
    with loaded.db.read() as s:
        names = [(t.name, t.department_key) for t in s.scalars(select(Task))]
    assert ("Kiểm tra hiện trường / Inspect the site", "so-nong-nghiep-moi-truong") in names


def test_a_file_that_does_not_parse_is_saved_and_its_problem_shown(inspector):
    draft_id, _ = _new_draft(inspector)
    page = inspector.get(f"/designer/drafts/{draft_id}/files/rules.yaml").get_data(as_text=True)
    inspector.post(f"/designer/drafts/{draft_id}/files/rules.yaml",
                   data={"csrf_token": _csrf(page), "text": "rules: [\n"})
    page = inspector.get(f"/designer/drafts/{draft_id}/files/rules.yaml").get_data(as_text=True)
    assert "rules.yaml:" in page and "Lỗi trong tệp này" in page
    resp = inspector.post(f"/designer/drafts/{draft_id}/files/..%2Fx.yaml",
                          data={"csrf_token": _csrf(page), "text": "x: 1"})
    assert resp.status_code in (404, 422)


def test_versions_diff_export_import_and_retire(inspector, loaded):
    page = inspector.get("/designer/").get_data(as_text=True)
    csrf = _csrf(page)
    resp = inspector.post("/designer/scenarios/hot-topic/versions/1/draft",
                          data={"csrf_token": csrf})
    draft_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    with loaded.db.read() as s:
        files = dict(drafts.get(s, draft_id).files)
    files["rules.yaml"] = files["rules.yaml"].replace("count: 20", "count: 30")
    page = inspector.get(f"/designer/drafts/{draft_id}/files/rules.yaml").get_data(as_text=True)
    inspector.post(f"/designer/drafts/{draft_id}/files/rules.yaml",
                   data={"csrf_token": _csrf(page), "text": files["rules.yaml"]})
    diff = inspector.get("/designer/scenarios/hot-topic/diff?a=1&b=draft")
    text = diff.get_data(as_text=True)
    assert diff.status_code == 200 and "keyword-spreading" in text
    assert "when.count" in text and "30" in text
    assert inspector.get("/designer/scenarios/hot-topic/diff?a=1&b=draft").status_code == 200
    assert inspector.get("/designer/scenarios/hot-topic/diff?a=1&b=9").status_code == 404
    # Before publishing, the same change against the version in force, and what happens.
    ask = inspector.get(f"/designer/drafts/{draft_id}/publish").get_data(as_text=True)
    assert "Version 1, in force now, is replaced" in ask and "when.count" in ask

    inspector.post(f"/designer/drafts/{draft_id}/publish", data={"csrf_token": csrf})
    with loaded.db.read() as s:
        statuses = dict(s.execute(select(ScenarioVersion.version, ScenarioVersion.status)
                                  .where(ScenarioVersion.key == "hot-topic")).all())
    assert statuses == {1: RETIRED, 2: PUBLISHED}

    exported = inspector.get("/designer/scenarios/hot-topic/versions/2/export.zip")
    assert exported.headers["Content-Type"] == "application/zip"
    with loaded.db.read() as s:
        v2 = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == "hot-topic",
                                                     ScenarioVersion.version == 2)).one()
        assert exported.data == archive.to_zip("hot-topic", dict(v2.files))
    names = zipfile.ZipFile(io.BytesIO(exported.data)).namelist()
    assert "hot-topic/rules.yaml" in names and "hot-topic/process.bpmn" in names

    page = inspector.get("/designer/scenarios/hot-topic/versions/2").get_data(as_text=True)
    assert "viewer-config" in page and "count: 30" in page

    # The exported folder imported again is a draft of the next version... once raised.
    resp = inspector.post("/designer/import", data={
        "csrf_token": csrf, "archive": (io.BytesIO(exported.data), "hot-topic.zip")},
        content_type="multipart/form-data")
    assert resp.status_code == 302
    with loaded.db.read() as s:
        draft = drafts.for_key(s, "hot-topic")
        assert draft is not None and draft.files["rules.yaml"] == v2.files["rules.yaml"]

    bad = inspector.post("/designer/import", data={
        "csrf_token": csrf, "archive": (io.BytesIO(b"not a zip"), "x.zip")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "x.zip" in bad.get_data(as_text=True)

    resp = inspector.post("/designer/scenarios/hot-topic/versions/2/retire",
                          data={"csrf_token": csrf}, follow_redirects=True)
    assert "Version 2 retired" in resp.get_data(as_text=True)
    with loaded.db.read() as s:
        assert s.scalars(select(ScenarioVersion.status).where(
            ScenarioVersion.key == "hot-topic", ScenarioVersion.version == 2)).one() == RETIRED
        assert audit.verify(s).ok


def test_a_dry_run_shows_matches_tasks_paths_and_creates_nothing(inspector, loaded):
    page = inspector.get("/designer/").get_data(as_text=True)
    resp = inspector.post("/designer/scenarios/hot-topic/versions/1/draft",
                          data={"csrf_token": _csrf(page)})
    draft_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    form = inspector.get(f"/designer/drafts/{draft_id}/dry-run").get_data(as_text=True)
    assert "social.post" in form  # the example names the type the draft listens to
    posts = [{"type": "social.post", "time": f"2026-11-23T09:{i // 2:02d}:{i % 2 * 30:02d}+07:00",
              "data": {"post_id": f"p{i}", "platform": "facebook", "keyword": "ngập lụt",
                       "url": f"https://fb.test/{i}"}} for i in range(20)]
    with loaded.db.read() as s:
        before = s.scalar(select(func.count()).select_from(Task))
    resp = inspector.post(f"/designer/drafts/{draft_id}/dry-run", data={
        "csrf_token": _csrf(form), "stream": "manual", "events": json.dumps(posts),
        "settle_days": "0"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, body
    assert "keyword-spreading" in body and 'data-department="so-khoa-hoc-cong-nghe"' in body
    marks = json.loads(re.search(r'id="viewer-config">(.*?)</script>', body, re.S).group(1))
    assert marks["marks"]["start"] == "dry-run-done"
    assert marks["marks"]["assess_topic"] == "dry-run-waiting"
    with loaded.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Task)) == before

    bad = inspector.post(f"/designer/drafts/{draft_id}/dry-run", data={
        "csrf_token": _csrf(form), "stream": "manual",
        "events": json.dumps([{"type": "social.post", "data": {"post_id": "x"}}])})
    assert bad.status_code == 422 and "keyword" in bad.get_data(as_text=True)


def _upload_diagram(client, draft_id: int, name: str, raw: bytes):
    page = client.get(f"/designer/drafts/{draft_id}").get_data(as_text=True)
    return client.post(f"/designer/drafts/{draft_id}/diagram", data={
        "csrf_token": _csrf(page), "diagram": (io.BytesIO(raw), name)},
        content_type="multipart/form-data", follow_redirects=True)


def test_a_diagram_from_another_modeller_replaces_the_drafts_process(inspector, loaded):
    """A Latin-1 .bpmn with other prefixes (as older tools export): stored as UTF-8 text with
    the designer's prefixes, audited, its checks shown; a file that lies about its encoding,
    is not .bpmn or is too big is refused with its name and line, and nothing changes."""
    draft_id, _ = _new_draft(inspector)
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n'
             '<semantic:definitions xmlns:semantic="http://www.omg.org/spec/BPMN/20100524/MODEL"'
             ' id="d" targetNamespace="t">\n'
             '  <semantic:process id="p" isExecutable="true">\n'
             '    <semantic:startEvent id="s" name="Tiếp nhận"/>\n'
             '  </semantic:process>\n</semantic:definitions>\n')
    raw = latin.replace("Tiếp nhận", "Réception").encode("iso-8859-1")
    html = _upload_diagram(inspector, draft_id, "tu-cong-cu-khac.bpmn", raw).get_data(
        as_text=True)
    assert "The diagram is now tu-cong-cu-khac.bpmn" in html
    with loaded.db.read() as s:
        stored = drafts.get(s, draft_id).files["process.bpmn"]
        record = s.scalars(select(audit.AuditRecord).where(
            audit.AuditRecord.action == "scenario.draft.saved")
            .order_by(audit.AuditRecord.id.desc())).first()
    assert stored.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert '<bpmn:startEvent id="s" name="Réception"/>' in stored
    assert record.details["namespaces"]["process.bpmn"] == [
        "semantic:http://www.omg.org/spec/BPMN/20100524/MODEL → bpmn"]
    assert "has no outgoing sequence flow" in html  # the checks of the new diagram

    lying = ('<?xml version="1.0" encoding="UTF-8"?>\n<definitions>\n'
             '<process id="Réception"/>\n</definitions>\n').encode("iso-8859-1")
    html = _upload_diagram(inspector, draft_id, "sai-ma.bpmn", lying).get_data(as_text=True)
    assert "sai-ma.bpmn:3: không phải văn bản UTF-8 / not UTF-8 text" in html
    html = _upload_diagram(inspector, draft_id, "ghi-chu.txt", b"hello").get_data(as_text=True)
    assert "Only .bpmn or .xml files" in html
    big = b'<?xml version="1.0"?>\n<!--' + b"x" * 1_000_001 + b"-->"
    html = _upload_diagram(inspector, draft_id, "lon.bpmn", big).get_data(as_text=True)
    assert "the file is larger than 1000000 bytes" in html
    with loaded.db.read() as s:
        assert drafts.get(s, draft_id).files["process.bpmn"] == stored
