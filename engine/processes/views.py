"""Instance API: list, one instance with its open tasks, its audit history."""
from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import select

from engine.api import ApiProblem, bp, int_arg, require_user, services
from engine.audit import service as audit
from engine.incidents import service as incidents
from engine.processes import scope, service
from engine.processes.models import CANCELLED, COMPLETED, ERROR, RUNNING, ProcessInstance
from engine.tasks.models import ACTIVE, Task


@bp.get("/instances")
@require_user("instances.read")
def list_instances():
    """Process instances the caller may read, newest first, by status and scenario."""
    query = scope.instances(g.user, select(ProcessInstance)).order_by(ProcessInstance.id.desc()).limit(
        int_arg("limit", 100, 1, 500)).offset(int_arg("offset", 0, 0, 10**9))
    status = request.args.get("status")
    if status is not None:
        if status not in (RUNNING, COMPLETED, CANCELLED, ERROR):
            raise ApiProblem(400, "Bad Request", "unknown status",
                             [{"field": "status", "message": "unknown status"}])
        query = query.where(ProcessInstance.status == status)
    if request.args.get("scenario"):
        query = query.where(ProcessInstance.scenario_key == request.args["scenario"])
    with services().db.read() as s:
        return jsonify([service.to_dict(i) for i in s.scalars(query)])


def _instance(s, instance_id: int) -> ProcessInstance:
    instance = s.get(ProcessInstance, instance_id)
    # Another department's case is not found, as a number that does not exist.
    if instance is None or not scope.may_read_instance(s, g.user, instance_id):
        raise ApiProblem(404, "Not Found", f"instance {instance_id} not found")
    return instance


@bp.get("/instances/<int:instance_id>")
@require_user("instances.read")
def get_instance(instance_id: int):
    """Status, data and open tasks of one instance."""
    with services().db.read() as s:
        instance = _instance(s, instance_id)
        tasks = list(s.scalars(select(Task).where(Task.instance_id == instance_id,
                                                  Task.status.in_(ACTIVE))))
        return jsonify({**service.to_dict(instance, tasks), "incidents": [
            incidents.to_dict(i) for i in incidents.open_for_instance(s, instance_id)]})


@bp.get("/instances/<int:instance_id>/history")
@require_user("instances.read")
def instance_history(instance_id: int):
    """The instance's audit records, in order."""
    with services().db.session() as s:
        _instance(s, instance_id)
        records = [audit.to_dict(r) for r in audit.history(s, instance_id)]
        audit.viewed(s, g.user.username, instance_id, "api")
    return jsonify(records)
