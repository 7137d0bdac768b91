"""/api/v1/process-incidents: what failed, and trying it again once the scenario is fixed."""
from __future__ import annotations

from flask import g, jsonify, request

from engine.api import ApiProblem, bp, int_arg, json_body, require_user, services
from engine.incidents import service
from engine.incidents.service import IncidentError


def _as_problem(exc: IncidentError) -> ApiProblem:
    titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict",
              422: "Unprocessable Content"}
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return ApiProblem(exc.status, titles.get(exc.status, "Error"), exc.message, errors)


@bp.get("/process-incidents")
@require_user("incidents.read")
def list_incidents():
    """Incidents newest first: ?status=open|resolved|all (open), kind, scenario, limit, offset."""
    status = request.args.get("status", "open")
    with services().db.read() as s:
        try:
            found = service.list_incidents(
                s, status=None if status == "all" else status, kind=request.args.get("kind"),
                scenario=request.args.get("scenario"), limit=int_arg("limit", 100, 1, 500),
                offset=int_arg("offset", 0, 0, 10**9))
        except IncidentError as exc:
            raise _as_problem(exc) from None
        return jsonify([service.to_dict(i) for i in found])


@bp.get("/process-incidents/<int:incident_id>")
@require_user("incidents.read")
def get_incident(incident_id: int):
    """One incident."""
    with services().db.read() as s:
        try:
            return jsonify(service.to_dict(service.get(s, incident_id)))
        except IncidentError as exc:
            raise _as_problem(exc) from None


@bp.post("/process-incidents/<int:incident_id>/retry")
@require_user("incidents.manage")
def retry_incident(incident_id: int):
    """Run the failed step again: 200 with the incident resolved, or 409 with the new error."""
    ioc = services()
    with ioc.db.session() as s:
        try:
            result = service.retry(s, ioc.runtime, incident_id, actor=f"user:{g.user.username}")
        except IncidentError as exc:
            raise _as_problem(exc) from None
        body = service.to_dict(result.incident)
    ioc.wake()  # the step may have armed timers or made events pending
    if result.resolved:
        return jsonify(body)
    raise ApiProblem(409, "Conflict", f"the step failed again: {body['error']}", incident=body)


@bp.post("/process-incidents/<int:incident_id>/resolve")
@require_user("incidents.manage")
def resolve_incident(incident_id: int):
    """Settle an incident without retrying it: body {"note": why} (audited)."""
    body = json_body()
    note = body.get("note") if isinstance(body, dict) else None
    with services().db.session() as s:
        try:
            incident = service.resolve(s, incident_id, actor=f"user:{g.user.username}",
                                       note=note)
        except IncidentError as exc:
            raise _as_problem(exc) from None
        return jsonify(service.to_dict(incident))
