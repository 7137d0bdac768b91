"""The rule builder's pages: a draft's rules listed, written with the form, edited as YAML."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.app import create_app
from engine.scenarios import drafts, service
from tests.browser import log_in, screenshot
from tests.conftest import SCENARIOS

AIR = Path(SCENARIOS) / "air-quality"
DOSSIERS = Path(SCENARIOS) / "dossier-violations"


@pytest.fixture
def app(ioc):
    return create_app(services=ioc)


@pytest.fixture
def draft_id(ioc):
    """A draft of the air-quality scenario, its files as shipped (comments included)."""
    with ioc.db.session() as s:
        return drafts.import_files(s, service.read_folder(AIR), actor="test").id


def _files(ioc, draft_id) -> dict[str, str]:
    with ioc.db.read() as s:
        return dict(drafts.get(s, draft_id).files)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def _login(client, username: str) -> None:
    html = client.get("/login").get_data(as_text=True)
    resp = client.post("/login", data={"username": username, "password": "password-123",
                                       "csrf_token": _csrf(html)})
    assert resp.status_code == 302


@pytest.fixture
def client(app, people):
    client = app.test_client()
    _login(client, "inspector")
    return client


def _page(client, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


SILENCE_30M = {"key": "pump-silent", "name_vi": "Trạm bơm im lặng", "name_en": "Pump silent",
               "event": "environment.reading", "kind": "silence", "group_by": "station_id",
               "window": "30", "window_unit": "m", "open": "incident",
               "title_vi": "Trạm {event.station_id} im lặng", "subject": "{event.station_id}",
               "data_rows-0-name": "station_id", "data_rows-0-value": "{event.station_id}"}


def test_only_designers_see_the_rules(app, people, draft_id):
    anonymous = app.test_client()
    assert anonymous.get(f"/designer/drafts/{draft_id}/rules").status_code == 302
    clerk = app.test_client()
    _login(clerk, "phvhcc")
    assert clerk.get(f"/designer/drafts/{draft_id}/rules").status_code == 403
    assert clerk.get("/designer/vocabulary.json").status_code == 403


def test_unknown_draft_or_rule_is_404(client, draft_id):
    assert client.get("/designer/drafts/999999/rules").status_code == 404
    assert client.get("/designer/drafts/999999/rules/new").status_code == 404
    assert client.get(f"/designer/drafts/{draft_id}/rules/no-such/edit").status_code == 404
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/no-such/delete",
                       data={"csrf_token": _csrf(html)})
    assert resp.status_code == 404


def test_the_list_shows_each_rule_in_words(client, draft_id):
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    assert "PM2.5 vượt ngưỡng kéo dài" in html and "Sustained PM2.5 exceedance" in html
    assert "Không có environment.reading từ cùng station_id trong 1h" in html
    assert f"/designer/drafts/{draft_id}/rules/station-silent/edit" in html
    assert f"/designer/drafts/{draft_id}/rules/new" in html
    assert "# One noisy reading is not a breach" in html  # the YAML editor holds the file


ANY_RULE = """
  - key: returned-or-completed
    when:
      any:
        - {event: dossier.returned, as: returned}
        - {event: dossier.completed, as: completed}
    then: {}
"""


def test_a_rule_the_form_cannot_express_sends_to_the_yaml_editor(ioc, client):
    files = service.read_folder(DOSSIERS)
    files["rules.yaml"] += ANY_RULE
    with ioc.db.session() as s:
        other = drafts.import_files(s, files, actor="test").id
    html = _page(client, f"/designer/drafts/{other}/rules")
    assert "The rule builder cannot express one of several patterns (any:)" in html
    assert "/rules/returned-or-completed/edit" not in html
    resp = client.get(f"/designer/drafts/{other}/rules/returned-or-completed/edit")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/rules#yaml")
    listed = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Trình tạo quy tắc chưa hỗ trợ một trong nhiều mẫu sự kiện" in listed


@pytest.fixture
def dossier_draft(ioc):
    """A draft of the dossier-violations scenario: its first rule correlates two events."""
    with ioc.db.session() as s:
        return drafts.import_files(s, service.read_folder(DOSSIERS), actor="test").id


def _fields(html: str) -> dict:
    """The values a browser would post for the page's form (no button pressed)."""
    form = html[html.index('<form method="post" id="rule-form"'):]
    form = form[:form.index("</form>")]
    out = {m.group(1): m.group(2) for m in re.finditer(
        r'<input[^>]*?name="([^"]+)"[^>]*?value="([^"]*)"', form)
        if m.group(1) not in ("preview", "save")}
    for m in re.finditer(r'<select[^>]*?name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', m.group(2))
        out[m.group(1)] = chosen.group(1) if chosen else ""
    return {k: v.replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")
            for k, v in out.items()}


