"""Shared fixtures: a clean database on SQLite and, for real, on PostgreSQL."""
from __future__ import annotations

import os
import tempfile

import pytest
from sqlalchemy import text

from engine.db import Base, Database

PG_URL = os.environ.get("IOC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_database() -> Database:
    db = Database(PG_URL)
    try:
        with db.engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no service"
        db.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    return db


def _create_schema(db: Database) -> None:
    """Build the schema the way production does: through the Alembic migrations."""
    import engine.models  # noqa: F401 - registers every model on Base.metadata
    from engine import migrate

    if db.is_postgres:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(db.url)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def _schema_db(request):
    if request.param == "postgres":
        db = _pg_database()
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="ioc-test-"), "test.sqlite3")
        db = Database(f"sqlite:///{path}")
    _create_schema(db)
    yield db
    db.dispose()


@pytest.fixture
def db(_schema_db: Database) -> Database:
    """A Database with the full schema and no rows, on SQLite and on PostgreSQL."""
    with _schema_db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return _schema_db
