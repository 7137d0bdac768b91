"""POST /api/v1/events (CloudEvents, single or batch) and reading stored events."""
from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import select

from engine.api import (
    ApiProblem,
    bp,
    int_arg,
    json_body,
    parsed_body,
    require_source,
    require_user,
    services,
)
from engine.events import dead_letters, receiving, service
from engine.events.dead_letters import DeadLetterError
from engine.events.models import DISCARDED, FAILED, PENDING, PROCESSED, Event, Source

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
    body = parsed_body()
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
    if status is not None and status not in (PENDING, PROCESSED, FAILED, DISCARDED):
        raise ApiProblem(400, "Bad Request",
                         "status must be pending, processed, failed or discarded",
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


@bp.get("/dead-letters")
@require_user("events.dead_letters")
def list_dead_letters():
    """Failed events (dead letters), newest first, optionally by type and CloudEvents source."""
    limit = int_arg("limit", 100, 1, 500)
    with services().db.read() as s:
        return jsonify([dead_letters.to_dict(e) for e in dead_letters.list_dead(
            s, limit=limit, type_=request.args.get("type"), source=request.args.get("source"))])


def _dead_letter_problem(exc: DeadLetterError) -> ApiProblem:
    titles = {404: "Not Found", 409: "Conflict", 422: "Invalid Input"}
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return ApiProblem(exc.status, titles.get(exc.status, "Error"), exc.message, errors)


def _act_on_dead_letter(action, event_id: int, **kwargs):
    ioc = services()
    try:
        with ioc.db.session() as s:
            body = dead_letters.to_dict(action(s, event_id, actor=f"user:{g.user.username}",
                                               **kwargs))
    except DeadLetterError as exc:
        raise _dead_letter_problem(exc) from None
    return body


@bp.post("/dead-letters/<int:event_id>/retry")
@require_user("events.dead_letters")
def retry_dead_letter(event_id: int):
    """Put a dead letter back in the queue (status pending, attempts 0); audited."""
    body = _act_on_dead_letter(dead_letters.retry, event_id)
    services().wake()  # after the commit, so the runner sees it pending
    return jsonify(body)


@bp.post("/dead-letters/<int:event_id>/discard")
@require_user("events.dead_letters")
def discard_dead_letter(event_id: int):
    """Discard a dead letter: body {"reason": "..."} (1–500 characters); audited."""
    body = json_body() if request.get_data() else {}
    if not isinstance(body, dict):
        raise ApiProblem(400, "Bad Request", 'the body must be a JSON object {"reason": "..."}')
    return jsonify(_act_on_dead_letter(dead_letters.discard, event_id,
                                       reason=body.get("reason")))
