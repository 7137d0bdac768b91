"""Job durations kept in Redis as a histogram: workers write them (worker/jobs.py), /metrics of
any web process reads them (a worker process serves no HTTP)."""
from __future__ import annotations

import redis

KEY = "ioc:job_seconds:{queue}"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def observe(connection: redis.Redis, queue_name: str, seconds: float) -> None:
    """Count one job of `seconds` (cumulative buckets, sum and count, as Prometheus wants)."""
    key = KEY.format(queue=queue_name)
    with connection.pipeline(transaction=False) as pipe:
        for bound in BUCKETS:
            if seconds <= bound:
                pipe.hincrby(key, f"le:{bound}", 1)
        pipe.hincrby(key, "count", 1)
        pipe.hincrbyfloat(key, "sum", seconds)
        pipe.execute()


def read(connection: redis.Redis, queue_name: str) -> tuple[list[tuple[str, int]], float, int]:
    """(cumulative buckets as [(upper bound, count)] ending with +Inf, sum, count)."""
    raw = {k.decode(): v.decode() for k, v in
           connection.hgetall(KEY.format(queue=queue_name)).items()}
    count = int(raw.get("count", 0))
    buckets = [(str(bound), int(raw.get(f"le:{bound}", 0))) for bound in BUCKETS]
    return buckets + [("+Inf", count)], float(raw.get("sum", 0.0)), count
