"""Handing over an ended unit's work to its successor, on the day the successor takes over.

The organisation file ends a unit (`valid_to`) and names the unit that takes over its work
(`successor`): a merger of departments, a former district and its namesake ward. From the
successor's first day, what the ended unit still holds moves to it: open tasks and the
escalations it oversees, running SLA clocks, the accounts of its people and its webhook
subscriptions, each move audited. Without it, open work would sit in a department no inbox shows
any more, and its people would see nothing.

It runs when an organisation file is loaded (for units that have already ended) and, for a unit
that ends later, at 00:00 (Asia/Ho_Chi_Minh) of its successor's first day: a timer of kind `org`
per such day, set at load.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth.models import User
from engine.notify.models import WebhookSubscription
from engine.org import service as org
from engine.org.models import OrgUnit
from engine.sla.models import OPEN_STATES, SlaClock
from engine.tasks.models import ACTIVE, Task
from engine.timers import service as timers
from engine.timers.models import ORG, Timer

ACTOR = "org"


def hand_over(session: Session, on: date, actor: str = ACTOR) -> Counter:
    """Move what units ended by `on` still hold to the unit that succeeds them on `on`; return
    how many tasks, clocks, users and webhooks moved."""
    moves = {key: unit.key for key in sorted(_held_keys(session))
             if (unit := org.resolve(session, key, on)) is not None and unit.key != key}
    moved: Counter = Counter()
    for old, new in moves.items():
        details = {"from": old, "to": new, "on": on.isoformat()}
        for task in session.scalars(select(Task).where(
                Task.status.in_(ACTIVE), or_(Task.department_key == old, Task.escalated_to == old))):
            if task.department_key == old:
                task.department_key = new
            if task.escalated_to == old:
                task.escalated_to = new
            audit.record(session, "task.handed_over", actor=actor, subject_type="task",
                         subject_id=task.id, instance_id=task.instance_id, details=details)
            moved["tasks"] += 1
        for clock in session.scalars(select(SlaClock).where(
                SlaClock.status.in_(OPEN_STATES), SlaClock.department_key == old)):
            clock.department_key = new
            audit.record(session, "sla.handed_over", actor=actor, subject_type="sla",
                         subject_id=clock.id, instance_id=clock.instance_id, details=details)
            moved["clocks"] += 1
        for user in session.scalars(select(User).where(User.department_key == old)):
            user.department_key = new
            audit.record(session, "user.handed_over", actor=actor, subject_type="user",
                         subject_id=user.id, details=details | {"username": user.username})
            moved["users"] += 1
        for hook in session.scalars(select(WebhookSubscription).where(
                WebhookSubscription.department_key == old)):
            hook.department_key = new
            audit.record(session, "webhook.handed_over", actor=actor, subject_type="webhook",
                         subject_id=hook.id, details=details)
            moved["webhooks"] += 1
    return moved


def _held_keys(session: Session) -> set[str]:
    """Every unit key something still open or living is filed under."""
    queries = (
        select(Task.department_key).where(Task.status.in_(ACTIVE)),
        select(Task.escalated_to).where(Task.status.in_(ACTIVE), Task.escalated_to.is_not(None)),
        select(SlaClock.department_key).where(SlaClock.status.in_(OPEN_STATES)),
        select(User.department_key).where(User.department_key.is_not(None)),
        select(WebhookSubscription.department_key).where(
            WebhookSubscription.department_key.is_not(None)),
    )
    return {key for query in queries for key in session.scalars(query.distinct())}


def schedule(session: Session, today: date) -> list[date]:
    """Set a handover timer for each day after `today` on which a successor takes over; return
    those days."""
    days = sorted({end + timedelta(days=1) for end in session.scalars(
        select(OrgUnit.valid_to).where(OrgUnit.valid_to >= today,
                                       OrgUnit.successor_key.is_not(None)).distinct())})
    for day in days:
        midnight = org.day_start(day)
        timers.reschedule(session, ORG, f"handover:{day.isoformat()}", midnight,
                          payload={"on": day.isoformat()})
    return days


def fire(session: Session, timer: Timer) -> None:
    """The scheduler's handler for `org` timers: hand over on the timer's day."""
    hand_over(session, date.fromisoformat(timer.payload["on"]))
