"""Two steps on one instance at once: the stale one fails instead of losing the other's update."""
from __future__ import annotations

import pytest
from sqlalchemy.orm.exc import StaleDataError

from engine.processes.models import ProcessInstance
from engine.scenarios.models import ScenarioVersion
from engine.tasks.models import Task


def test_a_stale_instance_update_is_refused(loaded, db):
    if not db.is_postgres:
        pytest.skip("SQLite has a single writer: writers are serialised before they read")
    with loaded.db.session() as s:
        version = s.query(ScenarioVersion).filter_by(key="hotline-ticket").one()
        instance = loaded.runtime.start(s, version, {"ticket_id": "T1", "category": "traffic",
                                                     "ward": "phuong-di-an"}, actor="test")
        instance_id = instance.id
    first, second = db.sessions(), db.sessions()
    a = first.get(ProcessInstance, instance_id)
    b = second.get(ProcessInstance, instance_id)
    a.data = {**a.data, "step": "first"}
    first.commit()
    b.data = {**b.data, "step": "second"}
    with pytest.raises(StaleDataError):
        second.commit()
    second.rollback()
    first.close(), second.close()
    with db.read() as s:
        assert s.get(ProcessInstance, instance_id).data["step"] == "first"


def test_completing_a_task_retries_after_a_concurrent_step(loaded, db, people, monkeypatch):
    """Services.complete_task runs again on fresh state when its instance moved meanwhile."""
    from engine.auth.models import User

    with loaded.db.session() as s:
        version = s.query(ScenarioVersion).filter_by(key="hotline-ticket").one()
        loaded.runtime.start(s, version, {"ticket_id": "T2", "category": "traffic",
                                          "ward": "phuong-di-an"}, actor="test")
    with loaded.db.read() as s:
        task_id = s.query(Task).one().id
        user = s.query(User).filter_by(username="xaydung").one()
    real = loaded.runtime.complete_task
    calls = []

    def racing(session, task, answers, **kw):
        calls.append(1)
        if len(calls) == 1:  # someone else's step wins the first time
            raise StaleDataError("instance changed meanwhile")
        return real(session, task, answers, **kw)

    monkeypatch.setattr(loaded.runtime, "complete_task", racing)
    done = loaded.complete_task(user, task_id, {"answer": "Đã xử lý"})
    assert len(calls) == 2 and done.task.status == "completed" and done.incident is None
