"""Operations: liveness and readiness probes, Prometheus metrics, structured logs.

`register(app)` adds /healthz, /readyz and /metrics (docs/operations.md). The submodules stay
importable on their own: the pipeline and the runtime import `logs` and `metrics` (for the
log context and the pass timings) without pulling in Flask views.
"""
from __future__ import annotations


def register(app) -> None:
    """Add the operations endpoints to `app` (unauthenticated: for the internal network)."""
    from engine.ops import health, metrics

    metrics.install(app)
    app.register_blueprint(health.bp)
