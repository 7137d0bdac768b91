"""The designer in a real browser (Debian's headless Chromium, driven by Playwright).

1. Every shipped process goes through bpmn-js unchanged: what the editor saves still loads in
   the engine, with the same elements and the same layout.
2. The inspector's journey: log in, build a small scenario from scratch in the editor (draw, side
   panels, rule builder), check it, dry-run it, publish it; then an event sent to the API opens
   a task in the right department. Screenshots of the main screens go to test-artifacts/.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter

import pytest
from sqlalchemy import select

from engine.org import service as org
from engine.scenarios import bpmn_js, drafts, service
from engine.scenarios import diff as scenario_diff
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.tasks.models import Task
from tests.browser import log_in, screenshot
from tests.conftest import SCENARIOS
from tests.scenario_files import imported_draft
from tests.spine_helpers import SINGLE, auth, ticket

SHIPPED = sorted(p.name for p in service.folders(SCENARIOS))


def _editor_xml(tab) -> str:
    tab.wait_for_selector("body[data-editor-ready=true]")
    return tab.evaluate("async () => (await window.iocModeler.saveXML({format: true})).xml")


@pytest.mark.parametrize("key", SHIPPED)
def test_shipped_processes_round_trip_through_bpmn_js(key, server, loaded, people,
                                                     page):
    with loaded.db.session() as s:
        version = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == key)).one()
        draft = drafts.from_version(s, version, actor="test")
        draft_id, files = draft.id, dict(draft.files)
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    saved = bpmn_js.repair(_editor_xml(page))

    process_name = "process.bpmn"
    after = {**files, process_name: saved}
    with loaded.db.read() as s:
        service.check(after, loaded.vocabulary, org.known_keys(s))  # still loads in the engine
    changes = scenario_diff.diff(files, after)
    assert changes["elements"] == [], changes["elements"]
    assert not changes["layout_changed"]
    assert "camunda:formField" in saved or "formField" not in files[process_name]


def _wait_for(predicate, timeout_s: float = 15.0, what: str = "condition"):
    """Poll the engine (served in a thread) until `predicate()` is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


KEY = "phan-anh-o-nhiem"
TASK = "Kiểm tra hiện trường / Inspect the site"


def _click_element(tab, element_id: str, *, band: bool = False) -> None:
    """Click a diagram element as a person would (a lane: on its name band, at its left)."""
    box = tab.locator(f".djs-element[data-element-id='{element_id}']").first.bounding_box()
    x = box["x"] + (12 if band else box["width"] / 2)
    tab.mouse.click(x, box["y"] + box["height"] / 2)


def _selected(tab) -> str:
    return tab.evaluate("() => window.iocModeler.get('selection').get()[0].id")


def _apply_panel(tab) -> None:
    tab.click("#panel form.panel-form button[type=submit]")
    tab.wait_for_function("() => document.getElementById('status').textContent"
                          ".includes('Đã cập nhật')")
    tab.wait_for_selector("#panel form.panel-form")


