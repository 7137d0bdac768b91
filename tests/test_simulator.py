"""The demo simulator: a reproducible day that the shipped scenarios react to, sent over HTTP."""
from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.auth import service as auth
from engine.clock import ManualClock
from engine.config import Settings
from engine.events import service as events
from engine.events.models import PENDING, Event, Source
from engine.services import Services
from engine.violations.models import Violation
from engine.worktime.calendar import default_calendar
from integrations import simulator

VN = ZoneInfo("Asia/Ho_Chi_Minh")
# A past Tuesday (a working day), so every deadline of the window has passed on the real clock
# that the `loaded` engine runs on, and the whole day fires at once.
DAY = datetime(2026, 11, 24, tzinfo=VN)
SEED = 7


@pytest.fixture(scope="module")
def day_plan():
    return simulator.generate(SEED, DAY, 24)


def test_the_same_seed_plans_the_same_stream(day_plan):
    assert simulator.generate(SEED, DAY, 24) == day_plan
    other = simulator.generate(SEED + 1, DAY, 24)
    assert [p.event for p in other] != [p.event for p in day_plan]
    ids = [p.event["id"] for p in day_plan]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith(f"sim{SEED}-") for i in ids)
    assert all(i.startswith(f"sim{SEED + 1}-") for i in (p.event["id"] for p in other))


def test_time_order_window_and_mix(day_plan):
    moments = [p.moment for p in day_plan]
    assert moments == sorted(moments)
    assert DAY <= moments[0] and moments[-1] < DAY + timedelta(hours=24)
    assert all(datetime.fromisoformat(p.event["time"]) == p.moment for p in day_plan)
    assert 500 <= len(day_plan) <= 2500
    by_source = Counter(p.source for p in day_plan)
    assert set(by_source) == set(simulator.SOURCES)
    for p in day_plan:
        assert p.event["type"] in simulator.SOURCES[p.source][1]
        assert p.event["source"] == simulator.SOURCES[p.source][0]
    # Dossiers arrive on a working day, in office hours; each due date counts working days.
    calendar = default_calendar()
    received = [p for p in day_plan if p.event["type"] == "dossier.received"]
    assert len(received) >= 20
    for p in received:
        assert calendar.is_working_time(p.moment), p.event
        due = datetime.fromisoformat(p.event["data"]["due_at"])
        assert due > p.moment and calendar.is_working_day(due)
    # More calls in the morning than in the evening; every ward named exists.
    calls = [p.moment.hour for p in day_plan if p.event["type"] == "hotline.ticket.created"]
    assert sum(7 <= h < 12 for h in calls) > 2 * sum(18 <= h < 23 for h in calls)
    wards = {w[0] for w in simulator.WARDS}
    assert len(wards) == 36
    assert {p.event["data"]["ward"] for p in day_plan
            if p.event["type"] == "hotline.ticket.created"} <= wards


def test_a_window_is_a_slice_of_the_same_day(day_plan):
    """Routine events do not depend on the window: a shorter window plans the same ones."""
    afternoon = simulator.generate(SEED, DAY + timedelta(hours=13), 5)
    assert all(DAY + timedelta(hours=13) <= p.moment < DAY + timedelta(hours=18)
               for p in afternoon)
    day_ids = {p.event["id"]: p.event for p in day_plan}
    routine = [p.event for p in afternoon if p.source in ("tong-dai-1022", "giam-sat-mxh")]
    assert routine and all(day_ids.get(e["id"]) == e for e in routine)
    # Readings too, but for the station that goes silent (chosen per window).
    shared = [p.event for p in afternoon if p.event["id"] in day_ids]
    assert len(shared) > 0.8 * len(afternoon)
    assert all(day_ids[e["id"]] == e for e in shared)