def test_a_correlated_rule_opens_in_the_form_and_saves_its_repeat(ioc, client, dossier_draft):
    before = _files(ioc, dossier_draft)["rules.yaml"]
    shipped = yaml.safe_load(before)["rules"][0]
    listed = _page(client, f"/designer/drafts/{dossier_draft}/rules")
    assert "/rules/repeated-supplement-request/edit" in listed
    url = f"/designer/drafts/{dossier_draft}/rules/repeated-supplement-request/edit"
    html = _page(client, url)
    assert '<details id="correlated" open>' in html
    assert re.search(r'id="alias"[^>]*value="first"', html)
    assert re.search(r'id="patterns-0-same"[^>]*value="dossier_id = first.dossier_id"', html)
    assert '<option selected value="consume">Mỗi sự kiện chỉ dùng một lần (mặc định) / Events ' \
           'are used once (default)</option>' in html
    assert "Mỗi sự kiện sau lại là vi phạm / Each further event matches again" in html
    fields = _fields(html)
    # Saved as it is: the rule comes back the same, without `repeat:`.
    assert client.post(url, data={**fields, "save": "Lưu / Save"}).status_code == 302
    assert yaml.safe_load(_files(ioc, dossier_draft)["rules.yaml"])["rules"][0] == shipped
    # Each further request a violation again: `repeat: every`, the rest unchanged.
    assert client.post(url, data={**fields, "repeat": "every", "save": "Lưu / Save"}
                       ).status_code == 302
    text = _files(ioc, dossier_draft)["rules.yaml"]
    assert yaml.safe_load(text)["rules"][0] == {
        **shipped, "when": {**shipped["when"], "repeat": "every"}}
    assert text.endswith(before[before.index("  - key: returned-without-reason"):])
    html = _page(client, url)
    assert '<option selected value="every">' in html
    listed = _page(client, f"/designer/drafts/{dossier_draft}/rules")
    assert "(mỗi sự kiện sau lại khớp)" in listed and "(each further event matches again)" in listed


