"""The audit chain detects an altered, removed or inserted record, and names it."""
from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from engine.audit import service as audit
from engine.audit.models import AuditRecord


def _write(db, n):
    with db.session() as s:
        for i in range(n):
            audit.record(s, "test.step", actor="tester", subject_type="thing", subject_id=i,
                         details={"i": i, "note": "Bước kiểm thử"})


def _verify(db):
    with db.session() as s:
        return audit.verify(s)


def test_an_intact_chain_verifies(db):
    _write(db, 20)
    result = _verify(db)
    assert (result.ok, result.checked) == (True, 20)


def test_an_edited_record_is_named(db):
    _write(db, 10)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET actor = 'someone else' WHERE seq = 4"))
    result = _verify(db)
    assert (result.ok, result.broken_seq) == (False, 4)
    assert "altered" in result.reason


def test_a_deleted_record_is_named(db):
    _write(db, 10)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq = 6"))
    result = _verify(db)
    assert (result.ok, result.broken_seq) == (False, 6)


def test_deleting_the_newest_records_is_detected(db):
    _write(db, 10)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_records WHERE seq >= 9"))
    result = _verify(db)
    assert not result.ok
    assert result.broken_seq == 9


def test_a_rewritten_chain_tail_is_detected(db):
    # Editing a record and recomputing its own hash still breaks the link to the next one.
    _write(db, 5)
    with db.session() as s:
        rec = s.query(AuditRecord).filter_by(seq=2).one()
        rec.details = {"i": 99}
        rec.hash = audit._digest(rec.seq, rec.at, rec.actor, rec.action, rec.subject_type,
                                 rec.subject_id, rec.instance_id, rec.details, rec.prev_hash)
    result = _verify(db)
    assert (result.ok, result.broken_seq) == (False, 3)


def test_ioc_audit_verify_command(db, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", db.url)
    _write(db, 3)
    ok = CliRunner().invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "3 records verified" in ok.output
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET action = 'x' WHERE seq = 2"))
    broken = CliRunner().invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "record 2" in broken.output
