"""A case file: everything about one case (a process instance and the violation or incident that
opened it) in one place, as an auditor reads it and as an evidence bundle carries it: the events
as received, the rule in the version that matched, the path on the diagram of the exact version
that ran, every task with its answers, SLA clocks, notifications and their delivery, incidents,
and the audit records, in time order."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.auth.models import User
from engine.cases import findings
from engine.events.models import Event
from engine.incidents.models import ProcessIncident
from engine.notify.models import Notification
from engine.processes import path
from engine.processes.models import RUNNING, ProcessInstance
from engine.scenarios.models import ScenarioVersion
from engine.scenarios.yamlsource import load_yaml
from engine.sla.models import SlaClock
from engine.tasks.models import Task
from engine.violations.models import Violation

FORMAT = "ioc-case-file/1"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def rule_text(rules_yaml: str, rule_key: str) -> str:
    """The text of one rule as written in the version's rules.yaml ("" if not found)."""
    try:
        data, locator = load_yaml(rules_yaml, "rules.yaml")
    except Exception:  # noqa: BLE001 - a stored version was checked; this only shows text
        return ""
    rules = data.get("rules") if isinstance(data, dict) else None
    lines = rules_yaml.splitlines()
    for i, rule in enumerate(rules or []):
        if isinstance(rule, dict) and rule.get("key") == rule_key:
            first = locator.key_line(("rules", i)) or 1
            after = locator.key_line(("rules", i + 1)) if i + 1 < len(rules) else None
            return "\n".join(lines[first - 1:(after - 1) if after else None]).rstrip() + "\n"
    return ""


def _event(event: Event) -> dict:
    return {"id": event.id, "type": event.type, "source": event.ce_source, "ce_id": event.ce_id,
            "subject": event.subject, "time": _iso(event.time),
            "received_at": _iso(event.received_at), "data": event.data}


def _violation(session: Session, violation: Violation, rules_yaml: str) -> dict:
    events = session.scalars(select(Event).where(Event.id.in_(violation.event_ids or []))
                             .order_by(Event.id)).all()
    return {"id": violation.id, "kind": violation.kind, "rule": violation.rule_key,
            "rule_text": rule_text(rules_yaml, violation.rule_key),
            "severity": violation.severity, "title": {"vi": violation.title_vi,
                                                      "en": violation.title_en},
            "subject": violation.subject, "status": violation.status,
            "outcome": violation.outcome, "opened_at": _iso(violation.opened_at),
            "closed_at": _iso(violation.closed_at), "events": [_event(e) for e in events]}


def _task(task: Task, names: dict[int, str]) -> dict:
    return {"id": task.id, "element": task.bpmn_id, "name": task.name,
            "department": task.department_key, "status": task.status,
            "assignee": names.get(task.assignee_id), "completed_by": names.get(
                task.completed_by_id), "answers": task.result, "created_at": _iso(task.created_at),
            "claimed_at": _iso(task.claimed_at), "completed_at": _iso(task.completed_at),
            "escalated_to": task.escalated_to, "escalation_level": task.escalation_level}


def _sla(clock: SlaClock) -> dict:
    return {"key": clock.sla_key, "name": {"vi": clock.name_vi, "en": clock.name_en},
            "task_id": clock.task_id, "department": clock.department_key,
            "working_time": clock.working, "target_hours": round(clock.target_seconds / 3600, 2),
            "status": clock.status, "level": clock.level, "started_at": _iso(clock.started_at),
            "due_at": _iso(clock.due_at), "stopped_at": _iso(clock.stopped_at)}


def _notification(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "channel": n.channel, "to": n.department_key,
            "user_id": n.user_id, "role": n.role, "subject": n.subject, "status": n.status,
            "created_at": _iso(n.created_at), "sent_at": _iso(n.sent_at), "error": n.error}


def _incident(i: ProcessIncident) -> dict:
    return {"id": i.id, "kind": i.kind, "status": i.status, "element": i.element,
            "error": i.error, "attempts": i.attempts}


def case_file(session: Session, runtime, instance_id: int) -> dict[str, Any] | None:
    """The case file of one instance as plain data (None if there is no such instance)."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        return None
    version = session.get(ScenarioVersion, instance.scenario_version_id)
    process_name = version.manifest.get("process", "process.bpmn")
    bpmn = version.files.get(process_name, "")
    tasks = session.scalars(select(Task).where(Task.instance_id == instance_id)
                            .order_by(Task.id)).all()
    people = {t.assignee_id for t in tasks} | {t.completed_by_id for t in tasks}
    names = {u.id: u.username for u in session.scalars(
        select(User).where(User.id.in_([p for p in people if p])))}
    went = path.taken(runtime.workflow_of(session, instance), path.flow_ids(bpmn),
                      instance.status == RUNNING)
    records = audit.history(session, instance_id)
    views = session.scalars(select(AuditRecord).where(
        AuditRecord.action == "case.viewed", AuditRecord.subject_type == "instance",
        AuditRecord.subject_id == str(instance_id)).order_by(AuditRecord.seq)).all()
    rules_yaml = version.files.get(version.manifest.get("rules", "rules.yaml"), "")
    return {
        "format": FORMAT,
        "instance": {"id": instance.id, "status": instance.status, "subject": instance.subject,
                     "data": instance.data, "error": instance.error,
                     "started_at": _iso(instance.started_at), "ended_at": _iso(instance.ended_at)},
        "scenario": {"key": version.key, "version": version.version,
                     "name": version.manifest.get("name", {}),
                     "content_hash": version.content_hash, "process_file": process_name},
        "violations": [_violation(session, v, rules_yaml) for v in session.scalars(
            select(Violation).where(Violation.instance_id == instance_id)
            .order_by(Violation.id))],
        "tasks": [_task(t, names) for t in tasks],
        "slas": [_sla(c) for c in session.scalars(select(SlaClock).where(
            SlaClock.instance_id == instance_id).order_by(SlaClock.id))],
        "notifications": [_notification(n) for n in session.scalars(select(Notification).where(
            Notification.instance_id == instance_id).order_by(Notification.id))],
        "incidents": [_incident(i) for i in session.scalars(select(ProcessIncident).where(
            ProcessIncident.instance_id == instance_id).order_by(ProcessIncident.id))],
        "path": {"elements": went["path"], "waiting": went["waiting"]},
        "records": [audit.to_dict(r) for r in records],
        "findings": findings.of_case(session, instance_id),
        "views": [{"seq": v.seq, "at": _iso(v.at), "actor": v.actor, "via": v.details.get("via")}
                  for v in views],
        "bpmn": bpmn,
    }


def timeline(case: dict) -> list[dict]:
    """The case's events as received and its audit records, in time order."""
    items = [{"at": e["received_at"], "kind": "event", "what": e["type"], "actor": e["source"],
              "details": e["data"]} for v in case["violations"] for e in v["events"]]
    items += [{"at": r["at"], "kind": "record", "what": r["action"], "actor": r["actor"],
               "details": r["details"], "seq": r["seq"]} for r in case["records"]]
    return sorted(items, key=lambda item: (item["at"] or "", item.get("seq", 0)))
