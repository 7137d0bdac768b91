"""What temporal rules remember between events: one row per (scenario version, rule, key)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class RuleState(Base):
    """A counting window or a sustained streak of one key (a station, a keyword…).

    Kept in the database, in the transaction of the event that changed it, so a restart loses
    no open window and counts nothing twice; durable-rules only filters the events.
    """

    __tablename__ = "rule_states"
    __table_args__ = (UniqueConstraint("scenario_version_id", "rule_key", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario_version_id: Mapped[int] = mapped_column(ForeignKey("scenario_versions.id"))
    rule_key: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(300))
    state: Mapped[dict] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
