"""Process instances (state only; the spec lives on the scenario version) and their message waits."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, OrderedJson, utcnow

RUNNING, COMPLETED, CANCELLED, ERROR = "running", "completed", "cancelled", "error"


class ProcessInstance(Base):
    """One running (or ended) BPMN process of one scenario version."""

    __tablename__ = "process_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"), index=True)
    scenario_key: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING, index=True)
    subject: Mapped[str | None] = mapped_column(String(300), index=True)
    # Serialized SpiffWorkflow state without the spec (stored once per scenario version).
    state: Mapped[dict] = mapped_column(OrderedJson)
    # The workflow's data after the last step, for reading without deserializing.
    data: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None]
    # Optimistic locking: a concurrent step on a stale copy fails instead of losing an update.
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": row_version}


class MessageWait(Base):
    """An instance waiting for a message: event type + correlation value, found by index."""

    __tablename__ = "message_waits"
    __table_args__ = (Index("ix_message_waits_lookup", "message_name", "correlation_value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_property: Mapped[str | None] = mapped_column(String(100))
    # JSON-encoded value of the correlation property ("" when the message is not correlated).
    correlation_value: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
