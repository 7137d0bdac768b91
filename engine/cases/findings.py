"""An auditor's finding on a case (a note, a severity, the responsible unit). It is recorded as an
event of the IOC's own audit source (`audit.finding.recorded`), so it takes the one path every
input takes: stored once, matched by the shipped scenario `audit-finding`, which gives the unit a
task to answer it with an SLA, all audited. The case file lists its findings and their answers."""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.auth import service as auth
from engine.events import service as events
from engine.events.models import Event, Source
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task

SOURCE = "kiem-toan-noi-bo"  # the IOC's own auditors, as an event source
EVENT = "audit.finding.recorded"
SCENARIO = "audit-finding"
SEVERITIES = ("low", "medium", "high", "critical")


class FindingRefused(ValueError):
    """A finding that cannot be recorded; `problems` name the fields."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(f"{p.get('field')}: {p.get('message')}" for p in problems))
        self.problems = problems


def _source(db) -> Source:
    """The audit source, made on first use (its token is never handed out)."""
    for _ in range(2):  # two first findings at once: one creates it, the other reads it
        try:
            with db.session() as s:
                source = s.scalars(select(Source).where(Source.name == SOURCE)).first()
                if source is None:
                    source, _ = auth.create_source(s, SOURCE, [EVENT], actor="engine")
                s.flush()
                s.expunge(source)
                return source
        except IntegrityError:
            continue
    raise RuntimeError(f"the event source {SOURCE} cannot be made")


def record(db, vocabulary, clock, case_id: int, *, note: str, severity: str, department: str,
           auditor: str) -> str:
    """Record a finding on case `case_id`; its id. FindingRefused names a bad field."""
    finding_id = f"KL-{uuid.uuid4().hex[:12]}"
    raw = {"specversion": "1.0", "id": finding_id, "source": "/ioc/kiem-toan", "type": EVENT,
           "time": clock.now().isoformat(), "subject": f"case-{case_id}",
           "data": {"finding_id": finding_id, "case_id": str(case_id), "note": note,
                    "severity": severity, "department": department, "auditor": auditor}}
    result = events.ingest(db, _source(db), [raw], vocabulary, clock)
    if result.refused:
        raise FindingRefused(result.refused[0].problems)
    return finding_id


def of_case(session: Session, case_id: int) -> list[dict]:
    """The findings recorded on a case, each with where its answer stands."""
    out = []
    recorded = session.scalars(select(Event).where(Event.type == EVENT,
                                                   Event.subject == f"case-{case_id}")
                               .order_by(Event.id)).all()
    instances = {i.data.get("finding_id"): i for i in session.scalars(
        select(ProcessInstance).where(ProcessInstance.scenario_key == SCENARIO,
                                      ProcessInstance.subject == f"case-{case_id}"))}
    for event in recorded:
        instance = instances.get(event.data.get("finding_id"))
        task = session.scalars(select(Task).where(Task.instance_id == instance.id)
                               .order_by(Task.id.desc())).first() if instance else None
        out.append({**event.data, "recorded_at": event.received_at.isoformat(),
                    "instance_id": instance.id if instance else None,
                    "status": task.status if task else "pending",
                    "answer": task.result if task else None,
                    "answered_at": task.completed_at.isoformat() if task and task.completed_at
                    else None})
    return out
