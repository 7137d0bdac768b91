"""Real processes race on seeded timings; the engine's truth holds at the end.

For each set-up — Redis mode on PostgreSQL with 1, 2 and 4 `ioc worker`s plus `ioc scheduler`
and `ioc serve` (one worker killed with SIGKILL midway and replaced), and embedded mode
(`ioc serve` alone) on SQLite — 200 instances wait at an event-based gateway for a message or
two timers, and 100 hold a user task with an interrupting deadline. Each message is sent, and
each task completed through the web API, at a seeded moment within ±100 ms of the first
deadline. At the end, for every instance:

- one end event, nothing recorded after `instance.ended`, the outcome of the branch taken;
- the winner follows the engine's clock: the message won exactly when it was received before the
  first timer fell due or at that very moment; a completion was accepted exactly when the task ended `done`;
- the audit trail, replayed, gives the stored state: tasks and their statuses, the end event the
  stored workflow completed, the instance's status;
- no event or timer failed or left pending, no deadlock (PostgreSQL's own count and the logs),
  and the chain verifies.

The README's "Measured" section quotes what these runs found.
"""
from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bench.load import Stack, answers, free_port, wait_until
from engine import migrate
from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.auth import service as auth
from engine.config import Settings
from engine.db import Base, Database
from engine.events.models import PROCESSED, Event
from engine.org import service as org
from engine.processes.models import ProcessInstance
from engine.services import Services
from engine.tasks.models import Task
from engine.timers.models import AUDIT, BPMN, Timer
from tests.conftest import ORG_FILE, load_scenarios
from tests.scenario_files import HEAD, write_scenario
from tests.test_event_gateway import branch_problems, write_race_scenario
from tests.test_workers import (  # noqa: F401 - the redis_url fixture
    REDIS_URL,
    _unavailable,
    redis_url,  # noqa: F401
)

SEED = 16
GATEWAYS, TASKS = 200, 100
SPREAD_S = 0.1  # messages and completions land within ±100 ms of the first deadline
DEADLINE_S = 12  # after the start: time enough to start every instance and plan the race
START_BATCH, START_PAUSE_S = 15, 0.4  # 300 starts over 8 s
THREADS = 16

TASK_BPMN = HEAD + """
  <bpmn:process id="race_task" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="Thẩm định"><bpmn:extensionElements><camunda:formData>
      <camunda:formField id="remark" type="string"/></camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="deadline" attachedToRef="review" cancelActivity="true">
      <bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT{seconds}S"</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:scriptTask id="mark_done"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>outcome = "done"</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="mark_late"><bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:script>outcome = "late"</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end_done"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_late"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="mark_done"/>
    <bpmn:sequenceFlow id="f3" sourceRef="mark_done" targetRef="end_done"/>
    <bpmn:sequenceFlow id="f4" sourceRef="deadline" targetRef="mark_late"/>
    <bpmn:sequenceFlow id="f5" sourceRef="mark_late" targetRef="end_late"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _write_scenarios(root: Path) -> None:
    write_race_scenario(root, f"PT{DEADLINE_S}S", f"PT{DEADLINE_S + 1}S")
    write_scenario(root, "race-task", "dossier.completed",
                   TASK_BPMN.replace("{seconds}", str(DEADLINE_S)))


# -- the province and its processes ----------------------------------------------------------

def redis_province(db: Database, redis: str, workers: int, tmp_path: Path,
                   write) -> tuple["Province", Path]:
    """A Redis-mode province of `workers` workers on `db`, short partition locks and retries,
    with the scenarios `write(folder)` puts in a folder (returned beside it); not prepared."""
    scenarios, logs = tmp_path / "scenarios", tmp_path / "logs"
    scenarios.mkdir()
    logs.mkdir()
    write(scenarios)
    env = {**os.environ, "IOC_DATABASE_URL": db.url, "IOC_REDIS_URL": redis,
           "IOC_PARTITION_LOCK_S": "3", "IOC_EVENT_RETRY_BASE_S": "0.2", "IOC_LOG_LEVEL": "INFO"}
    return Province(db, Stack(env, logs), workers), scenarios


@dataclass
class Province:
    """The engine's processes for one set-up (bench/load.py's Stack), and the tokens to talk to
    them."""

    db: Database
    stack: Stack
    workers: int
    url: str = ""
    source_token: str = ""
    officer_token: str = ""

    def prepare(self, scenarios: Path) -> None:
        """A fresh province: the organisation, the race scenarios, a source and an officer."""
        if self.db.is_postgres:
            with self.db.engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
        ioc = Services(Settings(database_url=self.db.url), db=self.db)
        with self.db.session() as s:
            org.load_file(s, ORG_FILE)
        load_scenarios(ioc, str(scenarios))
        with self.db.session() as s:
            self.source_token = auth.create_source(s, "mot-cua-stress")[1]
            self.officer_token = auth.create_user(s, "phvhcc.stress", "civil_servant",
                                                  "trung-tam-phvhcc", password="password-123",
                                                  with_token=True)[1]

    def start(self) -> None:
        """The web (and in Redis mode the workers and the scheduler); wait until it answers."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.stack.start("web", ["ioc", "serve", "--port", str(port), "--threads", "8"])
        if "IOC_REDIS_URL" in self.stack.env:
            for n in range(self.workers):
                self.stack.start(f"worker-{n}", ["ioc", "worker", "--name",
                                                 f"stress-{n}-{os.getpid()}"])
            self.stack.start("scheduler", ["ioc", "scheduler", "--interval", "0.05"])
        wait_until(lambda: answers(self.url + "/healthz"), 30, "the web")

    def kill_and_replace(self, name: str) -> None:
        """SIGKILL a worker and start another in its place (its partitions free up later)."""
        proc = self.stack.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.stack.start(f"{name}-after", ["ioc", "worker", "--name",
                                           f"stress-{name}-after-{os.getpid()}"])

    def log_text(self) -> str:
        """Everything the processes logged."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}"
                         for p in sorted(self.stack.logs.glob("*.log")))

    def post(self, path: str, body, token: str, ctype: str = "application/json"):
        """POST JSON; (status, parsed body)."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method="POST", headers={
                                         "Content-Type": ctype,
                                         "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _event(type_: str, dossier_id: str, n: int, **data) -> dict:
    return {"specversion": "1.0", "id": f"{type_}-{dossier_id}-{n}", "source": "/mot-cua",
            "type": type_, "subject": dossier_id, "time": datetime.now(timezone.utc).isoformat(),
            "data": {"dossier_id": dossier_id, "procedure": "1.004227",
                     "unit": "phuong-thu-dau-mot", **data}}


