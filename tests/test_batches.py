"""A batch of events is one transaction: rule windows and silence deadlines are written once per
key, and a failing event rolls the batch back to be handled event by event.

The same shipped rules as tests/test_time_scenarios.py, but many events stored first and then
processed together, as a worker does under load: the results must be those of one event at a
time.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from engine.audit import service as audit
from engine.events import service as events
from engine.events.models import Event
from engine.rules.models import RuleState
from engine.timers.models import Timer
from tests.conftest import load_scenarios
from tests.faults import FAULT, failing_on
from tests.time_helpers import Drive, local

START = local("2026-03-07 20:00")  # a Saturday evening
ENVIRONMENT = "so-nong-nghiep-moi-truong"


@pytest.fixture
def drive(ioc, source):
    """The engine with the shipped scenarios, its clock at START."""
    load_scenarios(ioc)
    return Drive(ioc.db, ioc.vocabulary, START, source[0])


def _reading(n: int, station: str, minutes: int, value: float, aqi: int = 160) -> dict:
    return {"specversion": "1.0", "id": f"batch-{station}-{n}", "source": "/test/batch",
            "type": "environment.reading", "subject": station,
            "time": (START + timedelta(minutes=minutes)).isoformat(),
            "data": {"station_id": station, "parameter": "pm25", "value": value,
                     "unit": "µg/m³", "aqi": aqi, "ward": "phuong-di-an"}}


def _store(drive, raws: list[dict]) -> None:
    result = events.ingest(drive.db, drive.source_id, raws, drive.vocabulary)
    assert not result.refused and len(result.accepted) == len(raws)


def _window(drive, rule_key: str, station: str) -> dict | None:
    with drive.db.read() as s:
        row = s.scalars(select(RuleState).where(RuleState.rule_key == rule_key,
                                                RuleState.key == f'["{station}"]')).first()
        return None if row is None else row.state


def _silence_timers(drive) -> list[Timer]:
    with drive.db.read() as s:
        return list(s.scalars(select(Timer).where(Timer.ref.like("%station-silent%"),
                                                  Timer.status == "pending")))


@contextmanager
def _statements(drive) -> Iterator[list[str]]:
    """The SQL statements run meanwhile, whitespace collapsed."""
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    sa_event.listen(drive.db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa_event.remove(drive.db.engine, "before_cursor_execute", listen)


def _status(drive) -> dict[str, str]:
    with drive.db.read() as s:
        return {e.ce_id: e.status for e in s.scalars(select(Event))}


STREAK = [(0, 60), (10, 62), (20, 40), (30, 55), (40, 58), (50, 61), (60, 70), (70, 75)]


def test_a_sustained_streak_in_one_batch_opens_one_incident(drive):
    _store(drive, [_reading(i, "BD-AQ-01", m, v) for i, (m, v) in enumerate(STREAK)]
           + [_reading(i, "BD-AQ-03", m, 30, aqi=40) for i, (m, _) in enumerate(STREAK)])
    with _statements(drive) as statements:
        assert drive.ioc.pipeline.run_once() == 16  # one batch
    # The incident's instance ran to its first wait before its row was written: one INSERT,
    # with that state, and no UPDATE.
    assert [s.split(" (")[0] for s in statements if "process_instances" in s.split(" (")[0]
            and s.startswith(("INSERT", "UPDATE"))] == ["INSERT INTO process_instances"]
    [incident] = drive.violations()
    assert (incident.subject, incident.rule_key) == ("BD-AQ-01", "pm25-sustained")
    [respond] = drive.tasks("respond_air_quality")
    # 20:30 → 21:00 is the first 30 minutes over the limit: four readings, as one at a time.
    assert respond.context["rule_window"]["readings"] == 4
    window = _window(drive, "pm25-sustained", "BD-AQ-01")
    assert window["n"] == 5 and window["fired"] is True
    assert datetime.fromisoformat(window["since"]) == START + timedelta(minutes=30)
    assert _window(drive, "pm25-sustained", "BD-AQ-03") is None  # never over the limit
    # One silence deadline per station, an hour after its last reading (later than the clock).
    timers = _silence_timers(drive)
    assert sorted(t.ref.rsplit(":", 1)[1] for t in timers) == ['["BD-AQ-01"]', '["BD-AQ-03"]']
    assert {t.due_at for t in timers} == {START + timedelta(minutes=70 + 60)}
    assert {datetime.fromisoformat(t.payload["window"]["last_seen"]) for t in timers} == \
        {START + timedelta(minutes=70)}


def test_a_count_window_fills_across_batches(drive):
    def post(n: int, seconds: int) -> dict:
        return {"specversion": "1.0", "id": f"post-{n}", "source": "/test/batch",
                "type": "social.post", "time": (START + timedelta(seconds=seconds)).isoformat(),
                "data": {"post_id": f"p{n}", "platform": "facebook", "keyword": "ngập Dĩ An"}}

    _store(drive, [post(n, n * 25) for n in range(12)])
    drive.ioc.pipeline.run_once()
    assert drive.violations() == [] and len(_window(drive, "keyword-spreading", "ngập Dĩ An")["events"]) == 12
    _store(drive, [post(n, n * 25) for n in range(12, 20)])
    drive.ioc.pipeline.run_once()
    [incident] = drive.violations()
    assert incident.subject == "ngập Dĩ An" and len(incident.event_ids) == 20
    assert _window(drive, "keyword-spreading", "ngập Dĩ An") is None  # used up: no row kept


def test_a_failing_event_in_a_batch_keeps_the_others_and_drops_its_own_window(drive):
    drive.ioc.pipeline.max_attempts = 1  # the first failure makes a dead letter
    raws = [_reading(i, "BD-AQ-01", m, v) for i, (m, v) in enumerate(STREAK[:6])]
    # 21:00 completes 30 minutes over the limit: this reading would open the incident; it fails.
    poison = _reading(6, "BD-AQ-01", 60, 70)
    after = _reading(0, "BD-AQ-03", 65, 30, aqi=40)
    _store(drive, raws + [poison, after])
    # The engine fails on it (an injected fault: a scenario's own failure would be an incident).
    with failing_on(drive.ioc.pipeline, poison["id"]):
        drive.ioc.pipeline.drain()
    status = _status(drive)
    assert status.pop(poison["id"]) == "failed"
    assert set(status.values()) == {"processed"}  # before it and after it
    assert drive.violations() == [] and drive.tasks() == []
    # The streak holds the three readings before the failed one, not the failed one.
    window = _window(drive, "pm25-sustained", "BD-AQ-01")
    assert (window["n"], len(window["ids"]), window.get("fired")) == (3, 3, None)
    assert {t.ref.rsplit(":", 1)[1] for t in _silence_timers(drive)} == \
        {'["BD-AQ-01"]', '["BD-AQ-03"]'}
    with drive.db.read() as s:
        assert audit.verify(s).ok
        [failed] = s.scalars(select(Event).where(Event.status == "failed"))
        assert failed.error == FAULT
    # The streak is a row of the database: the next reading goes on with it.
    _store(drive, [_reading(7, "BD-AQ-01", 70, 75)])
    drive.ioc.pipeline.drain()
    [incident] = drive.violations()
    assert incident.rule_key == "pm25-sustained"
    assert drive.tasks("respond_air_quality")[0].context["rule_window"]["readings"] == 4


def test_a_batch_takes_only_the_partitions_it_is_given(drive):
    from engine.events.partitions import partition_of

    stations = [f"BD-AQ-{n:02d}" for n in range(1, 40)]
    by_partition: dict[int, list[str]] = {}
    for station in stations:
        by_partition.setdefault(partition_of(station, "", ""), []).append(station)
    first, second, left = sorted(by_partition)[:3]
    _store(drive, [_reading(i, station, i, 30, aqi=40) for i in range(3)
                   for station in by_partition[first] + by_partition[second]
                   + by_partition[left]])
    assert drive.ioc.pipeline.run_once(200, [first, second]) == \
        3 * len(by_partition[first] + by_partition[second])
    with drive.db.read() as s:
        rows = s.execute(select(Event.partition, Event.status, Event.id)
                         .order_by(Event.id)).all()
    for partition in (first, second):
        assert {r.status for r in rows if r.partition == partition} == {"processed"}
    assert {r.status for r in rows if r.partition == left} == {"pending"}


def test_a_batch_reads_its_windows_at_once_and_moves_its_silence_deadlines_at_once(drive):
    stations = ["BD-AQ-01", "BD-AQ-02", "BD-AQ-03"]
    _store(drive, [_reading(0, s, 10, 30, aqi=40) for s in stations])
    drive.ioc.pipeline.run_once()
    # The next batch: each station over the limit twice, and BD-AQ-03 once more with an old
    # reading (back-filled), which must not pull its deadline earlier.
    with _statements(drive) as statements:
        _store(drive, [_reading(n, s, 10 + 10 * n, 60) for n in (1, 2) for s in stations]
               + [_reading(3, "BD-AQ-03", 5, 30, aqi=40)])
        assert drive.ioc.pipeline.run_once() == 7
    processing = statements[statements.index(next(s for s in statements
                                                  if s.startswith("SELECT events.id"))):]
    assert sum(s.startswith("SELECT rule_states.") for s in processing) == 1
    assert sum(s.startswith("UPDATE timers SET due_at") for s in processing) == 1
    for station in stations:
        window = _window(drive, "pm25-sustained", station)
        # BD-AQ-03's old reading (not over the limit) came last in the batch: streak broken.
        if station == "BD-AQ-03":
            assert window is None  # no streak: no row
        else:
            assert window["n"] == 2
            assert datetime.fromisoformat(window["since"]) == START + timedelta(minutes=20)
    assert {t.ref.rsplit(":", 1)[1]: t.due_at for t in _silence_timers(drive)} == \
        {f'["{s}"]': START + timedelta(minutes=30 + 60) for s in stations}


def test_a_worker_reads_a_scenario_version_once_and_keeps_it_through_a_rollback(drive):
    def version_reads() -> int:  # one version, by its id
        return sum(s.endswith("FROM scenario_versions WHERE scenario_versions.id = ?")
                   or "FROM scenario_versions WHERE scenario_versions.id = %(pk_1)s" in s
                   for s in statements)

    with _statements(drive) as statements:
        # A streak at BD-AQ-01 opens an incident (its scenario version is read once) …
        _store(drive, [_reading(i, "BD-AQ-01", m, v) for i, (m, v) in enumerate(STREAK)])
        drive.ioc.pipeline.drain()
        assert len(drive.violations()) == 1 and version_reads() == 1
        # … then a batch that uses the same scenario fails after it and rolls back (the engine
        # fails on its last reading), and is handled again event by event …
        drive.ioc.pipeline.max_attempts = 1
        streak = [_reading(i, "BD-AQ-02", m, v) for i, (m, v) in enumerate(STREAK)]
        poison = _reading(len(STREAK), "BD-AQ-02", 80, 75)
        _store(drive, streak + [poison])
        with failing_on(drive.ioc.pipeline, poison["id"]):
            drive.ioc.pipeline.drain()
        assert len(drive.violations()) == 2
        # … and a third station's streak is handled with the version read the first time.
        _store(drive, [_reading(i, "BD-AQ-04", m, v) for i, (m, v) in enumerate(STREAK)])
        drive.ioc.pipeline.drain()
    assert sorted(v.subject for v in drive.violations()) == ["BD-AQ-01", "BD-AQ-02", "BD-AQ-04"]
    assert version_reads() == 1


def _step(n: int, type_: str, dossier_id: str, minutes: int) -> dict:
    return {"specversion": "1.0", "id": f"step-{n}", "source": "/test/batch", "type": type_,
            "time": (START + timedelta(minutes=minutes)).isoformat(),
            "data": {"dossier_id": dossier_id, "procedure": "1.004227",
                     "unit": "phuong-thu-dau-mot", "officer": "tran.thi.lan",
                     "step": "tham-dinh", "allotted_hours": 4}}


def _absence_timers(drive) -> dict[str, list[tuple[str, datetime]]]:
    with drive.db.read() as s:
        rows = list(s.scalars(select(Timer).where(Timer.ref.like("%step-held-too-long%"))
                              .order_by(Timer.id)))
    return {dossier: [(t.status, datetime.fromisoformat(t.payload["window"]["started_at"]))
                      for t in rows if f'"{dossier}"' in t.ref]
            for dossier in ("HS-040", "HS-041", "HS-042", "HS-043")}


def test_a_batch_sets_and_ends_its_absence_deadlines_at_once(drive):
    started, completed = "dossier.step_started", "dossier.step_completed"
    _store(drive, [_step(0, started, "HS-043", 0)])
    drive.ioc.pipeline.run_once()  # a deadline stored before the batch
    with _statements(drive) as statements:
        _store(drive, [_step(1, started, "HS-040", 10), _step(2, started, "HS-041", 10),
                       _step(3, completed, "HS-041", 20), _step(4, started, "HS-042", 20),
                       _step(5, completed, "HS-042", 30), _step(6, started, "HS-042", 40),
                       _step(7, completed, "HS-043", 40)])
        assert drive.ioc.pipeline.run_once() == 7
    processing = statements[statements.index(next(s for s in statements
                                                  if s.startswith("SELECT events.id"))):]
    # One UPDATE for the ended deadlines (HS-043's, stored before) and the new ones written with
    # the batch, not a statement for each event.
    assert sum(s.startswith("UPDATE timers SET status") for s in processing) == 1
    at = {m: START + timedelta(minutes=m) for m in (0, 10, 20, 40)}
    # As one event at a time: a step completed ends its own deadline, a step started again
    # sets a new one.
    assert _absence_timers(drive) == {
        "HS-040": [("pending", at[10])],
        "HS-041": [("cancelled", at[10])],
        "HS-042": [("cancelled", at[20]), ("pending", at[40])],
        "HS-043": [("cancelled", at[0])]}
