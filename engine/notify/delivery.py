"""Delivering the outbox: pending notifications go out through their channels, with retries.

A pass has three steps, so that no database transaction stays open while a mail server or a web
service takes its time (on SQLite an open write transaction would stop ingestion meanwhile):

1. Claim, in one short transaction, the pending rows whose `next_attempt_at` has come (or is
   unset: a first attempt), oldest first. On PostgreSQL they are read FOR UPDATE SKIP LOCKED, so
   two runners never claim the same row. Claiming counts the attempt and moves `next_attempt_at`
   one lease ahead: if the process dies while sending, the row is tried again after the lease
   (a webhook receiver drops the duplicate by X-IOC-Delivery).
2. Send each claimed message through its channel, outside any transaction.
3. Record each outcome in its own transaction with its audit record — `notification.sent`, or
   `notification.failed` with the attempt number and either the next try (backoff: 1 min, 5, 25,
   … by default) or `final: true` after the last attempt, when the row becomes `failed`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select

from engine.audit import service as audit
from engine.clock import Clock
from engine.config import Settings
from engine.db import Database
from engine.notify.channels import (
    Address,
    Channel,
    DeliveryError,
    Message,
    Unreachable,
    build_channels,
)
from engine.notify.models import (
    EMAIL,
    FAILED,
    IN_APP,
    PENDING,
    SENT,
    WEBHOOK,
    Notification,
    WebhookSubscription,
)

log = logging.getLogger(__name__)

ACTOR = "outbox"
# Longer than any pass can take (limit × the channel timeout), so a slow pass never sees its
# own claims expire and sends twice.
LEASE = timedelta(minutes=15)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a message gets and how long to wait after each failure."""

    max_attempts: int = 5
    base_s: float = 60.0
    factor: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        """IOC_NOTIFY_MAX_ATTEMPTS, IOC_NOTIFY_RETRY_BASE_S, IOC_NOTIFY_RETRY_FACTOR."""
        return cls(settings.notify_max_attempts, settings.notify_retry_base_s,
                   settings.notify_retry_factor)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number `attempt` (1-based): base × factor^(attempt-1)."""
        return timedelta(seconds=self.base_s * self.factor ** (attempt - 1))


@dataclass(frozen=True)
class _Claim:
    id: int
    channel: str
    attempt: int
    message: Message
    address: Address | None
    user_id: int | None
    webhook_id: int | None
    instance_id: int | None
    problem: str | None = None  # known before sending: why this cannot be delivered at all


class Outbox:
    """Sends what is due in the outbox; one pass at a time."""

    def __init__(self, db: Database, clock: Clock, settings: Settings,
                 channels: dict[str, Channel] | None = None):
        self.db, self.clock = db, clock
        self.channels = channels if channels is not None else build_channels(settings)
        self.policy = RetryPolicy.from_settings(settings)

    def run_once(self, limit: int = 50) -> int:
        """Deliver up to `limit` due notifications; return how many were handled."""
        claims = self._claim(limit)
        down: dict[str, str] = {}  # route → error, for servers found unreachable in this pass
        for claim in claims:
            error, permanent = self._attempt(claim, down)
            try:
                self._record(claim, error, permanent)
            except Exception:  # noqa: BLE001 - the claim's lease brings the row back later
                log.exception("could not record the outcome of notification %s", claim.id)
        return len(claims)

    # -- 1. claim ---------------------------------------------------------------------------------

    def _claim(self, limit: int) -> list[_Claim]:
        due = (Notification.status == PENDING,
               or_(Notification.next_attempt_at.is_(None),
                   Notification.next_attempt_at <= self.clock.now()))
        # A read first: the runner asks every few events, and most of the time nothing is due;
        # a writing transaction each time would queue behind (and delay) event processing.
        with self.db.read() as session:
            if session.scalar(select(Notification.id).where(*due).limit(1)) is None:
                return []
        with self.db.session() as session:
            now = self.clock.now()
            query = select(Notification).where(*due).order_by(Notification.id).limit(limit)
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            claims = []
            for row in session.scalars(query):
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                claims.append(self._claim_of(session, row))
            return claims

    def _claim_of(self, session, row: Notification) -> _Claim:
        address, problem = None, None
        if row.channel == WEBHOOK:
            sub = session.get(WebhookSubscription, row.webhook_id) if row.webhook_id else None
            if sub is None or not sub.active:
                problem = f"webhook subscription {row.webhook_id} is no longer active"
            else:
                # The subscription's current URL and secret: a rotated secret applies at once.
                address = Address(sub.url, sub.secret)
        elif row.address or row.channel == IN_APP:
            address = Address(row.address or "")
        else:
            problem = f"no address to deliver a {row.channel} notification to"
        return _Claim(id=row.id, channel=row.channel, attempt=row.attempts,
                      message=Message.of(row), address=address, user_id=row.user_id,
                      webhook_id=row.webhook_id, instance_id=row.instance_id, problem=problem)

    # -- 2. send ----------------------------------------------------------------------------------

    def _attempt(self, claim: _Claim, down: dict[str, str]) -> tuple[str | None, bool]:
        """(error or None, whether the error is permanent)."""
        if claim.problem:
            return claim.problem, True
        channel = self.channels.get(claim.channel)
        if channel is None:
            if claim.channel == EMAIL:
                # Queued while SMTP was configured; it may be configured again: keep trying.
                return "the e-mail channel is off: IOC_SMTP_HOST is not set", False
            return f"no channel {claim.channel!r} in this engine", True
        route = channel.route(claim.address)
        if route in down:
            return f"{down[route]} (not retried in this pass)", False
        try:
            channel.deliver(claim.message, claim.address)
        except Unreachable as exc:
            down[route] = str(exc)
            return str(exc), exc.permanent
        except DeliveryError as exc:
            return str(exc), exc.permanent
        except Exception as exc:  # noqa: BLE001 - a channel bug fails one message, not the pass
            log.exception("channel %s failed on notification %s", claim.channel, claim.id)
            return f"{type(exc).__name__}: {exc}", False
        return None, False

    # -- 3. record --------------------------------------------------------------------------------

    def _record(self, claim: _Claim, error: str | None, permanent: bool) -> None:
        with self.db.session() as session:
            query = select(Notification).where(Notification.id == claim.id)
            if self.db.is_postgres:
                query = query.with_for_update()
            row = session.scalars(query).first()
            if row is None or row.status != PENDING or row.attempts != claim.attempt:
                # Our lease ran out and another pass took the row over: its outcome counts.
                log.warning("notification %s changed while being sent; outcome dropped", claim.id)
                return
            now = self.clock.now()
            details = {"channel": claim.channel, "attempt": claim.attempt,
                       "max_attempts": self.policy.max_attempts, "user_id": claim.user_id,
                       "webhook_id": claim.webhook_id}
            if error is None:
                row.status, row.sent_at, row.next_attempt_at, row.error = SENT, now, None, None
                audit.record(session, "notification.sent", actor=ACTOR,
                             subject_type="notification", subject_id=row.id,
                             instance_id=claim.instance_id, details=details)
                return
            row.error = error[:2000]
            final = permanent or claim.attempt >= self.policy.max_attempts
            if final:
                row.status, row.next_attempt_at = FAILED, None
                log.warning("notification %s failed after %s attempt(s): %s", row.id,
                            claim.attempt, row.error)
            else:
                row.next_attempt_at = now + self.policy.delay(claim.attempt)
            audit.record(session, "notification.failed", actor=ACTOR,
                         subject_type="notification", subject_id=row.id,
                         instance_id=claim.instance_id,
                         details=details | {"error": row.error, "final": final,
                                            "permanent": permanent,
                                            "retry_at": row.next_attempt_at})
