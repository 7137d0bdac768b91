"""Put notifications in the outbox (in the caller's transaction) and read a person's own.

`send` stores the in-app row (the inbox: stored is delivered) and, in the same transaction,
queues its copies for the other channels: an e-mail to every matching person with an address
(when SMTP is configured) and a POST to every active webhook subscription of the department.
The outbox (delivery.py) sends those later, with retries; a failing mail server never stops
the escalation that caused the notification.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth.models import User
from engine.auth.permissions import ROLES
from engine.db import utcnow
from engine.notify.models import (
    EMAIL,
    IN_APP,
    PENDING,
    SENT,
    WEBHOOK,
    Notification,
    WebhookSubscription,
)

CHANNELS = (IN_APP, EMAIL, WEBHOOK)
MIN_SECRET = 16  # characters; a webhook secret is a key, not a password to remember


def send(session: Session, *, kind: str, subject: str, text: str, actor: str,
         user_id: int | None = None, department_key: str | None = None, role: str | None = None,
         channel: str = IN_APP, instance_id: int | None = None,
         task_id: int | None = None, email: bool) -> Notification | None:
    """Queue a notification and its copies for e-mail and webhooks; return the in-app row.

    `email` says whether this deployment's e-mail channel is on (`Settings.smtp_enabled`): an
    in-app notification is copied to people's addresses only then, so what is queued for e-mail
    is what the outbox can send. With `channel="email"` or `"webhook"` only that channel's copies
    are queued, and the first of them is returned (None when nobody matches).
    """
    if user_id is None and department_key is None:
        raise ValueError("a notification needs a user or a department")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    fields = {"user_id": user_id, "department_key": department_key, "role": role,
              "subject": subject[:300], "text": text, "kind": kind, "instance_id": instance_id,
              "task_id": task_id}
    parent = None
    if channel == IN_APP:
        # The inbox is the channel: stored is delivered.
        parent = _queue(session, actor, channel=IN_APP, status=SENT, sent_at=utcnow(), **fields)
    copies: list[Notification] = []
    if channel == EMAIL or (channel == IN_APP and email):
        for person in _people(session, user_id, department_key, role):
            copies.append(_queue(session, actor, channel=EMAIL, parent=parent,
                                 address=person.email.strip(),
                                 **(fields | {"user_id": person.id})))
    if channel in (IN_APP, WEBHOOK):
        for sub in _subscriptions(session, user_id, department_key, role):
            copies.append(_queue(session, actor, channel=WEBHOOK, parent=parent, address=sub.url,
                                 webhook_id=sub.id, **fields))
    return parent if channel == IN_APP else (copies[0] if copies else None)


def _queue(session: Session, actor: str, *, channel: str, parent: Notification | None = None,
           status: str = PENDING, **fields) -> Notification:
    row = Notification(channel=channel, status=status, attempts=0,
                       parent_id=parent.id if parent is not None else None, **fields)
    session.add(row)
    session.flush()
    # Addresses and URLs stay out of the audit chain (it cannot be edited, personal data can
    # be asked to be erased); the user id and subscription id say who it went to.
    audit.record(session, "notification.queued", actor=actor, subject_type="notification",
                 subject_id=row.id, instance_id=row.instance_id,
                 details={"kind": row.kind, "channel": channel, "user_id": row.user_id,
                          "department": row.department_key, "role": row.role,
                          "subject": row.subject, "parent_id": row.parent_id,
                          "webhook_id": row.webhook_id})
    return row


def _people(session: Session, user_id: int | None, department_key: str | None,
            role: str | None) -> list[User]:
    # The people an in-app notification reaches, as the inbox would show it, with an address.
    query = select(User).where(User.active.is_(True), User.email.is_not(None),
                               User.email != "")
    if user_id is not None:
        query = query.where(User.id == user_id)
    else:
        query = query.where(User.department_key == department_key)
        if role is not None:
            query = query.where(User.role == role)
    seen: set[str] = set()
    out = []
    for person in session.scalars(query.order_by(User.id)):
        address = person.email.strip().lower()
        if "@" in address and address not in seen:  # one e-mail per mailbox
            seen.add(address)
            out.append(person)
    return out


def _subscriptions(session: Session, user_id: int | None, department_key: str | None,
                   role: str | None) -> list[WebhookSubscription]:
    if user_id is not None:
        # A notification to one person reaches the subscriptions of their department and role.
        person = session.get(User, user_id)
        department_key = person.department_key if person else department_key
        role = person.role if person else role
    query = select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
    query = query.where(or_(WebhookSubscription.department_key.is_(None),
                            WebhookSubscription.department_key == department_key))
    if role is not None:
        # A subscription for one role hears what a member of that role would see.
        query = query.where(or_(WebhookSubscription.role.is_(None),
                                WebhookSubscription.role == role))
    return list(session.scalars(query.order_by(WebhookSubscription.id)))


# -- webhook subscriptions ------------------------------------------------------------------------

class WebhookInvalid(ValueError):
    """A subscription was refused; `field` names the option to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def add_webhook(session: Session, url: str, secret: str, *, department_key: str | None = None,
                role: str | None = None, departments: set[str] | None = None,
                actor: str = "cli") -> WebhookSubscription:
    """Subscribe a URL to the notifications of a department (or all), optionally one role."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookInvalid("url", f"must be an http:// or https:// URL with a host, not {url!r}")
    if len(url) > 1000:
        raise WebhookInvalid("url", "must be at most 1000 characters")
    if not secret or len(secret) < MIN_SECRET or len(secret) > 200:
        raise WebhookInvalid("secret", f"must be {MIN_SECRET} to 200 characters (the receiver "
                             "checks X-IOC-Signature with it)")
    if department_key is not None and departments is not None \
            and department_key not in departments:
        raise WebhookInvalid("department", f"{department_key!r} is not a unit of the organisation")
    if role is not None and role not in ROLES:
        raise WebhookInvalid("role", f"must be one of {', '.join(ROLES)}")
    sub = WebhookSubscription(url=url, secret=secret, department_key=department_key, role=role,
                              active=True)
    session.add(sub)
    session.flush()
    audit.record(session, "webhook.subscribed", actor=actor, subject_type="webhook",
                 subject_id=sub.id, details={"department": department_key, "role": role,
                                             "host": parts.hostname})
    return sub


def deactivate_webhook(session: Session, webhook_id: int, actor: str = "cli") \
        -> WebhookSubscription:
    """Stop a subscription: nothing more is queued for it and what is queued is not sent."""
    sub = session.get(WebhookSubscription, webhook_id)
    if sub is None:
        raise WebhookInvalid("id", f"there is no webhook subscription {webhook_id}")
    if sub.active:
        sub.active = False
        audit.record(session, "webhook.deactivated", actor=actor, subject_type="webhook",
                     subject_id=sub.id, details={"department": sub.department_key})
    return sub


def webhooks(session: Session) -> list[WebhookSubscription]:
    """Every subscription, oldest first."""
    return list(session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)))


# -- reading --------------------------------------------------------------------------------------

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
