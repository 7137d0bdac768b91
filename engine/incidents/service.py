"""Open, list, retry and resolve process incidents (inside the caller's transaction)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.db import utcnow
from engine.incidents.models import (
    KINDS,
    OPEN,
    RESOLVED,
    RULE,
    STATUSES,
    ProcessIncident,
)
from engine.processes.models import ProcessInstance

ERROR_KEPT = 4000  # characters of an error kept (a traceback-like message can be long)


class IncidentError(Exception):
    """An incident action that cannot be done; `status` is the HTTP status that fits."""

    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.message, self.field = status, message, field
        super().__init__(message)


def open_incident(session: Session, *, kind: str, scenario_key: str, error: str, actor: str,
                  version_id: int | None = None, instance_id: int | None = None,
                  element: str | None = None, payload: dict | None = None,
                  identity: tuple[str, ...] | None = None) -> ProcessIncident:
    """Record that a step failed. The same step failing again (same instance and kind, the same
    `identity` items of the payload: all of them by default) counts another attempt on its open
    incident, with the newer payload, instead of opening a second one."""
    payload = payload or {}
    keys = identity if identity is not None else tuple(payload)
    same = None
    if instance_id is not None:
        same = next((i for i in session.scalars(select(ProcessIncident).where(
            ProcessIncident.instance_id == instance_id, ProcessIncident.kind == kind,
            ProcessIncident.status == OPEN))
            if all(i.payload.get(k) == payload.get(k) for k in keys)), None)
    if same is not None:
        same.payload = payload
        _failed_again(session, same, error, actor, element)
        return same
    incident = ProcessIncident(kind=kind, scenario_key=scenario_key,
                               scenario_version_id=version_id, instance_id=instance_id,
                               element=element, error=error[:ERROR_KEPT], payload=payload)
    session.add(incident)
    session.flush()
    audit.record(session, "incident.opened", actor=actor, subject_type="incident",
                 subject_id=incident.id, instance_id=instance_id,
                 details={"kind": kind, "scenario": scenario_key, "element": element,
                          "error": incident.error})
    return incident


def _failed_again(session: Session, incident: ProcessIncident, error: str, actor: str,
                  element: str | None) -> None:
    """One more attempt at an open incident's step failed, with `error`."""
    incident.attempts += 1
    incident.error, incident.last_attempt_at = error[:ERROR_KEPT], utcnow()
    incident.element = element or incident.element
    audit.record(session, "incident.failed_again", actor=actor, subject_type="incident",
                 subject_id=incident.id, instance_id=incident.instance_id,
                 details={"kind": incident.kind, "scenario": incident.scenario_key,
                          "element": incident.element, "error": incident.error})


def open_for_instance(session: Session, instance_id: int) -> list[ProcessIncident]:
    """The open incidents of an instance, oldest first."""
    return list(session.scalars(select(ProcessIncident).where(
        ProcessIncident.instance_id == instance_id, ProcessIncident.status == OPEN)
        .order_by(ProcessIncident.id)))


def list_incidents(session: Session, *, status: str | None = OPEN, kind: str | None = None,
                   scenario: str | None = None, limit: int = 100,
                   offset: int = 0) -> list[ProcessIncident]:
    """Incidents newest first, by status (None: all), kind and scenario."""
    for name, value, allowed in (("status", status, STATUSES), ("kind", kind, KINDS)):
        if value is not None and value not in allowed:
            raise IncidentError(400, f"{name} must be one of {', '.join(allowed)}", name)
    query = select(ProcessIncident).order_by(ProcessIncident.id.desc()).limit(limit) \
        .offset(offset)
    if status is not None:
        query = query.where(ProcessIncident.status == status)
    if kind is not None:
        query = query.where(ProcessIncident.kind == kind)
    if scenario:
        query = query.where(ProcessIncident.scenario_key == scenario)
    return list(session.scalars(query))


def get(session: Session, incident_id: int, *, lock: bool = False) -> ProcessIncident:
    """One incident; IncidentError 404 if there is none."""
    incident = session.get(ProcessIncident, incident_id, with_for_update=lock or None)
    if incident is None:
        raise IncidentError(404, f"incident {incident_id} not found")
    return incident


def close(session: Session, incident: ProcessIncident, *, actor: str, resolution: str,
          action: str = "incident.resolved") -> None:
    """Mark an open incident resolved (retried successfully, or settled by a person)."""
    incident.status, incident.resolved_at = RESOLVED, utcnow()
    incident.resolved_by, incident.resolution = actor, resolution
    audit.record(session, action, actor=actor, subject_type="incident", subject_id=incident.id,
                 instance_id=incident.instance_id,
                 details={"kind": incident.kind, "resolution": resolution})


def resolve(session: Session, incident_id: int, *, actor: str, note: object) -> ProcessIncident:
    """A person settles an incident without retrying it (with a reason, audited)."""
    if not isinstance(note, str) or not note.strip():
        raise IncidentError(422, "give the reason in `note` (what was done instead)", "note")
    incident = get(session, incident_id, lock=True)
    if incident.status != OPEN:
        raise IncidentError(409, f"incident {incident_id} is already {incident.status}")
    close(session, incident, actor=actor, resolution=note.strip()[:2000])
    return incident


@dataclass
class RetryResult:
    """What a retry did: resolved, or failed again with the error."""

    incident: ProcessIncident
    resolved: bool


def retry(session: Session, runtime, incident_id: int, *, actor: str) -> RetryResult:
    """Run an open incident's failed step again with `runtime` (the engine's ProcessRuntime):
    resolved when it goes through, else one more attempt with the new error. The instance's
    error is cleared once it has no open incident left."""
    incident = get(session, incident_id, lock=True)
    if incident.status != OPEN:
        raise IncidentError(409, f"incident {incident_id} is already {incident.status}")
    if incident.kind == RULE:
        raise IncidentError(409, "a scenario's rules cannot be run again for one event: fix "
                                 "the rules, publish, and resolve this incident with a note")
    error = runtime.retry(session, incident, actor)
    if error is not None:
        _failed_again(session, incident, error, actor, None)
        return RetryResult(incident, False)
    if incident.status == OPEN:  # (the retried step did not make it moot on the way)
        close(session, incident, actor=actor, resolution="retried", action="incident.retried")
    if incident.instance_id is not None and not open_for_instance(session, incident.instance_id):
        instance = session.get(ProcessInstance, incident.instance_id)
        instance.error = None
    return RetryResult(incident, True)


def to_dict(incident: ProcessIncident) -> dict:
    """An incident as the API shows it."""
    return {"id": incident.id, "kind": incident.kind, "status": incident.status,
            "scenario": incident.scenario_key,
            "scenario_version_id": incident.scenario_version_id,
            "instance_id": incident.instance_id, "element": incident.element,
            "error": incident.error, "payload": incident.payload, "attempts": incident.attempts,
            "created_at": incident.created_at.isoformat(),
            "last_attempt_at": incident.last_attempt_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "resolved_by": incident.resolved_by, "resolution": incident.resolution}
