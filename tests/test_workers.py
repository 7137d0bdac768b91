"""Redis mode for real: rq workers (`ioc worker` processes) on PostgreSQL and Redis.

- the same event stream gives the same violations, instances and tasks with 1, 2 and 4 workers;
- a worker killed with SIGKILL mid-stream: nothing lost, nothing done twice, the audit verifies;
- Redis down while events arrive: ingestion answers 202, all is processed once Redis is back;
- one event sent twice at once to two web processes: stored and processed once;
- a poison event: tried again with backoff, then a dead letter; the events behind it flow.

Workers are separate processes, as in production; they need PostgreSQL (several processes
write at once), so these tests run on the PostgreSQL side of the `db` fixture only.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from engine.audit import service as audit
from engine.auth import service as auth
from engine.config import Settings
from engine.events import service as events
from engine.events.models import FAILED, PENDING, PROCESSED, Event
from engine.org import service as org
from engine.processes.models import ProcessInstance
from engine.services import Services
from engine.tasks.models import Task
from engine.violations.models import Violation
from integrations import simulator
from tests.conftest import IN_CI, ORG_FILE, load_scenarios
from tests.faults import FAULT, failing_processes
from tests.spine_helpers import BATCH, ticket
from tests.spine_helpers import auth as bearer

IOC = str(Path(sys.executable).with_name("ioc"))
REDIS_URL = os.environ.get("IOC_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
START = simulator.parse_start("2026-11-23T07:00:00+07:00")


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def redis_url():
    """A Redis database of these tests' own, emptied before and after."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


@pytest.fixture
def pg(db):
    """The test database, PostgreSQL only (workers are separate processes)."""
    if not db.is_postgres:
        pytest.skip("Redis mode runs on PostgreSQL: several processes write at once")
    return db


def _env(db, url: str, **extra) -> dict:
    return {**os.environ, "IOC_DATABASE_URL": db.url, "IOC_REDIS_URL": url,
            "IOC_PARTITION_LOCK_S": "3", "IOC_EVENT_RETRY_BASE_S": "0.2",
            **{k: str(v) for k, v in extra.items()}}


def _reset(db, url: str) -> Services:
    """Empty tables, the organisation and the shipped scenarios: a fresh province."""
    from engine.db import Base

    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    redis.Redis.from_url(url).flushdb()
    ioc = Services(Settings(database_url=db.url, redis_url=url), db=db)
    with db.session() as s:
        org.load_file(s, ORG_FILE)
    load_scenarios(ioc)
    return ioc


def _stream(hours: float = 6) -> list:
    return simulator.generate(7, START, hours)


def _ingest(ioc: Services, plan: list) -> None:
    """Store the planned events as their sources send them (batches per source and minute)."""
    ids: dict[str, int] = {}
    with ioc.db.session() as s:
        for name in sorted({p.source for p in plan}):
            ids[name] = auth.create_source(s, name)[0].id
    batch: list = []
    for i, planned in enumerate(plan):
        batch.append(planned)
        last = i == len(plan) - 1
        if last or len(batch) == 25 or plan[i + 1].source != planned.source:
            result = events.ingest(ioc.db, ids[planned.source], [p.event for p in batch],
                                   ioc.vocabulary)
            assert not result.refused, result.refused
            ioc.wake({e.partition for e in result.accepted})
            batch = []


def _job_seconds_sum(metrics_text: str) -> float:
    return float(next(line for line in metrics_text.splitlines()
                      if line.startswith('ioc_job_seconds_sum{queue="ioc"}')).split()[-1])


def _pending(ioc: Services) -> int:
    with ioc.db.read() as s:
        return s.scalar(select(func.count()).select_from(Event).where(Event.status == PENDING))


