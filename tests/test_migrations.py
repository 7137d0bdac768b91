"""The Alembic migrations build exactly the schema the models describe, on both databases."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import Base


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_every_table_is_created(db):
    from sqlalchemy import inspect

    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_a_nested_sqlite_writer_is_refused_not_hung(tmp_path):
    import pytest

    from engine.db import Database

    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with db.session():
        with pytest.raises(RuntimeError, match="already open in this thread"):
            with db.session():
                pass
    with db.session():  # the lock was released
        pass
