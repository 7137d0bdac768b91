"""GET /api/v1/violations."""
from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import select

from engine.api import ApiProblem, bp, int_arg, require_user, services
from engine.processes import scope
from engine.violations import service
from engine.violations.models import Violation


@bp.get("/violations")
@require_user("violations.read")
def list_violations():
    """Violations and incidents the caller may read, newest first, by status, kind, scenario."""
    query = scope.violations(g.user, select(Violation)).order_by(Violation.id.desc()).limit(
        int_arg("limit", 100, 1, 500)).offset(int_arg("offset", 0, 0, 10**9))
    for name, column, allowed in (("status", Violation.status, ("open", "closed")),
                                  ("kind", Violation.kind, ("violation", "incident"))):
        value = request.args.get(name)
        if value is not None:
            if value not in allowed:
                raise ApiProblem(400, "Bad Request", f"{name} must be one of {', '.join(allowed)}",
                                 [{"field": name, "message": "unknown value"}])
            query = query.where(column == value)
    if request.args.get("scenario"):
        query = query.where(Violation.scenario_key == request.args["scenario"])
    with services().db.read() as s:
        return jsonify([service.to_dict(v) for v in s.scalars(query)])
