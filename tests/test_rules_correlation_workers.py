"""Correlation rules give the one-worker result with 1, 2 or 4 real workers, killed or restarted.

Redis mode on PostgreSQL: `ioc serve` takes the events over HTTP, `ioc worker`s process them.
Three streams, none of whose correlation keys is the events' partition key:
- 250 dossiers get `dossier.supplement_requested` twice WITHOUT a CloudEvents subject (the
  shipped `repeated-supplement-request`, keyed on dossier_id): each event is its own partition;
  for 100 of them both requests come after the restart, side by side in the same requests, so
  that two workers handle the two at the same moment;
- 50 dossiers get it twice with a subject unlike the key (a fresh one per event);
- 20 officers each return three dossiers (a rule written here, keyed on the officer, with
  `repeat: every`), each event's subject its dossier.
The first events of every pair go in first; then every worker is replaced (a restart between
the two events of each pair); then the second events go in while one worker is killed with
SIGKILL midway and replaced. At the end: exactly 250 + 50 violations of the dossier rule, one
per dossier, and 2 per officer, whatever the number of workers; nothing failed or pending.
On the old design (correlations in each worker's durable-rules memory, caught up by
partition; commit 9c87af6) this test found 200 and 220 of the 300 dossiers with 2 and 4
workers, and 2 matches per officer where one worker gave 1 (events matched twice).
"""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.load import wait_until
from engine.events.models import PROCESSED, Event
from engine.violations.models import Violation
from tests.conftest import SCENARIOS
from tests.scenario_files import HEAD
from tests.test_race_stress import Province, redis_province
from tests.test_workers import redis_url  # noqa: F401 - the fixture

DOSSIERS_BARE, DOSSIERS_OTHER, DOSSIERS_LATE, OFFICERS = 150, 50, 100, 20

OFFICER_RULES = """\
rules:
  - key: officer-returns-again
    name: {vi: Cán bộ trả lại hồ sơ nhiều lần, en: An officer returns dossiers again}
    when:
      all:
        - {event: dossier.returned, as: first}
        - {event: dossier.returned, as: again, same: {officer: first.officer}}
      repeat: every
    then:
      open: violation
      title: {vi: "Cán bộ {again.officer} lại trả hồ sơ"}
      subject: "{again.officer}"
"""