def _drain_with(ioc: Services, env: dict, workers: int, rounds: int = 40) -> None:
    """Run `workers` burst workers at once, round after round, until nothing is pending (a
    round ends when the queue is empty; an event waiting for its retry needs a later one)."""
    for _ in range(rounds):
        ioc.relay.scan()  # what `ioc scheduler` does on every pass
        procs = [subprocess.Popen([IOC, "worker", "--burst"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(workers)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()
        if not _pending(ioc):
            return
        time.sleep(0.3)
    raise AssertionError(f"{_pending(ioc)} events still pending")


def _outcome(ioc: Services) -> dict:
    """What the stream produced, independent of ids and timing."""
    with ioc.db.read() as s:
        subjects = dict(s.execute(select(ProcessInstance.id, ProcessInstance.subject)).all())
        return {
            "events": Counter(s.scalars(select(Event.status))),
            "violations": Counter((v.scenario_key, v.rule_key, v.subject, tuple(v.event_ids))
                                  for v in s.scalars(select(Violation))),
            "instances": Counter((i.subject, i.status) for i in s.scalars(
                select(ProcessInstance))),
            "tasks": Counter((t.bpmn_id, t.department_key, subjects[t.instance_id], t.status)
                             for t in s.scalars(select(Task))),
        }


def _ce_ids_to_event_ids(outcome: dict, ioc: Services) -> dict:
    # Event ids differ between runs (sequences); the CloudEvents ids do not.
    with ioc.db.read() as s:
        names = dict(s.execute(select(Event.id, Event.ce_id)).all())
    outcome["violations"] = Counter({(k[0], k[1], k[2], tuple(names[i] for i in k[3])): n
                                     for k, n in outcome["violations"].items()})
    return outcome


def test_one_two_and_four_workers_give_the_same_result(pg, redis_url):
    plan = _stream()
    results = {}
    for workers in (1, 2, 4):
        ioc = _reset(pg, redis_url)
        _ingest(ioc, plan)
        _drain_with(ioc, _env(pg, redis_url), workers)
        results[workers] = _ce_ids_to_event_ids(_outcome(ioc), ioc)
    one = results[1]
    assert one["events"] == Counter({PROCESSED: len(plan)})
    assert sum(one["violations"].values()) >= 3 and sum(one["tasks"].values()) >= 10, one
    assert results[2] == one
    assert results[4] == one


def test_a_worker_killed_mid_stream_loses_nothing_and_does_nothing_twice(pg, redis_url):
    plan = _stream()
    reference = _reset(pg, redis_url)
    _ingest(reference, plan)
    _drain_with(reference, _env(pg, redis_url), 1)
    expected = _ce_ids_to_event_ids(_outcome(reference), reference)

    ioc = _reset(pg, redis_url)
    _ingest(ioc, plan)
    env = _env(pg, redis_url)
    victim = subprocess.Popen([IOC, "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(plan) - _pending(ioc) < len(plan) // 4:  # well into the stream
            assert victim.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert _pending(ioc) > 0, "the worker finished before it could be killed"

    _drain_with(ioc, env, 2)  # the killed worker's partitions free up when its locks expire
    assert _ce_ids_to_event_ids(_outcome(ioc), ioc) == expected
    with ioc.db.read() as s:
        assert audit.verify(s).ok


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_server(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if not binary:
        _unavailable("redis-server is not installed: cannot stop and restart a Redis")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.RedisError:
            time.sleep(0.05)
    raise AssertionError("the private redis-server did not start")


def test_ingestion_goes_on_while_redis_is_down_and_the_backlog_drains_after(pg, redis_url):
    from engine.app import create_app

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    ioc = _reset(pg, url)
    with ioc.db.session() as s:
        _, token = auth.create_source(s, "tong-dai-1022")
    client = create_app(services=ioc).test_client()
    try:
        first = client.post("/api/v1/events", json=[ticket("T-1"), ticket("T-2")],
                            headers=bearer(token), content_type=BATCH)
        assert first.status_code == 202
        server.send_signal(signal.SIGKILL)
        server.wait()
        down = client.post("/api/v1/events", json=[ticket("T-3"), ticket("T-4")],
                           headers=bearer(token), content_type=BATCH)
        assert down.status_code == 202 and down.get_json()["accepted"] == 2
        health = client.get("/readyz")
        assert health.status_code == 503 and "redis" in health.get_data(as_text=True)
        assert _pending(ioc) == 4
        server = _redis_server(port)  # Redis is back, empty: the queued jobs are gone too
        _drain_with(ioc, _env(pg, url), 1)
    finally:
        server.kill()
        server.wait()
    with ioc.db.read() as s:
        subjects = Counter(s.scalars(select(ProcessInstance.subject)))
    assert subjects == Counter({"T-1": 1, "T-2": 1, "T-3": 1, "T-4": 1})


def _serve(env: dict, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([IOC, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
    raise AssertionError("ioc serve did not start")


def test_one_event_sent_twice_at_once_to_two_web_processes_is_processed_once(pg, redis_url):
    ioc = _reset(pg, redis_url)
    with ioc.db.session() as s:
        _, token = auth.create_source(s, "tong-dai-1022")
    env = _env(pg, redis_url)
    ports = [_free_port(), _free_port()]
    webs = [_serve(env, port) for port in ports]
    answers: list[dict] = []
    try:
        for n in range(10):
            body = json.dumps(ticket(f"T-{n}", ward="phuong-thu-dau-mot")).encode()
            barrier = threading.Barrier(2)

            def post(port: int, body: bytes = body, barrier=barrier) -> None:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/events", data=body, method="POST",
                    headers={**bearer(token), "Content-Type": "application/cloudevents+json"})
                barrier.wait()
                with urllib.request.urlopen(request, timeout=10) as resp:
                    answers.append(json.loads(resp.read()))
            threads = [threading.Thread(target=post, args=(p,)) for p in ports]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        for web in webs:
            web.terminate()
            web.wait()
    assert len(answers) == 20
    assert sum(a["accepted"] for a in answers) == 10
    assert sum(a["duplicates"] for a in answers) == 10
    _drain_with(ioc, env, 2)
    with ioc.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 10
        subjects = Counter(s.scalars(select(ProcessInstance.subject)))
    assert subjects == Counter({f"T-{n}": 1 for n in range(10)})


def test_a_poison_event_becomes_a_dead_letter_and_the_events_behind_it_flow(
        pg, redis_url, tmp_path):
    # The workers fail on the poison (an injected engine fault: a scenario's own failure is an
    # incident of its instance, not a dead letter).
    ioc = _reset(pg, redis_url)
    with ioc.db.session() as s:
        source_id = auth.create_source(s, "tong-dai-1022")[0].id
    resolved = {"specversion": "1.0", "source": "/1022", "type": "hotline.ticket.resolved"}
    stream = [ticket("P-1"), ticket("P-2"),
              {**resolved, "id": "poison", "subject": "P-1",
               "data": {"ticket_id": "P-1", "answer": ""}},
              {**resolved, "id": "fine", "subject": "P-2",
               "data": {"ticket_id": "P-2", "answer": "Đã xử lý"}},
              ticket("P-1-again") | {"subject": "P-1"}]  # behind the poison, same partition
    for item in stream:
        result = events.ingest(ioc.db, source_id, [item], ioc.vocabulary)
        assert result.accepted, result.refused
        ioc.wake({e.partition for e in result.accepted})
    _drain_with(ioc, _env(pg, redis_url, IOC_EVENT_MAX_ATTEMPTS=2,
                          **failing_processes(tmp_path / "faults", "poison")), 2)
    with ioc.db.read() as s:
        state = {e.ce_id: (e.status, e.attempts) for e in s.scalars(select(Event))}
        poison = s.scalars(select(Event).where(Event.ce_id == "poison")).one()
        assert poison.error == FAULT
        assert audit.verify(s).ok
    assert state["poison"] == (FAILED, 2)
    assert all(status == PROCESSED for ce_id, (status, _) in state.items() if ce_id != "poison")

    # /metrics shows the dead letter, the empty queue and the workers' job durations.
    from engine.app import create_app

    text = create_app(services=ioc).test_client().get("/metrics").get_data(as_text=True)
    assert "ioc_events_failed 1.0" in text and 'ioc_queue_jobs{queue="ioc"} 0.0' in text
    count = next(line for line in text.splitlines()
                 if line.startswith('ioc_job_seconds_count{queue="ioc"}'))
    # Every job is counted: one per round at least, unless the job that failed the poison was
    # still running when its retry fell due, and served it too (a job keeps its partitions
    # while they have events ready).
    assert float(count.split()[-1]) >= 1
    assert _job_seconds_sum(text) > 0


def test_a_partition_is_in_one_job_waiting_or_running(pg, redis_url, source):
    """Events stored while a partition is drained queue no job of their own: the running job
    serves them in its next batch, takes over the jobs waiting behind it, and lets go of the
    partitions with nothing ready. A job serves a few partitions (rq's cost per job is that of
    several events: measured at 250 and 500 events/s)."""
    from rq import Queue

    from engine.events.partitions import PARTITIONS, partition_of
    from worker import jobs
    from worker.queue import PER_JOB

    ioc = _reset(pg, redis_url)
    with pg.session() as s:
        src = auth.create_source(s, "hotline")[0].id
    queue = Queue(ioc.settings.queue_name, connection=ioc.redis)

    def store(ticket_id: str) -> int:
        [event] = events.ingest(pg, src, [ticket(ticket_id)], ioc.vocabulary).accepted
        return event.partition

    def in_partition(partition: int, after: int = 1) -> str:
        return next(f"1022-j{i}" for i in range(after + 1, 2000)
                    if partition_of(f"1022-j{i}", "", "") == partition)

    def run(partitions: list[int]) -> int:
        jobs.use(ioc)
        try:
            return jobs.drain_partitions(partitions)
        finally:
            jobs.use(None)

    def queued() -> list[list[int]]:
        return [queue.fetch_job(i).args[0] for i in queue.job_ids]

    # Every partition kicked at once: jobs of PER_JOB partitions, none twice.
    assert ioc.relay.kick(range(PARTITIONS)) == PARTITIONS
    assert ioc.relay.kick(range(PARTITIONS)) == 0
    assert sorted(len(j) for j in queued()) == [PER_JOB] * (PARTITIONS // PER_JOB)
    assert sorted(p for j in queued() for p in j) == list(range(PARTITIONS))
    for job_id in queue.job_ids:
        queue.remove(job_id)
    assert run(list(range(PARTITIONS))) == 0 and queued() == []  # nothing was ready

    partition = store("1022-j1")
    other = next(p for p in range(PARTITIONS) if p != partition)
    third = next(p for p in range(PARTITIONS) if p not in (partition, other))
    assert ioc.relay.kick({partition, other}) == 2
    [[*job]] = queued()
    assert sorted(job) == sorted({partition, other})
    queue.remove(queue.job_ids[0])  # this test runs the job itself
    # While the first batch is processed: a second ticket of the same partition arrives, and
    # one of a third partition, which queues a job.
    batches: list[list[int]] = []
    kicks_during: list[int] = []
    waiting: list[str] = []
    run_once = ioc.pipeline.run_once

    def arriving(limit, part):
        batches.append(list(part))
        handled = run_once(limit, part)
        if len(batches) == 1:
            store(in_partition(partition))
            kicks_during.append(ioc.relay.kick({partition}))
            assert store(in_partition(third)) == third
            kicks_during.append(ioc.relay.kick({third}))
            waiting.extend(queue.job_ids)
        return handled

    ioc.pipeline.run_once = arriving
    try:
        assert run(sorted({partition, other})) == 3
    finally:
        ioc.pipeline.run_once = run_once
    assert kicks_during == [0, 1]  # the running job held the partition's marker
    # Its next batch: what was ready in its partitions and the waiting job's, taken over (off
    # the queue, its record gone); `other` had nothing ready and was let go.
    assert batches == [sorted({partition, other}), sorted({partition, third})]
    [taken] = waiting
    assert queued() == [] and queue.fetch_job(taken) is None
    assert _pending(ioc) == 0
    # Every partition was let go: the next event of each queues a job again.
    assert ioc.relay.kick({partition, other, third}) == 3


def test_a_job_holds_at_most_its_share_of_the_partitions(pg, redis_url, source):
    """With four workers on the queue a job keeps at most four partitions with ready events; the
    others go back to the queue as a job that another worker takes."""
    from rq import Queue, Worker

    from engine.events.partitions import partition_of
    from worker import jobs

    ioc = _reset(pg, redis_url)
    with pg.session() as s:
        src = auth.create_source(s, "hotline")[0].id
    queue = Queue(ioc.settings.queue_name, connection=ioc.redis)
    for n in range(4):  # registered as rq workers do when they start (none runs here)
        Worker([queue], connection=ioc.redis, name=f"share-{n}").register_birth()
    tickets: dict[int, list[str]] = {}
    for i in range(1, 2000):
        tickets.setdefault(partition_of(f"1022-s{i}", "", ""), []).append(f"1022-s{i}")
    six = sorted(tickets)[:6]

    def store(nth: int) -> None:  # the nth ticket of each of the six partitions
        events.ingest(pg, src, [ticket(tickets[p][nth]) for p in six], ioc.vocabulary)

    store(0)
    batches: list[list[int]] = []
    run_once = ioc.pipeline.run_once

    def arriving(limit, part):
        batches.append(list(part))
        handled = run_once(limit, part)
        if len(batches) == 1:
            store(1)  # a second ticket in each partition while the first batch runs
        return handled

    ioc.pipeline.run_once = arriving
    jobs.use(ioc)
    try:
        assert jobs.drain_partitions(six) == 6 + 4
    finally:
        ioc.pipeline.run_once = run_once
        jobs.use(None)
    assert batches == [six, six[:4]]
    # The two over the share went back to the queue, as a job of their own.
    assert [queue.fetch_job(i).args[0] for i in queue.job_ids] == [six[4:]]
    assert _pending(ioc) == 2
