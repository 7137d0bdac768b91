"""The audit chain detects an altered, removed or inserted record, and names it."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from engine.audit import service as audit
from engine.audit.models import AuditRecord, canonical


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
        rec.hash, _ = audit._hashes(rec.seq, rec.at, rec.actor, rec.action, rec.subject_type,
                                    rec.subject_id, rec.instance_id, canonical(rec.details),
                                    rec.prev_hash)
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


def _actions(db) -> list[str]:
    with db.read() as s:
        return [r.action for r in s.query(AuditRecord).order_by(AuditRecord.seq)]


def test_a_savepoint_whose_flush_fails_leaves_no_record(db):
    """A step's records go with its savepoint: a failed flush rolls the savepoint back in the
    database, and its `with` block then only closes it; the records must go too."""
    from sqlalchemy.exc import IntegrityError

    from engine.auth.models import User

    with db.session() as s:
        audit.record(s, "kept.before", actor="t", subject_type="x", subject_id=1)
        try:
            with s.begin_nested():
                audit.record(s, "rolled.back", actor="t", subject_type="x", subject_id=2)
                s.add(User(username=None, role="admin", department_key="ioc"))  # NOT NULL
                s.flush()
        except IntegrityError:
            pass
        audit.record(s, "kept.after", actor="t", subject_type="x", subject_id=3)
    assert _actions(db) == ["kept.before", "kept.after"]
    assert _verify(db).ok


def test_a_stale_update_in_a_savepoint_leaves_no_record(db):
    """The pipeline's concurrency path: another transaction moved the row meanwhile."""
    from sqlalchemy.orm.exc import StaleDataError

    from engine.auth import service as auth
    from engine.events.models import Source

    with db.session() as s:
        auth.create_source(s, "stale-source")
    with db.read() as s:
        stale = s.query(Source).one()
    with db.session() as s:  # another step removed it meanwhile
        s.execute(text("DELETE FROM sources"))
    with db.session() as s:
        audit.record(s, "kept.before", actor="t", subject_type="x", subject_id=1)
        try:
            with s.begin_nested():
                mine = s.merge(stale, load=False)
                audit.record(s, "step.on.stale.copy", actor="t", subject_type="x", subject_id=2)
                mine.disabled = True
                s.flush()
        except StaleDataError:
            pass
    assert _actions(db) == ["source.created", "kept.before"]


def test_a_rolled_back_transaction_leaves_nothing_for_the_next_one(db):
    with db.sessions() as s:
        audit.record(s, "never", actor="t", subject_type="x", subject_id=1)
        s.rollback()
        audit.record(s, "later", actor="t", subject_type="x", subject_id=2)
        s.commit()
    assert _actions(db) == ["later"]


def test_the_chain_verifies_whatever_the_session_time_zone(db):
    """PostgreSQL returns timestamptz in the session's zone: the digest must not follow it."""
    from sqlalchemy import event

    from engine.db import Database

    if not db.is_postgres:
        pytest.skip("SQLite has no session time zone")
    _write(db, 5)
    local = Database(db.url)

    @event.listens_for(local.engine, "connect")
    def _zone(dbapi_conn, _record):  # every connection of it in Hồ Chí Minh City time
        with dbapi_conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'Asia/Ho_Chi_Minh'")
        dbapi_conn.commit()

    try:
        with local.read() as s:
            assert s.execute(text("SHOW TIME ZONE")).scalar() == "Asia/Ho_Chi_Minh"
            result = audit.verify(s)
        assert (result.ok, result.checked) == (True, 5), result.reason
        _write(local, 2)  # written through such a session, checked through another
        assert _verify(db).ok and _verify(local).ok
    finally:
        local.dispose()


def test_edited_details_are_named_even_when_they_mean_the_same(db):
    # The details are the hashed text itself: re-formatting them is changing the record.
    _write(db, 5)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET details = :same WHERE seq = 3"),
                     {"same": '{"i": 2, "note": "Bước kiểm thử"}'})
    result = _verify(db)
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "altered" in result.reason


def test_records_hashed_before_details_were_text_still_verify(db):
    # Records written by the engine before migration 0012 (details as JSONB, or SQLAlchemy's
    # JSON text on SQLite) were hashed as json.dumps of the whole array; after the migration the
    # same records verify, read back the same details, and the chain goes on.
    import hashlib
    import json
    from datetime import datetime, timezone

    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from engine import migrate

    migrate.downgrade(db.url, "0011")
    try:
        old = sa.table("audit_records", *(sa.column(c) for c in (
            "seq", "at", "actor", "action", "subject_type", "subject_id", "instance_id",
            "prev_hash", "hash")), sa.column("details", sa.JSON().with_variant(
                postgresql.JSONB(), "postgresql")))
        written, prev = [], audit.GENESIS
        for seq in range(1, 6):
            at = datetime(2026, 3, 2, 8, seq, 7, 120000, tzinfo=timezone.utc)
            details = {"zeta": seq, "answers": {"ket_qua": "đạt", "a": [1, 2.5, None]},
                       "department": "so-tai-nguyen-moi-truong", "note": "Hồ sơ \"đủ\""}
            body = json.dumps([seq, at.isoformat(timespec="microseconds"), "user:can-bo",
                               "task.completed", "task", str(seq), 7, details, prev],
                              sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            digest = hashlib.sha256(body.encode()).hexdigest()
            written.append(details)
            with db.engine.begin() as conn:
                conn.execute(old.insert().values(
                    seq=seq, at=at, actor="user:can-bo", action="task.completed",
                    subject_type="task", subject_id=str(seq), instance_id=7, details=details,
                    prev_hash=prev, hash=digest))
                conn.execute(text("DELETE FROM audit_head"))
                conn.execute(text(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, {seq}, "
                                  f"'{digest}')"))
            prev = digest
    finally:
        migrate.upgrade(db.url)
    result = _verify(db)
    assert (result.ok, result.checked) == (True, 5), result.reason
    with db.read() as s:
        assert [r.details for r in s.query(AuditRecord).order_by(AuditRecord.seq)] == written
    _write(db, 2)
    assert (_verify(db).ok, _verify(db).checked) == (True, 7)
