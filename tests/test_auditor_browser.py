"""The auditor's journey in a real browser (issue 20): find a violation, read its case file with
the path painted on the diagram, record a finding, export the evidence bundle and verify it
offline with only the public key; then verify the whole log from the audit page. Screenshots go
to test-artifacts/."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from sqlalchemy import select

from engine.audit import checkpoints
from engine.cases import bundle
from engine.violations.models import Violation
from tests.browser import log_in, screenshot
from tests.spine_helpers import BATCH, auth, dossier
from tests.test_designer_browser import _wait_for


def test_the_auditor_reads_a_case_records_a_finding_and_exports_verified_evidence(
        server, loaded, people, source, page, tmp_path):
    request = urllib.request.Request(
        f"{server}/api/v1/events", method="POST", headers={**auth(source[1]),
                                                           "Content-Type": BATCH},
        data=json.dumps([dossier("dossier.supplement_requested", "H09.7"),
                         dossier("dossier.supplement_requested", "H09.7")]).encode())
    with urllib.request.urlopen(request) as resp:
        assert resp.status in (201, 202)

    def violation():
        with loaded.db.read() as s:
            found = s.scalars(select(Violation)).first()
            return found if found and found.instance_id else None
    case_id = _wait_for(violation, what="the violation").instance_id

    log_in(page, server, "auditor")
    page.goto(f"{server}/violations")
    page.click(f"a[href='/cases/{case_id}']")
    page.wait_for_selector("body[data-viewer-ready=true]")
    assert page.locator(".djs-element.dry-run-done").count() >= 1  # the path so far
    assert page.locator(".djs-element.dry-run-waiting").count() == 1  # the task it waits at
    assert "dossier.supplement_requested" in page.inner_text("main")
    screenshot(page, "auditor-1-case-file")

    page.fill("#finding-form textarea[name=note]", "Yêu cầu bổ sung hai lần cho một hồ sơ")
    page.select_option("#finding-form select[name=severity]", "high")
    page.select_option("#finding-form select[name=department]", "trung-tam-phvhcc")
    page.click("#finding-form button[type=submit]")
    page.wait_for_selector("text=recorded; the unit gets a task to answer it")
    screenshot(page, "auditor-2-finding-recorded")

    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "ho-so.zip"
    download.value.save_as(saved)
    public = checkpoints.signing_key(loaded.settings.audit_key_path).public_key()
    verdict = bundle.verify(saved.read_bytes(), public)
    assert verdict.ok and verdict.case == case_id, verdict.problems
    assert Path(saved).stat().st_size > 10_000  # the PDF with its font is inside

    page.goto(f"{server}/audit")
    page.click("#verify")
    page.wait_for_selector("#verdict")
    assert "Toàn vẹn" in page.inner_text("#verdict")
    screenshot(page, "auditor-3-audit-log")
