"""The PostgreSQL connection pool: a connection idle for a while is pinged before use and
replaced if it died; one back from use a moment ago is used as is."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engine import db as database
from tests.conftest import _pg_database


@pytest.fixture
def pg(monkeypatch):
    db = _pg_database()
    pings: list[object] = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    yield db, pings
    db.dispose()


def _backend(db) -> int:
    with db.session() as s:
        return s.scalar(text("select pg_backend_pid()"))


def _kill(pid: int) -> None:
    other = _pg_database()  # its own pool
    try:
        with other.engine.connect() as conn:
            assert conn.scalar(text("select pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        other.dispose()


def test_a_connection_back_from_use_is_not_pinged(pg):
    db, pings = pg
    first = _backend(db)
    assert _backend(db) == first  # the same pooled connection, straight away
    assert pings == []


def test_an_idle_connection_that_died_is_replaced_before_use(pg, monkeypatch):
    db, pings = pg
    dead = _backend(db)
    _kill(dead)
    monkeypatch.setattr(database, "PING_IDLE_S", 0.0)  # every pooled connection is "idle"
    assert _backend(db) != dead
    assert len(pings) >= 1


def test_a_connection_that_died_while_just_used_fails_once_then_the_pool_recovers(pg):
    db, pings = pg
    dead = _backend(db)
    _kill(dead)
    with pytest.raises(OperationalError):
        _backend(db)
    assert _backend(db) != dead


def test_a_lookup_runs_outside_a_transaction_and_a_read_inside_one(pg):
    from psycopg.pq import TransactionStatus

    db, _ = pg

    def status(session) -> TransactionStatus:
        session.scalar(text("select 1"))
        return session.connection().connection.dbapi_connection.info.transaction_status

    with db.lookup() as s:  # no BEGIN and ROLLBACK around it: two round trips fewer
        assert status(s) == TransactionStatus.IDLE
    with db.read() as s:
        assert status(s) == TransactionStatus.INTRANS
