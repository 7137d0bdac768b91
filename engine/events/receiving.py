"""Receiving events over HTTP, for /api/v1/events and every source adapter alike.

The source is already authenticated (`engine.api.require_source` sets g.source); its events are
stored in one transaction, and the answer is 202 with what was accepted, or 422 naming fields.
"""
from __future__ import annotations

from flask import g

from engine.api import ApiProblem, services
from engine.events import service
from engine.events.service import IngestResult


def store(raws: list) -> IngestResult:
    """Validate and store events of the authenticated source (g.source); wake the runner."""
    ioc = services()
    result = service.ingest(ioc.db, g.source, raws, ioc.vocabulary, ioc.clock)
    if result.accepted:
        ioc.wake({event.partition for event in result.accepted})
    return result


def answer(result: IngestResult, single: bool) -> tuple[dict, int]:
    """(acknowledgement, 202), or ApiProblem 422 naming the fields when nothing was taken."""
    if single and result.refused:
        errors = result.refused[0].problems
        raise ApiProblem(422, "Invalid Event", "; ".join(
            f"{e['field'] or 'event'} {e['message']}" for e in errors), errors)
    if not result.accepted and not result.duplicates:
        raise ApiProblem(422, "Invalid Event", "no event of the batch was accepted",
                         [r.to_dict() for r in result.refused])
    return result.to_dict(), 202


def refuse(problems: list[dict[str, str]], detail: str, ce_id: str | None = None):
    """Refuse input that is not even an event (bad XML, CSV…): counted for the source, then 422."""
    service.refuse(services().db, g.source.id, problems, ce_id)
    raise ApiProblem(422, "Invalid Input", detail, problems)
