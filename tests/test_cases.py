"""Case files and evidence bundles (issue 20): one case in one place, exported as a zip that is
verified offline, on another machine's copy, with only the auditor's public key; every change to
the bundle is named."""
from __future__ import annotations

import io
import json
import re
import shutil
import zipfile

import pytest
from click.testing import CliRunner

from engine.app import create_app
from engine.audit import checkpoints
from engine.cases import bundle
from engine.cases import service as cases
from engine.cli import main
from tests.spine_helpers import dossier, send
from tests.test_web import _csrf, _login


@pytest.fixture
def case_id(loaded, source, people):
    """A violation's case: two supplement requests for one dossier (dossier-violations)."""
    client = create_app(services=loaded).test_client()
    send(client, source[1], dossier("dossier.supplement_requested", "H03.1"),
         dossier("dossier.supplement_requested", "H03.1"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        from engine.violations.models import Violation
        return s.query(Violation).one().instance_id


def _case(loaded, instance_id):
    with loaded.db.read() as s:
        return cases.case_file(s, loaded.runtime, instance_id)


def test_a_case_file_holds_the_events_the_rule_the_path_and_the_records(loaded, case_id):
    case = _case(loaded, case_id)
    [violation] = case["violations"]
    assert [e["type"] for e in violation["events"]] == ["dossier.supplement_requested"] * 2
    assert violation["events"][0]["data"]["dossier_id"] == "H03.1"  # as received
    assert violation["rule_text"].lstrip().startswith("- key: " + violation["rule"])
    assert "dossier.supplement_requested" in violation["rule_text"]
    assert case["scenario"]["version"] == 1 and "<bpmn:" in case["bpmn"]
    assert case["path"]["elements"] and case["path"]["waiting"]  # a task waits
    assert [t["status"] for t in case["tasks"]] == ["open"]
    assert case["records"][0]["action"] == "instance.started"
    kinds = [item["kind"] for item in cases.timeline(case)]
    assert kinds[:2] == ["event", "event"] and "record" in kinds


def _bundle(loaded, case_id) -> bytes:
    return loaded.export_case(case_id, actor="user:auditor")


def _public(loaded):
    return checkpoints.signing_key(loaded.settings.audit_key_path).public_key()


def _rezip(data: bytes, change) -> bytes:
    """The bundle with its files changed by change(files) (a dict name → bytes)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    change(files)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return out.getvalue()


def test_an_exported_bundle_verifies_offline_and_names_each_change(loaded, case_id, tmp_path):
    data = _bundle(loaded, case_id)
    public = _public(loaded)
    verdict = bundle.verify(data, public)
    assert verdict.ok, verdict.problems
    assert verdict.case == case_id and verdict.records == len(_case(loaded, case_id)["records"])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        pdf = zf.read("case.pdf")
        case = json.loads(zf.read("case.json"))
    assert names == {"case.json", "case.pdf", "checkpoint.json", "manifest.json", "manifest.sig",
                     "process.bpmn", "records.json", "README.txt"}
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Type /Page" in pdf and b"DejaVu" in pdf
    assert case["instance"]["id"] == case_id

    def edit(name, old, new):
        def change(files):
            assert old in files[name]
            files[name] = files[name].replace(old, new, 1)
        return change

    def tampered_record(files):  # an edited answer, its hash recomputed to look right
        proven = json.loads(files["records.json"])
        proven[0]["record"]["actor"] = "nguoi-khac"
        files["records.json"] = json.dumps(proven).encode()

    first_seq = _case(loaded, case_id)["records"][0]["seq"]
    cases_of_change = {
        "case.json": (edit("case.json", b"H03.1", b"H03.9"),
                      ["case.json was changed (its SHA-256 is not the signed one)"]),
        "a record": (tampered_record,
                     ["records.json was changed (its SHA-256 is not the signed one)",
                      f"record {first_seq} (instance.started) was changed: its contents do "
                      "not give its hash", "case.json's audit records are not the proven ones"]),
        "the manifest": (edit("manifest.json", b'"case"', b'"case" '),
                         ["manifest.json was changed, or signed by another key: its signature "
                          "does not match"]),
        "a file added": (lambda files: files.update({"ghi-chu.txt": b"them"}),
                         ["ghi-chu.txt was added"]),
        "the PDF removed": (lambda files: files.pop("case.pdf"), ["case.pdf is missing"]),
    }
    for what, (change, expected) in cases_of_change.items():
        found = bundle.verify(_rezip(data, change), public).problems
        assert found == expected, what
    other = checkpoints.signing_key(tmp_path / "other.pem").public_key()
    problems = bundle.verify(data, other).problems
    assert problems[0].startswith("manifest.json was changed, or signed by another key")
    assert any("was signed by key" in p for p in problems)
    assert bundle.verify(b"not a zip", public).problems[0].startswith("not a bundle")


def test_the_cli_exports_and_another_machine_verifies_with_only_the_key(loaded, case_id,
                                                                         tmp_path, monkeypatch):
    """Export with the engine's CLI; copy the zip and the public key elsewhere; verify there
    with no database configured at all."""
    monkeypatch.setenv("IOC_DATABASE_URL", loaded.db.url)
    monkeypatch.setenv("IOC_AUDIT_KEY_FILE", str(loaded.settings.audit_key_path))
    monkeypatch.setenv("IOC_AUDIT_CHECKPOINT_DIR", str(loaded.settings.checkpoint_path))
    runner = CliRunner()
    out = tmp_path / "ho-so.zip"
    done = runner.invoke(main, ["audit", "export-case", str(case_id), "-o", str(out),
                                "--actor", "kiemtra.mai"])
    assert done.exit_code == 0, done.output
    key = runner.invoke(main, ["audit", "public-key"]).output
    elsewhere = tmp_path / "may-khac"
    elsewhere.mkdir()
    shutil.copy(out, elsewhere / "ho-so.zip")
    (elsewhere / "auditor.pub").write_text(key)
    monkeypatch.setenv("IOC_DATABASE_URL", "sqlite:////nonexistent/khong-co.sqlite3")
    done = runner.invoke(main, ["audit", "verify-bundle", str(elsewhere / "ho-so.zip"),
                                "--key", str(elsewhere / "auditor.pub")])
    assert done.exit_code == 0, done.output
    assert re.search(rf"bundle intact: case {case_id}, \d+ audit records proved", done.output)
    changed = _rezip((elsewhere / "ho-so.zip").read_bytes(),
                     lambda files: files.update({"process.bpmn": b"<x/>"}))
    (elsewhere / "sua.zip").write_bytes(changed)
    done = runner.invoke(main, ["audit", "verify-bundle", str(elsewhere / "sua.zip"),
                                "--key", str(elsewhere / "auditor.pub")])
    assert done.exit_code == 1
    assert "process.bpmn was changed (its SHA-256 is not the signed one)" in done.output


def test_the_auditor_reads_the_case_file_and_exports_it(loaded, case_id, people):
    client = create_app(services=loaded).test_client()
    _login(client, "auditor")
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f"Hồ sơ vụ việc #{case_id}" in page and "dossier.supplement_requested" in page
    assert "dry-run-done" in page and 'id="timeline"' in page
    resp = client.post(f"/cases/{case_id}/export", data={"csrf_token": _csrf(page)})
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert bundle.verify(resp.data, _public(loaded)).ok
    clerk = create_app(services=loaded).test_client()
    _login(clerk, "phvhcc")  # an officer reads the cases of their own tasks only (issue 23)
    assert clerk.get(f"/cases/{case_id}").status_code == 404
    own = _csrf(clerk.get("/inbox").get_data(as_text=True))
    assert clerk.post(f"/cases/{case_id}/export", data={"csrf_token": own}).status_code == 403
    assert client.get("/cases/999999").status_code == 404
    with loaded.db.read() as s:
        from engine.audit.models import AuditRecord
        actions = [(r.action, r.actor) for r in s.query(AuditRecord).filter(
            AuditRecord.action.in_(["case.viewed", "case.exported"])).order_by(AuditRecord.seq)]
    assert actions == [("case.viewed", "user:auditor"), ("case.exported", "user:auditor")]


def test_a_finding_reaches_the_unit_and_its_answer_joins_the_case_file(loaded, case_id,
                                                                        people):
    """The auditor records a finding on the case for Sở Xây dựng; it is an event of the audit
    source, the shipped audit-finding scenario gives the unit a task with a 5-working-day SLA,
    the unit answers, and the case file (and its bundle) shows the finding with the answer."""
    from engine.sla.models import SlaClock
    from engine.tasks.models import Task

    auditor = create_app(services=loaded).test_client()
    _login(auditor, "auditor")
    page = auditor.get(f"/cases/{case_id}").get_data(as_text=True)
    token = _csrf(page)
    bad = auditor.post(f"/cases/{case_id}/findings", data={
        "csrf_token": token, "note": "  ", "severity": "high", "department": "khong-co"})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "The finding is required" in text and "Not a valid choice" in text
    done = auditor.post(f"/cases/{case_id}/findings", data={
        "csrf_token": token, "note": "Trả kết quả chậm 3 ngày, chưa báo người dân",
        "severity": "high", "department": "so-xay-dung"}, follow_redirects=True)
    assert "recorded; the unit gets a task to answer it" in done.get_data(as_text=True)
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        [task] = s.query(Task).filter(Task.bpmn_id == "answer_finding").all()
        [clock] = s.query(SlaClock).filter(SlaClock.task_id == task.id).all()
    assert task.department_key == "so-xay-dung" and clock.working
    unit = create_app(services=loaded).test_client()
    _login(unit, "xaydung")
    assert "Giải trình kết luận kiểm tra" in unit.get("/inbox").get_data(as_text=True)
    loaded.complete_task(_user(loaded, "xaydung"), task.id,
                         {"answer": "remedied", "explanation": "Đã xin lỗi, trả kết quả"})
    loaded.run_pending()
    [finding] = _case(loaded, case_id)["findings"]
    assert (finding["note"], finding["severity"], finding["department"], finding["auditor"]) == (
        "Trả kết quả chậm 3 ngày, chưa báo người dân", "high", "so-xay-dung", "user:auditor")
    assert finding["answer"] == {"answer": "remedied", "explanation": "Đã xin lỗi, trả kết quả"}
    page = auditor.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Đã xin lỗi, trả kết quả" in page
    with zipfile.ZipFile(io.BytesIO(_bundle(loaded, case_id))) as zf:
        assert json.loads(zf.read("case.json"))["findings"][0]["answer"]["answer"] == "remedied"
    clerk = create_app(services=loaded).test_client()
    _login(clerk, "phvhcc")
    own = _csrf(clerk.get("/inbox").get_data(as_text=True))
    assert clerk.post(f"/cases/{case_id}/findings", data={"csrf_token": own}).status_code == 403


def _user(loaded, username):
    from engine.auth.models import User

    with loaded.db.read() as s:
        return s.query(User).filter(User.username == username).one()


def test_cases_are_found_by_filters_paged_and_exported(loaded, case_id, source, people):
    """Two cases (a violation, a hotline ticket): filters narrow them, pages follow each other,
    the CSV has every match, a bad filter is a 400 naming it, and nothing outside the
    person's scope appears."""
    import csv

    from tests.spine_helpers import ticket

    client = create_app(services=loaded).test_client()
    send(client, source[1], ticket("T-100", ward="phuong-di-an"))
    loaded.pipeline.drain()
    _login(client, "auditor")

    def found(**params):
        page = client.get("/cases", query_string=params)
        assert page.status_code == 200, page.get_data(as_text=True)
        return re.findall(r'href="/cases/(\d+)"', page.get_data(as_text=True))
    both = found()
    assert len(both) == 2 and str(case_id) in both
    assert found(kind="violation") == [str(case_id)]
    assert found(scenario="hotline-ticket", version=2) == [b for b in both if b != str(case_id)]
    assert found(scenario="hotline-ticket", version=1) == []
    assert found(ward="phuong-thu-dau-mot") == [str(case_id)]
    assert found(department="trung-tam-phvhcc") == [str(case_id)]
    assert found(status="completed") == [] and found(since="2000-01-01") == both
    assert found(until="2000-01-01") == []
    first = client.get("/cases", query_string={"kind": ""}).get_data(as_text=True)
    assert 'id="case-total">2<' in first
    from engine.cases import search
    with loaded.db.read() as s:
        auditor = _user(loaded, "auditor")
        page1, after, total = search.search(s, auditor, search.Filters(), limit=1)
        page2, after2, _ = search.search(s, auditor, search.Filters(), before=after, limit=1)
    assert total == 2 and [page1[0]["case"], page2[0]["case"]] == [int(b) for b in both]
    assert after2 is None
    text = client.get("/cases.csv", query_string={"kind": "violation"}).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [(r["case"], r["scenario"], r["kind"]) for r in rows] == [
        (str(case_id), "dossier-violations", "violation")]
    bad = client.get("/cases", query_string={"since": "hôm qua", "version": "0"})
    assert bad.status_code == 400 and "Not a valid date value" in bad.get_data(as_text=True)
    assert client.get("/cases.csv", query_string={"version": "x"}).status_code == 400
    clerk = create_app(services=loaded).test_client()
    _login(clerk, "phvhcc")
    assert clerk.get("/cases").status_code == 403
