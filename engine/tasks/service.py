"""Department tasks: list what a person may see, claim, release, hand to a colleague, complete
(answers checked against the form)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth.models import User
from engine.auth.permissions import allowed
from engine.db import utcnow
from engine.incidents.models import TASK, ProcessIncident
from engine.processes.models import ProcessInstance
from engine.processes.service import ProcessError, ProcessRuntime, TaskWithdrawn
from engine.tasks import forms
from engine.tasks.models import CLAIMED, OPEN, STATUSES, Task


class TaskError(Exception):
    """A task action that cannot be done; `status` is the HTTP status that fits."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        self.status, self.message, self.errors = status, message, errors or []
        super().__init__(message)


def visible_departments(user: User) -> set[str] | None:
    """The departments whose tasks `user` may see; None means every department."""
    if allowed(user.role, "tasks.any_department"):
        return None
    return {user.department_key} if user.department_key else set()


def visible(user: User, query, department: str | None = None):
    """`query` over Task narrowed to the tasks `user` may see, of `department` if given (a
    department also oversees what an SLA escalated to it); TaskError 403 for a department
    outside the user's."""
    scope = visible_departments(user)
    if department is not None:
        if scope is not None and department not in scope:
            raise TaskError(403, f"you may only see tasks of {', '.join(sorted(scope)) or 'none'}")
        return query.where(or_(Task.department_key == department,
                               Task.escalated_to == department))
    if scope is None:
        return query
    return query.where(or_(Task.department_key.in_(scope), Task.escalated_to.in_(scope)))


def list_tasks(session: Session, user: User, *, department: str | None = None,
               status: str | None = None, assignee: str | None = None,
               limit: int = 100, offset: int = 0) -> list[Task]:
    """Tasks `user` may see, newest first, filtered by department, status and assignee."""
    if status is not None and status not in STATUSES:
        raise TaskError(400, f"status must be one of {', '.join(STATUSES)}",
                        [{"field": "status", "message": "unknown status"}])
    query = visible(user, select(Task).order_by(Task.id.desc()).limit(limit).offset(offset),
                    department)
    if status is not None:
        query = query.where(Task.status == status)
    if assignee is not None:
        if assignee == "me":
            query = query.where(Task.assignee_id == user.id)
        else:
            who = session.scalars(select(User).where(User.username == assignee)).first()
            query = query.where(Task.assignee_id == (who.id if who else -1))
    return list(session.scalars(query))


def get_for(session: Session, user: User, task_id: int) -> Task:
    """The task, if `user` may see it; TaskError 404 otherwise (no hint that it exists)."""
    task = session.get(Task, task_id)
    scope = visible_departments(user)
    if task is None or (scope is not None and task.department_key not in scope
                        and task.escalated_to not in scope):
        raise TaskError(404, f"task {task_id} not found")
    return task


def _get_to_change(session: Session, user: User, task_id: int) -> Task:
    """The task as `get_for` gives it, read again after its instance's row is locked.

    Every step on an instance locks the instance's row before its tasks, timers and waits
    (engine/processes/service.py): a claim or a completion that wrote the task first deadlocked
    with a worker or the scheduler holding the instance and withdrawing that task."""
    task = get_for(session, user, task_id)
    session.get(ProcessInstance, task.instance_id, with_for_update=True)
    session.refresh(task)  # as it is now that nobody else can move the instance
    return task


def _check_may_work(user: User, task: Task, permission: str) -> None:
    if not allowed(user.role, permission):
        raise TaskError(403, f"a {user.role} may not do this")
    if not allowed(user.role, "tasks.any_department") and task.department_key != user.department_key:
        raise TaskError(403, "this task belongs to another department")


def claim(session: Session, user: User, task_id: int,
          runtime: ProcessRuntime | None = None) -> Task:
    """Take an open task of one's department (the runtime tells the SLA clocks)."""
    task = _get_to_change(session, user, task_id)
    _check_may_work(user, task, "tasks.claim")
    if task.status == CLAIMED and task.assignee_id == user.id:
        return task
    if task.status != OPEN:
        raise TaskError(409, f"task {task.id} is {task.status}, it cannot be claimed")
    task.status, task.assignee_id, task.claimed_at = CLAIMED, user.id, utcnow()
    audit.record(session, "task.claimed", actor=f"user:{user.username}", subject_type="task",
                 subject_id=task.id, instance_id=task.instance_id,
                 details={"task": task.bpmn_id, "department": task.department_key})
    if runtime is not None:
        runtime.task_claimed(session, task)
    return task


def _may_manage(user: User, task: Task) -> bool:
    """Whether `user` may release or reassign `task` whoever holds it: the head of its
    department, or a role over every department's tasks."""
    return allowed(user.role, "tasks.assign") and (
        allowed(user.role, "tasks.any_department") or task.department_key == user.department_key)


def may_hand_over(user: User, task: Task) -> bool:
    """Whether `user` may hand `task` to someone (its holder, or whoever manages it)."""
    return (task.status == CLAIMED and task.assignee_id == user.id) or _may_manage(user, task)


def _holder(session: Session, task: Task) -> str | None:
    holder = session.get(User, task.assignee_id) if task.assignee_id else None
    return holder.username if holder else None


