"""A playbook a detection suggested, waiting for a commander to start or dismiss it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

OPEN, STARTED, DISMISSED = "open", "started", "dismissed"


class Suggestion(Base):
    """One rule match of a playbook: a card on the commander's board until a person decides."""

    __tablename__ = "playbook_suggestions"

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    scenario_key: Mapped[str] = mapped_column(String(100), index=True)
    rule_key: Mapped[str] = mapped_column(String(100))
    # One suggestion per match: a replayed match suggests nothing twice.
    match_id: Mapped[int] = mapped_column(ForeignKey("rule_matches.id"), unique=True)
    title_vi: Mapped[str] = mapped_column(String(500))
    title_en: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict]  # what the rule filled in: proposed wards, level, the alert's words
    event_ids: Mapped[list]
    status: Mapped[str] = mapped_column(String(16), default=OPEN, index=True)
    suggested_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)  # why it was dismissed
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
