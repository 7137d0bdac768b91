"""Operations: /healthz, /readyz (real database, real Redis), /metrics, JSON logs with ids."""
from __future__ import annotations

import io
import json
import logging
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.app import create_app
from engine.db import Database
from engine.ops import logs
from engine.ops.metrics import PIPELINE_PASS
from tests.conftest import IN_CI
from tests.spine_helpers import dossier, send

REDIS_URL = "redis://127.0.0.1:6379/0"


def _client(services):
    app = create_app(services=services)
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture
def client(ioc):
    return _client(ioc)


@pytest.fixture
def redis_url():
    """The real Redis at 127.0.0.1:6379; skipped when absent locally, a failure in CI."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no service"
        if IN_CI:
            pytest.fail(f"Redis is required in CI and is not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


# -- probes ----------------------------------------------------------------------------------

def test_healthz_answers_ok(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def _on(ioc, day: str):
    """The engine of `ioc` on a clock stopped at noon of `day` (Asia/Ho_Chi_Minh)."""
    from datetime import datetime, timedelta, timezone

    from engine.clock import ManualClock
    from tests.conftest import on_clock

    noon = datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=timezone(timedelta(hours=7)))
    return on_clock(ioc, ManualClock(noon))


def test_readyz_without_redis_checks_the_database(ioc):
    resp = _client(_on(ioc, "2026-03-02")).get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"status": "ready", "warnings": [],
                               "checks": {"database": "ok", "redis": "not configured"}}


def test_the_calendars_end_is_told_months_ahead(ioc, people):
    """The shipped official holidays end with 2026: from July on, readiness (still 200), the
    metrics and the administrator's pages say so; a deadline after it is still computed."""
    assert ioc.calendar.last_official_year == 2026
    calm, near = _on(ioc, "2026-03-02"), _on(ioc, "2026-08-03")
    ready = _client(near).get("/readyz")
    assert ready.status_code == 200
    [warning] = ready.get_json()["warnings"]
    assert "2026" in warning and "2027" in warning
    assert "ioc_calendar_warning 1.0" in _client(near).get("/metrics").get_data(as_text=True)
    quiet = _client(calm).get("/metrics").get_data(as_text=True)
    assert "ioc_calendar_warning 0.0" in quiet
    assert "ioc_calendar_last_official_year 2026.0" in quiet
    from tests.test_web import _login

    for services, shown in ((near, True), (calm, False)):
        app = create_app(services=services)
        web = app.test_client()
        _login(web, "admin")
        page = web.get("/dead-letters").get_data(as_text=True)
        assert ('class="flash warn"' in page and "2027.yaml" in page) is shown
    civil = create_app(services=near).test_client()  # not theirs to act on
    _login(civil, "phvhcc")
    assert "2027.yaml" not in civil.get("/inbox").get_data(as_text=True)


