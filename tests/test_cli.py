"""`ioc users create` and `ioc sources add`: tokens printed once, stored hashed, bad input named."""
from __future__ import annotations

import re

from click.testing import CliRunner

from engine.auth import service as auth
from engine.auth.models import User
from engine.cli import main


def test_users_create_prints_a_token_that_works(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    result = CliRunner().invoke(main, ["users", "create", "nguyen.an", "--role", "civil_servant",
                                       "--department", "so-y-te", "--name", "Nguyễn An",
                                       "--token"])
    assert result.exit_code == 0, result.output
    token = re.search(r"API token \(shown once\): (\S+)", result.output).group(1)
    with ioc.db.session() as s:
        user = s.query(User).filter_by(username="nguyen.an").one()
        assert token not in (user.token_hash or "")
        assert auth.user_by_token(s, token).id == user.id


def test_users_create_refuses_bad_input(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    bad_role = runner.invoke(main, ["users", "create", "a.b", "--role", "boss"])
    assert bad_role.exit_code != 0 and "role" in bad_role.output
    bad_dept = runner.invoke(main, ["users", "create", "a.b", "--role", "civil_servant",
                                    "--department", "quan-1"])
    assert bad_dept.exit_code != 0 and "department" in bad_dept.output
    no_dept = runner.invoke(main, ["users", "create", "a.b", "--role", "civil_servant"])
    assert no_dept.exit_code != 0 and "department" in no_dept.output
    with ioc.db.session() as s:
        assert s.query(User).count() == 0


def test_sources_add(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    result = runner.invoke(main, ["sources", "add", "mot-cua", "--types",
                                  "dossier.received,dossier.returned"])
    assert result.exit_code == 0, result.output
    token = re.search(r"API token \(shown once\): (\S+)", result.output).group(1)
    with ioc.db.session() as s:
        source = auth.source_by_token(s, token)
        assert source.allowed_types == ["dossier.received", "dossier.returned"]
    dup = runner.invoke(main, ["sources", "add", "mot-cua"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    bad = runner.invoke(main, ["sources", "add", "x-y", "--types", "dossier.lost"])
    assert bad.exit_code != 0 and "dossier.lost" in bad.output


def test_events_process_also_fires_due_timers(loaded, source, monkeypatch):
    import json
    from pathlib import Path

    from engine.events import relative
    from engine.events import service as events
    from engine.violations.models import Violation

    monkeypatch.setenv("IOC_DATABASE_URL", loaded.db.url)
    example = Path(__file__).resolve().parents[1] / "examples" / "events" / "dossier-overdue.json"
    # `ioc events process` runs on real time: the example's relative times, filled in now, keep
    # its meaning whatever the date.
    result = events.ingest(loaded.db, source[0], relative.fill(json.loads(example.read_text())),
                           loaded.vocabulary)
    assert len(result.accepted) == 1
    out = CliRunner().invoke(main, ["events", "process"])
    assert out.exit_code == 0, out.output
    # The dossier's deadline (a week ago) has passed: its absence timer fires in the same run.
    assert "processed 1 events, fired 1 timers" in out.output
    with loaded.db.read() as s:
        assert [v.subject for v in s.query(Violation)] == ["H47.99-261116-0042"]


def test_a_missing_calendar_folder_is_named_not_a_traceback(ioc, monkeypatch, tmp_path):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    monkeypatch.setenv("IOC_CALENDAR_DIR", str(tmp_path / "lich"))
    out = CliRunner().invoke(main, ["events", "process"])
    assert out.exit_code == 1
    assert "working-time calendar" in out.output and "lich" in out.output


def test_users_create_with_an_email_for_notifications(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    ok = runner.invoke(main, ["users", "create", "lanh.dao", "--role", "department_head",
                              "--department", "so-y-te", "--email", "lanh.dao@soyte.example"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["users", "create", "sai.mail", "--role", "department_head",
                               "--department", "so-y-te", "--email", "khong-phai-email"])
    assert bad.exit_code != 0 and "e-mail" in bad.output
    with ioc.db.read() as s:
        assert [u.email for u in s.query(User)] == ["lanh.dao@soyte.example"]
