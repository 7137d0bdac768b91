"""The scheduler pass: fire what is due, each timer in the same transaction as its effect.

A pass reads only pending timers due by now, through a partial index on due_at, so its cost
depends on how many are due, not on how many exist. On PostgreSQL the rows are taken FOR UPDATE
SKIP LOCKED, so two schedulers never fire the same timer; on SQLite there is one writer anyway.
A timer is marked fired in the savepoint of its own effect: after a crash either both happened
or neither did, and an overdue timer fires once on the next pass.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.clock import Clock
from engine.db import Database, is_transient
from engine.ops.metrics import SCHEDULER_PASS, timed
from engine.processes.models import ProcessInstance
from engine.timers.models import FAILED, FIRED, Timer, is_pending

log = logging.getLogger(__name__)

Handler = Callable[[Session, Timer], None]


class Scheduler:
    """Fires due timers through one handler per timer kind."""

    def __init__(self, db: Database, clock: Clock, handlers: Mapping[str, Handler]):
        self.db, self.clock, self.handlers = db, clock, dict(handlers)

    @timed(SCHEDULER_PASS)
    def run_once(self, limit: int = 500) -> int:
        """Fire up to `limit` due timers, oldest due first; return how many were handled."""
        with self.db.session() as session:
            now = self.clock.now()
            timers = self._take(session, now, limit)
            for index, timer in enumerate(timers):
                try:
                    with session.begin_nested():
                        self._fire(session, timer)
                except Exception as exc:  # noqa: BLE001 - one bad timer must not stop the others
                    if is_transient(exc):
                        # Another step got there first (a deadlock victim, a stale copy): the
                        # timer stays pending; leave the rest for the next pass.
                        log.info("timer %s met a concurrent step (%s); retrying later",
                                 timer.id, str(exc).splitlines()[0])
                        return index
                    log.exception("timer %s failed", timer.id)
                    timer.status, timer.error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
                    timer.fired_at = now
                    audit.record(session, "timer.failed", actor="scheduler",
                                 subject_type="timer", subject_id=timer.id,
                                 instance_id=timer.instance_id,
                                 details={"kind": timer.kind, "ref": timer.ref,
                                          "error": timer.error})
            return len(timers)

    def _take(self, session: Session, now: datetime, limit: int) -> list[Timer]:
        """The due timers this pass fires, oldest due first, locked with their instances."""
        query = (select(Timer).where(is_pending(), Timer.due_at <= now)
                 .order_by(Timer.due_at, Timer.id).limit(limit))
        if not self.db.is_postgres:
            return list(session.scalars(query))  # SQLite: one writer, nothing to lock
        # Instance first, then its timers: the order every step on an instance takes (its row
        # is locked before its timers, waits and tasks). SKIP LOCKED: an instance a worker or a
        # web completion holds is left for the next pass, so this pass never waits while
        # holding locks, and cannot close a cycle (measured before: DeadlockDetected against
        # the message path, which locked them in the other order).
        due = session.execute(query.with_only_columns(Timer.id, Timer.instance_id)).all()
        instance_ids = sorted({iid for _, iid in due if iid is not None})
        held = set(session.scalars(
            select(ProcessInstance.id).where(ProcessInstance.id.in_(instance_ids))
            .order_by(ProcessInstance.id).with_for_update(skip_locked=True))) \
            if instance_ids else set()
        wanted = [tid for tid, iid in due if iid is None or iid in held]
        if not wanted:
            return []
        # Pending again under the lock: a step that held the instance may have fired or
        # cancelled some of them meanwhile.
        return list(session.scalars(
            select(Timer).where(Timer.id.in_(wanted), is_pending())
            .order_by(Timer.due_at, Timer.id).with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)))

    def run_due(self, limit: int = 500) -> int:
        """Pass after pass until nothing is due (an effect may schedule a timer already due)."""
        total = 0
        while (n := self.run_once(limit)):
            total += n
        return total

    def _fire(self, session: Session, timer: Timer) -> None:
        handler = self.handlers.get(timer.kind)
        if handler is None:
            raise LookupError(f"no handler for timers of kind {timer.kind!r}")
        # Marked fired before its effect runs (in the same savepoint): an effect that arms the
        # next timer of the same ref (a cycle, an SLA level, a silence) must not find this one.
        fired = self.clock.now()
        timer.status, timer.fired_at = FIRED, fired
        timer.lateness_ms = max(0.0, (fired - timer.due_at).total_seconds() * 1000)
        session.flush()
        handler(session, timer)

    def next_due(self) -> datetime | None:
        """When the soonest pending timer is due (None if there is none)."""
        with self.db.read() as session:
            return session.scalar(select(func.min(Timer.due_at)).where(is_pending()))
