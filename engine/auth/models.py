"""People who use the product."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, utcnow


class User(Base):
    """A person with one role, working in one organisation unit (department key)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    department_key: Mapped[str | None] = mapped_column(String(100), index=True)
    email: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of the session's user id: raising it (logout, new password, deactivation) makes every
    # session cookie issued before useless, although the cookies themselves stay validly signed.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    # Flask-Login's user protocol, kept here so the web layer needs no wrapper class.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return session_id(self.id, self.session_version)


def session_id(user_id: int, version: int | None) -> str:
    """The id a web session stores for a user: "<user id>:<session version>"."""
    return f"{user_id}:{version or 0}"


def parse_session_id(value: str) -> tuple[int, int] | None:
    """(user id, session version) from a session's user id; None when it is not one."""
    user_id, sep, version = (value or "").partition(":")
    if not (sep and user_id.isdigit() and version.isdigit()):
        return None
    return int(user_id), int(version)


class LoginFailure(Base):
    """One failed (or not yet decided) web login, kept for the throttle's window: counted per
    user name and per client address by every web process alike."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_at", "username", "at"),
                      Index("ix_login_failures_address_at", "address", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)
