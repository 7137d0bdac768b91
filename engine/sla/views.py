"""GET /api/v1/sla: the SLA board per department and per scenario, and the open items."""
from __future__ import annotations

from datetime import timedelta

from flask import g, jsonify, request

from engine.api import ApiProblem, bp, moment_arg, require_user, services
from engine.auth.permissions import allowed

DEFAULT_DAYS = 30


@bp.get("/sla")
@require_user("sla.read")
def sla_board():
    """Open, at-risk and breached items and compliance % over [since, until) (default 30 days)."""
    ioc = services()
    now = ioc.clock.now()
    until = moment_arg("until", now, ioc.calendar.tz)
    since = moment_arg("since", until - timedelta(days=DEFAULT_DAYS), ioc.calendar.tz)
    if since >= until:
        raise ApiProblem(400, "Bad Request", "since must be before until",
                         [{"field": "since", "message": "must be before until"}])
    department = request.args.get("department") or None
    if not allowed(g.user.role, "sla.any_department"):
        # Department heads see their own department's board only.
        if department not in (None, g.user.department_key):
            raise ApiProblem(403, "Forbidden", "you may only see your own department's SLAs")
        department = g.user.department_key
    with ioc.db.read() as s:
        return jsonify(ioc.sla.report(s, since=since, until=until, department=department,
                                      scenario=request.args.get("scenario") or None))
