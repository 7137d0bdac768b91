"""Create users and sources, issue API tokens (shown once, stored hashed) and check them."""
from __future__ import annotations

import functools
import hashlib
import re
import secrets

from sqlalchemy import func, select, update
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
        raise AuthError("username", "2–100 chữ thường không dấu, số, '.', '_' hoặc '-' / 2–100 "
                                   "lower-case letters, digits, '.', '_' or '-'")
    _check_role(role, department_key, departments)
    _check_email(email)
    if password is not None:
        _check_password(password)
    if session.scalars(select(User).where(User.username == username)).first():
        raise AuthError("username", f"{username!r} đã có / already exists")
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


def _check_role(role: str, department_key: str | None, departments: set[str] | None) -> None:
    if role not in ROLES:
        raise AuthError("role", f"phải là một trong / must be one of {', '.join(ROLES)}")
    if role in ("civil_servant", "department_head") and not department_key:
        raise AuthError("department", f"vai trò này phải thuộc một đơn vị / a {role} must "
                                     "belong to a department")
    if department_key and departments is not None and department_key not in departments:
        raise AuthError("department", f"{department_key!r} không phải đơn vị đang hoạt động / "
                                     "is not a unit of the organisation")


def _check_email(email: str | None) -> None:
    if email is not None and not EMAIL.match(email):
        raise AuthError("email", f"{email!r} không phải địa chỉ thư / is not an e-mail address")


def _check_password(password: str | None) -> None:
    if password is None or len(password) < 8:
        raise AuthError("password", "ít nhất 8 ký tự / must be at least 8 characters")


def users(session: Session, *, text: str = "", role: str = "", department_key: str = "",
          active: bool | None = None) -> list[User]:
    """The users matching every filter given (name or username containing `text`), by name."""
    query = select(User).order_by(User.username)
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(func.lower(User.username).like(pattern)
                            | func.lower(User.full_name).like(pattern))
    if role:
        query = query.where(User.role == role)
    if department_key:
        query = query.where(User.department_key == department_key)
    if active is not None:
        query = query.where(User.active == active)
    return list(session.scalars(query))


def user_named(session: Session, username: str) -> User:
    """The user with this username; AuthError naming `username` when there is none."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise AuthError("username", f"không có người dùng / no user named {username!r}")
    return user


def _active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User)
                          .where(User.role == "admin", User.active)) or 0


def _keeps_an_admin(session: Session, user: User, field: str) -> None:
    """Refuse taking the administrator's role or account from the last active administrator:
    nobody could manage people any more."""
    if user.role == "admin" and user.active and _active_admins(session) <= 1:
        raise AuthError(field, f"{user.username} là quản trị viên cuối cùng còn hoạt động: hãy "
                               f"tạo người khác trước / {user.username} is the last active "
                               "administrator: make another one first")


def change_user(session: Session, user_id: int, *, role: str, department_key: str | None,
                full_name: str, email: str | None, departments: set[str] | None = None,
                actor: str = "cli") -> dict:
    """Change a user's role, department, name or e-mail; a new role or department is a
    permission change, audited as such (with what it was), the rest as an update. Returns the
    changes, {field: [before, after]}."""
    user = _user(session, user_id)
    _check_role(role, department_key, departments)
    _check_email(email)
    if len(full_name) > 200:
        raise AuthError("full_name", "tối đa 200 ký tự / at most 200 characters")
    if role != "admin":
        _keeps_an_admin(session, user, "role")
    changes = {field: [getattr(user, field), value] for field, value in (
        ("role", role), ("department_key", department_key), ("full_name", full_name),
        ("email", email)) if getattr(user, field) != value}
    for field, (_, value) in changes.items():
        setattr(user, field, value)
    access = {k: v for k, v in changes.items() if k in ("role", "department_key")}
    if access:
        audit.record(session, "user.role_changed", actor=actor, subject_type="user",
                     subject_id=user_id, details={"username": user.username, **access})
    profile = {k: v for k, v in changes.items() if k not in access}
    if profile:
        # Whether the e-mail changed, not the addresses (as when a user is created).
        audit.record(session, "user.updated", actor=actor, subject_type="user",
                     subject_id=user_id, details={"username": user.username, "fields":
                                                  sorted(profile)})
    return changes


def issue_user_token(session: Session, user_id: int, *, actor: str = "cli") -> str:
    """A new personal API token for the user (shown once), replacing any earlier one."""
    user = _user(session, user_id)
    token, replaced = new_token("iocu"), user.token_hash is not None
    user.token_hash = hash_token(token)
    audit.record(session, "user.token_issued", actor=actor, subject_type="user",
                 subject_id=user_id, details={"username": user.username, "replaced": replaced})
    return token


def revoke_user_token(session: Session, user_id: int, *, actor: str = "cli") -> bool:
    """Revoke the user's API token; False when they had none (nothing recorded)."""
    user = _user(session, user_id)
    if user.token_hash is None:
        return False
    user.token_hash = None
    audit.record(session, "user.token_revoked", actor=actor, subject_type="user",
                 subject_id=user_id, details={"username": user.username})
    return True


