"""Durable timers: a scheduler pass fires what is due, once, in due order, and survives failures."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from engine.audit.models import AuditRecord
from engine.clock import ManualClock
from engine.db import Database
from engine.timers import service as timers
from engine.timers.models import CANCELLED, FAILED, FIRED, PENDING, Timer
from engine.timers.scheduler import Scheduler

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def _add(db, *offsets_s: float, kind: str = "test", ref: str | None = None) -> list[int]:
    with db.session() as s:
        rows = [timers.schedule(s, kind, ref or f"r{i}", T0 + timedelta(seconds=o))
                for i, o in enumerate(offsets_s)]
        s.flush()
        return [r.id for r in rows]


def test_a_pass_fires_what_is_due_in_due_order_and_nothing_else(db):
    clock = ManualClock(T0)
    fired: list[str] = []
    scheduler = Scheduler(db, clock, {"test": lambda s, t: fired.append(t.ref)})
    _add(db, 30, 10, 20, 3600)
    assert scheduler.run_once() == 0
    clock.advance(seconds=25)
    assert scheduler.run_once() == 2
    assert fired == ["r1", "r2"]
    assert scheduler.next_due() == T0 + timedelta(seconds=30)
    clock.advance(hours=2)
    assert scheduler.run_due() == 2
    assert fired == ["r1", "r2", "r0", "r3"]
    assert scheduler.run_due() == 0
    with db.read() as s:
        rows = list(s.scalars(select(Timer).order_by(Timer.id)))
    assert {r.status for r in rows} == {FIRED}
    # Lateness is the clock at firing minus the due time.
    assert [r.lateness_ms for r in rows] == [7_195_000.0, 15_000.0, 5_000.0, 3_625_000.0]
    assert scheduler.next_due() is None


def test_a_failing_timer_is_marked_failed_and_audited_while_the_others_fire(db):
    clock = ManualClock(T0 + timedelta(minutes=5))
    fired: list[str] = []

    def handler(session, timer):
        if timer.ref == "r1":
            raise ValueError("the instance is gone")
        fired.append(timer.ref)

    _add(db, 1, 2, 3)
    assert Scheduler(db, clock, {"test": handler}).run_once() == 3
    assert fired == ["r0", "r2"]
    with db.read() as s:
        failed = s.scalars(select(Timer).where(Timer.ref == "r1")).one()
        record = s.scalars(select(AuditRecord).where(AuditRecord.action == "timer.failed")).one()
    assert failed.status == FAILED and "the instance is gone" in failed.error
    assert record.details["ref"] == "r1"


def test_an_unknown_kind_fails_loudly(db):
    _add(db, 0, kind="mystery")
    Scheduler(db, ManualClock(T0), {}).run_once()
    with db.read() as s:
        timer = s.scalars(select(Timer)).one()
    assert timer.status == FAILED and "no handler" in timer.error


def test_an_effect_can_arm_the_next_timer_of_its_own_ref(db):
    # A cycle or an SLA level re-arms the same ref while its timer fires: nothing is lost.
    clock = ManualClock(T0)

    def rearm(session, timer):
        if timer.payload.get("n", 0) < 2:
            timers.reschedule(session, "test", timer.ref, timer.due_at + timedelta(minutes=1),
                              payload={"n": timer.payload.get("n", 0) + 1})

    _add(db, 0, ref="cycle")
    scheduler = Scheduler(db, clock, {"test": rearm})
    clock.advance(minutes=10)
    assert scheduler.run_due() == 3
    with db.read() as s:
        assert [t.status for t in s.scalars(select(Timer).order_by(Timer.id))] == [FIRED] * 3


def test_reschedule_moves_one_pending_timer_and_cancel_stops_it(db):
    with db.session() as s:
        first = timers.reschedule(s, "test", "station-1", T0)
        s.flush()
        again = timers.reschedule(s, "test", "station-1", T0 + timedelta(hours=1))
        assert again.id == first.id and again.due_at == T0 + timedelta(hours=1)
        assert timers.cancel(s, "test", "station-1") == 1
        assert timers.pending(s, "test", "station-1") == []
    with db.read() as s:
        assert s.scalars(select(Timer.status)).all() == [CANCELLED]


def test_two_schedulers_never_fire_the_same_timer(db):
    """Two processes (two engines, two connection pools) race over the same due timers."""
    _add(db, *range(120))
    clock = ManualClock(T0 + timedelta(hours=1))
    seen: list[int] = []
    lock = threading.Lock()

    def handler(session, timer):
        with lock:
            seen.append(timer.id)

    others = [Database(db.url) for _ in range(2)]
    try:
        schedulers = [Scheduler(d, clock, {"test": handler}) for d in others]
        threads = [threading.Thread(target=lambda sch=sch: sch.run_due(limit=10))
                   for sch in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for d in others:
            d.dispose()
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 120
    with db.read() as s:
        assert s.scalars(select(Timer).where(Timer.status == PENDING)).all() == []