def test_an_inspector_builds_dry_runs_and_publishes_a_scenario(server, loaded, people, source,
                                                               page):
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/")
    page.click("#new-scenario")
    page.fill("#key", KEY)
    page.fill("#name_vi", "Phản ánh ô nhiễm môi trường")
    page.fill("#name_en", "Pollution reports")
    page.select_option("#owner", "ioc")
    page.select_option("#severity", "high")
    page.click("#new-form button[type=submit]")
    page.wait_for_selector("body[data-editor-ready=true]")
    screenshot(page, "designer-1-new-draft")

    # Draw: start → task (made a user task) → end, with bpmn-js's own context pad and menus.
    _click_element(page, "start")
    page.click(".djs-context-pad .entry[data-action='append.append-task']")
    page.click(".djs-context-pad .entry[data-action='replace']")
    page.click(".djs-popup [data-id='replace-with-user-task']")
    task_id = _selected(page)
    page.click(".djs-context-pad .entry[data-action='append.end-event']")

    # The user task's side panel: its name and one form field.
    _click_element(page, task_id)
    page.wait_for_selector("#panel form.panel-form[data-kind=user_task]")
    page.fill("#panel [name=name]", TASK)
    page.fill("#panel [name='fields-0-id']", "findings")
    page.fill("#panel [name='fields-0-label']", "Kết quả kiểm tra / Findings")
    page.select_option("#panel [name='fields-0-type']", "string")
    page.check("#panel [name='fields-0-required']")
    _apply_panel(page)

    # The lane's side panel: the department that answers, from the organisation.
    lane_id = page.evaluate("() => window.iocModeler.get('elementRegistry')"
                            ".filter(e => e.type === 'bpmn:Lane')[0].id")
    _click_element(page, lane_id, band=True)
    page.wait_for_selector("#panel form.panel-form[data-kind=lane]")
    page.select_option("#panel [name=department]", "so-nong-nghiep-moi-truong")
    _apply_panel(page)
    page.click("#save")
    page.wait_for_function("() => document.getElementById('status').textContent"
                           ".includes('Đã lưu')")

    # The rule: every hotline ticket about the environment.
    page.click("nav.tabs a:has-text('Quy tắc phát hiện')")
    page.click("#new-rule")
    page.select_option("#source", "hotline")
    page.select_option("#event", "hotline.ticket.created")
    page.wait_for_selector("#conditions-0-field option[value=category]", state="attached")
    page.select_option("#conditions-0-field", "category")
    page.select_option("#conditions-0-op", "eq")
    page.fill("#conditions-0-value", "environment")
    page.fill("#key", "pollution-report")
    page.fill("#name_vi", "Phản ánh ô nhiễm")
    page.fill("#name_en", "Pollution report")
    page.select_option("#open", "incident")
    page.fill("#title_vi", "Ô nhiễm tại {event.ward}")
    page.fill("#title_en", "Pollution in {event.ward}")
    page.fill("#subject", "{event.ticket_id}")
    page.fill("#data_rows-0-name", "ticket_id")
    page.fill("#data_rows-0-value", "{event.ticket_id}")
    page.click("#preview")
    assert "hotline.ticket.created" in page.inner_text("#preview-rule")
    screenshot(page, "designer-2-rule-builder")
    page.click("#save")
    page.wait_for_selector("#rule-list")

    # Check: no problem left.
    page.click("nav.tabs a:has-text('Quy trình')")
    page.wait_for_selector("body[data-editor-ready=true]")
    page.click("#check")
    page.wait_for_function("() => !document.getElementById('no-problems').hidden")
    assert page.inner_text("#problem-count") == "0"
    screenshot(page, "designer-3-process-editor")

    # Dry run on a hand-written ticket: the task would go to the environment department.
    page.click("nav.tabs a:has-text('Chạy thử')")
    page.check("input[name=stream][value=manual]")
    page.fill("#events", json.dumps([{"type": "hotline.ticket.created",
                                      "time": "2026-11-23T09:00:00+07:00",
                                      "data": ticket("T-1")["data"]}], ensure_ascii=False))
    page.click("#run")
    page.wait_for_selector("#dry-run-result")
    page.wait_for_selector("body[data-viewer-ready=true]")
    # (On a loaded machine the result's rows could be read before they were there.)
    page.wait_for_selector("#tasks td[data-department=so-nong-nghiep-moi-truong]")
    assert page.locator("#tasks td[data-department=so-nong-nghiep-moi-truong]").count() == 1
    assert "pollution-report" in page.inner_text("#matches")
    assert page.locator(f".djs-element.dry-run-waiting[data-element-id='{task_id}']").count()
    screenshot(page, "designer-4-dry-run")
    with loaded.db.read() as s:
        assert not s.scalars(select(Task).where(Task.name == TASK)).first()  # nothing real

    # Publish.
    page.click("nav.tabs a:has-text('Quy trình')")
    page.wait_for_selector("body[data-editor-ready=true]")
    page.click("#publish")  # a page says what publishing changes, then asks
    page.wait_for_selector("#confirm-publish")
    assert "first version" in page.inner_text("#publish-summary")
    screenshot(page, "designer-5-confirm-publish")
    page.click("#confirm-publish")
    page.wait_for_url(f"{server}/designer/scenarios/{KEY}")
    assert "Published version 1" in page.inner_text("main")
    screenshot(page, "designer-6-versions")
    with loaded.db.read() as s:
        version = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == KEY)).one()
        assert (version.status, version.loaded_by) == (PUBLISHED, "inspector")

    # An event sent to the API opens the task in the right department.
    request = urllib.request.Request(
        f"{server}/api/v1/events", data=json.dumps(ticket("T-42")).encode(), method="POST",
        headers={**auth(source[1]), "Content-Type": SINGLE})
    with urllib.request.urlopen(request) as resp:
        assert resp.status in (201, 202)

    def opened():
        with loaded.db.read() as s:
            return s.scalars(select(Task).where(Task.name == TASK)).first()
    task = _wait_for(opened, what="the new scenario's task")
    assert task.department_key == "so-nong-nghiep-moi-truong"
    assert task.form["fields"][0]["id"] == "findings"

    page.context.clear_cookies()
    log_in(page, server, "nnmt")
    page.goto(f"{server}/inbox")
    assert TASK in page.inner_text("main")
    screenshot(page, "designer-6-inbox-of-the-department")


