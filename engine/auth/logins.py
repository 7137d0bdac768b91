"""Web logins and logouts: a throttle on failures, and each one in the audit trail.

Failures are rows of `login_failures`, so every web process (gunicorn's workers, several
hosts on one database) counts the same ones. An attempt is written down *before* its password is
checked and removed once it succeeds or is refused unchecked: attempts made at the same moment
see each other, so parallel guesses cannot slip past the limit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth import service as auth
from engine.auth.models import LoginFailure, User
from engine.db import Database

WINDOW = timedelta(minutes=15)
MAX_PER_USER = 5
# Higher per address: a department's officers often share one address (NAT), and one person's
# typos must not lock out the whole office.
MAX_PER_ADDRESS = 20


@dataclass(frozen=True)
class LoginResult:
    """What came of a login: the user, or why not (and, when throttled, seconds to wait)."""

    user: User | None
    reason: str  # ok, throttled, unknown_user, inactive, no_password, wrong_password
    retry_after_s: int = 0


def attempt(db: Database, username: str, password: str, address: str,
            now: datetime) -> LoginResult:
    """Check a web login against the throttle, then the password; recorded and audited."""
    name, address = username.strip()[:100], (address or "unknown")[:64]
    held = _hold(db, name.lower(), address, now)
    wait = _wait(db, name.lower(), address, now, held)
    if wait:
        with db.session() as s:
            s.execute(delete(LoginFailure).where(LoginFailure.id == held))
            _audit_failure(s, name, address, "throttled")
        return LoginResult(None, "throttled", wait)
    with db.read() as s:
        user, reason = auth.authenticate(s, name, password)
    with db.session() as s:
        if user is None:
            _audit_failure(s, name, address, reason)
            return LoginResult(None, reason)
        # Success clears the name's failures, not the address's (one known password must not
        # reset the count of guesses at other accounts from there).
        s.execute(delete(LoginFailure).where(LoginFailure.username == name.lower()))
        audit.record(s, "auth.login", actor=f"user:{user.username}", subject_type="user",
                     subject_id=user.id, details={"address": address})
    return LoginResult(user, "ok")


def logout(db: Database, user: User, address: str) -> None:
    """End every session of the user (the cookie may have been copied) and audit it."""
    with db.session() as s:
        auth.revoke_sessions(s, user.id)
        audit.record(s, "auth.logout", actor=f"user:{user.username}", subject_type="user",
                     subject_id=user.id, details={"address": (address or "unknown")[:64]})


def _hold(db: Database, name: str, address: str, now: datetime) -> int:
    """Write the attempt down as a failure until it proves otherwise; its row id."""
    with db.session() as s:
        s.execute(delete(LoginFailure).where(LoginFailure.at < now - WINDOW))
        row = LoginFailure(username=name, address=address, at=now)
        s.add(row)
        s.flush()
        return row.id


def _wait(db: Database, name: str, address: str, now: datetime, held: int) -> int:
    """Seconds until this name and address may try again; 0 when they may now."""
    wait = 0
    with db.read() as s:
        for column, value, limit in ((LoginFailure.username, name, MAX_PER_USER),
                                     (LoginFailure.address, address, MAX_PER_ADDRESS)):
            recent = (column == value, LoginFailure.at > now - WINDOW, LoginFailure.id != held)
            count = s.scalar(select(func.count()).where(*recent))
            if count < limit:
                continue
            # Allowed again once enough of the oldest failures have left the window.
            freed = s.scalar(select(LoginFailure.at).where(*recent).order_by(LoginFailure.at)
                             .offset(count - limit).limit(1))
            wait = max(wait, math.ceil((freed + WINDOW - now).total_seconds()), 1)
    return wait


def _audit_failure(s: Session, name: str, address: str, reason: str) -> None:
    # The subject is the user when the name is known, else the name as typed; never the password.
    user_id = s.scalar(select(User.id).where(User.username == name))
    audit.record(s, "auth.login_failed", actor="anonymous", subject_type="user",
                 subject_id=user_id if user_id is not None else name,
                 details={"username": name, "reason": reason, "address": address})
