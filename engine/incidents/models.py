"""A process incident: the step of a scenario that failed, what it was given, and its error."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
# What failed: a new instance's first steps, a message delivered to it, one of its timers, a
# person's completion of its task, or a scenario's rules for an event (no instance then).
START, MESSAGE, TIMER, TASK, RULE = "start", "message", "timer", "task", "rule"
KINDS = (START, MESSAGE, TIMER, TASK, RULE)


class ProcessIncident(Base):
    """One failed step, open until it is retried successfully or resolved by a person."""

    __tablename__ = "process_incidents"
    __table_args__ = (Index("ix_process_incidents_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    scenario_key: Mapped[str] = mapped_column(String(100), index=True)
    scenario_version_id: Mapped[int | None]
    instance_id: Mapped[int | None] = mapped_column(index=True)
    # The BPMN element (or rule key) the error names, when it names one.
    element: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text)
    # What retrying needs: {"event_id"}, {"timer_id"}, {"task_id", "answers", "user_id"}.
    payload: Mapped[dict] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution: Mapped[str | None] = mapped_column(Text)