def release(session: Session, user: User, task_id: int) -> Task:
    """Give a claimed task back to the department's open tasks: its holder may, and so may the
    head of its department (audited: who released whose)."""
    task = _get_to_change(session, user, task_id)
    if task.status != CLAIMED:
        raise TaskError(409, f"nhiệm vụ {task.id} không có ai đang giữ / task {task.id} is "
                             f"{task.status}, nobody holds it")
    if task.assignee_id != user.id and not _may_manage(user, task):
        raise TaskError(403, "chỉ người đang giữ hoặc lãnh đạo đơn vị mới trả lại được / only "
                             "its holder or the department's head may release it")
    holder = _holder(session, task)
    task.status, task.assignee_id, task.claimed_at = OPEN, None, None
    audit.record(session, "task.released", actor=f"user:{user.username}", subject_type="task",
                 subject_id=task.id, instance_id=task.instance_id,
                 details={"task": task.bpmn_id, "department": task.department_key,
                          "from": holder})
    return task


def colleagues(session: Session, task: Task) -> list[User]:
    """The people a task may be given to: active members of its department who work tasks."""
    return list(session.scalars(select(User).where(
        User.department_key == task.department_key, User.active,
        User.role.in_(("civil_servant", "department_head"))).order_by(User.username)))


def assign(session: Session, user: User, task_id: int, to: str,
           runtime: ProcessRuntime | None = None) -> Task:
    """Hand a task to a colleague of its department: its holder may hand it on, the head of
    the department may give any of its open or claimed tasks to anyone in it (audited)."""
    task = _get_to_change(session, user, task_id)
    if task.status not in (OPEN, CLAIMED):
        raise TaskError(409, f"nhiệm vụ {task.id} đã {task.status} / task {task.id} is "
                             f"{task.status}")
    if not may_hand_over(user, task):
        raise TaskError(403, "chỉ người đang giữ hoặc lãnh đạo đơn vị mới giao lại được / only "
                             "its holder or the department's head may hand it on")
    target = next((u for u in colleagues(session, task) if u.username == to), None)
    if target is None:
        raise TaskError(422, f"{to!r} không phải cán bộ đang làm việc của đơn vị này / is not "
                             "an active member of the task's department",
                        [{"field": "to", "message": "not a colleague in the task's department"}])
    if task.assignee_id == target.id:
        return task
    holder, was_open = _holder(session, task), task.status == OPEN
    task.status, task.assignee_id, task.claimed_at = CLAIMED, target.id, utcnow()
    audit.record(session, "task.assigned", actor=f"user:{user.username}", subject_type="task",
                 subject_id=task.id, instance_id=task.instance_id,
                 details={"task": task.bpmn_id, "department": task.department_key,
                          "from": holder, "to": target.username})
    if was_open and runtime is not None:
        runtime.task_claimed(session, task)  # someone now holds it, as a claim
    return task


def complete(session: Session, runtime: ProcessRuntime, user: User, task_id: int,
             answers: object) -> Completion:
    """Complete a task with form answers; an unclaimed task is claimed on the way. When the
    scenario fails on it, the answer is kept and an incident opened (Completion.incident)."""
    task = _get_to_change(session, user, task_id)
    _check_may_work(user, task, "tasks.complete")
    if task.status == CLAIMED and task.assignee_id != user.id:
        raise TaskError(409, f"task {task.id} is claimed by someone else")
    if task.status not in (OPEN, CLAIMED):
        raise TaskError(409, f"task {task.id} is {task.status}, it cannot be completed")
    data, errors = forms.clean(task.form, answers)
    if errors:
        raise TaskError(422, "the answers do not fit the task's form", errors)
    if task.status == OPEN:
        claim(session, user, task.id, runtime)
    actor = f"user:{user.username}"
    try:
        with session.begin_nested():
            runtime.complete_task(session, task, data, actor=actor, user_id=user.id)
    except TaskWithdrawn as exc:
        raise TaskError(409, f"{exc} / Nhiệm vụ không còn chờ: quy trình đã đi tiếp") from exc
    except ProcessError as exc:
        # The scenario failed, not the person: their answer is kept on the task (still theirs)
        # and in an incident that runs the completion again once the scenario is fixed.
        task.result = data
        incident = runtime.keep_failure(
            session, task.instance_id, TASK, exc, actor,
            {"task_id": task.id, "answers": data, "user_id": user.id, "actor": actor})
        audit.record(session, "task.answer_kept", actor=actor, subject_type="task",
                     subject_id=task.id, instance_id=task.instance_id,
                     details={"task": task.bpmn_id, "incident": incident.id, "answers": data})
        return Completion(task, incident)
    return Completion(task)


@dataclass
class Completion:
    """A completed task; or a kept answer whose process failed (`incident` to retry)."""

    task: Task
    incident: ProcessIncident | None = None

    def message(self) -> str:
        """What to tell the person, Vietnamese first."""
        if self.incident is None:
            return f"Đã hoàn thành nhiệm vụ / Task completed: {self.task.name}"
        return (f"Đã lưu kết quả của bạn, nhưng quy trình gặp lỗi ở bước "
                f"{self.incident.element or '?'}; thanh tra đã được báo và sẽ chạy lại khi sửa "
                f"xong (sự cố #{self.incident.id}). / Your answer is saved, but the process "
                f"failed at {self.incident.element or '?'}; the inspectors are told and will "
                f"run it again once fixed (incident #{self.incident.id}).")


def to_dict(task: Task, assignee: str | None = None) -> dict:
    """A task as the API shows it."""
    return {"id": task.id, "instance_id": task.instance_id, "task": task.bpmn_id,
            "name": task.name, "department": task.department_key, "status": task.status,
            "assignee": assignee, "form": task.form, "context": task.context,
            "result": task.result, "created_at": task.created_at.isoformat(),
            "escalated_to": task.escalated_to, "escalation_level": task.escalation_level,
            "claimed_at": task.claimed_at.isoformat() if task.claimed_at else None,
            "completed_at": task.completed_at.isoformat() if task.completed_at else None}
