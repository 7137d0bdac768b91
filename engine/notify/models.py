"""An outbox row: who should hear what, by which channel, and whether it went out."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"
IN_APP = "in-app"


class Notification(Base):
    """One message for one user, or for the people of one role in one department."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_id", "status", "id"),
        Index("ix_notifications_recipient", "department_key", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), default=IN_APP)
    # Recipient: a user, or a department (optionally only its people of one role, e.g. heads).
    user_id: Mapped[int | None] = mapped_column(index=True)
    department_key: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str]
    # What it is about, for links and grouping.
    kind: Mapped[str] = mapped_column(String(50))
    instance_id: Mapped[int | None]
    task_id: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    error: Mapped[str | None]
