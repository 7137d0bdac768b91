"""Alembic environment: the engine's models, the database from IOC_DATABASE_URL (or the caller)."""
from __future__ import annotations

from alembic import context

import engine.models  # noqa: F401 - registers every table
from engine.config import Settings
from engine.db import Base, make_engine

config = context.config
url = config.attributes.get("database_url") or Settings.from_env().database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        eng = make_engine(url)
        with eng.connect() as connection:
            _run(connection)
        eng.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
