"""Finding stored events: by state, type, source system, subject and the period they were
received in, newest first, a page at a time (keyset: before the last id shown), with a count.
The dead-letter list is the same search over the failed ones."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.events.models import DISCARDED, FAILED, PENDING, PROCESSED, Event
from engine.org.service import day_start

PAGE = 50
STATES = (PENDING, PROCESSED, FAILED, DISCARDED)


@dataclass(frozen=True)
class Filters:
    """What to look for; empty is "any"."""

    status: str = ""
    type: str = ""
    source_id: int | None = None
    subject: str = ""
    since: date | None = None
    until: date | None = None


def search(session: Session, f: Filters, before: int | None = None,
           limit: int = PAGE) -> tuple[list[Event], int | None, int]:
    """(a page of events newest first, the `before` of the next page or None, how many
    match); ValueError naming `status` when it is not a state."""
    if f.status and f.status not in STATES:
        raise ValueError(f"status: one of {', '.join(STATES)}")
    query = select(Event)
    for column, value in ((Event.status, f.status), (Event.type, f.type),
                          (Event.source_id, f.source_id)):
        if value:
            query = query.where(column == value)
    if f.subject:
        query = query.where(func.lower(Event.subject).like(f"%{f.subject.lower()}%"))
    if f.since:
        query = query.where(Event.received_at >= day_start(f.since))
    if f.until:  # the whole day
        query = query.where(Event.received_at < day_start(f.until + timedelta(days=1)))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    if before:
        query = query.where(Event.id < before)
    rows = list(session.scalars(query.order_by(Event.id.desc()).limit(limit + 1)))
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None), total