ACTIVITI = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:bpmn2="http://www.omg.org/spec/BPMN/20100524/MODEL" '
            'xmlns:camunda="http://activiti.org/bpmn" '
            'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
            'xmlns:omgdc="http://www.omg.org/spec/DD/20100524/DC" '
            'xmlns:omgdi="http://www.omg.org/spec/DD/20100524/DI" id="d" targetNamespace="t">\n'
            '  <process id="p" isExecutable="true">\n'
            '    <bpmn2:startEvent id="s" camunda:initiator="me"/>\n'
            '    <sequenceFlow id="f" sourceRef="s" targetRef="e"/>\n'
            '    <endEvent id="e"/>\n  </process>\n'
            '  <bpmndi:BPMNDiagram id="dg"><bpmndi:BPMNPlane id="pl" bpmnElement="p">\n'
            '    <bpmndi:BPMNShape id="s_di" bpmnElement="s"><omgdc:Bounds x="100" y="100" '
            'width="36" height="36"/></bpmndi:BPMNShape>\n'
            '    <bpmndi:BPMNShape id="e_di" bpmnElement="e"><omgdc:Bounds x="200" y="100" '
            'width="36" height="36"/></bpmndi:BPMNShape>\n'
            '    <bpmndi:BPMNEdge id="f_di" bpmnElement="f"><omgdi:waypoint x="136" y="118"/>'
            '<omgdi:waypoint x="200" y="118"/></bpmndi:BPMNEdge>\n'
            '  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>\n</definitions>\n')


@pytest.mark.parametrize("source", ["activiti-under-camunda", "A.1.0.bpmn", "C.9.2.bpmn"])
def test_files_of_other_modellers_import_and_save_in_bpmn_js(source, server, loaded, people,
                                                            page):
    """A prefix the designer uses bound to another namespace, BPMN under other prefixes: once
    imported (namespaces normalised), bpmn-js saves the file, and every element is still
    there (issue 22, item 2: these failed with "no namespace uri given for prefix <ns0>")."""
    from pathlib import Path

    from lxml import etree

    bpmn = ACTIVITI if source.startswith("activiti") else \
        (Path(__file__).parent / "corpus" / "miwg" / source).read_text(encoding="utf-8")
    draft_id, _ = imported_draft(loaded.db, "nhap-ngoai", bpmn)
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-ready=true]")
    # What the designer's panels write: a Camunda attribute on an element, then a save.
    saved = page.evaluate("""async () => {
        const modeler = window.iocModeler;
        const element = modeler.get('elementRegistry').filter(e => e.type !== 'label'
            && e.businessObject.$instanceOf('bpmn:FlowNode'))[0];
        modeler.get('modeling').updateProperties(element, {'camunda:asyncBefore': true});
        return (await modeler.saveXML({format: true})).xml;
    }""")
    assert 'camunda:asyncBefore="true"' in saved and "ns0" not in saved

    def ids(text: str) -> set[str]:
        return {el.get("id") for el in etree.fromstring(text.encode()).iter()
                if isinstance(el.tag, str) and el.get("id")
                and etree.QName(el).namespace == "http://www.omg.org/spec/BPMN/20100524/MODEL"}
    assert ids(saved) == ids(bpmn)


