"""Reading violations and incidents."""
from __future__ import annotations

from engine.violations.models import Violation


def to_dict(v: Violation) -> dict:
    """A violation as the API shows it."""
    return {"id": v.id, "kind": v.kind, "scenario": v.scenario_key, "rule": v.rule_key,
            "severity": v.severity, "title": {"vi": v.title_vi, "en": v.title_en},
            "subject": v.subject, "status": v.status, "outcome": v.outcome,
            "event_ids": v.event_ids, "instance_id": v.instance_id,
            "opened_at": v.opened_at.isoformat(),
            "closed_at": v.closed_at.isoformat() if v.closed_at else None}
