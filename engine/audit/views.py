"""GET /api/v1/audit/verify: check the log against the published checkpoints."""
from __future__ import annotations

from flask import jsonify

from engine.api import bp, require_user, services
from engine.audit import service


@bp.get("/audit/verify")
@require_user("audit.read")
def verify_chain():
    """Recompute the audit log and prove it against every published checkpoint; report the
    first broken record or checkpoint, if any."""
    result, kept, _ = service.verify_published(services().settings, services().db)
    return jsonify({"ok": result.ok, "checked": result.checked, "proved": result.proved,
                    "root": result.root, "checkpoints": len(kept),
                    "broken_seq": result.broken_seq, "reason": result.reason})
