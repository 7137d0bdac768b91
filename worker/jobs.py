"""The worker's job: drain some partitions' pending events, each under the partition's lock.

Workers are rq `SimpleWorker`s: jobs run in the worker process itself, so its rule matcher (and
what it has seen of each partition) lives from one job to the next. A forking worker would start
every job with an empty matcher and replay the event store each time.
"""
from __future__ import annotations

import logging
import math
import time

from redis.exceptions import LockError
from rq import Worker

from engine.config import Settings
from engine.events.partitions import PARTITIONS
from engine.ops import garbage
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

    One job serves the partitions of one request (or of one relay pass), in one transaction per
    batch: at a few hundred events per second a partition has only a few events ready at once,
    and rq's cost per job and a batch's own statements were each that of several events
    (measured at 250 and 500 events/s). Between batches the job keeps the partitions that have
    events ready and takes over the jobs waiting behind it: their events are served in its next
    batch instead of after a trip through the queue each.
    """
    ioc = services()
    connection, name = ioc.redis, ioc.settings.queue_name
    started, handled, more = time.monotonic(), 0, False
    held = _Held(connection, name, ioc.settings.partition_lock_s)
    share = _share(ioc.relay.queue)
    try:
        held.take(partitions)
        while held:
            with log_context(partitions=sorted(held)):
                n = ioc.pipeline.run_once(BATCH, sorted(held))
            if n:
                garbage.after_batch()
            handled += n
            if time.monotonic() - started > BUDGET_S:
                more = True  # one hot key must not starve the other partitions
                break
            if n < BATCH:
                held.take(jobs_queue.take_waiting(ioc.relay.queue, share - len(held)))
                ready = ioc.relay.ready_among(set(held))
                # What has nothing ready goes back: its next event queues a job that an idle
                # worker takes at once (an event stored before the markers were cleared is
                # found by this look). So does what is over this job's share: one job holding
                # every busy partition made batches of 200 while the other worker idled
                # (measured at 250 events/s).
                back = (set(held) - ready) | set(sorted(ready)[share:])
                held.let_go(back)
                ioc.relay.kick(ioc.relay.ready_among(back))
            held.renew()
    finally:
        let_go = set(held)
        held.let_go(let_go)
        stats.observe(connection, name, time.monotonic() - started)
    # Events stored while the job ran queued no job (their partition's marker was held): look
    # for them now that the markers are cleared (an event committed after this look finds its
    # marker cleared and kicks).
    again = let_go if more else ioc.relay.ready_among(let_go)
    if again:
        ioc.relay.kick(again)
    return handled


def _share(queue) -> int:
    """The partitions one job may hold: an even share among the queue's workers."""
    return math.ceil(PARTITIONS / max(1, Worker.count(queue=queue)))


class _Held:
    """The partitions a job holds: each one's lock, and its marker (no other job is queued for
    it), both kept for the lock's lifetime so that a killed worker's partitions come free."""

    def __init__(self, connection, queue_name: str, lock_s: float):
        self.connection, self.queue_name, self.lock_s = connection, queue_name, lock_s
        self.locks: dict = {}
        self.renewed = time.monotonic()

    def __len__(self) -> int:
        return len(self.locks)

    def __iter__(self):
        return iter(self.locks)

    def take(self, partitions: list[int]) -> None:
        """Lock these partitions; one another worker holds is left to it (it looks again when
        it lets go)."""
        if not partitions:
            return
        jobs_queue.hold_waiting(self.connection, self.queue_name, partitions, self.lock_s)
        for partition in partitions:
            lock = self.connection.lock(LOCK.format(queue=self.queue_name, partition=partition),
                                        timeout=self.lock_s, blocking=False)
            if lock.acquire():
                self.locks[partition] = lock

    def renew(self) -> None:
        """Extend the locks and markers once a third of their lifetime has passed."""
        if time.monotonic() - self.renewed < self.lock_s / 3:
            return
        for lock in self.locks.values():
            lock.extend(self.lock_s, replace_ttl=True)
        jobs_queue.hold_waiting(self.connection, self.queue_name, self.locks, self.lock_s)
        self.renewed = time.monotonic()

    def let_go(self, partitions: set[int]) -> None:
        """Release these partitions' locks and clear their markers."""
        for partition in partitions:
            try:
                self.locks.pop(partition).release()
            except LockError:
                log.warning("partition %s: the lock had expired (a pass longer than %s s)",
                            partition, self.lock_s)
        # A partition another worker holds keeps its marker: that worker clears it and looks.
        jobs_queue.clear_waiting(self.connection, self.queue_name, partitions)


def drain_partition(partition: int) -> int:
    """One partition's ready events (jobs queued before jobs served several partitions)."""
    return drain_partitions([partition])
