"""The access log: who logged in or failed to, whose role, unit, password or API token changed,
which source's credentials changed, and who read or exported which case file; read from the audit
records, newest first, a page at a time (keyset: `before` the last seq shown)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.audit.models import AuditRecord
from engine.auth.models import User
from engine.lists import keyset, narrowed

PAGE = 50
# The kinds of access an auditor asks about, and the audit actions of each.
KINDS: dict[str, tuple[str, ...]] = {
    "logins": ("auth.login", "auth.logout"),
    "failed_logins": ("auth.login_failed",),
    "permissions": ("user.created", "user.role_changed", "user.updated", "user.activated",
                    "user.deactivated", "user.password_changed", "user.token_issued",
                    "user.token_revoked", "user.handed_over"),
    "sources": ("source.created", "source.changed", "source.token_rotated"),
    "case_views": ("case.viewed", "case.exported"),
}
EVERY_KIND = tuple(action for actions in KINDS.values() for action in actions)


@dataclass(frozen=True)
class Filters:
    """What to look for; None or "" is "any"."""

    kind: str | None = None
    person: str | None = None  # a username: what they did, and what was done to them
    since: date | None = None
    until: date | None = None


def _query(session: Session, f: Filters):
    if f.kind and f.kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}")
    query = select(AuditRecord).where(AuditRecord.action.in_(KINDS[f.kind] if f.kind
                                                             else EVERY_KIND))
    if f.person:
        user_id = session.scalar(select(User.id).where(User.username == f.person))
        # A failed login names the user's id when the name is known, else the name as typed.
        subjects = [f.person] + ([str(user_id)] if user_id is not None else [])
        query = query.where(or_(AuditRecord.actor == f"user:{f.person}", and_(
            AuditRecord.subject_type == "user", AuditRecord.subject_id.in_(subjects))))
    return narrowed(query, period=(AuditRecord.at, f.since, f.until))


def search(session: Session, filters: Filters, before: int | None = None,
           limit: int = PAGE) -> tuple[list[AuditRecord], int | None, int]:
    """(a page of access records newest first, the `before` of the next page or None, how many
    match)."""
    return keyset(session, _query(session, filters), AuditRecord.seq, before, limit)
