"""Put notifications in the outbox (in the caller's transaction) and read a person's own."""
from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth.models import User
from engine.db import utcnow
from engine.notify.models import IN_APP, Notification

CHANNELS = (IN_APP,)


def send(session: Session, *, kind: str, subject: str, text: str, actor: str,
         user_id: int | None = None, department_key: str | None = None, role: str | None = None,
         channel: str = IN_APP, instance_id: int | None = None,
         task_id: int | None = None) -> Notification:
    """Queue one notification and audit it; a channel delivers it later (in-app: at once)."""
    if user_id is None and department_key is None:
        raise ValueError("a notification needs a user or a department")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    row = Notification(channel=channel, user_id=user_id, department_key=department_key, role=role,
                       subject=subject[:300], text=text, kind=kind, instance_id=instance_id,
                       task_id=task_id)
    if channel == IN_APP:
        # The inbox is the channel: stored is delivered.
        row.status, row.sent_at = "sent", utcnow()
    session.add(row)
    session.flush()
    audit.record(session, "notification.queued", actor=actor, subject_type="notification",
                 subject_id=row.id, instance_id=instance_id,
                 details={"kind": kind, "channel": channel, "user_id": user_id,
                          "department": department_key, "role": role, "subject": row.subject})
    return row


def _for(user: User):
    mine = Notification.user_id == user.id
    if not user.department_key:
        return mine
    dept = and_(Notification.user_id.is_(None), Notification.department_key == user.department_key,
                or_(Notification.role.is_(None), Notification.role == user.role))
    return or_(mine, dept)


def for_user(session: Session, user: User, limit: int = 50, unread_only: bool = False) \
        -> list[Notification]:
    """A person's in-app notifications (their own and their department's), newest first."""
    query = select(Notification).where(Notification.channel == IN_APP, _for(user))
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list(session.scalars(query.order_by(Notification.id.desc()).limit(limit)))


def to_dict(n: Notification) -> dict:
    """A notification as the API shows it."""
    return {"id": n.id, "kind": n.kind, "channel": n.channel, "subject": n.subject,
            "text": n.text, "user_id": n.user_id, "department": n.department_key,
            "role": n.role, "instance_id": n.instance_id, "task_id": n.task_id,
            "status": n.status, "created_at": n.created_at.isoformat(),
            "read_at": n.read_at.isoformat() if n.read_at else None}