# -- the race --------------------------------------------------------------------------------

@dataclass(order=True)
class Move:
    """One planned move: at `at`, a message to a waiting instance or a task's completion."""

    at: datetime
    kind: str = field(compare=False)
    instance_id: int = field(compare=False)
    dossier_id: str = field(compare=False, default="")
    task_id: int = field(compare=False, default=0)
    status: int = field(compare=False, default=0)
    answer: object = field(compare=False, default=None)
    sent: datetime | None = field(compare=False, default=None)
    took: float = field(compare=False, default=0.0)


def _start_instances(province: Province) -> None:
    starts = [_event("dossier.returned", f"G-{i:04d}", 0) for i in range(GATEWAYS)] + \
             [_event("dossier.completed", f"T-{i:04d}", 0) for i in range(TASKS)]
    # Shuffled and spread over a few seconds, so are the deadlines: the moves of the race come
    # at a pace the web can take on time (on SQLite, one writer shared with the runner).
    random.Random(SEED).shuffle(starts)
    for i in range(0, len(starts), START_BATCH):
        status, body = province.post("/api/v1/events", starts[i:i + START_BATCH],
                                     province.source_token, "application/cloudevents-batch+json")
        assert status == 202 and body["accepted"] == len(starts[i:i + START_BATCH]), body
        time.sleep(START_PAUSE_S)


def _plan(province: Province, rng: random.Random) -> list[Move]:
    """Wait for every instance to wait; a move for each at its first deadline ± SPREAD_S."""
    deadline = time.monotonic() + 60
    while True:
        with province.db.read() as s:
            dues = s.execute(select(ProcessInstance.id, ProcessInstance.scenario_key,
                                    ProcessInstance.subject, func.min(Timer.due_at))
                             .join(Timer, Timer.instance_id == ProcessInstance.id)
                             .where(Timer.kind == BPMN, Timer.status == "pending")
                             .group_by(ProcessInstance.id)).all()
            tasks = dict(s.execute(select(Task.instance_id, Task.id)).all())
        if len(dues) == GATEWAYS + TASKS and len(tasks) == TASKS:
            break
        assert time.monotonic() < deadline, f"{len(dues)} instances wait\n{province.log_text()}"
        time.sleep(0.1)
    moves = []
    for instance_id, scenario, subject, due in sorted(dues):
        at = due + timedelta(seconds=rng.uniform(-SPREAD_S, SPREAD_S))
        if scenario == "race":
            moves.append(Move(at, "message", instance_id, dossier_id=subject))
        else:
            moves.append(Move(at, "complete", instance_id, task_id=tasks[instance_id]))
    assert min(m.at for m in moves) > datetime.now(timezone.utc), "planned too late to race"
    return sorted(moves)