def test_a_bad_repeat_period_is_shown_on_its_field(ioc, client, dossier_draft):
    before = _files(ioc, dossier_draft)
    url = f"/designer/drafts/{dossier_draft}/rules/repeated-supplement-request/edit"
    fields = _fields(_page(client, url))
    resp = client.post(url, data={**fields, "repeat": "once_per", "once_per": "",
                                  "save": "Lưu / Save"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'id="once_per"[^>]*>\s*<span class="error">Cần khoảng thời gian', html)
    assert _files(ioc, dossier_draft) == before
    resp = client.post(url, data={**fields, "repeat": "once_per", "once_per": "30",
                                  "once_per_unit": "d", "preview": "Xem trước / Preview"})
    assert resp.status_code == 200
    assert "repeat: {once_per: 30d}" in resp.get_data(as_text=True)
    assert _files(ioc, dossier_draft) == before


def test_a_new_rule_is_saved_into_the_draft(ioc, client, draft_id):
    before = _files(ioc, draft_id)["rules.yaml"]
    html = _page(client, f"/designer/drafts/{draft_id}/rules/new")
    assert 'id="conditions-0-field"' in html and 'id="event"' in html
    assert "Loại sự kiện / Event type" in html
    resp = client.post(f"/designer/drafts/{draft_id}/rules/new",
                       data={**SILENCE_30M, "csrf_token": _csrf(html), "save": "Lưu / Save"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(
        f"/designer/drafts/{draft_id}/rules")
    after = _files(ioc, draft_id)["rules.yaml"]
    assert after.startswith(before)  # the other rules and the comments, as they were
    rule = yaml.safe_load(after)["rules"][2]
    assert rule == {"key": "pump-silent",
                    "name": {"vi": "Trạm bơm im lặng", "en": "Pump silent"},
                    "when": {"event": "environment.reading", "key": "station_id",
                             "silence": "30m"},
                    "then": {"open": "incident", "title": {"vi": "Trạm {event.station_id} im lặng"},
                             "subject": "{event.station_id}",
                             "data": {"station_id": "{event.station_id}"}}}
    assert "Đã lưu quy tắc" in client.get(resp.headers["Location"]).get_data(as_text=True)


def test_preview_shows_the_yaml_and_saves_nothing(ioc, client, draft_id):
    before = _files(ioc, draft_id)
    html = _page(client, f"/designer/drafts/{draft_id}/rules/new")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/new",
                       data={**SILENCE_30M, "csrf_token": _csrf(html),
                             "preview": "Xem trước / Preview"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "  - key: pump-silent" in html and "silence: 30m" in html
    assert _files(ioc, draft_id) == before


def test_bad_input_is_shown_on_its_field_and_nothing_is_saved(ioc, client, draft_id):
    before = _files(ioc, draft_id)
    html = _page(client, f"/designer/drafts/{draft_id}/rules/new")
    data = {**SILENCE_30M, "window": "ba mươi", "conditions-0-field": "valeu",
            "conditions-0-value": "5", "title_vi": "Trạm {event.statoin_id}",
            "csrf_token": _csrf(html), "save": "Lưu / Save"}
    resp = client.post(f"/designer/drafts/{draft_id}/rules/new", data=data)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "&#39;ba mươi&#39; không phải là số" in html
    assert "không có trường &#39;valeu&#39;" in html
    assert "The event has no field &#39;statoin_id&#39;" in html
    assert _files(ioc, draft_id) == before


def test_a_key_already_used_is_refused_on_the_key(ioc, client, draft_id):
    before = _files(ioc, draft_id)
    html = _page(client, f"/designer/drafts/{draft_id}/rules/new")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/new",
                       data={**SILENCE_30M, "key": "station-silent", "csrf_token": _csrf(html),
                             "save": "Lưu / Save"})
    assert resp.status_code == 422
    assert "rule key &#39;station-silent&#39; is already used" in resp.get_data(as_text=True)
    assert _files(ioc, draft_id) == before


def test_editing_a_rule_changes_only_that_rule(ioc, client, draft_id):
    before = _files(ioc, draft_id)["rules.yaml"]
    url = f"/designer/drafts/{draft_id}/rules/station-silent/edit"
    html = _page(client, url)
    assert re.search(r'id="window"[^>]*value="1"', html)
    assert re.search(r'<option selected value="h">', html)
    assert re.search(r'<option selected value="silence">', html)
    data = {"key": "station-silent", "name_vi": "Trạm quan trắc mất tín hiệu",
            "name_en": "Monitoring station silent", "event": "environment.reading",
            "kind": "silence", "group_by": "station_id", "window": "2", "window_unit": "h",
            "open": "incident", "severity": "low",
            "title_vi": "Trạm {event.station_id} không gửi số liệu quá 2 giờ",
            "title_en": "Station {event.station_id} has not reported for over two hours",
            "subject": "{event.station_id}",
            "data_rows-0-name": "incident_type", "data_rows-0-value": "station-silent",
            "data_rows-1-name": "station_id", "data_rows-1-value": "{event.station_id}",
            "data_rows-2-name": "ward", "data_rows-2-value": "{event.ward}",
            "csrf_token": _csrf(html), "save": "Lưu / Save"}
    assert client.post(url, data=data).status_code == 302
    after = _files(ioc, draft_id)["rules.yaml"]
    first_rule = before[:before.index("  - key: station-silent")]
    assert after.startswith(first_rule)  # comments of the first rule included
    rules = yaml.safe_load(after)["rules"]
    assert [r["key"] for r in rules] == ["pm25-sustained", "station-silent"]
    assert rules[1]["when"]["silence"] == "2h"
    assert rules[1]["then"]["title"]["vi"].endswith("quá 2 giờ")


def test_deleting_a_rule(ioc, client, draft_id):
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/pm25-sustained/delete",
                       data={"csrf_token": _csrf(html)})
    assert resp.status_code == 302
    text = _files(ioc, draft_id)["rules.yaml"]
    assert [r["key"] for r in yaml.safe_load(text)["rules"]] == ["station-silent"]
    assert text.startswith("# Quy tắc phát hiện")
    # A POST without the CSRF token is refused.
    assert client.post(f"/designer/drafts/{draft_id}/rules/station-silent/delete"
                       ).status_code == 400


def _yaml_form(html: str) -> dict:
    base = re.search(r'id="base" name="base" type="hidden" value="([^"]*)"', html).group(1)
    return {"csrf_token": _csrf(html), "base": base}


def test_the_yaml_editor_saves_a_valid_file(ioc, client, draft_id):
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    text = _files(ioc, draft_id)["rules.yaml"].replace("silence: 1h", "silence: 3h")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/yaml",
                       data={**_yaml_form(html), "text": text})
    assert resp.status_code == 302
    assert _files(ioc, draft_id)["rules.yaml"] == text


def test_the_yaml_editor_refuses_a_file_with_problems_naming_the_line(ioc, client, draft_id):
    before = _files(ioc, draft_id)
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    text = before["rules.yaml"].replace("silence: 1h", "silence: soon")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/yaml",
                       data={**_yaml_form(html), "text": text})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    line = text.splitlines().index("      silence: soon") + 1
    assert f"rules.yaml:{line}" in html and "silence: soon" in html
    assert "chưa được lưu" in html
    assert _files(ioc, draft_id) == before


