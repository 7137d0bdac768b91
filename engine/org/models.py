"""One version of an organisational unit: its names, kind, parent and successor, valid between two dates."""
from __future__ import annotations

from datetime import date

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, JsonType

# Stored as the start of a version that was already in force before the records begin (the file
# says `valid_from: null`); a real date keeps (key, valid_from) unique on PostgreSQL too.
OPEN_START = date.min


class OrgUnit(Base):
    """A unit as it was between valid_from and valid_to (both inclusive; valid_to null = still valid)."""

    __tablename__ = "org_units"
    __table_args__ = (
        UniqueConstraint("key", "valid_from"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_dates"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    name_vi: Mapped[str] = mapped_column(String(255))
    name_en: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    parent_key: Mapped[str | None] = mapped_column(String(100))
    successor_key: Mapped[str | None] = mapped_column(String(100))
    aliases: Mapped[list[str]] = mapped_column(JsonType, default=list)

    def valid_on(self, on: date) -> bool:
        """True if this version is in force on `on`."""
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)

    def __repr__(self) -> str:
        return f"<OrgUnit {self.key} {self.valid_from}..{self.valid_to or ''}>"
