"""The commands the README and docker-compose.yml name, run as a newcomer would.

docker-compose.yml cannot run here (no Docker), so each command it names runs below as the
compose file writes it, against the real PostgreSQL (a database of this module's own) and the real
Redis (database 14, flushed): the migration, gunicorn serving the app in Redis mode, the workers
and the scheduler. `test_compose_names_only_commands_this_module_runs` keeps the two in step.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
import yaml
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from bench.load import Stack, engine_env, free_port, scratch_database, wait_until
from engine.cli import main
from engine.db import Database
from engine.events.models import PENDING, PROCESSED, Event
from engine.tasks.models import Task
from tests.conftest import IN_CI, PG_URL
from tests.spine_helpers import BATCH, ticket

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/14"  # this module's own Redis database, flushed

# docker-compose.yml's commands, as this module runs them (the image is tests/test_packaging's).
MIGRATE = [["ioc", "db", "upgrade"], ["ioc", "org", "load"],
           ["ioc", "scenarios", "load", "scenarios"]]
WEB = ["gunicorn", "--workers", "2", "--threads", "4", "--no-control-socket",
       "engine.app:create_app()"]
WORKER = ["ioc", "worker"]
SCHEDULER = ["ioc", "scheduler"]
COMPOSE = {"migrate": MIGRATE, "web": [WEB], "worker-1": [WORKER], "worker-2": [WORKER],
           "scheduler": [SCHEDULER]}


def test_demo_sets_up_a_fresh_database(tmp_path, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "published   dossier-violations v1" in first.output
    assert "phvhcc.minh" in first.output and "ioc-demo-2025" in first.output
    tokens = json.loads((tmp_path / "var" / "demo-tokens.json").read_text())
    assert set(tokens) == {"mot-cua", "tong-dai-1022", "quan-trac", "giam-sat-mxh", "camera",
                           "an-ninh-mang", "canh-bao", "y-te"}
    # Running it again changes nothing and keeps the tokens.
    again = runner.invoke(main, ["demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert again.output.count("unchanged") == 11
    assert json.loads((tmp_path / "var" / "demo-tokens.json").read_text()) == tokens
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0


def _wait_for(url: str, proc: subprocess.Popen, log: Path | None = None) -> dict:
    """Poll `url` until it answers 200 (a server starting); return its JSON."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            output = log.read_text() if log else ""
            assert proc.poll() is None, output or proc.stdout.read().decode()
            assert time.monotonic() < deadline, f"{url} did not answer in 60 s\n{output}"
            time.sleep(0.2)


