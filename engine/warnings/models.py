"""A public warning: drafted from a playbook run, published once a commander approves it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

DRAFT, PUBLISHED = "draft", "published"


class PublicWarning(Base):
    """One CAP alert: its words in Vietnamese and English, its area, and once published the
    exact XML sent (kept as it was published)."""

    __tablename__ = "public_warnings"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    msg_type: Mapped[str] = mapped_column(String(16))  # Alert | Update | Cancel
    references_id: Mapped[int | None] = mapped_column(ForeignKey("public_warnings.id"))
    category: Mapped[str] = mapped_column(String(16))  # CAP: Met, Safety, Health, …
    event: Mapped[str] = mapped_column(String(200))
    urgency: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    certainty: Mapped[str] = mapped_column(String(16))
    headline_vi: Mapped[str] = mapped_column(String(300))
    headline_en: Mapped[str] = mapped_column(String(300))
    description_vi: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    instruction_vi: Mapped[str] = mapped_column(Text)
    instruction_en: Mapped[str] = mapped_column(Text)
    wards: Mapped[list]
    expires: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=DRAFT, index=True)
    drafted_by: Mapped[str] = mapped_column(String(100))
    drafted_at: Mapped[datetime]
    identifier: Mapped[str | None] = mapped_column(String(200), unique=True)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    sent: Mapped[datetime | None] = mapped_column(index=True)
    xml: Mapped[str | None] = mapped_column(Text)
