"""GET /healthz (alive), GET /readyz (database and Redis answer), GET /metrics (Prometheus).

No authentication: these belong on the internal network of the operators' monitoring (the
reverse proxy should not publish them). /readyz answers 503 with problem+json naming the
dependency that failed; the error itself is logged, not shown.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from engine import api
from engine.ops import metrics

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)

REDIS_TIMEOUT_S = 0.5


@bp.get("/healthz")
def healthz():
    """Alive: the process serves requests."""
    return jsonify({"status": "ok"})


def _check_database(db) -> None:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT_S,
                                  socket_timeout=REDIS_TIMEOUT_S)
    try:
        if not client.ping():
            raise ConnectionError("PING did not answer PONG")
    finally:
        client.close()


@bp.get("/readyz")
def readyz():
    """Ready: the database answers SELECT 1 and, when configured, Redis answers PING."""
    ioc = current_app.extensions["ioc"]
    checks: dict[str, str] = {}
    failing: list[str] = []
    probes = [("database", lambda: _check_database(ioc.db))]
    if ioc.settings.redis_url:
        probes.append(("redis", lambda: _check_redis(ioc.settings.redis_url)))
    else:
        checks["redis"] = "not configured"
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            log.warning("readiness: %s failed: %s: %s", name, type(exc).__name__, exc)
            checks[name] = f"error: {type(exc).__name__}"
            failing.append(name)
    checks = {k: checks[k] for k in ("database", "redis")}
    # Not a readiness failure: deadlines past the official holidays are still computed (from
    # the Labour Code and the lunar calendar, marked provisional); operators must add the file.
    warnings = [w for w in [ioc.calendar.coverage_warning(ioc.clock.now())] if w]
    if failing:
        return api.problem(503, "Service Unavailable",
                           f"not ready: {', '.join(failing)} did not answer", checks=checks,
                           warnings=warnings)
    return jsonify({"status": "ready", "checks": checks, "warnings": warnings})


@bp.get("/metrics")
def metrics_view():
    """Prometheus text format: database counts at scrape time and this process's pass timings."""
    body, content_type = metrics.exposition(current_app)
    return Response(body, content_type=content_type)