def test_the_yaml_editor_refuses_unknown_departments(ioc, client, draft_id):
    before = _files(ioc, draft_id)
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    text = before["rules.yaml"] + ("      notify:\n        - to: so-khong-co\n"
                                   "          text: Trạm im lặng\n")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/yaml",
                       data={**_yaml_form(html), "text": text})
    assert resp.status_code == 422
    assert "not a department key" in resp.get_data(as_text=True)
    assert _files(ioc, draft_id) == before


def test_the_yaml_editor_does_not_overwrite_a_newer_file(ioc, client, draft_id):
    html = _page(client, f"/designer/drafts/{draft_id}/rules")
    with ioc.db.session() as s:  # someone else saves meanwhile
        draft = drafts.get(s, draft_id)
        newer = draft.files["rules.yaml"].replace("silence: 1h", "silence: 4h")
        drafts.save_files(s, draft, {"rules.yaml": newer}, actor="other")
    resp = client.post(f"/designer/drafts/{draft_id}/rules/yaml",
                       data={**_yaml_form(html), "text": newer.replace("4h", "5h")})
    assert resp.status_code == 422
    assert "người khác sửa" in resp.get_data(as_text=True)
    assert _files(ioc, draft_id)["rules.yaml"] == newer


def test_the_vocabulary_for_the_page_script(client):
    body = client.get("/designer/vocabulary.json").get_json()
    sources = {s["key"]: s for s in body["sources"]}
    assert sources["public_services"]["name"].startswith("Dịch vụ công")
    received = next(t for t in sources["public_services"]["types"]
                    if t["type"] == "dossier.received")
    assert received["fields"]["due_at"] == "datetime"
    assert received["fields"]["dossier_id"] == "string"
    reading = next(t for t in sources["environment"]["types"]
                   if t["type"] == "environment.reading")
    assert reading["fields"]["aqi"] == "integer"
    assert body["envelope"]["source"]["type"] == "string"
    assert "matches" not in body["ops"]["number"]


