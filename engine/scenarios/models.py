"""Scenario versions (manifest, compiled rules and the parsed BPMN spec, stored once) and the
drafts inspectors edit in the designer before publishing them as a version."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

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


class ScenarioDraft(Base):
    """A scenario's files being edited; publishing makes them a version. One draft per key."""

    __tablename__ = "scenario_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    # The version it was started from (None for a new scenario).
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("scenario_versions.id"))
    base_version: Mapped[ScenarioVersion | None] = relationship(lazy="joined")
    files: Mapped[dict]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    # Optimistic locking: two people saving the same draft at once get a StaleDataError for the
    # second save instead of silently losing the first.
    revision: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": revision}
