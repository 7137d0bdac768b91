"""What a running process instance waits for now: its open tasks, the timers it waits on (when
its deadline or a chosen date passes), and the messages it waits for (another system's event
about the same case). What the case pages show as "Đang chờ / Now waiting for"."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.processes import spiff
from engine.processes.models import RUNNING, MessageWait, ProcessInstance
from engine.tasks.models import ACTIVE, Task


@dataclass(frozen=True)
class Wait:
    """One thing the instance waits for: a task (of a unit), a timer (due at), or a message
    (an event type, about the case's correlation value)."""

    kind: str  # task | timer | message
    name: str
    department: str | None = None
    task_id: int | None = None
    due_at: datetime | None = None
    about: object = None


def waiting_for(session: Session, runtime, instance: ProcessInstance) -> list[Wait]:
    """The instance's waits now, tasks first, then timers soonest first, then messages; none
    once it has ended."""
    if instance.status != RUNNING:
        return []
    waits = [Wait("task", t.name, department=t.department_key, task_id=t.id)
             for t in session.scalars(select(Task).where(
                 Task.instance_id == instance.id, Task.status.in_(ACTIVE)).order_by(Task.id))]
    workflow = runtime.workflow_of(session, instance)
    waits += [Wait("timer", task.task_spec.bpmn_name or task.task_spec.bpmn_id, due_at=due)
              for task, due in spiff.waiting_timers(workflow)]
    for row in session.scalars(select(MessageWait).where(
            MessageWait.instance_id == instance.id).order_by(MessageWait.id)):
        about = json.loads(row.correlation_value) if row.correlation_value else None
        waits.append(Wait("message", row.message_name, about=about))
    return waits
