"""The pipeline across a restart, and with an event that makes its process fail."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.clock import ManualClock
from engine.events import service as events
from engine.events.models import Event
from engine.pipeline import Pipeline
from engine.violations.models import Violation
from tests.faults import FAULT, failing_on
from tests.spine_helpers import dossier, ticket


def _ingest(ioc, source_id, *evs):
    result = events.ingest(ioc.db, source_id, list(evs), ioc.vocabulary)
    assert not result.refused, result.refused


def test_open_correlations_survive_a_restart(loaded, source):
    source_id, _ = source
    _ingest(loaded, source_id, dossier("dossier.supplement_requested", "H09.1"),
            dossier("dossier.supplement_requested", "H09.2"),
            dossier("dossier.supplement_requested", "H09.2"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        assert [v.subject for v in s.query(Violation)] == ["H09.2"]

    # A new process: its rule state is rebuilt from the event store, matches are not redone.
    restarted = Pipeline(loaded.db, loaded.vocabulary, loaded.runtime,
                         loaded.pipeline.temporal)
    _ingest(loaded, source_id, dossier("dossier.supplement_requested", "H09.1"))
    restarted.drain()
    with loaded.db.read() as s:
        assert sorted(v.subject for v in s.query(Violation)) == ["H09.1", "H09.2"]
        assert {e.status for e in s.query(Event)} == {"processed"}


def test_a_failing_event_is_tried_again_then_a_dead_letter_and_the_others_go_on(
        loaded, source):
    """An event the engine itself fails on (here an injected fault: a scenario's own failure is
    an incident, tests/test_incidents.py) waits with backoff, then is a dead letter; the events
    behind it go on."""
    ioc = loaded
    clock = ioc.pipeline.clock = ManualClock(datetime.now(timezone.utc))
    source_id, _ = source
    _ingest(ioc, source_id, ticket("1022-p1"), ticket("1022-p2"))
    ioc.pipeline.drain()
    resolved = {"specversion": "1.0", "source": "/1022", "type": "hotline.ticket.resolved"}
    _ingest(ioc, source_id, {**resolved, "id": "r1", "data": {"ticket_id": "1022-p1", "answer": ""}},
            {**resolved, "id": "r2", "data": {"ticket_id": "1022-p2", "answer": "Đã xử lý"}})

    def state():
        with ioc.db.read() as s:
            return {e.ce_id: (e.status, e.attempts, e.error) for e in s.query(Event)}

    with failing_on(ioc.pipeline, "r1"):
        ioc.pipeline.drain()
        assert state()["r1"] == ("pending", 1, FAULT)
        assert state()["r2"] == ("processed", 0, None)  # the event behind it went on
        clock.advance(seconds=1.9)
        assert ioc.pipeline.drain() == 0  # backoff: 2 s before the second attempt
        clock.advance(seconds=0.1)
        ioc.pipeline.drain()
        assert state()["r1"][:2] == ("pending", 2)
        clock.advance(seconds=10)  # then 5 times longer; the third attempt is the last
        ioc.pipeline.drain()
        assert state()["r1"][:2] == ("failed", 3)
    with ioc.db.read() as s:
        dead = s.scalars(select(AuditRecord).where(AuditRecord.action == "event.failed")).all()
        assert [r.details["attempts"] for r in dead] == [3]
    from engine.processes.models import ProcessInstance

    with ioc.db.read() as s:
        by_subject = {i.subject: i.status for i in s.query(ProcessInstance)}
    # The failed event left its instance as it was; the other instance finished.
    assert by_subject == {"1022-p1": "running", "1022-p2": "completed"}


def test_a_rule_match_presented_again_is_not_acted_on_twice(loaded, source):
    from engine.processes.models import ProcessInstance
    from engine.rules.temporal import Detection
    from engine.violations.models import RuleMatch

    source_id, _ = source
    _ingest(loaded, source_id, dossier("dossier.supplement_requested", "H09.2"),
            dossier("dossier.supplement_requested", "H09.2"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        [violation] = s.scalars(select(Violation))
        match = s.get(RuleMatch, violation.match_id)
    # The same rule on the same events (a replay, a retried step): the unique match refuses it.
    with loaded.db.session() as s:
        loaded.pipeline._on_match(s, match.scenario_version_id,
                                  Detection(match.rule_key, {}, match.event_ids))
    with loaded.db.read() as s:
        assert len(s.scalars(select(Violation)).all()) == 1
        assert len(s.scalars(select(ProcessInstance)).all()) == 1
        assert len(s.scalars(select(RuleMatch)).all()) == 1