def test_what_the_editor_cannot_keep_is_told_and_asked_before_saving(server, loaded, people,
                                                                    page):
    """A file whose diagram has an edge the editor cannot draw (no bpmnElement): the editor says
    at once which ids it would drop, and a save asks first; declined, nothing is saved."""
    extra = ACTIVITI.replace('  </bpmndi:BPMNPlane>',
                             '    <bpmndi:BPMNEdge id="loose_di"><omgdi:waypoint x="1" y="1"/>'
                             '<omgdi:waypoint x="9" y="9"/></bpmndi:BPMNEdge>\n'
                             '  </bpmndi:BPMNPlane>')
    draft_id, stored = imported_draft(loaded.db, "giu-lai", extra)
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-ready=true]")
    assert page.get_attribute("body", "data-dropped") == "loose_di"
    assert "loose_di" in page.inner_text("#status")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#save")
    page.locator("#status", has_text="Not saved").wait_for()
    assert asked and "loose_di" in asked[0] and "Go on?" in asked[0]
    with loaded.db.read() as s:
        assert drafts.get(s, draft_id).files["process.bpmn"] == stored  # nothing saved
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#save")
    page.locator("#status", has_text="Đã lưu").wait_for()
    with loaded.db.read() as s:
        assert "loose_di" not in drafts.get(s, draft_id).files["process.bpmn"]


def _content(text: str) -> Counter:
    """What a file holds, element by element, as the editor counts it: an element with an id by
    its id, a diagram element by what it draws, any other by its kind inside the nearest
    element with an id; with each key's owner."""
    from lxml import etree

    counts, owners = Counter(), {}

    def walk(el, owner: str) -> None:
        if not isinstance(el.tag, str):
            return
        name, ident = etree.QName(el).localname, el.get("id")
        key = f"#{ident}" if ident else f"{name}[{el.get('bpmnElement')}]" \
            if el.get("bpmnElement") else f"{owner}>{name}"
        counts[key] += 1
        owners[key] = owner
        for child in el:
            walk(child, ident or owner)
    walk(etree.fromstring(text.encode()), "")
    return counts, owners


def _lost(stored: str, saved: str) -> set[str]:
    """Everything of the stored file the saved one lacks, outside lost elements with ids."""
    before, owners = _content(stored)
    lost = before - _content(saved)[0]
    lost_ids = {key[1:] for key in lost if key.startswith("#")}

    def inside(key: str) -> bool:
        owner = owners.get(key)
        while owner:
            if owner in lost_ids:
                return True
            owner = owners.get(f"#{owner}")
        return False
    return {key[1:] if key.startswith("#") else
            f"{key.split('>')[1]} in {key.split('>')[0] or 'the file'}" if ">" in key else key
            for key in lost if not inside(key)}


# Files of other tools that bpmn-js cannot keep whole (shapes of other plane elements, labels,
# Trisotech's outMessageRef, OMNITRACKER's descriptions), and three it keeps whole.
KEPT_IN_PART = ["miwg/B.1.0.bpmn", "miwg/C.8.1.bpmn", "tools/aeneis-5.7.89.2400/B.1.0-export.bpmn",
                "tools/bonita-bpm-7.2.3/C.2.0-roundtrip.bpmn",
                "tools/genmymodel-0.47/B.1.0-roundtrip.bpmn",
                "tools/omnitracker-bpmn-12.3/C.1.0-export.bpmn",
                "tools/open-bpmn-1.2.8-2/C.7.0-roundtrip.bpmn",
                "tools/visual-paradigm-11.1/A.4.0-roundtrip.bpmn"]
