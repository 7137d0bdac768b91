"""Every role's pages in a real browser, at 1366 px and at 390 px (a phone; issue 23): nothing
scrolls sideways, no console error, and the pages read as words: no unit keys, step codes or
Python reprs. Screenshots of each page at both widths go to test-artifacts/."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.auth import service as auth_service
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task
from tests.browser import PHONE, log_in, overflow, screenshot
from tests.spine_helpers import BATCH, auth, dossier, ticket
from tests.test_designer_browser import _wait_for

DESKTOP = {"width": 1366, "height": 900}
# What must not reach a person: unit and ward keys, audit step codes, Python's reprs.
RAW = re.compile(r"\b(?:phuong|xa|so|trung-tam)-[a-z]+(?:-[a-z]+)+\b|\b(?:instance|task|sla|"
                 r"rule|gateway)\.(?!yaml|bpmn)[a-z_]+\b|\{'|\bNone\b")  # (files: sla.yaml)


@pytest.fixture
def cases(server, loaded, people, source):
    """A dossier violation and a hotline ticket, processed by the served app; a head of the
    Service Centre; the ids of a task and its case."""
    with loaded.db.session() as s:
        auth_service.create_user(s, "phvhcc.truong", "department_head", "trung-tam-phvhcc",
                                 password="password-123")
        auth_service.create_user(s, "chihuy", "commander", "ioc", password="password-123")
    request = urllib.request.Request(
        f"{server}/api/v1/events", method="POST",
        headers={**auth(source[1]), "Content-Type": BATCH},
        data=json.dumps([dossier("dossier.supplement_requested", "H11.2"),
                         dossier("dossier.supplement_requested", "H11.2"),
                         ticket("1022-9901", ward="phuong-di-an")]).encode())
    with urllib.request.urlopen(request) as resp:
        assert resp.status in (201, 202)

    def both():
        with loaded.db.read() as s:
            found = s.scalars(select(Task).where(Task.department_key == "trung-tam-phvhcc")
                              ).first()
            return found if found and s.scalar(select(ProcessInstance.id).where(
                ProcessInstance.scenario_key == "hotline-ticket")) else None
    task = _wait_for(both, what="the two cases")
    return task.id, task.instance_id


PAGES = {
    "phvhcc": ["/inbox", "/tasks/{task}"],
    "phvhcc.truong": ["/inbox", "/tasks/{task}", "/violations", "/sla", "/cases",
                      "/instances/{case}", "/cases/{case}"],
    "inspector": ["/violations", "/sla", "/cases", "/instances/{case}", "/process-incidents",
                  "/events", "/designer/", "/designer/new", "/designer/scenarios/hotline-ticket"],
    "chihuy": ["/command", "/command/playbooks/flood-storm/start", "/inbox", "/tasks/{task}",
               "/violations", "/sla", "/cases", "/cases/{case}"],
    "auditor": ["/inbox", "/violations", "/cases", "/cases/{case}", "/audit", "/audit/access",
                "/events"],
    "admin": ["/inbox", "/sources", "/dead-letters", "/admin/users", "/process-incidents"],
}


@pytest.mark.parametrize("username", list(PAGES))
def test_each_roles_pages_fit_a_phone_and_read_as_words(server, cases, page, username):
    task_id, case_id = cases
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    log_in(page, server, username)
    for template in PAGES[username]:
        url = template.format(task=task_id, case=case_id)
        name = f"role-{username}-{url.strip('/').replace('/', '-') or 'home'}"
        for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            response = page.goto(f"{server}{url}")
            assert response.status == 200, (url, response.status)
            if url.startswith("/cases/"):
                page.wait_for_selector("body[data-viewer-ready=true]")
            assert overflow(page) == 0, f"{url} at {width}: {overflow(page)} px too wide"
            screenshot(page, f"{name}-{width}")
        # The page's words, not the evidence it quotes as received (pre, code).
        text = page.evaluate("""() => { const m = document.querySelector('main').cloneNode(true);
            m.querySelectorAll('pre, code, script').forEach(e => e.remove());
            return m.textContent; }""")
        found = sorted(set(RAW.findall(text)))
        assert not found, f"{url} shows raw keys or codes: {found}"
    assert not errors, f"console errors: {errors}"


def test_the_editor_draws_from_tablet_width_and_says_so_on_a_phone(server, loaded, people,
                                                                   page):
    from tests.conftest import SCENARIOS
    from tests.scenario_files import imported_draft

    bpmn = Path(SCENARIOS, "hotline-ticket", "process.bpmn").read_text(encoding="utf-8")
    draft_id, _ = imported_draft(loaded.db, "phan-anh-thu", bpmn)
    log_in(page, server, "inspector")
    page.set_viewport_size({"width": 820, "height": 1100})  # a tablet held upright
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-ready=true]")
    assert overflow(page) == 0
    screenshot(page, "designer-tablet")
    page.set_viewport_size(PHONE)
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-phone=true]")
    assert page.is_visible("#phone-note") and not page.is_visible("#canvas")
    assert "Drawing needs a larger screen" in page.inner_text("#phone-note")
    assert page.is_disabled("#save") and page.is_visible("#publish")
    assert overflow(page) == 0, f"{overflow(page)} px too wide"
    screenshot(page, "designer-phone")