def _race(province: Province, moves: list[Move], kill: str | None) -> None:
    """Make every move at its moment from THREADS threads; kill `kill` at the halfway move."""
    lock, cursor = threading.Lock(), iter(range(len(moves)))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                move = moves[index]
                if kill and index == len(moves) // 2:
                    province.kill_and_replace(kill)
                time.sleep(max(0.0, (move.at - datetime.now(timezone.utc)).total_seconds()))
                move.sent = datetime.now(timezone.utc)
                if move.kind == "message":
                    status, body = province.post("/api/v1/events", _event(
                        "dossier.step_completed", move.dossier_id, 1, officer="le.an",
                        step="bo-sung"), province.source_token, "application/cloudevents+json")
                    assert status == 202, body
                else:
                    move.status, move.answer = province.post(
                        f"/api/v1/tasks/{move.task_id}/complete",
                        {"data": {"remark": "Đã thẩm định"}}, province.officer_token)
                move.took = (datetime.now(timezone.utc) - move.sent).total_seconds() * 1000
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


def _settle(province: Province) -> None:
    """Wait until every instance ended and nothing is pending."""
    deadline = time.monotonic() + 90
    while True:
        with province.db.read() as s:
            running = s.scalar(select(func.count()).select_from(ProcessInstance).where(
                ProcessInstance.status == "running"))
            pending = s.scalar(select(func.count()).select_from(Event).where(
                Event.status != PROCESSED))
            timers = s.scalar(select(func.count()).select_from(Timer).where(
                Timer.status == "pending", Timer.kind != AUDIT))  # the log's signing recurs
        if not running and not pending and not timers:
            return
        assert time.monotonic() < deadline, \
            f"{running} running, {pending} events, {timers} timers\n{province.log_text()}"
        time.sleep(0.2)


# -- the invariants ----------------------------------------------------------------------------

def _replayed(records: list[AuditRecord]) -> dict:
    """An instance's state as its audit records tell it."""
    tasks: dict[str, str] = {}
    status, ends = "running", []
    for rec in records:
        if rec.action.startswith("task.") and rec.subject_type == "task":
            tasks[rec.subject_id] = {"task.created": "open", "task.claimed": "claimed",
                                     "task.completed": "completed",
                                     "task.cancelled": "cancelled"}.get(rec.action,
                                                                        tasks.get(rec.subject_id))
        elif rec.action == "instance.ended":
            status = rec.details["status"]
        elif rec.action == "end_event.reached":
            ends.append(rec.details["event"])
    return {"status": status, "ends": sorted(ends), "tasks": tasks}


def _stored(s, instance: ProcessInstance) -> dict:
    """The same, as the database holds it (the ends from the stored workflow itself)."""
    ends = sorted(t["task_spec"] for t in instance.state["tasks"].values()
                  if t["task_spec"].startswith("end_") and t["state"] == 64)  # COMPLETED
    tasks = {str(t.id): t.status for t in s.scalars(select(Task).where(
        Task.instance_id == instance.id))}
    return {"status": instance.status, "ends": ends, "tasks": tasks}


