"""Schedule, move and cancel timers inside the caller's transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
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


def postpone(session: Session, kind: str, deadlines: dict[str, tuple[datetime, dict]]) -> None:
    """Move each ref's pending timer later to its due time ({ref: (due_at, payload)}; never
    earlier), or add it: one query finds which exist, one executemany moves them (a station's
    silence deadline, at each batch of its readings)."""
    existing = set(session.scalars(select(Timer.ref).where(
        Timer.kind == kind, Timer.status == PENDING, Timer.ref.in_(deadlines))))
    table = Timer.__table__
    moves = [{"k": kind, "r": ref, "due": due, "data": payload}
             for ref, (due, payload) in deadlines.items() if ref in existing]
    if moves:
        session.execute(update(table).where(
            table.c.kind == bindparam("k"), table.c.ref == bindparam("r"),
            table.c.status == PENDING, table.c.due_at < bindparam("due"))
            .values(due_at=bindparam("due"), payload=bindparam("data")), moves)
    for ref, (due, payload) in deadlines.items():
        if ref not in existing:
            schedule(session, kind, ref, due, payload=payload)


def cancel(session: Session, kind: str, ref: str, due_after: datetime | None = None) -> int:
    """Cancel the pending timers of this ref (only those due after `due_after`, if given);
    return how many."""
    # A Core UPDATE after a flush: it still finds a timer added in this transaction, and skips
    # the ORM's matching of the session's objects, which nothing reads after a cancel (a third
    # of a cancel's cost, measured).
    session.flush()
    table = Timer.__table__
    query = update(table).where(table.c.kind == kind, table.c.ref == ref,
                                table.c.status == PENDING)
    if due_after is not None:
        query = query.where(table.c.due_at > due_after)
    return session.execute(query.values(status=CANCELLED)).rowcount or 0


def cancel_due_after(session: Session, kind: str, cuts: dict[str, datetime]) -> None:
    """Cancel, for each ref, its pending timers due after its moment ({ref: moment}): one
    executemany (the absences a batch's awaited events ended)."""
    session.flush()  # as `cancel`: a timer added in this transaction is found too
    table = Timer.__table__
    session.execute(update(table).where(
        table.c.kind == kind, table.c.ref == bindparam("r"), table.c.status == PENDING,
        table.c.due_at > bindparam("after")).values(status=CANCELLED),
        [{"r": ref, "after": moment} for ref, moment in cuts.items()])


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