def test_parse_start():
    now = datetime(2026, 11, 28, 0, 36, 40, tzinfo=timezone.utc)  # 07:36:40 in Việt Nam
    assert simulator.parse_start(None, now) == datetime(2026, 11, 28, 7, 30, tzinfo=VN)
    assert simulator.parse_start("today", now) == datetime(2026, 11, 28, tzinfo=VN)
    # "auto": now in office time, else the next working morning — 28/11/2026 is a Saturday.
    assert simulator.parse_start("auto", now) == datetime(2026, 11, 30, 7, tzinfo=VN)
    monday_early = datetime(2026, 11, 30, 6, 0, tzinfo=VN)
    assert simulator.parse_start("auto", monday_early) == datetime(2026, 11, 30, 7, tzinfo=VN)
    monday_late = datetime(2026, 11, 30, 9, 5, tzinfo=VN)
    assert simulator.parse_start("auto", monday_late) == datetime(2026, 11, 30, 9, 0, tzinfo=VN)
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=VN)
    assert simulator.parse_start("auto", friday_evening) == datetime(2026, 11, 30, 7, tzinfo=VN)
    assert simulator.parse_start("yesterday", now) == datetime(2026, 11, 27, tzinfo=VN)
    assert simulator.parse_start("2026-11-24T08:00", now) == datetime(2026, 11, 24, 8, tzinfo=VN)
    assert simulator.parse_start("2026-11-24T01:00:00+00:00", now) == \
        datetime(2026, 11, 24, 8, tzinfo=VN)
    with pytest.raises(simulator.SimulatorError):
        simulator.parse_start("tomorrow-ish", now)


def test_every_event_follows_the_vocabulary(ioc, day_plan):
    everything = Source(name="all", token_hash="x", allowed_types=[])
    with ioc.db.read() as s:
        for p in day_plan:
            assert events.validate(s, p.event, everything, ioc.vocabulary) == [], p.event


def _sources(ioc) -> dict[str, tuple[int, str]]:
    """The demo's sources, each allowed only its own types: name → (id, token)."""
    out = {}
    with ioc.db.session() as s:
        for name, (_ce_source, types) in simulator.SOURCES.items():
            source, token = auth.create_source(s, name, list(types))
            out[name] = (source.id, token)
    return out


def test_the_day_opens_what_the_scenarios_detect(loaded, day_plan):
    # The day is played as it would happen: the engine's clock follows the stream in
    # 10-minute steps, each step's events arrive, then everything due is run.
    clock = ManualClock(DAY)
    ioc = Services(Settings(database_url=loaded.db.url), db=loaded.db,
                   vocabulary=loaded.vocabulary, clock=clock)
    sources = _sources(ioc)
    step = timedelta(minutes=10)
    slots: dict[datetime, dict[str, list[dict]]] = {}
    for p in day_plan:
        slot = DAY + (p.moment - DAY) // step * step
        slots.setdefault(slot, {}).setdefault(p.source, []).append(p.event)
    for slot in sorted(slots):
        clock.set(slot + step)
        for name, batch in slots[slot].items():
            result = events.ingest(ioc.db, sources[name][0], batch, ioc.vocabulary)
            assert not result.refused, [r.to_dict() for r in result.refused]
        ioc.run_pending()
    with loaded.db.read() as s:
        assert s.query(Event).filter(Event.status != "processed").count() == 0
        opened = Counter(v.rule_key for v in s.query(Violation))
        by_rule = {}
        for v in s.query(Violation):
            by_rule.setdefault(v.rule_key, set()).add(v.subject)
    def dossiers(type_: str) -> set[str]:
        return {p.event["data"]["dossier_id"] for p in day_plan if p.event["type"] == type_}
    planned = dossiers("dossier.received") - dossiers("dossier.completed")
    assert len(planned) == 2
    # Only the dossiers planned to be late are overdue: the others were returned in time.
    assert by_rule["not-returned-by-deadline"] == planned
    assert opened["repeated-supplement-request"] == 2
    assert opened["returned-without-reason"] == 1
    assert opened["step-held-too-long"] == 1
    assert opened["pm25-sustained"] >= 1
    assert opened["keyword-spreading"] == 1
    # Only the station that went quiet is silent: the others reported to the end of the day.
    last = {}
    for p in day_plan:
        if p.source == "quan-trac":
            last[p.event["data"]["station_id"]] = p.moment
    silent = min(last, key=last.get)
    assert last[silent] < DAY + timedelta(hours=3)
    assert by_rule["station-silent"] == {silent}


