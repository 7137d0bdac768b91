"""GET /api/v1/scenarios: the loaded scenario versions."""
from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from engine.api import bp, require_user, services
from engine.scenarios import service
from engine.scenarios.models import ScenarioVersion


@bp.get("/scenarios")
@require_user("scenarios.read")
def list_scenarios():
    """Every loaded version, published and retired."""
    with services().db.read() as s:
        versions = s.scalars(select(ScenarioVersion).order_by(ScenarioVersion.key,
                                                              ScenarioVersion.version))
        return jsonify([service.to_dict(v) for v in versions])
