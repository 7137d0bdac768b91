"""A person's inbox, a page at a time: the tasks they may see, filtered (state, "my tasks", unit,
scenario, a case's subject), sorted by urgency (the soonest SLA deadline first), newest or oldest,
with keyset paging (a cursor after the last task shown) and a count."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.auth.models import User
from engine.processes.models import ProcessInstance
from engine.sla.models import OPEN_STATES, SlaClock
from engine.tasks.models import ACTIVE, CLAIMED, COMPLETED, OPEN, Task
from engine.tasks.service import TaskError, visible

PAGE = 50
SORTS = ("urgent", "newest", "oldest")
STATES = ("", OPEN, CLAIMED, COMPLETED)  # "": open and claimed


@dataclass(frozen=True)
class Filters:
    """What the inbox shows; empty is "any" (state: the tasks still to do)."""

    state: str = ""
    mine: bool = False
    department: str = ""
    scenario: str = ""
    subject: str = ""
    sort: str = "urgent"


def _due():
    """The task's soonest open SLA deadline: its own clock's, else its case's."""
    own = select(func.min(SlaClock.due_at)).where(
        SlaClock.task_id == Task.id, SlaClock.status.in_(OPEN_STATES)).scalar_subquery()
    shared = select(func.min(SlaClock.due_at)).where(
        SlaClock.task_id.is_(None), SlaClock.instance_id == Task.instance_id,
        SlaClock.status.in_(OPEN_STATES)).scalar_subquery()
    return func.coalesce(own, shared)


def _query(user: User, f: Filters):
    if f.state not in STATES:
        raise TaskError(400, f"state: one of {', '.join(s for s in STATES if s)}",
                        [{"field": "state", "message": "unknown state"}])
    if f.sort not in SORTS:
        raise TaskError(400, f"sort: one of {', '.join(SORTS)}",
                        [{"field": "sort", "message": "unknown order"}])
    query = visible(user, select(Task), f.department or None)
    query = query.where(Task.status.in_(ACTIVE) if not f.state else Task.status == f.state)
    if f.mine:
        query = query.where(or_(Task.assignee_id == user.id, Task.completed_by_id == user.id))
    if f.scenario or f.subject:
        query = query.join(ProcessInstance, ProcessInstance.id == Task.instance_id)
        if f.scenario:
            query = query.where(ProcessInstance.scenario_key == f.scenario)
        if f.subject:
            query = query.where(func.lower(ProcessInstance.subject)
                                .like(f"%{f.subject.lower()}%"))
    return query


def _parse(cursor: str) -> tuple[datetime | None, int]:
    """(due moment or None, task id) from "<ISO or ->~<id>"; TaskError when malformed."""
    due, _, task_id = (cursor or "").rpartition("~")
    try:
        return (None if due in ("", "-") else datetime.fromisoformat(due)), int(task_id)
    except ValueError:
        raise TaskError(400, "cursor: not one this list gave",
                        [{"field": "cursor", "message": "malformed"}]) from None


def page(session: Session, user: User, filters: Filters, cursor: str = "",
         limit: int = PAGE) -> tuple[list[Task], str | None, int]:
    """(a page of tasks, the cursor of the next page or None, how many match in all)."""
    query = _query(user, filters)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    due = _due().label("due")
    query = query.add_columns(due)
    if filters.sort == "urgent":
        # Deadlines first, soonest first; tasks without a running clock after, oldest first.
        query = query.order_by(case((due.is_(None), 1), else_=0), due, Task.id)
        if cursor:
            after_due, after_id = _parse(cursor)
            query = query.where(and_(due.is_(None), Task.id > after_id) if after_due is None
                                else or_(due > after_due, and_(due == after_due,
                                                               Task.id > after_id),
                                         due.is_(None)))
    else:
        newest = filters.sort == "newest"
        query = query.order_by(Task.id.desc() if newest else Task.id)
        if cursor:
            _, after_id = _parse(cursor)
            query = query.where(Task.id < after_id if newest else Task.id > after_id)
    rows = session.execute(query.limit(limit + 1)).all()
    shown = rows[:limit]
    following = None
    if len(rows) > limit:
        task, deadline = shown[-1]
        following = f"{deadline.isoformat() if deadline else '-'}~{task.id}"
    return [task for task, _ in shown], following, total
