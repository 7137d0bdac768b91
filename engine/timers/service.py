"""Schedule, move and cancel timers inside the caller's transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.timers.models import CANCELLED, PENDING, Timer


def schedule(session: Session, kind: str, ref: str, due_at: datetime, *,
             payload: dict | None = None, instance_id: int | None = None) -> Timer:
    """Add a pending timer (another pending timer with the same ref is left alone)."""
    timer = Timer(kind=kind, ref=ref, due_at=due_at, payload=payload or {},
                  instance_id=instance_id)
    session.add(timer)
    return timer


def reschedule(session: Session, kind: str, ref: str, due_at: datetime, *,
               payload: dict | None = None, instance_id: int | None = None) -> Timer:
    """Move the pending timer of this ref to `due_at` (one row per ref), or add it."""
    timer = session.scalars(select(Timer).where(
        Timer.kind == kind, Timer.ref == ref, Timer.status == PENDING)).first()
    if timer is None:
        return schedule(session, kind, ref, due_at, payload=payload, instance_id=instance_id)
    timer.due_at = due_at
    if payload is not None:
        timer.payload = payload
    return timer


def postpone(session: Session, kind: str, ref: str, due_at: datetime, *,
             payload: dict) -> None:
    """Move the ref's pending timer later to `due_at` (never earlier), or add it: one UPDATE in
    the usual case, where the timer exists (a station's silence deadline, at each reading)."""
    moved = session.execute(update(Timer).where(
        Timer.kind == kind, Timer.ref == ref, Timer.status == PENDING, Timer.due_at < due_at)
        .values(due_at=due_at, payload=payload)).rowcount
    if not moved and not pending(session, kind, ref):
        schedule(session, kind, ref, due_at, payload=payload)


def cancel(session: Session, kind: str, ref: str, due_after: datetime | None = None) -> int:
    """Cancel the pending timers of this ref (only those due after `due_after`, if given);
    return how many."""
    query = update(Timer).where(Timer.kind == kind, Timer.ref == ref, Timer.status == PENDING)
    if due_after is not None:
        query = query.where(Timer.due_at > due_after)
    return session.execute(query.values(status=CANCELLED)).rowcount or 0


def pending(session: Session, kind: str, ref: str) -> list[Timer]:
    """The pending timers of this ref, soonest first."""
    return list(session.scalars(select(Timer).where(
        Timer.kind == kind, Timer.ref == ref, Timer.status == PENDING)
        .order_by(Timer.due_at, Timer.id)))


def cancel_instance(session: Session, instance_id: int) -> int:
    """Cancel every pending timer of an instance (it ended)."""
    result = session.execute(update(Timer).where(
        Timer.instance_id == instance_id, Timer.status == PENDING).values(status=CANCELLED))
    return result.rowcount or 0
