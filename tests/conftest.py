"""Shared fixtures: a clean database on SQLite and, for real, on PostgreSQL."""
from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.db import Base, Database
from tests.browser import browser, page  # noqa: F401 - fixtures of the browser tests

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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(ROOT, "scenarios")
ORG_FILE = os.path.join(ROOT, "data", "organisation", "binh-duong.yaml")


@pytest.fixture
def ioc(db):
    """The engine assembled on the test database, with the organisation loaded."""
    from engine.config import Settings
    from engine.org import service as org
    from engine.services import Services

    # Each test's own audit key and checkpoint folder: checkpoints of another test's log would
    # not verify against this one.
    audit_dir = Path(tempfile.mkdtemp(prefix="ioc-audit-"))
    services = Services(Settings(database_url=db.url, audit_key_file=str(audit_dir / "key.pem"),
                                 checkpoint_dir=str(audit_dir / "checkpoints")), db=db)
    with db.session() as s:
        org.load_file(s, ORG_FILE)
    return services


def on_clock(ioc, clock):
    """Another engine process on the database (and scenarios) of `ioc`, reading `clock`."""
    from engine.services import Services

    return Services(ioc.settings, db=ioc.db, vocabulary=ioc.vocabulary, clock=clock,
                    calendar=ioc.calendar)


def load_scenarios(ioc, path: str = SCENARIOS, actor: str = "test"):
    """Check and publish every scenario folder under `path`; return the versions."""
    from engine.org import service as org
    from engine.scenarios import service

    with ioc.db.session() as s:
        departments = org.known_keys(s)
    out = []
    for folder in service.folders(path):
        scenario = service.check_folder(folder, ioc.vocabulary, departments)
        with ioc.db.session() as s:
            out.append(service.publish(s, scenario, actor=actor)[0])
    return out


@pytest.fixture
def loaded(ioc):
    """The engine with the shipped scenarios published."""
    load_scenarios(ioc)
    return ioc


@pytest.fixture
def source(ioc):
    """A source allowed to send every event type; returns (source id, token)."""
    from engine.auth import service as auth

    with ioc.db.session() as s:
        src, token = auth.create_source(s, "test-source")
    return src.id, token


@pytest.fixture
def people(ioc):
    """One user per role and department the tests need: username → (user id, API token)."""
    from engine.auth import service as auth

    spec = [("phvhcc", "civil_servant", "trung-tam-phvhcc"),
            ("phvhcc2", "civil_servant", "trung-tam-phvhcc"),
            ("thudaumot", "civil_servant", "phuong-thu-dau-mot"),
            ("nnmt", "civil_servant", "so-nong-nghiep-moi-truong"),
            ("xaydung", "civil_servant", "so-xay-dung"),
            ("ioc.duty", "civil_servant", "ioc"),
            ("inspector", "inspector", "thanh-tra"),
            ("auditor", "auditor", "thanh-tra"),
            ("admin", "admin", "ioc")]
    out = {}
    with ioc.db.session() as s:
        for name, role, dept in spec:
            user, token = auth.create_user(s, name, role, dept, password="password-123",
                                           with_token=True)
            out[name] = (user.id, token)
    return out


# The served app's clock starts here (a Friday morning, a working day) whatever today is, and
# runs at real speed: outcomes that depend on deadlines and working time stay the same any day.
SERVED_FROM = datetime(2026, 11, 27, 10, 0, tzinfo=timezone(timedelta(hours=7)))


@pytest.fixture
def server_clock():
    """The served app's clock: real time shifted to start at SERVED_FROM."""
    from engine.clock import ShiftedClock

    return ShiftedClock(SERVED_FROM)


@pytest.fixture
def server(loaded, server_clock):
    """The app with its embedded runner thread, served by waitress on a free local port; its
    engine reads `server_clock` (the database and scenarios are `loaded`'s)."""
    import threading

    from waitress import create_server

    from engine.app import create_app

    services = on_clock(loaded, server_clock)
    app = create_app(services=services, start_runner=True)
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    try:
        # Closed by the server's own loop (its trigger runs the call there): closing its
        # sockets from this thread could pull them from under the loop's select (EBADF there).
        srv.trigger.pull_trigger(srv.close)
    except OSError:
        pass  # the loop had ended and closed its trigger: nothing is left to close
    finally:
        # Whatever happened to the server, its runner must stop: left running on the shared
        # test database with this clock, it would fire the next test's timers (seen once).
        services.runner.stop()
        thread.join(5)