def _check_source(hmac_secret: str | None, rate_limit_per_minute: int | None,
                  allowed_types: list[str], known_types: set[str] | None) -> None:
    if hmac_secret is not None and len(hmac_secret) < 16:
        raise AuthError("hmac_secret", "khóa HMAC cần ít nhất 16 ký tự / an HMAC secret needs "
                                      "16 characters or more")
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise AuthError("rate_limit_per_minute", "ít nhất 1 yêu cầu mỗi phút / a rate limit "
                                                "is 1 request a minute or more")
    unknown = sorted(set(allowed_types) - known_types) if known_types is not None else []
    if unknown:
        raise AuthError("allowed_types", f"loại sự kiện không có / unknown event types: "
                                        f"{', '.join(unknown)}")


def create_source(session: Session, name: str, allowed_types: list[str] | None = None, *,
                  actor: str = "cli", hmac_secret: str | None = None,
                  rate_limit_per_minute: int | None = None,
                  known_types: set[str] | None = None) -> tuple[Source, str]:
    """Register a source system; return it and its API token (shown only this once)."""
    if not NAME.match(name or ""):
        raise AuthError("name", "2–100 chữ thường không dấu, số, '.', '_' hoặc '-' / 2–100 "
                               "lower-case letters, digits, '.', '_' or '-'")
    if session.scalars(select(Source).where(Source.name == name)).first():
        raise AuthError("name", f"nguồn {name!r} đã có / source {name!r} already exists")
    _check_source(hmac_secret, rate_limit_per_minute, allowed_types or [], known_types)
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


def source_named(session: Session, name: str) -> Source:
    """The source with this name; AuthError naming `name` when there is none."""
    source = session.scalars(select(Source).where(Source.name == name)).first()
    if source is None:
        raise AuthError("name", f"không có nguồn / no source named {name!r}")
    return source


KEEP = object()  # change_source: leave the HMAC secret as it is


def change_source(session: Session, source_id: int, *, allowed_types: list[str],
                  rate_limit_per_minute: int | None, disabled: bool, hmac_secret=KEEP,
                  known_types: set[str] | None = None, actor: str = "cli") -> dict:
    """Change what a source may send, its rate limit, whether it is on, and its HMAC secret
    (KEEP it, None to stop requiring signatures, or a new secret); audited without the
    secret. Returns the changes, {field: [before, after]} (the secret as signed: bool)."""
    source = _source(session, source_id)
    _check_source(None if hmac_secret is KEEP else hmac_secret, rate_limit_per_minute,
                  allowed_types, known_types)
    changes = {field: [getattr(source, field), value] for field, value in (
        ("allowed_types", allowed_types), ("rate_limit_per_minute", rate_limit_per_minute),
        ("disabled", disabled)) if getattr(source, field) != value}
    if hmac_secret is not KEEP and hmac_secret != source.hmac_secret:
        changes["signed"] = [bool(source.hmac_secret), bool(hmac_secret)]
        source.hmac_secret = hmac_secret
    for field, (_, value) in changes.items():
        if field != "signed":
            setattr(source, field, value)
    if changes:
        audit.record(session, "source.changed", actor=actor, subject_type="source",
                     subject_id=source_id, details={"name": source.name, **changes})
    return changes


def rotate_source_token(session: Session, source_id: int, *, actor: str = "cli") -> str:
    """A new API token for the source (shown once); the old one stops working at once."""
    source = _source(session, source_id)
    token = new_token("iocs")
    source.token_hash = hash_token(token)
    audit.record(session, "source.token_rotated", actor=actor, subject_type="source",
                 subject_id=source_id, details={"name": source.name})
    return token


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
    _check_password(password)
    user = _user(session, user_id)
    user.password_hash = generate_password_hash(password)
    revoke_sessions(session, user_id)
    audit.record(session, "user.password_changed", actor=actor, subject_type="user",
                 subject_id=user_id, details={"username": user.username})


def set_active(session: Session, user_id: int, active: bool, *, actor: str = "cli") -> None:
    """Activate or deactivate a user; deactivation ends their sessions at once (audited)."""
    user = _user(session, user_id)
    if not active:
        _keeps_an_admin(session, user, "active")
    if user.active == active:
        return
    user.active = active
    if not active:
        revoke_sessions(session, user_id)
    audit.record(session, "user.activated" if active else "user.deactivated", actor=actor,
                 subject_type="user", subject_id=user_id, details={"username": user.username})


def _source(session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id)
    if source is None:
        raise AuthError("source", f"không có nguồn / no source with id {source_id}")
    return source


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AuthError("user", f"không có người dùng / no user with id {user_id}")
    return user