OFFICER_BPMN = HEAD + """
  <bpmn:process id="officer_returns" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _scenarios(root: Path) -> None:
    shutil.copytree(Path(SCENARIOS) / "dossier-violations", root / "dossier-violations")
    folder = root / "officer-returns"
    folder.mkdir()
    (folder / "scenario.yaml").write_text(
        "key: officer-returns\nversion: 1\nname: {vi: Cán bộ trả hồ sơ, en: Officer returns}\n"
        "owner: trung-tam-phvhcc\nseverity: low\n", encoding="utf-8")
    (folder / "rules.yaml").write_text(OFFICER_RULES, encoding="utf-8")
    (folder / "process.bpmn").write_text(OFFICER_BPMN, encoding="utf-8")


def _event(type_: str, n: str, dossier: str, subject: str | None, **data) -> dict:
    event = {"specversion": "1.0", "id": f"corr-{type_}-{n}", "source": "/mot-cua",
             "type": type_, "time": datetime.now(timezone.utc).isoformat(),
             "data": {"dossier_id": dossier, "procedure": "1.004227",
                      "unit": "phuong-thu-dau-mot", "officer": "le.an", **data}}
    if subject is not None:
        event["subject"] = subject
    return event


def _streams() -> tuple[list[dict], list[list[dict]], list[dict]]:
    """(what is sent before the restart, two streams sent at once after it, the rest)."""
    first, second = [], []
    late = [[], []]  # both events of these dossiers come after the restart, at once
    for n in range(DOSSIERS_LATE):
        for part in (0, 1):
            late[part].append(_event("dossier.supplement_requested", f"l{n}-{part}",
                                     f"HS-L{n:04d}", None, reason=f"lần {part + 1}"))
    for n in range(DOSSIERS_BARE):
        for part, out in ((0, first), (1, second)):
            out.append(_event("dossier.supplement_requested", f"b{n}-{part}", f"HS-B{n:04d}",
                              None, reason=f"lần {part + 1}"))
    for n in range(DOSSIERS_OTHER):
        for part, out in ((0, first), (1, second)):
            out.append(_event("dossier.supplement_requested", f"o{n}-{part}", f"HS-O{n:04d}",
                              f"evt-{n}-{part}", reason=f"lần {part + 1}"))
    for n in range(OFFICERS):
        for part in range(3):
            dossier = f"HS-R{n:02d}{part}"
            (first if part == 0 else second).append(_event(
                "dossier.returned", f"r{n}-{part}", dossier, dossier, officer=f"can-bo-{n:02d}",
                reason="Hồ sơ chưa đủ thành phần"))
    return first, late, second


def _send(province: Province, raws: list[dict], size: int = 100) -> None:
    for i in range(0, len(raws), size):
        status, body = province.post("/api/v1/events", raws[i:i + size], province.source_token,
                                     "application/cloudevents-batch+json")
        assert status == 202 and body["accepted"] == len(raws[i:i + size]), body


def _processed(province: Province, count: int) -> None:
    def done() -> bool:
        province.stack.check()
        with province.db.read() as s:
            return s.scalar(select(func.count()).select_from(Event).where(
                Event.status == PROCESSED)) >= count

    wait_until(done, 120, f"{count} events processed\n{province.log_text()[-3000:]}")


def _replace(province: Province, name: str, how: signal.Signals) -> None:
    """Stop worker `name` (SIGTERM: a restart; SIGKILL: a crash) and start another."""
    proc = province.stack.procs.pop(name)
    proc.send_signal(how)
    proc.wait(30)
    province.stack.start(f"{name}-r", ["ioc", "worker", "--name", f"corr-{name}-r-{os.getpid()}"])


def _workers(province: Province) -> list[str]:
    return [n for n in province.stack.procs if n.startswith("worker")]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_correlations_match_alike_with_any_number_of_workers(db, redis_url, workers,  # noqa: F811
                                                             tmp_path):
    if not db.is_postgres:
        pytest.skip("Redis mode runs on PostgreSQL: several processes write at once")
    province, scenarios = redis_province(db, redis_url, workers, tmp_path, _scenarios)
    province.prepare(scenarios)
    first, late, second = _streams()
    province.start()
    try:
        _send(province, first)
        _processed(province, len(first))
        for name in _workers(province):  # a restart between the two events of every pair
            _replace(province, name, signal.SIGTERM)
        # The two requests of each late dossier in two requests at the same moment: two jobs.
        senders = [threading.Thread(target=_send, args=(province, part, 10)) for part in late]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        half = len(second) // 2
        _send(province, second[:half])
        _replace(province, _workers(province)[0], signal.SIGKILL)  # midway
        _send(province, second[half:])
        _processed(province, len(first) + 2 * DOSSIERS_LATE + len(second))
        time.sleep(0.5)  # the last batch's violations commit with its events
    finally:
        province.stack.stop()
    with db.read() as s:
        found = s.execute(select(Violation.rule_key, Violation.subject)).all()
        unfinished = s.scalars(select(Event).where(Event.status != PROCESSED)).all()
    assert unfinished == []
    dossiers = Counter(subject for rule, subject in found
                       if rule == "repeated-supplement-request")
    assert len(dossiers) == DOSSIERS_BARE + DOSSIERS_OTHER + DOSSIERS_LATE
    assert set(dossiers.values()) == {1}
    officers = Counter(subject for rule, subject in found if rule == "officer-returns-again")
    assert officers == {f"can-bo-{n:02d}": 2 for n in range(OFFICERS)}
    assert "Traceback" not in province.log_text()
