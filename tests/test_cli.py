"""`ioc users` and `ioc sources`: tokens printed once, stored hashed, bad input named, every
change of a person's access or a source's credentials audited."""
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


def _audited(ioc, *actions):
    """The audit records of these actions, oldest first: (action, details)."""
    from engine.audit.models import AuditRecord

    with ioc.db.read() as s:
        return [(r.action, r.details) for r in s.query(AuditRecord)
                .filter(AuditRecord.action.in_(actions)).order_by(AuditRecord.seq)]


def test_users_are_managed_from_the_command_line_and_every_change_is_audited(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()

    def ioc_(*args):
        result = runner.invoke(main, list(args))
        return result.exit_code, result.output
    assert ioc_("users", "create", "quan.tri", "--role", "admin")[0] == 0
    assert ioc_("users", "create", "tran.binh", "--role", "civil_servant", "--department",
                "so-y-te", "--name", "Trần Bình", "--password", "mat-khau-dai")[0] == 0
    code, out = ioc_("users", "change", "tran.binh", "--role", "department_head",
                     "--department", "so-nong-nghiep-moi-truong", "--email", "binh@ioc.vn")
    assert code == 0 and "role civil_servant -> department_head" in out, out
    # A department merged away in 2025 takes nobody new.
    code, out = ioc_("users", "change", "tran.binh", "--department", "so-tai-nguyen-moi-truong")
    assert code != 0 and "department" in out and "so-tai-nguyen-moi-truong" in out
    code, out = ioc_("users", "list", "--role", "department_head")
    assert "tran.binh" in out and "so-nong-nghiep-moi-truong" in out and "quan.tri" not in out
    code, out = ioc_("users", "token", "tran.binh")
    token = re.search(r"API token \(shown once\): (\S+)", out).group(1)
    with ioc.db.read() as s:
        assert auth.user_by_token(s, token).username == "tran.binh"
    assert "revoked" in ioc_("users", "revoke-token", "tran.binh")[1]
    assert "had no API token" in ioc_("users", "revoke-token", "tran.binh")[1]
    with ioc.db.read() as s:
        assert auth.user_by_token(s, token) is None
    assert ioc_("users", "deactivate", "tran.binh")[0] == 0
    assert "INACTIVE" in ioc_("users", "list", "--inactive")[1]
    assert ioc_("users", "password", "tran.binh", "--password", "mat-khau-moi-2")[0] == 0
    assert ioc_("users", "activate", "tran.binh")[0] == 0
    # The last administrator can neither lose the role nor be deactivated.
    code, out = ioc_("users", "deactivate", "quan.tri")
    assert code != 0 and "last active administrator" in out
    code, out = ioc_("users", "change", "quan.tri", "--role", "auditor")
    assert code != 0 and "last active administrator" in out
    code, out = ioc_("users", "change", "khong.co", "--role", "auditor")
    assert code != 0 and "no user named 'khong.co'" in out
    assert _audited(ioc, "user.role_changed", "user.updated", "user.token_issued",
                    "user.token_revoked", "user.deactivated", "user.activated",
                    "user.password_changed") == [
        ("user.role_changed", {"username": "tran.binh",
                               "role": ["civil_servant", "department_head"],
                               "department_key": ["so-y-te", "so-nong-nghiep-moi-truong"]}),
        ("user.updated", {"username": "tran.binh", "fields": ["email"]}),
        ("user.token_issued", {"username": "tran.binh", "replaced": False}),
        ("user.token_revoked", {"username": "tran.binh"}),
        ("user.deactivated", {"username": "tran.binh"}),
        ("user.password_changed", {"username": "tran.binh"}),
        ("user.activated", {"username": "tran.binh"})]


def test_sources_are_changed_and_their_token_rotated_from_the_command_line(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    out = runner.invoke(main, ["sources", "add", "mot-cua"]).output
    old = re.search(r"API token \(shown once\): (\S+)", out).group(1)
    result = runner.invoke(main, ["sources", "change", "mot-cua", "--types", "dossier.received",
                                  "--rate-limit", "120", "--hmac-secret", "bi-mat-16-ky-tu-tro-len",
                                  "--disable"])
    assert result.exit_code == 0, result.output
    assert "disabled False -> True" in result.output
    out = runner.invoke(main, ["sources", "list"]).output
    assert "mot-cua" in out and "DISABLED" in out and "hmac" in out and "120/min" in out
    bad = runner.invoke(main, ["sources", "change", "mot-cua", "--types", "dossier.lost"])
    assert bad.exit_code != 0 and "allowed_types" in bad.output and "dossier.lost" in bad.output
    short = runner.invoke(main, ["sources", "change", "mot-cua", "--hmac-secret", "ngan"])
    assert short.exit_code != 0 and "hmac_secret" in short.output
    out = runner.invoke(main, ["sources", "rotate-token", "mot-cua"]).output
    new = re.search(r"API token \(shown once\): (\S+)", out).group(1)
    runner.invoke(main, ["sources", "change", "mot-cua", "--enable", "--hmac-secret", "",
                         "--rate-limit", "0"])
    with ioc.db.read() as s:
        assert auth.source_by_token(s, old) is None
        source = auth.source_by_token(s, new)
        assert (source.allowed_types, source.rate_limit_per_minute, source.hmac_secret) == \
            (["dossier.received"], None, None)
    assert _audited(ioc, "source.changed", "source.token_rotated") == [
        ("source.changed", {"name": "mot-cua", "allowed_types": [[], ["dossier.received"]],
                            "rate_limit_per_minute": [None, 120], "disabled": [False, True],
                            "signed": [False, True]}),
        ("source.token_rotated", {"name": "mot-cua"}),
        ("source.changed", {"name": "mot-cua", "rate_limit_per_minute": [120, None],
                            "disabled": [True, False], "signed": [True, False]})]
