"""POST /api/v1/events (CloudEvents, single or batch) and reading stored events."""
from __future__ import annotations

from flask import jsonify, request
from sqlalchemy import select

from engine.api import ApiProblem, bp, int_arg, require_source, require_user, services
from engine.events import receiving, service
from engine.events.models import FAILED, PENDING, PROCESSED, Event, Source

BATCH = "application/cloudevents-batch+json"
SINGLE = ("application/cloudevents+json", "application/json")
MAX_BATCH = 1000


@bp.post("/events")
@require_source
def post_events():
    """Accept one event or a batch; 202 once stored, with what was accepted, duplicate, refused."""
    ctype = (request.mimetype or "").lower()
    if ctype not in (BATCH, *SINGLE):
        raise ApiProblem(415, "Unsupported Media Type",
                         f"send {SINGLE[0]} (one event) or {BATCH} (a batch); binary-mode "
                         "CloudEvents are not accepted")
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise ApiProblem(400, "Bad Request", "the body is not valid JSON")
    if ctype == BATCH:
        if not isinstance(body, list):
            raise ApiProblem(400, "Bad Request", "a batch must be a JSON array of events")
        if not body:
            raise ApiProblem(400, "Bad Request", "the batch is empty")
        if len(body) > MAX_BATCH:
            raise ApiProblem(413, "Content Too Large", f"at most {MAX_BATCH} events per batch")
        raws = body
    else:
        if not isinstance(body, dict):
            raise ApiProblem(400, "Bad Request", "an event must be a JSON object; send a batch "
                                                 f"as {BATCH}")
        raws = [body]
    body, status = receiving.answer(receiving.store(raws), single=ctype != BATCH)
    return jsonify(body), status


@bp.get("/events")
@require_user("events.read")
def list_events():
    """Stored events, newest first, optionally by status and type."""
    status = request.args.get("status")
    if status is not None and status not in (PENDING, PROCESSED, FAILED):
        raise ApiProblem(400, "Bad Request", "status must be pending, processed or failed",
                         [{"field": "status", "message": "unknown status"}])
    query = select(Event).order_by(Event.id.desc()).limit(int_arg("limit", 100, 1, 500))
    if status:
        query = query.where(Event.status == status)
    if request.args.get("type"):
        query = query.where(Event.type == request.args["type"])
    with services().db.read() as s:
        return jsonify([service.to_dict(e) for e in s.scalars(query)])


@bp.get("/sources")
@require_user("sources.read")
def list_sources():
    """Per source: allowed types, signing, rate limit, last event, counts and last errors."""
    with services().db.read() as s:
        return jsonify([service.source_to_dict(src) for src in
                        s.scalars(select(Source).order_by(Source.name))])
