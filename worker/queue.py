"""The rq queue of partition jobs, with at most one waiting job per partition."""
from __future__ import annotations

from collections.abc import Iterable

import redis
from rq import Queue

JOB = "worker.jobs.drain_partition"
WAITING = "ioc:waiting:{queue}:{partition}"  # set while a job for the partition waits
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


def clear_waiting(connection: redis.Redis, queue_name: str, partition: int) -> None:
    """The partition's job has started: the next new event needs a new job."""
    connection.delete(WAITING.format(queue=queue_name, partition=partition))
