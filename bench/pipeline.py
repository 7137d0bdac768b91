"""Benchmark: N events through the embedded pipeline, with raw SpiffWorkflow and durable-rules
measured in the same run for comparison.

    python bench/pipeline.py [--events 2000] [--database URL]

Hotline tickets each go event accepted → rule matched → instance started → task stored; a share
of dossier events pairs up into violations. Ingestion (the API's service, in batches of 50) and the
pipeline thread run concurrently; latency is task.created_at − event.received_at.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from engine import migrate
from engine.auth import service as auth
from engine.config import Settings
from engine.db import Database
from engine.events import service as events
from engine.events.models import PENDING, Event
from engine.org import service as org
from engine.scenarios import service as scenarios
from engine.services import Services
from engine.tasks.models import Task

ROOT = Path(__file__).resolve().parents[1]

CATEGORIES = ["environment", "traffic", "security", "health", "public-services", "other"]
WARDS = ["phuong-thu-dau-mot", "phuong-di-an", "phuong-thuan-an", "xa-dau-tieng", "phuong-ben-cat"]


def make_events(n: int) -> list[dict]:
    """A mixed stream: 60 % hotline tickets, 40 % dossier supplement requests (half in pairs)."""
    out = []
    for i in range(n):
        if i % 5 < 3:
            out.append({"specversion": "1.0", "id": f"t-{i}", "source": "/bench/1022",
                        "type": "hotline.ticket.created", "subject": f"1022-{i}",
                        "data": {"ticket_id": f"1022-{i}", "category": CATEGORIES[i % 6],
                                 "ward": WARDS[i % 5], "description": "Phản ánh thử nghiệm"}})
        else:
            out.append({"specversion": "1.0", "id": f"d-{i}", "source": "/bench/mot-cua",
                        "type": "dossier.supplement_requested", "subject": f"H-{i // 10}",
                        "data": {"dossier_id": f"H-{i // 10}", "procedure": "1.004227",
                                 "unit": WARDS[i % 5], "officer": "can.bo"}})
    return out


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def fresh_database(url: str) -> None:
    """Start from an empty schema: drop and recreate PostgreSQL's public schema (setup migrates)."""
    db = Database(url)
    try:
        if db.is_postgres:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
    finally:
        db.dispose()


def setup(url: str) -> tuple[Services, int]:
    """A fresh schema with the organisation, the shipped scenarios and one source."""
    fresh_database(url)
    migrate.upgrade(url)
    ioc = Services(Settings(database_url=url))
    with ioc.db.session() as s:
        org.load_file(s, ROOT / "data" / "organisation" / "binh-duong.yaml")
        departments = org.known_keys(s)
    for folder in scenarios.folders(ROOT / "scenarios"):
        checked = scenarios.check_folder(folder, ioc.vocabulary, departments)
        with ioc.db.session() as s:
            scenarios.publish(s, checked, actor="bench")
    with ioc.db.session() as s:
        source, _ = auth.create_source(s, f"bench-{time.time_ns()}")
    return ioc, source.id


def run_pipeline(ioc: Services, source_id: int, stream: list[dict], rate: float = 0) -> dict:
    """Ingest concurrently with the pipeline thread; return throughput and latency figures."""
    statements = [0]

    def count(*_args):
        statements[0] += 1

    sa_event.listen(ioc.db.engine, "before_cursor_execute", count)
    done = threading.Event()

    def runner():
        while not done.is_set():
            if ioc.pipeline.run_once(50) == 0:
                time.sleep(0.002)

    thread = threading.Thread(target=runner)
    start = time.perf_counter()
    thread.start()
    batch = 10 if rate else 50
    for i in range(0, len(stream), batch):
        if rate:  # pace ingestion: batch i is due at i / rate seconds
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        events.ingest(ioc.db, source_id, stream[i:i + batch], ioc.vocabulary)
    while True:
        with ioc.db.read() as s:
            left = s.scalar(select(Event.id).where(Event.status == PENDING).limit(1))
        if left is None:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    sa_event.remove(ioc.db.engine, "before_cursor_execute", count)
    with ioc.db.read() as s:
        rows = s.execute(select(Event.received_at, Task.created_at).join(
            Task, Task.context["ticket_id"].as_string() == Event.data["ticket_id"].as_string())
            .where(Event.type == "hotline.ticket.created")).all()
        failed = s.scalar(select(Event.id).where(Event.status == "failed").limit(1))
    lat = [(task_at - recv_at).total_seconds() * 1000 for recv_at, task_at in rows]
    return {"events": len(stream), "seconds": elapsed, "events_per_s": len(stream) / elapsed,
            "tasks": len(rows), "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "sql_per_event": statements[0] / len(stream), "failed": failed is not None}


def raw_spiff(ioc: Services, n: int) -> float:
    """Starts to the first user task per second, SpiffWorkflow alone on our hotline spec."""
    from SpiffWorkflow.util.task import TaskState

    from engine.processes import spiff

    with ioc.db.read() as s:
        version = next(v for v in scenarios.published(s) if v.key == "hotline-ticket")
    specs = spiff.spec_from_dict(version.spec)
    t0 = time.perf_counter()
    for i in range(n):
        wf = spiff.new_workflow(specs, 1.0)
        wf.get_tasks(state=TaskState.READY)[0].data.update(
            ticket_id=str(i), category="environment", ward="phuong-di-an")
        wf.do_engine_steps()
        spiff.dump_state(wf)
    return n / (time.perf_counter() - t0)


def raw_durable(ioc: Services, n: int) -> float:
    """Events per second through the shipped correlation rule, durable-rules alone."""
    from engine.rules.matcher import RuleMatcher
    from engine.rules.message import to_message

    with ioc.db.read() as s:
        version = next(v for v in scenarios.published(s) if v.key == "dossier-violations")
    matcher = RuleMatcher()
    matcher.load("bench", version.ruleset)
    t0 = time.perf_counter()
    for i in range(n):
        matcher.post("bench", to_message(10_000_000 + i, "dossier.supplement_requested", "b",
                                         None, {"dossier_id": f"H{i // 2}", "procedure": "p",
                                                "unit": "u"}))
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=0,
                        help="events per second to send (default 0: as fast as possible)")
    parser.add_argument("--database", default=None,
                        help="database URL (default: a fresh SQLite file in a temp folder)")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='ioc-bench-')}/bench.sqlite3"
    ioc, source_id = setup(url)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, database {ioc.db.engine.dialect.name}")
    r = run_pipeline(ioc, source_id, make_events(args.events), args.rate)
    pace = f"sent at {args.rate:.0f}/s" if args.rate else "sent as fast as possible"
    print(f"pipeline (embedded, {pace}): {r['events']} events in {r['seconds']:.2f} s = "
          f"{r['events_per_s']:.0f} events/s; {r['tasks']} ticket tasks; event→task latency "
          f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; {r['sql_per_event']:.1f} SQL "
          f"statements per event{'; SOME EVENTS FAILED' if r['failed'] else ''}")
    print(f"raw SpiffWorkflow: {raw_spiff(ioc, 1000):.0f} instances/s (start → first user task "
          "→ serialize, hotline spec)")
    print(f"raw durable-rules: {raw_durable(ioc, 20000):.0f} events/s (two-event correlation "
          "rule)")


if __name__ == "__main__":
    main()
