"""A violation or incident opened when a scenario rule matched."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class RuleMatch(Base):
    """One firing of one rule on a set of events; unique, so a replayed match does nothing twice."""

    __tablename__ = "rule_matches"
    __table_args__ = (UniqueConstraint("scenario_version_id", "rule_key", "event_ids_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    rule_key: Mapped[str] = mapped_column(String(100))
    event_ids_key: Mapped[str] = mapped_column(String(200))  # sorted event ids, "12,40"
    event_ids: Mapped[list]
    matched_at: Mapped[datetime] = mapped_column(default=utcnow)


class Violation(Base):
    """What a rule match opened: a violation (by officials) or an incident (in the province)."""

    __tablename__ = "violations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # violation | incident
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    scenario_key: Mapped[str] = mapped_column(String(100), index=True)
    rule_key: Mapped[str] = mapped_column(String(100))
    match_id: Mapped[int] = mapped_column(ForeignKey("rule_matches.id"))
    severity: Mapped[str] = mapped_column(String(16))
    title_vi: Mapped[str] = mapped_column(String(500))
    title_en: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str | None] = mapped_column(String(300), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | closed
    outcome: Mapped[str | None] = mapped_column(String(100))
    event_ids: Mapped[list]
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    closed_at: Mapped[datetime | None]
