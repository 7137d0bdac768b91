"""Delivery channels behind one interface: in-app, e-mail (SMTP) and signed webhooks.

A channel takes one `Message` (a snapshot of an outbox row, so no database session is held
while a mail server or a web service answers) and one `Address`, and either returns — the
message is delivered — or raises `DeliveryError`. The outbox (engine/notify/delivery.py) decides
about retries; a channel never retries by itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.config import Settings
from engine.notify.models import EMAIL, IN_APP, WEBHOOK, Notification


@dataclass(frozen=True)
class Message:
    """What a channel sends: the content of one outbox row and which attempt this is."""

    id: int
    kind: str
    subject: str
    text: str
    user_id: int | None
    department_key: str | None
    role: str | None
    instance_id: int | None
    task_id: int | None
    created_at: datetime
    attempt: int

    @classmethod
    def of(cls, row: Notification) -> "Message":
        """The snapshot of an outbox row (at its current attempt number)."""
        return cls(id=row.id, kind=row.kind, subject=row.subject, text=row.text,
                   user_id=row.user_id, department_key=row.department_key, role=row.role,
                   instance_id=row.instance_id, task_id=row.task_id, created_at=row.created_at,
                   attempt=row.attempts)


@dataclass(frozen=True)
class Address:
    """Where a message goes: an e-mail address or a URL, and the secret that signs it (webhooks)."""

    value: str
    secret: str | None = None

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Address({self.value!r})"


class DeliveryError(Exception):
    """The channel could not deliver; `permanent` says another attempt cannot help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Unreachable(DeliveryError):
    """The server itself could not be reached (refused, timed out, name unknown).

    The outbox stops trying the same `route` for the rest of its pass: one dead mail server
    must cost one timeout, not one per queued message, since the runner waits meanwhile.
    """


class Channel(Protocol):
    """One way of telling people."""

    name: str

    def route(self, address: Address) -> str:
        """The server an address is reached through (one SMTP server, one web host)."""
        ...

    def deliver(self, message: Message, address: Address) -> None:
        """Deliver one message or raise DeliveryError."""
        ...


class InAppChannel:
    """The inbox: a stored notification is a delivered one, so there is nothing to send."""

    name = IN_APP

    def route(self, address: Address) -> str:
        """Every in-app message stays in the database."""
        return "in-app"

    def deliver(self, message: Message, address: Address) -> None:
        """Nothing to do: the row is what the inbox reads."""


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels the settings enable, by name (e-mail only with IOC_SMTP_HOST)."""
    from engine.notify.channels.email import EmailChannel
    from engine.notify.channels.webhook import WebhookChannel

    channels: dict[str, Channel] = {IN_APP: InAppChannel(),
                                    WEBHOOK: WebhookChannel(timeout_s=settings.notify_timeout_s)}
    if settings.smtp_enabled:
        channels[EMAIL] = EmailChannel.from_settings(settings)
    return channels
