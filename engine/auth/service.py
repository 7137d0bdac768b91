"""Create users and sources, issue API tokens (shown once, stored hashed) and check them."""
from __future__ import annotations

import functools
import hashlib
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine.audit import service as audit
from engine.auth.models import User, parse_session_id
from engine.auth.permissions import ROLES
from engine.events.models import Source

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,99}$")
# Enough to refuse typos (one @, a dot in the domain); the mail server has the last word.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AuthError(ValueError):
    """Bad input when creating a user or source; names the field."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def hash_token(token: str) -> str:
    """The stored form of an API token (tokens are random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    """A fresh random API token."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def create_user(session: Session, username: str, role: str, department_key: str | None, *,
                full_name: str = "", password: str | None = None, with_token: bool = False,
                departments: set[str] | None = None, actor: str = "cli",
                email: str | None = None) -> tuple[User, str | None]:
    """Create a user; return it and its API token (None unless asked for)."""
    if not NAME.match(username or ""):
        raise AuthError("username", "2–100 lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError("role", f"must be one of {', '.join(ROLES)}")
    if role in ("civil_servant", "department_head") and not department_key:
        raise AuthError("department", f"a {role} must belong to a department")
    if department_key and departments is not None and department_key not in departments:
        raise AuthError("department", f"{department_key!r} is not a unit of the organisation")
    if email is not None and not EMAIL.match(email):
        raise AuthError("email", f"{email!r} is not an e-mail address")
    if password is not None and len(password) < 8:
        raise AuthError("password", "must be at least 8 characters")
    if session.scalars(select(User).where(User.username == username)).first():
        raise AuthError("username", f"{username!r} already exists")
    token = new_token("iocu") if with_token else None
    user = User(username=username, role=role, department_key=department_key, email=email,
                full_name=full_name, password_hash=generate_password_hash(password)
                if password else None, token_hash=hash_token(token) if token else None)
    session.add(user)
    session.flush()
    audit.record(session, "user.created", actor=actor, subject_type="user", subject_id=user.id,
                 details={"username": username, "role": role, "department": department_key,
                          "api_token": bool(token), "email": bool(email)})
    return user, token


def create_source(session: Session, name: str, allowed_types: list[str] | None = None, *,
                  actor: str = "cli", hmac_secret: str | None = None,
                  rate_limit_per_minute: int | None = None) -> tuple[Source, str]:
    """Register a source system; return it and its API token (shown only this once)."""
    if not NAME.match(name or ""):
        raise AuthError("name", "2–100 lower-case letters, digits, '.', '_' or '-'")
    if session.scalars(select(Source).where(Source.name == name)).first():
        raise AuthError("name", f"source {name!r} already exists")
    if hmac_secret is not None and len(hmac_secret) < 16:
        raise AuthError("hmac_secret", "an HMAC secret needs 16 characters or more")
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise AuthError("rate_limit_per_minute", "a rate limit is 1 request a minute or more")
    token = new_token("iocs")
    source = Source(name=name, token_hash=hash_token(token), allowed_types=allowed_types or [],
                    hmac_secret=hmac_secret, rate_limit_per_minute=rate_limit_per_minute)
    session.add(source)
    session.flush()
    audit.record(session, "source.created", actor=actor, subject_type="source",
                 subject_id=source.id, details={"name": name, "allowed_types": allowed_types or [],
                                                "signed": hmac_secret is not None,
                                                "rate_limit_per_minute": rate_limit_per_minute})
    return source, token


def user_by_token(session: Session, token: str) -> User | None:
    """The active user holding this API token."""
    user = session.scalars(select(User).where(User.token_hash == hash_token(token))).first()
    return user if user is not None and user.active else None


def source_by_token(session: Session, token: str) -> Source | None:
    """The enabled source holding this API token."""
    src = session.scalars(select(Source).where(Source.token_hash == hash_token(token))).first()
    return src if src is not None and not src.disabled else None


def check_password(session: Session, username: str, password: str) -> User | None:
    """The active user with this username and password, or None."""
    return authenticate(session, username, password)[0]


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))


def authenticate(session: Session, username: str, password: str) -> tuple[User | None, str]:
    """(the active user with this username and password, "ok"), or (None, why not): one of
    unknown_user, inactive, no_password, wrong_password. Always verifies one hash, so an unknown
    name takes as long as a known one."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.active or not user.password_hash:
        check_password_hash(_dummy_hash(), password)
        reason = "unknown_user" if user is None else (
            "inactive" if not user.active else "no_password")
        return None, reason
    if not check_password_hash(user.password_hash, password):
        return None, "wrong_password"
    return user, "ok"


def user_for_session(session: Session, session_user_id: str) -> User | None:
    """The user a web session names, if active and the session is not revoked since."""
    parsed = parse_session_id(session_user_id)
    if parsed is None:
        return None
    user = session.get(User, parsed[0])
    if user is None or not user.active or user.session_version != parsed[1]:
        return None
    return user


def revoke_sessions(session: Session, user_id: int) -> None:
    """End every web session of the user: cookies issued before no longer name a user."""
    # One UPDATE (not read, add, write): two revocations at once both count. Users loaded in
    # this session get the new version too (synchronize_session).
    session.execute(update(User).where(User.id == user_id)
                    .values(session_version=User.session_version + 1),
                    execution_options={"synchronize_session": "fetch"})


def set_password(session: Session, user_id: int, password: str, *, actor: str = "cli") -> None:
    """Give the user a new password; their sessions end (audited, without the password)."""
    if password is None or len(password) < 8:
        raise AuthError("password", "must be at least 8 characters")
    user = _user(session, user_id)
    user.password_hash = generate_password_hash(password)
    revoke_sessions(session, user_id)
    audit.record(session, "user.password_changed", actor=actor, subject_type="user",
                 subject_id=user_id, details={"username": user.username})


def set_active(session: Session, user_id: int, active: bool, *, actor: str = "cli") -> None:
    """Activate or deactivate a user; deactivation ends their sessions at once (audited)."""
    user = _user(session, user_id)
    user.active = active
    if not active:
        revoke_sessions(session, user_id)
    audit.record(session, "user.activated" if active else "user.deactivated", actor=actor,
                 subject_type="user", subject_id=user_id, details={"username": user.username})


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AuthError("user", f"no user with id {user_id}")
    return user