def test_readyz_with_the_real_redis(ioc, redis_url):
    ioc.settings = replace(ioc.settings, redis_url=redis_url)
    resp = _client(ioc).get("/readyz")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_with_an_unreachable_redis_is_503_naming_it(ioc):
    ioc.settings = replace(ioc.settings, redis_url="redis://127.0.0.1:1/0")
    resp = _client(ioc).get("/readyz")
    assert resp.status_code == 503
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == 503 and "redis" in body["detail"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
    # Liveness does not depend on the dependencies.
    assert _client(ioc).get("/healthz").status_code == 200


def test_readyz_with_an_unreachable_database_is_503_naming_it(ioc):
    ioc.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        resp = _client(ioc).get("/readyz")
    finally:
        ioc.db.dispose()
    assert resp.status_code == 503
    body = resp.get_json()
    assert "database" in body["detail"]
    assert body["checks"] == {"database": "error: OperationalError", "redis": "not configured"}


# -- metrics ---------------------------------------------------------------------------------

def _samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_what_the_database_holds(loaded, source):
    client = _client(loaded)
    _, token = source
    before = PIPELINE_PASS.collect()[0]
    passes_before = next(s.value for s in before.samples if s.name.endswith("_count"))
    received = dossier("dossier.received", "H01.2026.0042")
    assert send(client, token, received).status_code == 202
    assert send(client, token, received).status_code == 202  # the same event again: duplicate
    for reason in ("Thiếu bản sao CCCD", "Thiếu giấy xác nhận cư trú"):
        send(client, token, dossier("dossier.supplement_requested", "H01.2026.0042",
                                    reason=reason))
    assert send(client, token, {"specversion": "1.0", "id": "bad-1", "source": "/x",
                                "type": "no.such.type"}).status_code >= 400
    send(client, token, dossier("dossier.received", "H01.2026.0043"))
    assert loaded.pipeline.drain() > 0

    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    text = resp.get_data(as_text=True)
    assert 'ioc_events_total{outcome="accepted",source="test-source"} 4.0' in text
    got = _samples(text)
    src = ("source", "test-source")
    assert got[("ioc_events_total", (("outcome", "duplicate"), src))] == 1
    assert got[("ioc_events_total", (("outcome", "refused"), src))] >= 1
    assert got[("ioc_events_pending", ())] == 0
    assert got[("ioc_events_failed", ())] == 0
    assert got[("ioc_rule_matches_total", (("scenario", "dossier-violations"),))] == 1
    assert got[("ioc_instances_total",
                (("scenario", "dossier-violations"), ("status", "running")))] == 1
    assert got[("ioc_tasks_open", (("department", "trung-tam-phvhcc"),))] == 1
    assert got[("ioc_timers_failed", ())] == 0
    assert got[("ioc_timers_pending", ())] >= 1  # at least the task's SLA level
    assert got[("ioc_metrics_database_up", ())] == 1
    assert got[("ioc_pipeline_pass_seconds_count", ())] > passes_before
    assert ("ioc_scheduler_pass_seconds_count", ()) in got

    # One more event, not processed yet: the queue depth shows it at the next scrape.
    send(client, token, dossier("dossier.received", "H01.2026.0044"))
    assert _samples(client.get("/metrics").get_data(as_text=True))[
        ("ioc_events_pending", ())] == 1


def test_metrics_answer_when_the_database_does_not(ioc):
    ioc.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        resp = _client(ioc).get("/metrics")
    finally:
        ioc.db.dispose()
    assert resp.status_code == 200
    assert _samples(resp.get_data(as_text=True))[("ioc_metrics_database_up", ())] == 0


# -- logs ------------------------------------------------------------------------------------

class _LoggingObserver:
    """Logs from inside an instance's step, as the SLA engine or a scenario bug would."""

    def after_step(self, session, instance, version, workflow, tasks=None):
        logging.getLogger("tests.ops").warning("step of %s", instance.scenario_key)

    def task_claimed(self, session, task):
        pass


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logs.make_handler("json", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_json_log_lines_carry_the_event_and_instance(loaded, source, json_log, monkeypatch):
    client = _client(loaded)
    _, token = source
    loaded.runtime.observers.append(_LoggingObserver())
    send(client, token, dossier("dossier.received", "H02.1"))
    send(client, token, dossier("dossier.supplement_requested", "H02.1", reason="a"))
    send(client, token, dossier("dossier.supplement_requested", "H02.1", reason="b"))
    loaded.pipeline.drain()
    step = [r for r in json_log() if r["logger"] == "tests.ops"]
    assert step, json_log()
    assert {"time", "level", "logger", "message", "event_id", "instance_id"} <= set(step[0])
    assert step[0]["message"] == "step of dossier-violations"

    # An event whose handling fails: the pipeline's error line names it.
    def boom(session, event):
        raise RuntimeError("broken adapter")

    monkeypatch.setattr(loaded.pipeline, "_deliver_messages", boom)
    monkeypatch.setattr(loaded.pipeline, "max_attempts", 1)  # a dead letter at once
    send(client, token, dossier("dossier.received", "H02.2"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        from engine.events.models import Event

        failed = s.query(Event).filter_by(status="failed").one()
    line = next(r for r in json_log()
                if r["message"] == f"event {failed.id} failed for good: a dead letter")
    assert line["level"] == "ERROR" and line["logger"] == "engine.pipeline"
    assert line["event_id"] == failed.id
    assert "instance_id" not in line
    assert "RuntimeError: broken adapter" in line["exc_info"]
    # Outside the event, no ids.
    logging.getLogger("tests.ops").warning("after")
    assert "event_id" not in json_log()[-1]


def test_text_format_and_configure():
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        handler = logs.configure("text", logging.INFO, stream, force=True)
        assert handler in root.handlers
        with logs.log_context(event_id=7), logs.log_context(instance_id=3):
            logging.getLogger("engine.x").info("hello")
        logging.getLogger("engine.x").info("plain")
        # Configuring again replaces the handler instead of adding a second one.
        again = logs.configure("json", logging.INFO, stream, force=True)
        assert handler not in root.handlers and again in root.handlers
        # When something else set up logging already, configure leaves it alone (basicConfig).
        root.addHandler(logging.NullHandler())
        assert logs.configure("json", logging.INFO, stream) is None
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO engine.x event_id=7 instance_id=3: hello")
    assert second.endswith("INFO engine.x: plain")
    with pytest.raises(ValueError):
        logs.make_handler("xml")


def test_a_settled_process_frees_a_batchs_cyclic_garbage_young():
    """engine/ops/garbage, in a process of its own (freezing would hold this one's objects)."""
    import subprocess
    import sys

    script = """
import gc, weakref
from engine.ops import garbage

garbage.settle()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()  # what was loaded stays out
assert gc.get_threshold()[0] == garbage.YOUNG_THRESHOLD

class Node:
    pass

def batch():
    nodes = [Node() for _ in range(500)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.next = b  # a ring: only the cycle collector frees it
    return weakref.ref(nodes[0])

ring = batch()
assert ring() is not None  # garbage, but a young collection has not run on its own
before = gc.get_stats()[2]["collections"]
garbage.after_batch()
assert ring() is None and gc.get_stats()[2]["collections"] == before  # young, not a full pass
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
