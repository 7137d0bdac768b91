"""Database access: the declarative base, the engine and its sessions (SQLite or PostgreSQL)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# Plain `json` keeps the text as written. SpiffWorkflow's serialized state must keep its key
# order (restoring it from reordered JSONB loses task data), so state and specs use this.
OrderedJson = JSON()


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        # Aware values come in the database session's zone (PostgreSQL's TimeZone setting).
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else \
            value.astimezone(timezone.utc)


def insert_unless_present(session: Session, model, values: dict) -> int | None:
    """Insert one row of `model` unless a unique key of its holds these values already: the new
    id, or None (one INSERT … ON CONFLICT DO NOTHING RETURNING, not a SELECT then an INSERT)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = model.__table__
    return session.scalar(insert(table).values(values).on_conflict_do_nothing()
                          .returning(table.c.id))


# PostgreSQL's codes for a transaction that lost a race and may simply be tried again: a
# serialization failure, a deadlock (the server aborted one side), a lock not available.
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


def is_transient(exc: BaseException) -> bool:
    """True when `exc` says only that another transaction got there first: try again later
    (a stale row version, a deadlock victim, a busy SQLite); not a fault of the work itself."""
    if isinstance(exc, StaleDataError):
        return True
    if isinstance(exc, OperationalError):
        code = getattr(exc.orig, "sqlstate", None)
        if code in _RETRYABLE_SQLSTATES:
            return True
        return "database is locked" in str(exc.orig)  # SQLite's busy writer
    return False


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Base class of every model."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict: JsonType, list: JsonType, datetime: UtcDateTime}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_begin).
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn):
    # A writing transaction takes the write lock when it starts: a deferred one that reads the
    # audit head and later writes fails with SQLITE_BUSY instead of waiting. Reads stay deferred.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


# A pooled connection idle longer than this is pinged before it is used again: the server may
# have dropped it meanwhile (a restart, a firewall). One back from use a moment ago is not:
# pinging at every checkout cost a round trip per worker batch and two per ingest request, a
# tenth of a batch's (measured). A connection that died anyway fails its statement once, and
# SQLAlchemy then replaces every pooled connection as old as it.
PING_IDLE_S = 5.0


def _mark_idle(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Callable:
    def checkout(dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get("idle_since", float("-inf")) <= PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc  # retried
    return checkout


def make_engine(url: str) -> Engine:
    """Create an engine for `url`; SQLite gets WAL, foreign keys and serialised writers."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(eng, "connect", _sqlite_pragmas)
        event.listen(eng, "begin", _sqlite_begin)
        return eng
    eng = create_engine(url)
    event.listen(eng, "checkin", _mark_idle)
    event.listen(eng, "checkout", _ping_if_idle(eng))
    return eng


class _WriterLock:
    """A lock for SQLite writers that refuses (instead of hanging) a nested writer in one thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._owner: int | None = None

    def __enter__(self):
        if self._owner == threading.get_ident():
            raise RuntimeError("a write session is already open in this thread; SQLite has one "
                               "writer, so nested write sessions would wait for themselves")
        self._lock.acquire()
        self._owner = threading.get_ident()

    def __exit__(self, *exc):
        self._owner = None
        self._lock.release()


class Database:
    """One database: its engine and a session factory. Services receive sessions from here."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        sqlite = self.engine.dialect.name == "sqlite"
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if sqlite else self.engine
        self.sessions = sessionmaker(writer, expire_on_commit=False)
        self.readers = sessionmaker(self.engine, expire_on_commit=False)
        # Lookups on PostgreSQL run in autocommit: a statement sees what is committed, as in a
        # READ COMMITTED transaction, without a BEGIN and a ROLLBACK around it (two round trips
        # of the three of an API token's lookup, measured).
        self.lookups = sessionmaker(
            self.engine if sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False)
        # SQLite has one writer; its busy handler polls with back-off, so a thread that commits and
        # begins again at once starves the others. In-process writers queue on a lock instead.
        self._write_lock = _WriterLock() if sqlite else None

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL (row locks, SKIP LOCKED); False on SQLite."""
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A writing session: its transaction commits on success and rolls back on error."""
        with self._write_lock or nullcontext(), self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only (it never takes SQLite's write lock)."""
        # Closing ends the transaction without expiring what was read (rollback would).
        with self.readers() as s:
            yield s

    @contextmanager
    def lookup(self) -> Iterator[Session]:
        """A session for a quick lookup outside any transaction: single statements that need no
        snapshot shared between them, and no streamed results (use `read` for those)."""
        with self.lookups() as s:
            yield s

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
