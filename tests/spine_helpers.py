"""Small helpers for driving the engine through its real HTTP API in tests."""
from __future__ import annotations

import itertools

_ids = itertools.count(1)

BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"


def event(type_: str, data: dict, *, id_: str | None = None, subject: str | None = None) -> dict:
    """A valid CloudEvent of the given type."""
    out = {"specversion": "1.0", "id": id_ or f"evt-{next(_ids)}", "source": "/test/mot-cua",
           "type": type_, "time": "2026-11-20T08:30:00+07:00", "datacontenttype": "application/json",
           "data": data}
    if subject:
        out["subject"] = subject
    return out


def dossier(type_: str, dossier_id: str, unit: str = "phuong-thu-dau-mot", **extra) -> dict:
    """A dossier.* event."""
    data = {"dossier_id": dossier_id, "procedure": "1.004227", "unit": unit,
            "officer": "nguyen.van.binh", **extra}
    if type_ == "dossier.received":
        data.setdefault("due_at", "2026-12-04T17:00:00+07:00")
    return event(type_, data, subject=dossier_id)


def ticket(ticket_id: str, category: str = "environment", ward: str = "phuong-di-an") -> dict:
    """A hotline.ticket.created event."""
    return event("hotline.ticket.created", {
        "ticket_id": ticket_id, "category": category, "ward": ward,
        "description": "Khói bụi từ xưởng gỗ gây ô nhiễm khu dân cư",
        "location": {"lat": 10.9046, "lon": 106.7698}}, subject=ticket_id)


def auth(token: str) -> dict:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def send(client, token: str, *events: dict, batch: bool | None = None):
    """POST events; a batch when several (or when asked)."""
    if batch or (batch is None and len(events) > 1):
        return client.post("/api/v1/events", json=list(events), headers=auth(token),
                           content_type=BATCH)
    return client.post("/api/v1/events", json=events[0], headers=auth(token),
                       content_type=SINGLE)


def tasks_of(client, token: str, **params) -> list[dict]:
    """GET /api/v1/tasks with filters."""
    resp = client.get("/api/v1/tasks", query_string=params, headers=auth(token))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def complete(client, token: str, task_id: int, data: dict):
    """POST /api/v1/tasks/<id>/complete."""
    return client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": data},
                       headers=auth(token))


def draw_task(template: str, task_name: str) -> str:
    """The template process with a user task drawn after its start event (as bpmn-js would)."""
    return template.replace(
        "<bpmn:flowNodeRef>start</bpmn:flowNodeRef>",
        "<bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>review</bpmn:flowNodeRef>"
        "<bpmn:flowNodeRef>end</bpmn:flowNodeRef>").replace(
        '<bpmn:startEvent id="start" name="Bắt đầu / Start"/>',
        f"""<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="{task_name}">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="note" label="Ghi chú / Note" type="string"/>
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>""")
