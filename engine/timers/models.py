"""A timer row: what fires (kind + ref), when (due_at), and whether it already did."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, literal_column, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

PENDING, FIRED, CANCELLED, FAILED = "pending", "fired", "cancelled", "failed"
# `status = 'pending'` written as a literal: the partial index below is only usable by queries
# whose condition implies its own, which a bound parameter does not (SQLite and PostgreSQL).
IS_PENDING_SQL = "status = 'pending'"

# Kinds of timers; each kind has one handler (see Scheduler): a BPMN timer event of an instance,
# the next warning level of an SLA clock, the deadline of a temporal rule (absence, silence), or
# the day a successor takes over the work of units that ended (engine/org/handover.py), or the
# next signed checkpoint of the audit log (engine/audit/publisher.py).
BPMN, SLA, RULE, ORG, AUDIT = "bpmn", "sla", "rule", "org", "audit"


class Timer(Base):
    """One timer; a scheduler pass reads only pending rows due by now, through a partial index.

    The index on due_at holds pending timers only, so fired ones cost nothing, and no other
    query is tempted to scan it by status (SQLite, without statistics, would do that for the
    (kind, ref) lookups and slow every event down as timers pile up; measured in bench/timers.py).
    """

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_pending_due_at", "due_at", sqlite_where=text(IS_PENDING_SQL),
              postgresql_where=text(IS_PENDING_SQL)),
        Index("ix_timers_kind_ref", "kind", "ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # What the timer is about, in the kind's own terms ("<instance>:<spiff task>", "<sla clock>",
    # "<version>:<rule>:<key>"); used to find a timer again to move or cancel it.
    ref: Mapped[str] = mapped_column(String(400))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    payload: Mapped[dict] = mapped_column(default=dict)
    instance_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fired_at: Mapped[datetime | None]
    # Clock time at firing minus due time: how late the scheduler was (for the benchmark).
    lateness_ms: Mapped[float | None]
    error: Mapped[str | None]


def is_pending():
    """The condition `status = 'pending'` with a literal, so the partial index can serve it."""
    return Timer.status == literal_column("'pending'")
