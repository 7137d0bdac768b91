"""GET /api/v1/audit/verify: check the chain."""
from __future__ import annotations

from flask import jsonify

from engine.api import bp, require_user, services
from engine.audit import service


@bp.get("/audit/verify")
@require_user("audit.read")
def verify_chain():
    """Recompute the audit chain and report the first broken record, if any."""
    with services().db.read() as s:
        result = service.verify(s)
    return jsonify({"ok": result.ok, "checked": result.checked,
                    "broken_seq": result.broken_seq, "reason": result.reason})
