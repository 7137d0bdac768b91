"""End to end through the real API: events → rules → violations → BPMN → department tasks → audit."""
from __future__ import annotations

import pytest

from engine.app import create_app
from engine.audit import service as audit
from tests.spine_helpers import auth, complete, dossier, send, tasks_of, ticket


@pytest.fixture
def client(loaded):
    app = create_app(services=loaded)
    app.config["TESTING"] = True
    return app.test_client()


def test_repeated_supplement_request_confirmed_and_remedied(client, loaded, source, people):
    _, src = source
    tok = {name: t for name, (_, t) in people.items()}
    assert send(client, src, dossier("dossier.received", "H01.2026.0001")).status_code == 202
    assert send(client, src, dossier("dossier.supplement_requested", "H01.2026.0001",
                                     reason="Thiếu bản sao CCCD")).status_code == 202
    loaded.pipeline.drain()
    assert client.get("/api/v1/violations", headers=auth(tok["inspector"])).get_json() == []

    send(client, src, dossier("dossier.supplement_requested", "H01.2026.0001",
                              reason="Thiếu giấy xác nhận cư trú"))
    loaded.pipeline.drain()
    violations = client.get("/api/v1/violations", headers=auth(tok["inspector"])).get_json()
    assert len(violations) == 1
    v = violations[0]
    assert (v["kind"], v["status"], v["subject"]) == ("violation", "open", "H01.2026.0001")
    assert "lần thứ hai" in v["title"]["vi"]

    # The verification task lands at the Public Administration Service Centre, not elsewhere.
    verify = tasks_of(client, tok["phvhcc"], status="open")
    assert [t["task"] for t in verify] == ["verify"]
    assert verify[0]["department"] == "trung-tam-phvhcc"
    assert tasks_of(client, tok["thudaumot"]) == []

    task_id = verify[0]["id"]
    assert client.post(f"/api/v1/tasks/{task_id}/claim",
                       headers=auth(tok["phvhcc"])).status_code == 200
    # Claimed by one officer: a colleague cannot complete it.
    assert complete(client, tok["phvhcc2"], task_id,
                    {"finding": "confirmed", "verification_note": "x"}).status_code == 409
    resp = complete(client, tok["phvhcc"], task_id,
                    {"finding": "confirmed", "verification_note": "Hai lần yêu cầu bổ sung"})
    assert resp.status_code == 200, resp.get_json()

    # Gateway: confirmed → the remedy task goes to the dossier's unit (the ward).
    remedy = tasks_of(client, tok["thudaumot"], status="open")
    assert [t["task"] for t in remedy] == ["remedy"]
    assert remedy[0]["context"]["dossier_id"] == "H01.2026.0001"
    resp = complete(client, tok["thudaumot"], remedy[0]["id"],
                    {"remedy_action": "Đã xin lỗi công dân, hướng dẫn một lần đầy đủ",
                     "citizen_informed": True})
    assert resp.status_code == 200, resp.get_json()

    instance = client.get(f"/api/v1/instances/{v['instance_id']}",
                          headers=auth(tok["inspector"])).get_json()
    assert instance["status"] == "completed"
    assert instance["data"]["outcome"] == "remedied"
    assert instance["open_tasks"] == []
    closed = client.get("/api/v1/violations", headers=auth(tok["inspector"])).get_json()[0]
    assert (closed["status"], closed["outcome"]) == ("closed", "remedied")

    history = client.get(f"/api/v1/instances/{v['instance_id']}/history",
                         headers=auth(tok["auditor"])).get_json()
    actions = [r["action"] for r in history]
    assert actions[0] == "instance.started"
    for step in ("task.created", "task.claimed", "task.completed", "gateway.decided",
                 "instance.ended", "violation.closed"):
        assert step in actions, step
    decided = next(r for r in history if r["action"] == "gateway.decided")
    assert decided["details"]["taken"] == ["remedy"]
    assert [r["seq"] for r in history] == sorted(r["seq"] for r in history)
    with loaded.db.session() as s:
        result = audit.verify(s)
    assert result.ok, result.reason


def test_unfounded_finding_closes_without_remedy(client, loaded, source, people):
    _, src = source
    tok = {name: t for name, (_, t) in people.items()}
    send(client, src, dossier("dossier.supplement_requested", "H01.2026.0002"),
         dossier("dossier.supplement_requested", "H01.2026.0002"))
    loaded.pipeline.drain()
    [task] = tasks_of(client, tok["phvhcc"], status="open")
    resp = complete(client, tok["phvhcc"], task["id"],
                    {"finding": "unfounded", "verification_note": "Lần 2 do công dân tự rút"})
    assert resp.status_code == 200
    assert tasks_of(client, tok["thudaumot"]) == []
    [v] = client.get("/api/v1/violations", headers=auth(tok["inspector"])).get_json()
    assert (v["status"], v["outcome"]) == ("closed", "unfounded")


def test_supplement_requests_on_different_dossiers_are_not_correlated(client, loaded, source,
                                                                        people):
    _, src = source
    send(client, src, dossier("dossier.supplement_requested", "H01.A"),
         dossier("dossier.supplement_requested", "H01.B"))
    loaded.pipeline.drain()
    assert client.get("/api/v1/violations",
                      headers=auth(people["inspector"][1])).get_json() == []


