"""Playbook API: the playbooks a commander may start, runs, suggestions started or dismissed."""
from __future__ import annotations

from flask import g, jsonify, request

from engine.api import ApiProblem, bp, int_arg, json_body, require_user, services
from engine.playbooks import definitions, service
from engine.playbooks.service import PlaybookError, StartForm

TITLES = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 422: "Invalid Start Form"}
STATUSES = ("open", "started", "dismissed", "all")


def _as_problem(exc: PlaybookError) -> ApiProblem:
    return ApiProblem(exc.status, TITLES.get(exc.status, "Error"), exc.message, exc.errors)


def _describe(version) -> dict:
    book = definitions.of(version.manifest)
    return {"key": version.key, "version": version.version,
            "name": {"vi": version.name_vi, "en": version.name_en},
            "levels": [{"level": lv.level, "vi": lv.vi, "en": lv.en} for lv in book.levels],
            "area": book.area, "whole_area": book.whole_area}


@bp.get("/playbooks")
@require_user("playbooks.run")
def list_playbooks():
    """The published playbooks with the levels their start form offers."""
    with services().db.read() as s:
        return jsonify([_describe(v) for v in service.playbooks(s)])


def _started(run):
    """Read the start form from the body and start a run (`run(session, form, actor, now)` gives
    the instance); a 201 answer."""
    try:
        form = StartForm.from_json(json_body())
    except PlaybookError as exc:
        raise _as_problem(exc) from None
    ioc = services()
    with ioc.db.session() as s:
        try:
            instance = run(s, form, f"user:{g.user.username}", ioc.clock.now())
        except PlaybookError as exc:
            raise _as_problem(exc) from None
        body = {"instance_id": instance.id, "playbook": instance.scenario_key,
                "subject": instance.subject, "data": instance.data, "status": instance.status}
    return jsonify(body), 201


@bp.post("/playbooks/<key>/runs")
@require_user("playbooks.run")
def start_playbook(key: str):
    """Start a run: body {"level", "wards" or "whole_area", "notes"}."""
    return _started(lambda s, form, actor, now: service.start(
        s, services().runtime, key, form, actor=actor, now=now))


@bp.get("/suggestions")
@require_user("playbooks.run")
def list_suggestions():
    """Suggestions of playbooks, newest first: ?status=open (default), started, dismissed, all."""
    status = request.args.get("status", "open")
    if status not in STATUSES:
        raise ApiProblem(400, "Bad Request", f"status is one of {', '.join(STATUSES)}",
                         [{"field": "status", "message": f"one of {', '.join(STATUSES)}"}])
    with services().db.read() as s:
        found = service.suggestions(s, None if status == "all" else status,
                                    int_arg("limit", 100, 1, 500))
        return jsonify([service.to_dict(x) for x in found])


@bp.post("/suggestions/<int:suggestion_id>/start")
@require_user("playbooks.run")
def start_suggestion(suggestion_id: int):
    """Start the suggested playbook with a start form (as POST /playbooks/{key}/runs)."""
    return _started(lambda s, form, actor, now: service.start_suggested(
        s, services().runtime, suggestion_id, form, actor=actor, now=now))


@bp.post("/suggestions/<int:suggestion_id>/dismiss")
@require_user("playbooks.run")
def dismiss_suggestion(suggestion_id: int):
    """Dismiss a suggestion: body {"reason": "…"}."""
    body = json_body()
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise ApiProblem(400, "Bad Request", "send {\"reason\": \"…\"}",
                         [{"field": "reason", "message": "must be text"}])
    ioc = services()
    with ioc.db.session() as s:
        try:
            suggestion = service.dismiss(s, suggestion_id, reason,
                                         actor=f"user:{g.user.username}", now=ioc.clock.now())
        except PlaybookError as exc:
            raise _as_problem(exc) from None
        return jsonify(service.to_dict(suggestion))


@bp.post("/instances/<int:instance_id>/messages")
@require_user("playbooks.run")
def message_everyone(instance_id: int):
    """Send a message to every unit with an order in a run: body {"text": "…"}."""
    body = json_body()
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise ApiProblem(400, "Bad Request", "send {\"text\": \"…\"}",
                         [{"field": "text", "message": "must be text"}])
    ioc = services()
    with ioc.db.session() as s:
        try:
            units = service.message_everyone(s, instance_id, text,
                                             actor=f"user:{g.user.username}",
                                             email=ioc.settings.smtp_enabled)
        except PlaybookError as exc:
            raise _as_problem(exc) from None
    return jsonify({"instance_id": instance_id, "units": units}), 201