def _settled(loaded, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with loaded.db.read() as s:
            if s.query(Event).filter(Event.status == PENDING).count() == 0:
                return True
        time.sleep(0.1)
    return False


def test_run_delivers_everything_to_a_served_app(server, loaded):
    start, hours = DAY + timedelta(hours=8), 2.0
    plan = simulator.generate(SEED, start, hours)
    tokens = {name: token for name, (_id, token) in _sources(loaded).items()}
    assert simulator.wait_for_engine(server, timeout_s=5)
    said: list[str] = []
    result = simulator.run(server, tokens, SEED, start, hours, speed=0, echo=said.append)
    expected = Counter(p.source for p in plan)
    assert result["skipped"] == {} and result["stopped"] is False
    assert {name: c["accepted"] for name, c in result["sources"].items()} == expected
    assert all(c["duplicates"] == c["refused"] == 0 for c in result["sources"].values())
    with loaded.db.read() as s:
        assert s.query(Event).count() == len(plan)
    # Sent again: the same ids, all answered as duplicates; a source without a token is
    # skipped and named.
    del tokens["quan-trac"]
    again = simulator.run(server, tokens, SEED, start, hours, speed=0, echo=said.append)
    assert again["skipped"] == {"quan-trac": expected["quan-trac"]}
    assert any("no token for quan-trac" in line for line in said)
    assert all(c["accepted"] == 0 and c["duplicates"] == expected[name]
               for name, c in again["sources"].items())
    assert _settled(loaded), "the runner did not process the events"


def test_run_prints_refusals_and_keeps_going(server, loaded):
    start, hours = DAY + timedelta(hours=9), 0.5
    plan = simulator.generate(SEED, start, hours)
    tokens = {name: token for name, (_id, token) in _sources(loaded).items()}
    with loaded.db.session() as s:  # a hotline token that may not send dossier events
        _src, tokens["mot-cua"] = auth.create_source(s, "wrong-types", ["hotline.ticket.created"])
    said: list[str] = []
    # Half an hour at 1,800× is about one second (pacing is not timed here: no timed asserts).
    result = simulator.run(server, tokens, SEED, start, hours, speed=1800, echo=said.append,
                           batch_every_s=0.2)
    dossiers = sum(p.source == "mot-cua" for p in plan)
    assert dossiers and result["sources"]["mot-cua"] == {"accepted": 0, "duplicates": 0,
                                                         "refused": dossiers}
    assert any("refused sim7-" in line and "may not send" in line for line in said)
    assert result["sources"]["quan-trac"]["accepted"] == sum(p.source == "quan-trac"
                                                             for p in plan)
    # A stop event ends a paced run early.
    stop = threading.Event()
    stop.set()
    stopped = simulator.run(server, tokens, SEED, start + timedelta(hours=1), hours,
                            speed=1, stop=stop, echo=said.append)
    assert stopped["stopped"] is True
    assert _settled(loaded)


def test_tokens_file_and_an_engine_that_is_not_there(tmp_path):
    path = tmp_path / "demo-tokens.json"
    path.write_text('{"mot-cua": "iocs_abc", "quan-trac": "iocs_def"}')
    assert simulator.load_tokens(path) == {"mot-cua": "iocs_abc", "quan-trac": "iocs_def"}
    with pytest.raises(simulator.SimulatorError, match="no tokens file"):
        simulator.load_tokens(tmp_path / "missing.json")
    assert simulator.wait_for_engine("http://127.0.0.1:9", timeout_s=0.3) is False
    with pytest.raises(simulator.SimulatorError, match="cannot reach"):
        simulator.run("http://127.0.0.1:9", {"quan-trac": "x"}, SEED, DAY, 0.5, speed=0,
                      echo=lambda _text: None)


def test_ioc_simulate_sends_a_stream_to_a_served_app(server, loaded, tmp_path):
    import json

    from click.testing import CliRunner

    from engine.cli import main

    tokens = {name: token for name, (_id, token) in _sources(loaded).items()}
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens), encoding="utf-8")
    out = CliRunner().invoke(main, ["simulate", "--url", server, "--seed", str(SEED), "--speed",
                                    "0", "--hours", "2", "--start", "2026-11-24T08:00",
                                    "--tokens-file", str(path)])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["sources"]["mot-cua"]["accepted"] > 0
    assert all(counts["refused"] == 0 for counts in result["sources"].values())
    missing = CliRunner().invoke(main, ["simulate", "--url", server,
                                        "--tokens-file", str(tmp_path / "none.json")])
    assert missing.exit_code != 0 and "no tokens file" in missing.output
