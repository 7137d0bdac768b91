"""What every list of the app does, in one place: its filters (values equal, a text contained,
a period of days on the province's clocks) and its keyset pages (a page of rows after the last
id shown, no OFFSET: a page costs the same wherever it is; the id the next page starts after;
how many rows match in all)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.org.service import day_start


def narrowed(query, *, equal=(), contains=None, period=None):
    """`query` where each (column, value) of `equal` with a value holds, the (column, text) of
    `contains` holds the text (any case), and the (column, since, until) of `period` falls on
    those days (until included)."""
    for column, value in equal:
        if value:
            query = query.where(column == value)
    if contains and contains[1]:
        column, text = contains
        query = query.where(func.lower(column).like(f"%{text.lower()}%"))
    if period:
        column, since, until = period
        if since:
            query = query.where(column >= day_start(since))
        if until:  # the whole day
            query = query.where(column < day_start(until + timedelta(days=1)))
    return query


def keyset(session: Session, query, id_column, after: int | None, limit: int,
           newest_first: bool = True) -> tuple[list, int | None, int]:
    """(up to `limit` rows of `query` ordered by `id_column` after id `after`, the id to pass
    as `after` for the next page or None, the count of all rows matching)."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    if after:
        query = query.where(id_column < after if newest_first else id_column > after)
    query = query.order_by(id_column.desc() if newest_first else id_column)
    rows = list(session.scalars(query.limit(limit + 1)))
    following = getattr(rows[limit - 1], id_column.key) if len(rows) > limit else None
    return rows[:limit], following, total
