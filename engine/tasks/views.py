"""Task API: list, claim, release, assign, complete."""
from __future__ import annotations

from flask import g, jsonify, request

from engine.api import ApiProblem, bp, int_arg, json_body, require_user, services
from engine.auth.models import User
from engine.incidents import service as incidents
from engine.tasks import service
from engine.tasks.service import TaskError


def _as_problem(exc: TaskError) -> ApiProblem:
    titles = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
              422: "Invalid Answers"}
    return ApiProblem(exc.status, titles.get(exc.status, "Error"), exc.message, exc.errors)


def _assignees(session, tasks) -> dict[int, str]:
    ids = {t.assignee_id for t in tasks if t.assignee_id}
    return {u.id: u.username for u in session.query(User).filter(User.id.in_(ids))} if ids else {}


@bp.get("/tasks")
@require_user("tasks.read")
def list_tasks():
    """Tasks the caller may see (their department unless their role sees all)."""
    with services().db.read() as s:
        try:
            tasks = service.list_tasks(
                s, g.user, department=request.args.get("department"),
                status=request.args.get("status"), assignee=request.args.get("assignee"),
                limit=int_arg("limit", 100, 1, 500), offset=int_arg("offset", 0, 0, 10**9))
        except TaskError as exc:
            raise _as_problem(exc) from None
        names = _assignees(s, tasks)
        return jsonify([service.to_dict(t, names.get(t.assignee_id)) for t in tasks])


@bp.get("/tasks/<int:task_id>")
@require_user("tasks.read")
def get_task(task_id: int):
    """One task with its form."""
    with services().db.read() as s:
        try:
            task = service.get_for(s, g.user, task_id)
        except TaskError as exc:
            raise _as_problem(exc) from None
        return jsonify(service.to_dict(task, _assignees(s, [task]).get(task.assignee_id)))


def _moved(run, assignee=None):
    """Run one move of a task (`run(session)` gives the task) as a JSON answer."""
    with services().db.session() as s:
        try:
            task = run(s)
        except TaskError as exc:
            raise _as_problem(exc) from None
        return jsonify(service.to_dict(task, assignee))


@bp.post("/tasks/<int:task_id>/claim")
@require_user("tasks.claim")
def claim_task(task_id: int):
    """Claim an open task of one's department."""
    return _moved(lambda s: service.claim(s, g.user, task_id, services().runtime),
                  g.user.username)


@bp.post("/tasks/<int:task_id>/release")
@require_user("tasks.read")
def release_task(task_id: int):
    """Give a claimed task back to its department (its holder, or the department's head)."""
    return _moved(lambda s: service.release(s, g.user, task_id))


@bp.post("/tasks/<int:task_id>/assign")
@require_user("tasks.read")
def assign_task(task_id: int):
    """Hand a task to a colleague of its department: body {"to": "username"} (its holder, or
    the department's head for any of its tasks)."""
    body = json_body()
    to = body.get("to") if isinstance(body, dict) else None
    if not isinstance(to, str) or not to:
        raise ApiProblem(422, "Invalid Body", "the body must be {\"to\": \"username\"}",
                         [{"field": "to", "message": "a colleague's username is required"}])
    return _moved(lambda s: service.assign(s, g.user, task_id, to, services().runtime), to)


@bp.post("/tasks/<int:task_id>/complete")
@require_user("tasks.complete")
def complete_task(task_id: int):
    """Complete a task: body {"data": {field: answer}} (or the answers themselves)."""
    body = json_body()
    answers = body.get("data", body) if isinstance(body, dict) else body
    ioc = services()
    try:
        done = ioc.complete_task(g.user, task_id, answers)
    except TaskError as exc:
        raise _as_problem(exc) from None
    body = service.to_dict(done.task, g.user.username)
    if done.incident is None:
        return jsonify(body)
    # Accepted, not done: the answer is kept and the process waits for its scenario's fix.
    return jsonify({**body, "detail": done.message(),
                    "incident": incidents.to_dict(done.incident)}), 202
