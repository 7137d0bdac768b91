"""Audit records, each carrying the hash of the one before it, and the head of the chain."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from engine.db import Base


def canonical(details: dict) -> str:
    """A record's details as the exact text its hashes cover: sorted keys, no spaces, UTF-8."""
    return json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


class CanonicalJson(TypeDecorator):
    """Details stored as their canonical text (a dict in Python). Verifying the log then hashes
    the stored text as read, instead of parsing JSONB and serialising it again for every record
    (measured: two thirds of the time verify spent on a record), and a stored value is exactly
    what was hashed, so no second copy has to be checked against it."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else canonical(value)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)


class AuditRecord(Base):
    """One step that happened: who, when, what, on which subject; chained by hash."""

    __tablename__ = "audit_records"
    # A person's or a source's records (their administration page), newest first.
    __table_args__ = (Index("ix_audit_records_subject", "subject_type", "subject_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[int | None] = mapped_column(index=True)
    details: Mapped[dict] = mapped_column(CanonicalJson)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The record's Merkle leaf hash (hex), kept for proofs and checkpoints; None for records
    # written before migration 0011 (computed from the contents when read).
    leaf: Mapped[str | None] = mapped_column(String(64))


class AuditHead(Base):
    """The single row naming the last record: locking it serialises writers, and deleting the
    newest records is detected because the head no longer matches."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A checkpoint this engine signed (a copy: the published file is the evidence), with the
    frontier of the tree at its size so the next one hashes only the records added since."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(index=True)
    root: Mapped[str] = mapped_column(String(64))
    time: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(100))
    # [[height, hex hash], …]: the perfect subtrees of the tree of `size` leaves, left to right.
    frontier: Mapped[list]
