"""Dead letters: events whose processing failed for good; an administrator retries or discards
them, and each decision is audited."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.events import service
from engine.events.models import DISCARDED, FAILED, PENDING, Event

MAX_REASON = 500


class DeadLetterError(Exception):
    """A retry or discard that cannot be done; `status` is the HTTP status that fits and `field`
    the input at fault, if any."""

    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.message, self.field = status, message, field
        super().__init__(message)


def list_dead(session: Session, *, limit: int = 100, type_: str | None = None,
              source: str | None = None) -> list[Event]:
    """Failed events, newest first, optionally of one type or one CloudEvents source."""
    query = select(Event).where(Event.status == FAILED).order_by(Event.id.desc()).limit(limit)
    if type_:
        query = query.where(Event.type == type_)
    if source:
        query = query.where(Event.ce_source == source)
    return list(session.scalars(query))


def count_dead(session: Session) -> int:
    """How many events are dead letters."""
    return session.scalar(select(func.count()).select_from(Event).where(Event.status == FAILED))


def _dead(session: Session, event_id: int) -> Event:
    # Locked on PostgreSQL so that two administrators acting at once take turns: the second then
    # sees the event is no longer failed.
    event = session.get(Event, event_id, with_for_update=True)
    if event is None:
        raise DeadLetterError(404, f"Không có sự kiện {event_id} / There is no event {event_id}")
    if event.status != FAILED:
        raise DeadLetterError(409, f"Sự kiện {event_id} không phải sự kiện lỗi (trạng thái "
                                   f"{event.status}) / Event {event_id} is not a dead letter "
                                   f"(status {event.status})")
    return event


def retry(session: Session, event_id: int, *, actor: str) -> Event:
    """Put a dead letter back in the queue with all its attempts; the next pass processes it."""
    event = _dead(session, event_id)
    details = {"error": event.error, "attempts": event.attempts}
    # The last error stays visible while the event waits: the pipeline clears it on success and
    # replaces it on a new failure, so it never outlives the next attempt.
    event.status, event.attempts = PENDING, 0
    event.next_attempt_at = event.processed_at = None
    audit.record(session, "event.retried", actor=actor, subject_type="event",
                 subject_id=event.id, details=details)
    return event


def check_reason(reason: object) -> str:
    """The reason for a discard, trimmed; DeadLetterError 422 naming `reason` when unfit."""
    if not isinstance(reason, str) or not reason.strip():
        raise DeadLetterError(422, "Thiếu lý do / A reason is required", "reason")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise DeadLetterError(422, f"Lý do dài tối đa {MAX_REASON} ký tự / The reason must be at "
                                   f"most {MAX_REASON} characters", "reason")
    return reason


def discard(session: Session, event_id: int, *, actor: str, reason: str) -> Event:
    """Give up on a dead letter for a stated reason; it leaves the list and is never processed."""
    event = _dead(session, event_id)
    reason = check_reason(reason)
    event.status = DISCARDED
    audit.record(session, "event.discarded", actor=actor, subject_type="event",
                 subject_id=event.id, details={"reason": reason, "error": event.error,
                                               "attempts": event.attempts})
    return event


def to_dict(event: Event) -> dict:
    """A dead letter as the API shows it: the stored event, its attempts and its partition."""
    return {**service.to_dict(event), "attempts": event.attempts, "partition": event.partition}