def test_ioc_serve_answers(tmp_path):
    env = {**os.environ, "IOC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    ioc = str(BIN / "ioc")
    subprocess.run([ioc, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([ioc, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert _wait_for(f"http://127.0.0.1:{port}/healthz", proc) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
            assert "Đăng nhập" in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)


# -- docker-compose.yml ---------------------------------------------------------------------------

def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _steps(command: str | list[str]) -> list[list[str]]:
    """A compose command as the argv of each step; a `sh -c` script split on ; and &&."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] != ["sh", "-c"]:
        return [argv]
    steps = [s for s in re.split(r"\s*(?:;|&&)\s*", argv[2].strip()) if s]
    return [shlex.split(s) for s in steps]


def test_compose_names_only_commands_this_module_runs():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", *COMPOSE}
    for name, expected in COMPOSE.items():
        assert _steps(services[name]["command"]) == expected, name
        assert services[name]["environment"]["IOC_REDIS_URL"], name  # Redis mode everywhere
    # Every engine service runs the image the Dockerfile builds.
    for name in COMPOSE:
        assert services[name]["build"] == "." and "volumes" not in services[name], name
    assert "command" not in services["postgres"] and "command" not in services["redis"]
    # Startup order: the migration after PostgreSQL, everything else after the migration.
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in COMPOSE.keys() - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "/readyz" in services["web"]["healthcheck"]["test"][-1]
    assert services["web"]["environment"]["GUNICORN_CMD_ARGS"] == "--bind 0.0.0.0:5000"
    assert services["web"]["ports"] == ["5000:5000"]
    assert set(_compose()["volumes"]) == {"pgdata", "redisdata"}


# -- the stack against the real PostgreSQL and Redis ---------------------------------------------

def _unavailable(what: str, url: str, exc: Exception):
    if IN_CI:
        pytest.fail(f"{what} is required in CI and is not reachable at {url}: {exc}")
    pytest.skip(f"{what} not reachable at {url}: {exc}")


@pytest.fixture(scope="module")
def pg_url():
    """An empty PostgreSQL database of this module's own, dropped afterwards."""
    server = create_engine(make_url(PG_URL).set(database="postgres"))
    try:
        server.connect().close()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no service"
        _unavailable("PostgreSQL", PG_URL, exc)
    finally:
        server.dispose()
    with scratch_database(PG_URL, "ioc_cmd") as url:
        yield url


@pytest.fixture(scope="module")
def redis_db():
    """This module's Redis database, empty at the start and at the end."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _unavailable("Redis", REDIS_URL, exc)
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def env(pg_url, redis_db):
    """The environment of docker-compose.yml's engine services, pointing at ours."""
    return engine_env(pg_url, REDIS_URL)


def _run(argv: list[str], env: dict) -> str:
    """Run a command of this virtualenv from the project root (compose's /app); its output."""
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{shlex.join(argv)}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def migrated(env):
    """What `migrate` printed, step by step."""
    return [_run(step, env) for step in MIGRATE]


@pytest.fixture(scope="module")
def store(pg_url, migrated):
    """The engine's database, to look at what the processes did."""
    db = Database(pg_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def web(env, migrated, tmp_path_factory):
    """compose's `web` command serving on a free local port: (base URL, port)."""
    port = free_port()
    logs = tmp_path_factory.mktemp("web")
    stack = Stack({**env, "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"}, logs)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz", stack.start("web", WEB), logs / "web.log")
        yield base, port
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def token(env, migrated):
    """A source's API token, made as an operator would (`ioc sources add`)."""
    out = _run(["ioc", "sources", "add", "compose-tests"], env)
    return re.search(r"API token \(shown once\): (\S+)", out).group(1)


@pytest.fixture
def queue(redis_db):
    """The rq queue the web fills and the workers drain, empty at the start of the test."""
    redis_db.flushdb()
    return Queue("ioc", connection=redis_db)


def _post(base: str, token: str, events: list[dict]) -> dict:
    req = urllib.request.Request(f"{base}/api/v1/events", data=json.dumps(events).encode(),
                                 method="POST", headers={"Content-Type": BATCH,
                                                         "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
        return json.loads(resp.read())


def _tickets(n: int) -> list[dict]:
    tag = uuid.uuid4().hex[:8]
    return [ticket(f"1022-{tag}-{i}") for i in range(n)]


def _statuses(db: Database, events: list[dict]) -> dict[str, int]:
    with db.read() as s:
        return dict(s.execute(select(Event.status, func.count()).where(
            Event.ce_id.in_([e["id"] for e in events])).group_by(Event.status)).all())


def _tasks_for(db: Database, events: list[dict]) -> list[Task]:
    with db.read() as s:
        return list(s.scalars(select(Task).where(Task.context["ticket_id"].as_string().in_(
            [e["data"]["ticket_id"] for e in events]))))


def _healthcheck(port: int) -> subprocess.CompletedProcess:
    """The web's compose health check, aimed at `port` instead of the container's 5000."""
    argv = _compose()["services"]["web"]["healthcheck"]["test"]
    assert argv[:2] == ["CMD", "python"] and "127.0.0.1:5000" in argv[-1]
    return subprocess.run([sys.executable, *argv[2:-1],
                           argv[-1].replace("127.0.0.1:5000", f"127.0.0.1:{port}")],
                          capture_output=True, timeout=30)


def test_migrate_then_gunicorn_stores_and_a_burst_worker_processes(
        migrated, web, token, queue, store, env):
    upgrade, org_load, scenarios_load = migrated
    assert "database is up to date" in upgrade
    assert "organisation units" in org_load
    assert re.search(r"published\s+hotline-ticket v\d", scenarios_load)
    base, port = web
    with urllib.request.urlopen(f"{base}/readyz", timeout=10) as resp:
        ready = json.loads(resp.read())
    # (Its `warnings` depend on today's date: the calendar's end is told months ahead.)
    assert (ready["status"], ready["checks"]) == ("ready", {"database": "ok", "redis": "ok"})
    assert _healthcheck(port).returncode == 0
    assert _healthcheck(free_port()).returncode != 0  # nothing listens there: unhealthy

    events = _tickets(1)
    assert _post(base, token, events)["accepted"] == 1
    # The web only stores and enqueues: in Redis mode it processes nothing itself.
    assert _statuses(store, events) == {PENDING: 1}
    assert queue.count == 1

    _run(WORKER + ["--burst"], env)
    assert _statuses(store, events) == {PROCESSED: 1}
    assert [t.department_key for t in _tasks_for(store, events)] == ["so-nong-nghiep-moi-truong"]
    assert queue.count == 0

    out = _run(SCHEDULER + ["--once"], env)
    assert re.fullmatch(r"timers fired: \d+, notifications sent: \d+, partitions enqueued: 0\n",
                        out), out


def test_a_sources_rate_limit_holds_across_the_web_workers(web, env, queue):
    """Two gunicorn workers share a source's window in Redis: 60 requests at once from 12
    threads, over a limit of 10 a minute, are accepted exactly 10 times (a window per process
    let each worker accept 10)."""
    from concurrent.futures import ThreadPoolExecutor

    out = _run(["ioc", "sources", "add", f"limited-{uuid.uuid4().hex[:6]}", "--rate-limit",
                "10"], env)
    token = re.search(r"API token \(shown once\): (\S+)", out).group(1)
    base, _ = web

    def send(i: int) -> int:
        body = json.dumps([ticket(f"1022-rl-{uuid.uuid4().hex[:6]}-{i}")]).encode()
        req = urllib.request.Request(f"{base}/api/v1/events", data=body, method="POST",
                                     headers={"Content-Type": BATCH,
                                              "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            assert exc.code != 429 or int(exc.headers["Retry-After"]) >= 1
            return exc.code

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, range(60)))
    assert sorted(set(answers)) == [202, 429] and answers.count(202) == 10, answers
    _run(WORKER + ["--burst"], env)  # nothing left pending for the tests after this one


def test_the_scheduler_relays_events_whose_job_redis_lost(web, token, queue, store, env):
    base, _ = web
    events = _tickets(1)
    assert _post(base, token, events)["accepted"] == 1
    queue.connection.flushdb()  # Redis restarted empty: the job is gone, the event is not
    _run(WORKER + ["--burst"], env)
    assert _statuses(store, events) == {PENDING: 1}

    assert _run(SCHEDULER + ["--once"], env).endswith("partitions enqueued: 1\n")
    assert queue.count == 1
    _run(WORKER + ["--burst"], env)
    assert _statuses(store, events) == {PROCESSED: 1}
    assert len(_tasks_for(store, events)) == 1


def test_compose_workers_and_scheduler_drain_a_stream_and_stop_on_sigterm(
        web, token, queue, store, env, tmp_path):
    base, _ = web
    stack = Stack(env, tmp_path)
    try:
        for name, argv in (("worker-1", WORKER), ("worker-2", WORKER), ("scheduler", SCHEDULER)):
            stack.start(name, argv)
        # Stopping is what is tested: each process must have started (a SIGTERM while Python
        # is still importing ends it as the default action says, -15).
        for name, says in (("worker-1", "on queue"), ("worker-2", "on queue"),
                           ("scheduler", "scheduler running")):
            wait_until(lambda: says in (tmp_path / f"{name}.log").read_text(), 120,
                       f"{name} started")
        events = _tickets(40)  # 40 tickets: 40 subjects, spread over the partitions
        for i in range(0, len(events), 10):
            assert _post(base, token, events[i:i + 10])["accepted"] == 10
        deadline = time.monotonic() + 120
        while _statuses(store, events) != {PROCESSED: 40}:
            stack.check()  # none of them may exit
            assert time.monotonic() < deadline, _statuses(store, events)
            time.sleep(0.2)
        assert len(_tasks_for(store, events)) == 40
    finally:
        stack.stop()  # SIGTERM, as `docker compose stop` sends
    codes = {name: proc.returncode for name, proc in stack.procs.items()}
    assert codes == {"worker-1": 0, "worker-2": 0, "scheduler": 0}, {
        name: (tmp_path / f"{name}.log").read_text() for name in codes}
    assert "audit log intact" in _run(["ioc", "audit", "verify"], env)


def test_the_batches_bench_counts_a_workers_statements(pg_url):
    """bench/batches.py (the README's figures of statements and CPU per event), on a short
    stream; a database of its own, as the bench makes one (`pg_url` checks the server)."""
    from bench.batches import measure

    with scratch_database(PG_URL, "ioc_bench") as url:
        result = measure(url, 60, 20)
    assert result["handled"] == 60 and result["cpu"] > 0
    statements = result["statements"]
    # Each of the 3 batches marks its events processed in one executemany.
    assert sum(n for s, n in statements.items() if s.startswith("UPDATE events SET")) == 3
    # A regression guard on the count (not a time): 1.7 per event in batches of 20 measured.
    assert 0 < sum(statements.values()) / 60 < 4


def test_the_correlations_bench_prints_its_figures_and_exact_detections(pg_url):
    """bench/correlations.py (the README's figures of correlations in the database), tiny: each
    part prints its figures, and the violations are exactly the dossiers asked twice, found by
    two worker processes; a database of its own, as bench/batches.py's test makes one."""
    with scratch_database(PG_URL, "ioc_bench") as url:
        done = subprocess.run(
            [sys.executable, "bench/correlations.py", "--database", url, "--dossiers", "60",
             "--repeated", "30", "--stored", "500", "--stream", "300", "--workers", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "30 violations of repeated-supplement-request (expected 30): EXACT" in out
    assert "30 correlations left open" in out
    assert re.search(r"rule_states .* = [\d,]+ B per open correlation \(database", out), out
    assert re.search(r"RSS growth .*: -?[\d,]+ B per open correlation", out), out
    # The restarted process's event is the second request of a dossier asked once before it.
    assert re.search(r"next event processed in [\d.]+ s .* that event matched", out), out
    assert re.search(r"processed in [\d.]+ s = [\d,]+ events/s.*violations \(expected [\d,]+\)$",
                     out, re.MULTILINE), out
    assert "WRONG" not in out