def test_the_form_in_a_browser(server, loaded, people, page):
    """The page's script offers the chosen event type's fields, shows the parts of the chosen
    time pattern and adds rows; what the inspector fills is saved."""
    with loaded.db.session() as s:
        draft_id = drafts.import_files(s, service.read_folder(AIR), actor="test").id
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}/rules")
    page.click("#new-rule")
    page.select_option("#source", "environment")
    assert page.locator("#event option[value='dossier.received']").is_hidden()
    page.select_option("#event", "environment.reading")
    page.wait_for_selector("#conditions-0-field option[value=aqi]", state="attached")
    assert page.locator("#severity_by option[value=aqi]").count() == 1
    assert page.locator("#severity_by option[value=station_id]").count() == 0
    page.select_option("#kind", "silence")
    assert page.locator("#count").is_hidden() and page.locator("#window").is_visible()
    page.select_option("#conditions-0-field", "aqi")
    assert page.locator("#conditions-0-op option[value=matches]").is_disabled()
    page.select_option("#conditions-0-op", "gte")
    page.fill("#conditions-0-value", "0")
    page.fill("#key", "station-quiet")
    page.fill("#name_vi", "Trạm im lặng 45 phút")
    page.fill("#group_by", "station_id")
    page.fill("#window", "45")
    page.select_option("#window_unit", "m")
    page.fill("#title_vi", "Trạm {event.station_id} im lặng")
    rows = page.locator("#data_rows tbody tr").count()
    page.click("button.add-row[data-table=data_rows]")
    page.fill(f"#data_rows-{rows}-name", "station_id")
    page.fill(f"#data_rows-{rows}-value", "{event.station_id}")
    page.click("#preview")
    assert "silence: 45m" in page.inner_text("#preview-rule")
    screenshot(page, "rule-builder-preview")
    page.click("#save")
    page.wait_for_url(f"{server}/designer/drafts/{draft_id}/rules")
    assert "Trạm im lặng 45 phút" in page.inner_text("#rule-list")
    screenshot(page, "rule-builder-list")
    rule = yaml.safe_load(_files(loaded, draft_id)["rules.yaml"])["rules"][2]
    assert rule["when"] == {"event": "environment.reading", "where": {"aqi": {"gte": 0}},
                            "key": "station_id", "silence": "45m"}
    assert rule["then"]["data"] == {"station_id": "{event.station_id}"}


def test_correlated_events_in_a_browser(server, loaded, people, page):
    """The page's script offers each further event's own fields, adds further events and shows
    the period of `once_per` only when it is chosen."""
    with loaded.db.session() as s:
        draft_id = drafts.import_files(s, service.read_folder(AIR), actor="test").id
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}/rules/new")
    page.select_option("#event", "dossier.supplement_requested")
    page.click("#correlated summary")
    page.fill("#alias", "first")
    page.fill("#patterns-0-alias", "second")
    page.select_option("#patterns-0-event", "dossier.returned")
    page.wait_for_selector("#patterns-0-conditions-0-field option[value=reason]",
                           state="attached")
    page.fill("#patterns-0-same", "dossier_id = first.dossier_id")
    page.click("button.add-pattern")
    assert page.locator("#patterns-1-alias").input_value() == ""
    assert "3" in page.inner_text("#patterns-1 legend")
    assert page.locator("#once_per").is_hidden()
    page.select_option("#repeat", "once_per")
    assert page.locator("#once_per").is_visible()
    page.fill("#once_per", "30")
    page.select_option("#once_per_unit", "d")
    page.fill("#key", "supplement-then-returned")
    page.click("#preview")
    preview = page.inner_text("#preview-rule")
    assert "repeat: {once_per: 30d}" in preview and "as: second" in preview
    screenshot(page, "rule-builder-correlated")
    page.click("#save")
    page.wait_for_url(f"{server}/designer/drafts/{draft_id}/rules")
    rule = yaml.safe_load(_files(loaded, draft_id)["rules.yaml"])["rules"][2]
    assert rule["when"] == {"all": [{"event": "dossier.supplement_requested", "as": "first"},
                                    {"event": "dossier.returned", "as": "second",
                                     "same": {"dossier_id": "first.dossier_id"}}],
                            "repeat": {"once_per": "30d"}}
