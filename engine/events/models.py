"""Stored events and the sources allowed to send them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow

# Processing states of a stored event: the pending marker drives the pipeline (event store first).
# A failed event is a dead letter (its attempts are used up); an administrator may retry it (back
# to pending) or discard it.
PENDING, PROCESSED, FAILED, DISCARDED = "pending", "processed", "failed", "discarded"


class Source(Base):
    """A source system that sends events with its own API token (stored hashed)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # CloudEvents types this source may send; empty means every type in the vocabulary.
    allowed_types: Mapped[list] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(default=False)
    # Optional shared secret: requests must then carry X-IOC-Signature: sha256=<HMAC of the body>.
    # Kept as given (not hashed), since verifying an HMAC needs the secret itself.
    hmac_secret: Mapped[str | None] = mapped_column(String(200))
    # At most this many requests a minute (None: no limit); over it the source gets 429.
    rate_limit_per_minute: Mapped[int | None]
    # What the source sent, for the administrators' view (updated with each request).
    accepted_count: Mapped[int] = mapped_column(default=0, server_default="0")
    duplicate_count: Mapped[int] = mapped_column(default=0, server_default="0")
    refused_count: Mapped[int] = mapped_column(default=0, server_default="0")
    last_event_at: Mapped[datetime | None]
    # The last few refusals: [{"at", "id", "errors": [{"field", "message"}]}], newest first.
    last_errors: Mapped[list] = mapped_column(default=list, server_default="[]")


class Event(Base):
    """One accepted CloudEvent; (source_id, ce_id) is unique so a resend is recognised."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source_id", "ce_id"),
        Index("ix_events_status_id", "status", "id"),
        # A worker drains one partition's pending events in id order (engine/events/partitions).
        Index("ix_events_status_partition_id", "status", "partition", "id"),
        # Looking an event up by what it is about (a ticket's status over Open311).
        Index("ix_events_source_type_subject", "source_id", "type", "subject"),
    )

    # The integer primary key doubles as the durable-rules message id (it must be a unique int).
    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    ce_id: Mapped[str] = mapped_column(String(200))
    ce_source: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(200), index=True)
    subject: Mapped[str | None] = mapped_column(String(500))
    time: Mapped[datetime | None]
    data: Mapped[dict]
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None]
    partition: Mapped[int] = mapped_column(default=0, server_default="0")
    # Failed attempts so far; a failed attempt waits until next_attempt_at (backoff).
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
