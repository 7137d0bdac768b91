"""Loaded scenario versions: manifest, compiled rules and the parsed BPMN spec, stored once."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, OrderedJson, utcnow

PUBLISHED, RETIRED = "published", "retired"


class ScenarioVersion(Base):
    """One version of one scenario; running instances keep pointing at the version they began on."""

    __tablename__ = "scenario_versions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int]
    name_vi: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str] = mapped_column(String(300))
    owner_department: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=PUBLISHED)
    manifest: Mapped[dict]
    # The rule file as parsed (for replay and display) and as compiled for durable-rules.
    rules: Mapped[dict]
    ruleset: Mapped[dict]
    # The folder's files as loaded (for export and diffs) and the serialized process spec.
    files: Mapped[dict]
    process_id: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict] = mapped_column(OrderedJson)
    content_hash: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    loaded_by: Mapped[str] = mapped_column(String(100), default="system")

    @property
    def ruleset_name(self) -> str:
        """The durable-rules ruleset name of this version."""
        return f"{self.key}@{self.version}"
