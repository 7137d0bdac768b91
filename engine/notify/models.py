"""The outbox: who should hear what, by which channel, whether it went out; webhook subscribers.

One notification is one row per channel and recipient: the in-app row (delivered when stored,
read in the inbox) and, copied from it, one `email` row per person with an address and one
`webhook` row per matching subscription. Those wait as `pending` until the outbox delivers them
(`sent`) or gives up after the last attempt (`failed`, with the error).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"
IN_APP, EMAIL, WEBHOOK = "in-app", "email", "webhook"


class Notification(Base):
    """One message for one user, or for the people of one role in one department."""

    __tablename__ = "notifications"
    __table_args__ = (
        # Serves the outbox pass too: pending rows are few (in-app rows are stored as sent).
        Index("ix_notifications_status_id", "status", "id"),
        Index("ix_notifications_recipient", "department_key", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), default=IN_APP)
    # Recipient: a user, or a department (optionally only its people of one role, e.g. heads).
    # E-mail rows name the person written to; webhook rows keep the in-app row's recipient.
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
    # -- outbox delivery (e-mail, webhook) --
    # The in-app row this copy was made from (None for in-app rows themselves).
    parent_id: Mapped[int | None] = mapped_column(index=True)
    # Where it goes: the e-mail address, or the subscription's URL when queued.
    address: Mapped[str | None] = mapped_column(String(1000))
    webhook_id: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    # When the next attempt is due by the engine's clock; None: at once (the first attempt).
    next_attempt_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """A URL that receives signed POSTs of the notifications of one department (or all)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: every department's notifications.
    department_key: Mapped[str | None] = mapped_column(String(100), index=True)
    # None: every role; else like a member of that role (their own and whole-department ones).
    role: Mapped[str | None] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(1000))
    # Kept in clear: the outbox needs it to sign every body (HMAC-SHA256).
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
