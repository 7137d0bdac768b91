"""Which cases (process instances and the violations they handle) a person may read.

One scope per role (README, Roles): inspectors, commanders, auditors and administrators read the
cases of every department (`cases.any_department`); a department head reads the cases their
department works on: an instance with a task of the department, assigned to it or escalated to it
(the same tasks the task API shows them), and the violations those instances handle. A violation
that opened no instance belongs to no department. A civil servant opens the cases of the tasks
they hold or completed (`instances.own`), on the pages only.
"""
from __future__ import annotations

from sqlalchemy import Select, false, or_, select

from engine.auth.models import User
from engine.auth.permissions import allowed
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task
from engine.violations.models import Violation


def departments(user: User) -> set[str] | None:
    """The departments whose cases `user` reads; None means every department."""
    if allowed(user.role, "cases.any_department"):
        return None
    return {user.department_key} if user.department_key else set()


def _narrowed(user: User, query: Select, instance_column) -> Select:
    """`query` where `instance_column` names an instance of the user's departments."""
    keys = departments(user)
    if keys is None:
        return query
    if not keys:
        return query.where(false())
    worked_on = select(Task.instance_id).where(or_(Task.department_key.in_(keys),
                                                   Task.escalated_to.in_(keys)))
    return query.where(instance_column.in_(worked_on))


def instances(user: User, query: Select) -> Select:
    """`query` over ProcessInstance narrowed to the instances `user` may read."""
    return _narrowed(user, query, ProcessInstance.id)


def violations(user: User, query: Select) -> Select:
    """`query` over Violation narrowed to the violations `user` may read."""
    return _narrowed(user, query, Violation.instance_id)


def may_open_cases(user: User) -> bool:
    """Whether `user` may open any case's page: readers of cases, and officers their own."""
    return allowed(user.role, "instances.read") or allowed(user.role, "instances.own")


def may_read_instance(session, user: User, instance_id: int) -> bool:
    """Whether `user` may read this instance (its data, tasks and history): in their scope, or,
    for an officer (`instances.own`), a case where they hold or completed a task."""
    if allowed(user.role, "instances.read"):
        query = instances(user, select(ProcessInstance.id)
                          .where(ProcessInstance.id == instance_id))
        return session.scalar(query) is not None
    if allowed(user.role, "instances.own"):
        return session.scalar(select(Task.id).where(
            Task.instance_id == instance_id,
            or_(Task.assignee_id == user.id, Task.completed_by_id == user.id)).limit(1)) \
            is not None
    return False
