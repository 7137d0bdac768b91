"""Finding cases: by period, unit, ward, scenario and version, officer, status, kind and outcome,
newest first, a page at a time (keyset: `before` the last id shown), within what the person may
read; and the same rows as CSV."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from engine.auth.models import User
from engine.lists import narrowed
from engine.processes import scope
from engine.processes.models import ProcessInstance
from engine.scenarios.models import ScenarioVersion
from engine.tasks.models import Task
from engine.violations.models import Violation

PAGE = 50
CSV_LIMIT = 100_000  # one export; narrow the filters beyond that
COLUMNS = ("case", "scenario", "version", "status", "kind", "title", "severity", "outcome",
           "subject", "ward", "started_at", "ended_at")


@dataclass(frozen=True)
class Filters:
    """What to look for; None is "any"."""

    since: date | None = None
    until: date | None = None
    department: str | None = None
    ward: str | None = None
    scenario: str | None = None
    version: int | None = None
    officer: str | None = None
    status: str | None = None
    kind: str | None = None
    outcome: str | None = None


def _query(session: Session, user: User, f: Filters):
    ward = func.coalesce(ProcessInstance.data["unit"].as_string(),
                         ProcessInstance.data["ward"].as_string())
    query = (select(ProcessInstance, ScenarioVersion.version, Violation, ward.label("ward"))
             .join(ScenarioVersion, ScenarioVersion.id == ProcessInstance.scenario_version_id)
             .outerjoin(Violation, Violation.instance_id == ProcessInstance.id))
    query = scope.instances(user, query)
    query = narrowed(query, period=(ProcessInstance.started_at, f.since, f.until))
    if f.department:
        query = query.where(exists().where(Task.instance_id == ProcessInstance.id, or_(
            Task.department_key == f.department, Task.escalated_to == f.department)))
    if f.ward:
        query = query.where(ward == f.ward)
    if f.scenario:
        query = query.where(ProcessInstance.scenario_key == f.scenario)
    if f.version:
        query = query.where(ScenarioVersion.version == f.version)
    if f.officer:
        people = select(User.id).where(User.username == f.officer).scalar_subquery()
        query = query.where(exists().where(Task.instance_id == ProcessInstance.id, or_(
            Task.assignee_id == people, Task.completed_by_id == people)))
    if f.status:
        query = query.where(ProcessInstance.status == f.status)
    if f.kind == "none":
        query = query.where(Violation.id.is_(None))
    elif f.kind:
        query = query.where(Violation.kind == f.kind)
    if f.outcome:
        query = query.where(Violation.outcome == f.outcome)
    return query


def _row(instance: ProcessInstance, version: int, violation: Violation | None, ward) -> dict:
    return {"case": instance.id, "scenario": instance.scenario_key, "version": version,
            "status": instance.status, "kind": violation.kind if violation else "",
            "title": violation.title_vi if violation else "",
            "severity": violation.severity if violation else "",
            "outcome": (violation.outcome or "") if violation else "",
            "subject": instance.subject or "", "ward": ward or "",
            "started_at": instance.started_at.isoformat(),
            "ended_at": instance.ended_at.isoformat() if instance.ended_at else ""}


def search(session: Session, user: User, filters: Filters, before: int | None = None,
           limit: int = PAGE) -> tuple[list[dict], int | None, int]:
    """(a page of cases newest first, the `before` of the next page or None, how many match)."""
    query = _query(session, user, filters)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    if before:
        query = query.where(ProcessInstance.id < before)
    rows = session.execute(query.order_by(ProcessInstance.id.desc()).limit(limit + 1)).all()
    page = [_row(*row) for row in rows[:limit]]
    return page, (page[-1]["case"] if len(rows) > limit else None), total


def to_csv(session: Session, user: User, filters: Filters) -> str:
    """Every matching case (up to CSV_LIMIT) as CSV, with a header row."""
    rows = session.execute(_query(session, user, filters)
                           .order_by(ProcessInstance.id.desc()).limit(CSV_LIMIT)).all()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(_row(*row))
    return out.getvalue()

