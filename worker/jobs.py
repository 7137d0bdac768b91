"""The worker's job: drain one partition's pending events, holding the partition's lock.

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


def drain_partition(partition: int) -> int:
    """Process the partition's ready events in order; return how many were handled."""
    ioc = services()
    connection = ioc.redis
    name = ioc.settings.queue_name
    lock_s = ioc.settings.partition_lock_s
    jobs_queue.hold_waiting(connection, name, partition, lock_s)
    lock = connection.lock(LOCK.format(queue=name, partition=partition), timeout=lock_s,
                           blocking=False)
    if not lock.acquire():
        return 0  # another worker drains it; it looks again after letting go
    started, handled, more = time.monotonic(), 0, False
    try:
        with log_context(partition=partition):
            while True:
                n = ioc.pipeline.run_once(BATCH, partition)
                handled += n
                if n < BATCH:
                    break  # drained (what arrives meanwhile is looked for after letting go)
                lock.extend(lock_s, replace_ttl=True)
                jobs_queue.hold_waiting(connection, name, partition, lock_s)
                if time.monotonic() - started > BUDGET_S:
                    more = True
                    break
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("partition %s: the lock had expired (a pass longer than %s s)",
                        partition, lock_s)
        jobs_queue.clear_waiting(connection, name, partition)
        stats.observe(connection, name, time.monotonic() - started)
    # Events stored while the job ran queued no job (the marker was held): look for them now
    # that it is cleared (an event committed after this look finds it cleared and kicks).
    if more or ioc.relay.ready_in(partition):
        ioc.relay.kick({partition})
    return handled
