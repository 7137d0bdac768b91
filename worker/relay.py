"""The relay: what the database holds as pending becomes jobs on the queue.

Ingestion commits its events first, then `kick`s their partitions. If Redis is down at that
moment the kick is lost, not the events: `scan` (run by `ioc scheduler` every pass) finds every
partition with ready pending events and enqueues it, so a backlog drains once Redis is back.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.exceptions import RedisError
from sqlalchemy import or_, select

from engine.clock import Clock
from engine.db import Database
from engine.events.models import PENDING, Event
from worker.queue import enqueue_partitions

log = logging.getLogger(__name__)


class Relay:
    """Turns pending events into partition jobs; never raises for Redis being away."""

    def __init__(self, db: Database, queue, clock: Clock):
        self.db, self.queue, self.clock = db, queue, clock

    def _ready(self):
        return (Event.status == PENDING,
                or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= self.clock.now()))

    def kick(self, partitions: Iterable[int]) -> int:
        """Enqueue these partitions now (after a commit); 0 if Redis cannot be reached."""
        try:
            return enqueue_partitions(self.queue, partitions)
        except RedisError as exc:
            log.warning("Redis unreachable, the relay will enqueue later: %s", exc)
            return 0

    def ready_among(self, partitions: set[int]) -> set[int]:
        """The partitions among these that have an event ready to process."""
        if not partitions:
            return set()
        with self.db.read() as s:
            return set(s.scalars(select(Event.partition).where(
                *self._ready(), Event.partition.in_(partitions)).distinct()))

    def scan(self) -> int:
        """Enqueue every partition with ready pending events; return how many were enqueued."""
        with self.db.read() as s:
            partitions = set(s.scalars(select(Event.partition).where(*self._ready())
                                       .distinct()))
        return self.kick(partitions) if partitions else 0