KEPT_WHOLE = ["tools/sap-signavio-process-manager-19.9.0/A.2.1-roundtrip.bpmn",
              "tools/w4-bpmn-composer-v.9.4/C.1.0-export.bpmn",
              "tools/bpmn.io-camunda-modeler-18.6.1/C.4.0-roundtrip.bpmn"]


def test_the_editor_names_everything_a_save_would_drop(server, loaded, people, page):
    """Issue 22, item 3, on other tools' files: what the editor says it cannot keep is exactly
    what its save drops (ids, and pieces without ids: labels, conditions, extensions), so
    nothing is lost silently and nothing is cried wolf about."""
    from pathlib import Path

    log_in(page, server, "inspector")
    for i, model in enumerate(KEPT_IN_PART + KEPT_WHOLE):
        text = (Path(__file__).parent / "corpus" / model).read_text(encoding="utf-8")
        draft_id, stored = imported_draft(loaded.db, f"nhap-cong-cu-{i}", text)
        page.goto(f"{server}/designer/drafts/{draft_id}")
        saved = _editor_xml(page)
        reported = set((page.get_attribute("body", "data-dropped") or "").split(" | ")) - {""}
        assert reported == _lost(stored, saved), model
        assert bool(reported) == (model in KEPT_IN_PART), model
        if reported:
            assert "they will be lost on saving" in page.inner_text("#status"), model


def test_a_diagram_the_editor_cannot_open_stays_as_imported(server, loaded, people, page):
    """Modelio's plane drawn for the definitions: bpmn-js cannot open it; the editor says so,
    saving is off, and the stored file is untouched."""
    from pathlib import Path

    text = (Path(__file__).parent / "corpus" / "tools" / "modelio-3.5" /
            "C.2.0-roundtrip.bpmn").read_text(encoding="utf-8")
    draft_id, stored = imported_draft(loaded.db, "nhap-modelio", text)
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-failed=true]")
    assert "The editor cannot open this diagram; the file stays as imported" in \
        page.inner_text("#status")
    assert page.is_disabled("#save") and page.is_disabled("#check")
    with loaded.db.read() as s:
        assert drafts.get(s, draft_id).files["process.bpmn"] == stored


def test_an_inspector_replaces_the_diagram_with_another_tools_file(server, loaded, people, page):
    """The editor's "Thay sơ đồ…": a Trisotech export is chosen, confirmed, and the editor
    reopens on it, saying what it cannot keep and listing the checks with their lines."""
    from pathlib import Path

    draft_id, _ = imported_draft(loaded.db, "thay-so-do", ACTIVITI)
    log_in(page, server, "inspector")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-ready=true]")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    model = Path(__file__).parent / "corpus" / "tools" / "trisotech-workflow-modeler-12.6.3" / \
        "C.7.0-roundtrip.bpmn"
    with page.expect_navigation():
        page.set_input_files("#diagram-file", str(model))
    page.wait_for_selector("body[data-editor-ready=true]")
    assert asked and "C.7.0-roundtrip.bpmn" in asked[0]
    assert "The diagram is now C.7.0-roundtrip.bpmn" in page.inner_text("body")
    assert page.get_attribute("body", "data-dropped") == "_985753e3-a4ce-486b-908a-509d382259ed"
    in_diagram = [text for text in page.locator("#problem-list li").all_inner_texts()
                  if text.startswith("process.bpmn")]
    assert in_diagram and all(re.match(r"process\.bpmn:\d+ · ", text) for text in in_diagram)
    screenshot(page, "designer-replaced-diagram")
