"""The worker's job: drain some partitions' pending events, each under the partition's lock.

Workers are rq `SimpleWorker`s: jobs run in the worker process itself, so its rule matcher (and
what it has seen of each partition) lives from one job to the next. A forking worker would start
every job with an empty matcher and replay the event store each time.
"""
from __future__ import annotations

import logging
import time

from redis.exceptions import LockError

from engine.config import Settings
from engine.ops import jobstats as stats
from engine.ops.logs import log_context
from engine.services import Services
from worker import queue as jobs_queue

log = logging.getLogger(__name__)

LOCK = "ioc:partition:{queue}:{partition}"
BATCH = 200
# A busy partition yields after this long, so that one hot key cannot starve the others.
BUDGET_S = 5.0

_services: Services | None = None


def use(services: Services) -> None:
    """The services the jobs of this process run with (set by `ioc worker`)."""
    global _services
    _services = services


def services() -> Services:
    """This process's services, built once from the environment if `use` was not called."""
    global _services
    if _services is None:
        _services = Services(Settings.from_env())
    return _services


def drain_partitions(partitions: list[int]) -> int:
    """Process the ready events of these partitions in order, holding their locks; return how
    many were handled.

    One job serves the partitions of one request (or of one relay pass), a few at a time, in
    one transaction per batch: at a few hundred events per second a partition has only a few
    events ready at once, and rq's cost per job and a batch's own statements were each that of
    several events (measured at 250 and 500 events/s).
    """
    ioc = services()
    connection, name = ioc.redis, ioc.settings.queue_name
    lock_s = ioc.settings.partition_lock_s
    started, handled, more = time.monotonic(), 0, False
    # Held while the job runs (not only while it waits), with its locks' lifetime: a killed
    # worker's partitions are free again when its locks are.
    jobs_queue.hold_waiting(connection, name, partitions, lock_s)
    locks = {}
    try:
        for partition in partitions:
            lock = connection.lock(LOCK.format(queue=name, partition=partition),
                                   timeout=lock_s, blocking=False)
            if lock.acquire():  # else another worker drains it, and looks after letting go
                locks[partition] = lock
        with log_context(partitions=sorted(locks)):
            while locks:
                n = ioc.pipeline.run_once(BATCH, sorted(locks))
                handled += n
                if n < BATCH:
                    break  # drained (what arrives meanwhile: see below)
                for lock in locks.values():
                    lock.extend(lock_s, replace_ttl=True)
                jobs_queue.hold_waiting(connection, name, locks, lock_s)
                if time.monotonic() - started > BUDGET_S:
                    more = True  # one hot key must not starve the other partitions
                    break
    finally:
        for partition, lock in locks.items():
            try:
                lock.release()
            except LockError:
                log.warning("partition %s: the lock had expired (a pass longer than %s s)",
                            partition, lock_s)
        # A partition another worker holds keeps its marker: that worker clears it and looks.
        jobs_queue.clear_waiting(connection, name, locks)
        stats.observe(connection, name, time.monotonic() - started)
    # Events stored while the job ran queued no job (their partition's marker was held): look
    # for them now that the markers are cleared (an event committed after this look finds its
    # marker cleared and kicks).
    again = set(locks) if more else ioc.relay.ready_among(set(locks))
    if again:
        ioc.relay.kick(again)
    return handled


def drain_partition(partition: int) -> int:
    """One partition's ready events (jobs queued before jobs served several partitions)."""
    return drain_partitions([partition])