def _problems(province: Province, moves: list[Move]) -> list[str]:
    problems: list[str] = []
    by_instance = {m.instance_id: m for m in moves}
    with province.db.read() as s:
        received = {subject: at for subject, at in s.execute(
            select(Event.subject, Event.received_at).where(
                Event.type == "dossier.step_completed"))}
        records: dict[int, list[AuditRecord]] = {}
        for rec in s.scalars(select(AuditRecord).where(AuditRecord.instance_id.is_not(None))
                             .order_by(AuditRecord.seq)):
            records.setdefault(rec.instance_id, []).append(rec)
        for instance in s.scalars(select(ProcessInstance).order_by(ProcessInstance.id)):
            problems += branch_problems(s, instance.id)
            if _replayed(records[instance.id]) != _stored(s, instance):
                problems.append(f"instance {instance.id}: audit replays to "
                                f"{_replayed(records[instance.id])}, stored "
                                f"{_stored(s, instance)}")
            move = by_instance[instance.id]
            outcome = instance.data.get("outcome")
            if move.kind == "message":
                first_due = _first_due(s, instance.id)
                expected = "answered" if received[instance.subject] <= first_due else "reminded"
                if outcome != expected:
                    problems.append(f"instance {instance.id}: message received "
                                    f"{received[instance.subject]}, first timer due {first_due},"
                                    f" outcome {outcome}")
            elif (move.status == 200) != (outcome == "done"):
                problems.append(f"instance {instance.id}: completion answered {move.status} "
                                f"{move.answer}, outcome {outcome}")
        failed = s.scalars(select(Timer).where(Timer.status.not_in(("fired", "cancelled")),
                                               Timer.kind != AUDIT))
        problems += [f"timer {t.id} is {t.status}: {t.error}" for t in failed]
        problems += [f"event {e.id} is {e.status}: {e.error}" for e in s.scalars(
            select(Event).where(Event.status != PROCESSED))]
        verified = audit.verify(s)
        if not verified.ok:
            problems.append(f"audit: {verified.reason}")
    return problems


def _first_due(s, instance_id: int) -> datetime:
    """When the gateway's first timer fell due (before any deferral moved its row)."""
    dues = []
    for timer in s.scalars(select(Timer).where(Timer.instance_id == instance_id,
                                               Timer.kind == BPMN)):
        dues.append(datetime.fromisoformat(timer.payload["deferred_from"])
                    if "deferred_from" in timer.payload else timer.due_at)
    return min(dues)


def _deadlocks(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT deadlocks FROM pg_stat_database "
                                 "WHERE datname = current_database()")).scalar()


def _run(province: Province, scenarios: Path, kill: str | None) -> dict:
    province.prepare(scenarios)
    before = _deadlocks(province.db) if province.db.is_postgres else 0
    province.start()
    try:
        _start_instances(province)
        moves = _plan(province, random.Random(SEED))
        _race(province, moves, kill)
        _settle(province)
    finally:
        province.stack.stop()
    logs = province.log_text()
    problems = _problems(province, moves)
    if province.db.is_postgres:
        time.sleep(1.0)  # the server's statistics are flushed within a second
        if _deadlocks(province.db) != before:
            problems.append(f"{_deadlocks(province.db) - before} deadlocks in PostgreSQL")
    if "deadlock" in logs.lower():
        problems.append("a deadlock in the logs")
    assert problems == [], "\n".join(problems[:30]) + "\n" + logs[-5000:]
    messages = [m for m in moves if m.kind == "message"]
    with province.db.read() as s:
        outcomes = dict(s.execute(select(ProcessInstance.id, ProcessInstance.data)).all())
    late = sorted((m.sent - m.at).total_seconds() * 1000 for m in moves)
    took = sorted(m.took for m in moves)
    summary = {"answered": sum(outcomes[m.instance_id].get("outcome") == "answered"
                               for m in messages),
               "completed": sum(m.status == 200 for m in moves if m.kind == "complete"),
               "sent_late_ms_max": round(late[-1]),  # how well the moves kept their moments
               "request_ms_p50": round(took[len(took) // 2]), "request_ms_max": round(took[-1])}
    # Both sides won some races: the timings really were races, not one-sided.
    assert 0 < summary["answered"] < GATEWAYS and 0 < summary["completed"] < TASKS, str(summary)
    print(f"race summary: {summary}")
    return summary


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_races_in_redis_mode_hold_one_branch_and_a_true_audit(db, redis_url, workers,  # noqa: F811
                                                              tmp_path):
    if not db.is_postgres:
        pytest.skip("Redis mode runs on PostgreSQL: several processes write at once")
    province, scenarios = redis_province(db, redis_url, workers, tmp_path, _write_scenarios)
    _run(province, scenarios, kill="worker-0")


def test_races_in_embedded_mode_on_sqlite_hold_one_branch_and_a_true_audit(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    migrate.upgrade(url)
    db = Database(url)
    scenarios, logs = tmp_path / "scenarios", tmp_path / "logs"
    scenarios.mkdir()
    logs.mkdir()
    _write_scenarios(scenarios)
    env = {k: v for k, v in os.environ.items() if k != "IOC_REDIS_URL"}
    env["IOC_DATABASE_URL"] = url
    try:
        _run(Province(db, Stack(env, logs), 0), scenarios, kill=None)
    finally:
        db.dispose()
