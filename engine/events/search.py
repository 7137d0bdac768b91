"""Finding stored events: by state, type, source system, subject and the period they were
received in, newest first, a page at a time (keyset: before the last id shown), with a count.
The dead-letter list is the same search over the failed ones."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.events.models import DISCARDED, FAILED, PENDING, PROCESSED, Event
from engine.lists import keyset, narrowed

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
    query = narrowed(select(Event), equal=((Event.status, f.status), (Event.type, f.type),
                                           (Event.source_id, f.source_id)),
                     contains=(Event.subject, f.subject),
                     period=(Event.received_at, f.since, f.until))
    return keyset(session, query, Event.id, before, limit)
