"""The rq queue of partition jobs, with at most one waiting job per partition."""
from __future__ import annotations

import math
from collections.abc import Iterable

import redis
from rq import Queue

JOB = "worker.jobs.drain_partition"
# Set while a job for the partition waits or runs: events stored meanwhile need no job of their
# own (the running job looks for them before it ends). Without it, each request queued a job
# for its partitions while they were being drained, and jobs of a few events each cost more in
# rq than the events did (measured at 500 events/s).
WAITING = "ioc:waiting:{queue}:{partition}"
# A waiting job that vanished (Redis restarted, queue flushed) must not block its partition
# for long: the marker expires and the relay enqueues again.
WAITING_TTL_S = 60


def connect(url: str) -> redis.Redis:
    """A Redis client that fails fast: ingestion must never wait on Redis."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)


def job_queue(connection: redis.Redis, name: str) -> Queue:
    """The queue the workers listen on."""
    return Queue(name, connection=connection)


def enqueue_partitions(queue: Queue, partitions: Iterable[int]) -> int:
    """Put a drain job on the queue for each partition that has none waiting; return how many."""
    connection = queue.connection
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    markers = [WAITING.format(queue=queue.name, partition=p) for p in wanted]
    with connection.pipeline() as pipe:
        for marker in markers:
            pipe.set(marker, 1, nx=True, ex=WAITING_TTL_S)
        fresh = [p for p, was_set in zip(wanted, pipe.execute()) if was_set]
    if fresh:
        queue.enqueue_many([Queue.prepare_data(JOB, (p,), result_ttl=0, failure_ttl=86400,
                                               description=f"drain partition {p}")
                            for p in fresh])
    return len(fresh)


def hold_waiting(connection: redis.Redis, queue_name: str, partition: int, ttl_s: float) -> None:
    """The partition's job runs: no other job for it is queued for `ttl_s` (its lock's time,
    renewed with the lock, so a killed worker's partition is free when its lock is)."""
    connection.set(WAITING.format(queue=queue_name, partition=partition), 1,
                   ex=max(1, math.ceil(ttl_s)))


def clear_waiting(connection: redis.Redis, queue_name: str, partition: int) -> None:
    """The partition's job is done: the next new event needs a new job."""
    connection.delete(WAITING.format(queue=queue_name, partition=partition))
