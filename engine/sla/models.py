"""An SLA clock: one measured item (a task or an instance) against one target."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

RUNNING, PAUSED, MET, BREACHED = "running", "paused", "met", "breached"
OPEN_STATES = (RUNNING, PAUSED)


class SlaClock(Base):
    """Elapsed time of one item, accumulated across pauses, and the escalation level reached."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        Index("ix_sla_clocks_department_status", "department_key", "status"),
        Index("ix_sla_clocks_scenario_status", "scenario_key", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    scenario_key: Mapped[str] = mapped_column(String(100))
    sla_key: Mapped[str] = mapped_column(String(100))
    name_vi: Mapped[str] = mapped_column(String(300), default="")
    name_en: Mapped[str] = mapped_column(String(300), default="")
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    subject: Mapped[str | None] = mapped_column(String(300))
    # The department answerable for the item now (the task's, or the scenario owner's).
    department_key: Mapped[str] = mapped_column(String(100))
    working: Mapped[bool]  # True: only office time counts
    target_seconds: Mapped[float]
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    started_at: Mapped[datetime]
    # Time counted before `resumed_at` (across pauses); None while paused or stopped.
    elapsed_seconds: Mapped[float] = mapped_column(default=0.0)
    resumed_at: Mapped[datetime | None]
    # When the target is reached if nothing pauses the clock (for sorting and the inbox).
    due_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    level: Mapped[int] = mapped_column(default=-1)  # index of the last level fired
    breached_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
