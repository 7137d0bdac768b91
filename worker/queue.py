"""The rq queue of partition jobs: a partition is in at most one job, waiting or running."""
from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

import redis
from rq import Queue
from rq.job import Job

JOB = "worker.jobs.drain_partitions"
# Set while a job for the partition waits or runs: events stored meanwhile need no job of their
# own (the running job looks for them before it ends). Without it, each request queued a job
# for its partitions while they were being drained, and jobs of a few events each cost more in
# rq than the events did (measured at 500 events/s).
WAITING = "ioc:waiting:{queue}:{partition}"
# A waiting job that vanished (Redis restarted, queue flushed) must not block its partition
# for long: the marker expires and the relay enqueues again.
WAITING_TTL_S = 60
# Partitions a job serves at most: half of them, so two workers share a relay pass. Sent 500
# events/s, two workers processed 484–529 a second with jobs of eight, 318–480 with jobs of four.
PER_JOB = 8


def connect(url: str) -> redis.Redis:
    """A Redis client that fails fast: ingestion must never wait on Redis."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)


def job_queue(connection: redis.Redis, name: str) -> Queue:
    """The queue the workers listen on."""
    return Queue(name, connection=connection)


def enqueue_partitions(queue: Queue, partitions: Iterable[int]) -> int:
    """Put one drain job on the queue for the partitions that have none waiting or running;
    return how many partitions it serves."""
    connection = queue.connection
    wanted = sorted(set(partitions))
    if not wanted:
        return 0
    with connection.pipeline() as pipe:
        for p in wanted:
            pipe.set(_marker(queue.name, p), 1, nx=True, ex=WAITING_TTL_S)
        fresh = [p for p, was_set in zip(wanted, pipe.execute()) if was_set]
    # A few partitions per job: rq's cost is shared, and several workers still find work.
    chunks = [fresh[i:i + PER_JOB] for i in range(0, len(fresh), PER_JOB)]
    if chunks:
        queue.enqueue_many([Queue.prepare_data(
            JOB, (chunk,), result_ttl=0, failure_ttl=86400, job_id=_job_id(chunk),
            description=f"drain partitions {', '.join(map(str, chunk))}") for chunk in chunks])
    return len(fresh)


# A job's id names its partitions, so that a running job can take it over unread.
_ID_PREFIX = "drain-"


def _job_id(partitions: list[int]) -> str:
    return f"{_ID_PREFIX}{uuid.uuid4().hex}-{'-'.join(map(str, partitions))}"


def take_waiting(queue: Queue, room: int) -> list[int]:
    """Take drain jobs waiting in the queue off it, from its head, while their partitions fit in
    `room`; return those partitions, whose markers stay set: the caller serves them now (a job
    it took is one no worker will run)."""
    connection = queue.connection
    ids, fits = [], 0
    for raw in connection.lrange(queue.key, 0, -1):
        job_id = raw.decode() if isinstance(raw, bytes) else raw
        if job_id.startswith(_ID_PREFIX):
            size = len(_partitions_of(job_id))
            if fits + size > room:
                break
            ids.append(job_id)
            fits += size
    if not ids:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.lrem(queue.key, 1, job_id)
        taken = [job_id for job_id, removed in zip(ids, pipe.execute()) if removed]
    if not taken:
        return []  # workers took them first
    connection.delete(*(Job.key_for(job_id) for job_id in taken))
    return sorted(p for job_id in taken for p in _partitions_of(job_id))


def _partitions_of(job_id: str) -> list[int]:
    return [int(p) for p in job_id.split("-")[2:]]


def _marker(queue_name: str, partition: int) -> str:
    return WAITING.format(queue=queue_name, partition=partition)


def hold_waiting(connection: redis.Redis, queue_name: str, partitions: Iterable[int],
                 ttl_s: float) -> None:
    """The partitions' job runs: no other job for them is queued for `ttl_s` (the job's lock
    time, renewed with its locks, so a killed worker's partitions are free when its locks are)."""
    with connection.pipeline(transaction=False) as pipe:
        for p in partitions:
            pipe.set(_marker(queue_name, p), 1, ex=max(1, math.ceil(ttl_s)))
        pipe.execute()


def clear_waiting(connection: redis.Redis, queue_name: str, partitions: Iterable[int]) -> None:
    """The partitions' job is done: the next new event of each needs a new job."""
    keys = [_marker(queue_name, p) for p in partitions]
    if keys:
        connection.delete(*keys)
