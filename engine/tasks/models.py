"""A user task as people see it: assigned to a department, with a form, claimed and completed."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

OPEN, CLAIMED, COMPLETED, CANCELLED = "open", "claimed", "completed", "cancelled"
ACTIVE = (OPEN, CLAIMED)
STATUSES = (OPEN, CLAIMED, COMPLETED, CANCELLED)


class Task(Base):
    """One READY user task of a process instance, in one department's inbox."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_department_status", "department_key", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    spiff_task_id: Mapped[str] = mapped_column(String(36), unique=True)
    bpmn_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    department_key: Mapped[str] = mapped_column(String(100))
    form: Mapped[dict]
    # Read-only context shown beside the form (the instance data when the task was created).
    context: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    result: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Set by an SLA escalation: the department whose heads now oversee the task, and how far up.
    escalated_to: Mapped[str | None] = mapped_column(String(100), index=True)
    escalation_level: Mapped[int] = mapped_column(default=0, server_default="0")
