"""The path an instance took through its diagram: the BPMN elements and sequence flows it passed,
in order, and where it waits now; painted on the diagram by the dry run and the case file."""
from __future__ import annotations

from SpiffWorkflow.util.task import TaskState

from engine.xmlsafe import parse

BPMN_NS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def flow_ids(bpmn: str) -> dict[tuple[str, str], str]:
    """(sourceRef, targetRef) → sequence flow id, to light the flows a path took."""
    return {(f.get("sourceRef"), f.get("targetRef")): f.get("id")
            for f in parse(bpmn).iter(f"{BPMN_NS}sequenceFlow")}


def _bpmn(tasks) -> list:
    return [t for t in tasks if getattr(t.task_spec, "bpmn_id", None)]


def _bpmn_parent(task) -> str | None:
    parent = task.parent
    while parent is not None and not getattr(parent.task_spec, "bpmn_id", None):
        parent = parent.parent
    return parent.task_spec.bpmn_id if parent is not None else None


def taken(workflow, flows: dict[tuple[str, str], str], running: bool) -> dict:
    """{"path": ids of the elements and flows passed (then the flows into where it waits),
    "waiting": the elements it waits at, "steps": [(element, name, when)] in order}."""
    def flow_in(task) -> list[str]:
        flow = flows.get((_bpmn_parent(task), task.task_spec.bpmn_id))
        return [flow] if flow else []

    done = sorted(_bpmn(workflow.get_tasks(state=TaskState.COMPLETED)),
                  key=lambda t: t.last_state_change)
    open_ = _bpmn(workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)) \
        if running else []
    path = [i for t in done for i in flow_in(t) + [t.task_spec.bpmn_id]]
    path += [i for t in open_ for i in flow_in(t)]
    return {"path": path, "waiting": [t.task_spec.bpmn_id for t in open_],
            "steps": [(t.task_spec.bpmn_id, t.task_spec.bpmn_name or t.task_spec.bpmn_id,
                       t.last_state_change) for t in done]}
