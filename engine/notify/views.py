"""GET /api/v1/notifications: the caller's in-app notifications (theirs and their department's)."""
from __future__ import annotations

from flask import g, jsonify, request

from engine.api import ApiProblem, bp, int_arg, require_user, services
from engine.notify import service


@bp.get("/notifications")
@require_user("tasks.read")
def my_notifications():
    """Newest first; `unread=true` keeps the unread ones."""
    unread = request.args.get("unread", "false")
    if unread not in ("true", "false"):
        raise ApiProblem(400, "Bad Request", "unread must be true or false",
                         [{"field": "unread", "message": "must be true or false"}])
    with services().db.read() as s:
        rows = service.for_user(s, g.user, limit=int_arg("limit", 50, 1, 500),
                                unread_only=unread == "true")
        return jsonify([service.to_dict(n) for n in rows])