@pytest.mark.parametrize("reason, opens", [("", True), ("   ", True), (None, True),
                                           ("Hồ sơ không thuộc thẩm quyền", False)])
def test_returned_without_reason(client, loaded, source, people, reason, opens):
    _, src = source
    extra = {} if reason is None else {"reason": reason}
    send(client, src, dossier("dossier.returned", "H01.2026.0009", **extra))
    loaded.pipeline.drain()
    found = client.get("/api/v1/violations", headers=auth(people["inspector"][1])).get_json()
    assert len(found) == (1 if opens else 0)
    if opens:
        assert found[0]["rule"] == "returned-without-reason"
        assert found[0]["severity"] == "high"
        assert [t["task"] for t in tasks_of(client, people["phvhcc"][1])] == ["verify"]


@pytest.mark.parametrize("category, ward, department", [
    ("environment", "phuong-di-an", "so-nong-nghiep-moi-truong"),
    ("traffic", "phuong-di-an", "so-xay-dung"),
    ("urban-order", "phuong-thu-dau-mot", "phuong-thu-dau-mot"),
    ("other", "phuong-di-an", "ioc"),
])
def test_hotline_ticket_is_routed_by_category(client, loaded, source, people, category, ward,
                                              department):
    _, src = source
    send(client, src, ticket("1022-0001", category, ward))
    loaded.pipeline.drain()
    with loaded.db.session() as s:
        from engine.tasks.models import Task

        [task] = s.query(Task).all()
    assert task.department_key == department
    assert task.bpmn_id == "answer_ticket"


def test_hotline_ticket_answered(client, loaded, source, people):
    _, src = source
    tok = people["nnmt"][1]
    send(client, src, ticket("1022-0002"))
    loaded.pipeline.drain()
    [task] = tasks_of(client, tok, status="open")
    resp = complete(client, tok, task["id"], {"answer": "Đã kiểm tra, xử phạt cơ sở"})
    assert resp.status_code == 200
    [inst] = client.get("/api/v1/instances", headers=auth(people["inspector"][1])).get_json()
    assert (inst["status"], inst["data"]["outcome"]) == ("completed", "answered")


def test_hotline_ticket_resolved_at_call_centre_ends_by_message(client, loaded, source, people):
    _, src = source
    tok = people["nnmt"][1]
    send(client, src, ticket("1022-0003"), ticket("1022-0004"))
    loaded.pipeline.drain()
    assert len(tasks_of(client, tok, status="open")) == 2
    send(client, src, {"specversion": "1.0", "id": "resolved-1", "source": "/test/1022",
                       "type": "hotline.ticket.resolved",
                       "data": {"ticket_id": "1022-0003", "answer": "Đã giải quyết tại chỗ",
                                # Fields the process does not declare (its catch event takes
                                # only `answer`) never overwrite the instance's own.
                                "category": "noise", "ward": "phuong-tan-dong-hiep"}})
    loaded.pipeline.drain()
    # Only the instance of ticket 0003 caught the message; 0004 still waits for its answer.
    [open_task] = tasks_of(client, tok, status="open")
    assert open_task["context"]["ticket_id"] == "1022-0004"
    [cancelled] = tasks_of(client, tok, status="cancelled")
    assert cancelled["context"]["ticket_id"] == "1022-0003"
    insts = client.get("/api/v1/instances", headers=auth(people["inspector"][1])).get_json()
    by_ticket = {i["subject"]: i for i in insts}
    assert by_ticket["1022-0003"]["status"] == "completed"
    assert by_ticket["1022-0003"]["data"]["outcome"] == "resolved_at_call_centre"
    assert by_ticket["1022-0003"]["data"]["answer"] == "Đã giải quyết tại chỗ"
    assert by_ticket["1022-0003"]["data"]["category"] == "environment"
    assert by_ticket["1022-0003"]["data"]["ward"] == "phuong-di-an"
    assert by_ticket["1022-0004"]["status"] == "running"
    history = client.get(f"/api/v1/instances/{by_ticket['1022-0003']['id']}/history",
                         headers=auth(people["auditor"][1])).get_json()
    assert "message.correlated" in [r["action"] for r in history]
    # The cancelled task can no longer be completed.
    assert complete(client, tok, cancelled["id"], {"answer": "x"}).status_code == 409


def test_one_version_object_starts_many_instances(loaded):
    # Every instance of a version shares its stored spec: starting one must not spoil it
    # (SpiffWorkflow's deserializer pops keys from the dicts it is given).
    from engine.scenarios.models import ScenarioVersion

    with loaded.db.session() as s:
        version = s.query(ScenarioVersion).filter_by(key="hotline-ticket").one()
        for i in range(3):
            loaded.runtime.start(s, version, {"ticket_id": f"T{i}", "category": "traffic",
                                              "ward": "phuong-di-an"}, actor="test")
        from engine.tasks.models import Task

        assert [t.department_key for t in s.query(Task)] == ["so-xay-dung"] * 3
