"""Benchmark: scheduler pass cost among many pending timers, and timer lateness under event load.

    python bench/timers.py [--database sqlite|URL] [--pending 100000] [--timers 2000]
                           [--rate 50] [--duration 20] [--quick]

1. Pass cost (a hand-driven clock, a no-op handler for a bench-only timer kind, so the scheduler
   itself is measured): with `--pending` timers due 1–30 days ahead, time a pass that finds
   nothing due (median of 20; also with only 1,000 pending, to show it does not grow with the
   number pending), then the passes that fire 100 and 10,000 due timers; print the plan of the
   pass query (it must be an index scan on ix_timers_pending_due_at).
2. Lateness (the real clock, the embedded runner of `Services`): `--timers` timers come due
   evenly over `--duration` seconds while hotline tickets and dossier events are sent at
   `--rate` events/s; lateness is the scheduler's own `lateness_ms` (firing time − due time).

`--quick` is a smoke run: 10,000 pending, 1,000 due in the big pass, 500 timers over 5 s.
On PostgreSQL the public schema is dropped and rebuilt first; a SQLite run uses a temp file.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select, text

from engine.clock import ManualClock
from engine.db import Database
from engine.events import service as events
from engine.events.models import Event
from engine.services import Services
from engine.timers.models import FIRED, PENDING, Timer
from engine.timers.scheduler import Scheduler

try:  # run as `python -m bench.timers` from the project root
    from bench.pipeline import fresh_database, make_events, percentile, setup
except ModuleNotFoundError:  # run as `python bench/timers.py` (bench/ is on sys.path)
    from pipeline import fresh_database, make_events, percentile, setup

KIND = "bench"  # a timer kind only this benchmark uses; its handler does nothing
INDEX = "ix_timers_pending_due_at"
CHUNK = 10_000
SMALL_PENDING = 1_000
REPEATS = 20


def noop(_session, _timer) -> None:
    """The bench handler: fire and do nothing, so only the scheduler is measured."""


def insert_timers(db: Database, prefix: str, due_times: list[datetime]) -> None:
    """Bulk-insert pending bench timers, one per due time, in chunks."""
    created = datetime.now(timezone.utc)
    for start in range(0, len(due_times), CHUNK):
        rows = [{"kind": KIND, "ref": f"{prefix}:{start + i}", "due_at": due, "status": PENDING,
                 "payload": {}, "created_at": created}
                for i, due in enumerate(due_times[start:start + CHUNK])]
        with db.session() as s:
            s.execute(insert(Timer), rows)
    if db.is_postgres:  # fresh statistics, as autovacuum would give them shortly
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE timers"))


def future(now: datetime, n: int, rng: random.Random) -> list[datetime]:
    """n due times spread 1 to 30 days after `now`."""
    return [now + timedelta(days=rng.uniform(1, 30)) for _ in range(n)]


def overdue(now: datetime, n: int, rng: random.Random) -> list[datetime]:
    """n due times spread over the minute before `now`."""
    return [now - timedelta(seconds=rng.uniform(0, 60)) for _ in range(n)]


def median_ms(fn, repeats: int = REPEATS) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def fire_all(scheduler: Scheduler) -> tuple[int, int, float]:
    """Passes of run_once(limit=500) until none fires; return (timers, passes, seconds)."""
    fired = passes = 0
    t0 = time.perf_counter()
    while n := scheduler.run_once(limit=500):
        fired += n
        passes += 1
    return fired, passes, time.perf_counter() - t0


@contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, object]]]:
    """Record the SQL statements (with their parameters) sent while the block runs."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)


def pass_plan(db: Database, scheduler: Scheduler) -> list[str]:
    """The database's plan for the exact SELECT a scheduler pass sends."""
    with captured(db) as seen:
        scheduler.run_once()
    statement, params = next((sql, p) for sql, p in seen
                             if "FROM timers" in sql and "LIMIT" in sql.upper())
    explain = "EXPLAIN " if db.is_postgres else "EXPLAIN QUERY PLAN "
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(explain + statement, params).all()
    return [str(row[0]) if db.is_postgres else str(row[-1]) for row in rows]


def measure_passes(db: Database, pending: int, big_due: int) -> dict:
    """Pass cost with 1,000 and `pending` timers not due, then firing 100 and `big_due` due."""
    rng = random.Random(7)
    clock = ManualClock(datetime.now(timezone.utc))
    scheduler = Scheduler(db, clock, {KIND: noop})
    out: dict = {}
    small = min(SMALL_PENDING, pending)
    insert_timers(db, "small", future(clock.now(), small, rng))
    out["small"] = small
    out["idle_small_ms"] = median_ms(scheduler.run_once)
    t0 = time.perf_counter()
    insert_timers(db, "pending", future(clock.now(), pending - small, rng))
    out["insert_s"] = time.perf_counter() - t0
    out["idle_ms"] = median_ms(scheduler.run_once)
    out["next_due_ms"] = median_ms(scheduler.next_due)
    out["plan"] = pass_plan(db, scheduler)
    plan_text = "\n".join(out["plan"])
    out["index_scan"] = INDEX in plan_text and "Seq Scan" not in plan_text
    for n in (100, big_due):
        insert_timers(db, f"due{n}", overdue(clock.now(), n, rng))
        out[f"due_{n}"] = fire_all(scheduler)
    with db.read() as s:
        out["still_pending"] = s.scalar(select(func.count()).select_from(Timer)
                                        .where(Timer.status == PENDING))
    return out


def count_events(ioc: Services) -> dict[str, int]:
    """Events by status."""
    with ioc.db.read() as s:
        return dict(s.execute(select(Event.status, func.count()).group_by(Event.status)).all())


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def measure_lateness(ioc: Services, source_id: int, timers: int, duration: float,
                     rate: float, lead: float = 1.0, grace: float = 5.0) -> dict:
    """Fire `timers` timers due over `duration` s through the runner while events arrive."""
    ioc.scheduler.handlers[KIND] = noop
    ioc.start_runner()
    first = ioc.clock.now() + timedelta(seconds=lead)
    step = duration / max(1, timers - 1)
    insert_timers(ioc.db, "late", [first + timedelta(seconds=i * step) for i in range(timers)])
    last = first + timedelta(seconds=duration)
    ioc.wake()

    stream = make_events(int(rate * (lead + duration + 1)) + 10)
    batch = max(1, round(rate / 5))  # five batches a second (10 events at 50/s)
    sent, t0 = 0, time.perf_counter()
    while ioc.clock.now() < last and sent < len(stream):
        time.sleep(max(0.0, t0 + sent / rate - time.perf_counter()))
        events.ingest(ioc.db, source_id, stream[sent:sent + batch], ioc.vocabulary)
        ioc.wake()
        sent += batch
    send_s = time.perf_counter() - t0

    def late_pending() -> int:
        with ioc.db.read() as s:
            return s.scalar(select(func.count()).select_from(Timer).where(
                Timer.ref.like("late:%"), Timer.status == PENDING))

    wait_until(lambda: late_pending() == 0, grace)
    at_last_due = count_events(ioc)
    t1 = time.perf_counter()
    drained = wait_until(lambda: count_events(ioc).get("pending", 0) == 0, 120)
    drain_s = time.perf_counter() - t1
    ioc.runner.stop()
    with ioc.db.read() as s:
        lateness = list(s.scalars(select(Timer.lateness_ms).where(
            Timer.ref.like("late:%"), Timer.status == FIRED)))
        waits = [(done - got).total_seconds() * 1000 for got, done in s.execute(
            select(Event.received_at, Event.processed_at).where(Event.processed_at.is_not(None)))]
    final = count_events(ioc)
    return {"timers": timers, "fired": len(lateness), "sent": sent, "send_s": send_s,
            "p50_ms": percentile(lateness, 50) if lateness else float("nan"),
            "p99_ms": percentile(lateness, 99) if lateness else float("nan"),
            "max_ms": max(lateness, default=float("nan")),
            "processed_in_window": at_last_due.get("processed", 0),
            "processed": final.get("processed", 0), "failed": final.get("failed", 0),
            "drained": drained, "drain_s": drain_s,
            "event_p50_ms": percentile(waits, 50) if waits else float("nan"),
            "event_p99_ms": percentile(waits, 99) if waits else float("nan")}


def print_table(rows: list[tuple[str, str]]) -> None:
    """Print figure/value rows as a Markdown table (ready to quote in the README)."""
    width = max(len(name) for name, _ in rows)
    print(f"| {'figure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


def summary(p: dict, late: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The figures of both parts as table rows."""
    rows = [(f"0-due pass, {p['small']:,} pending (median of {REPEATS})",
             f"{p['idle_small_ms']:.2f} ms"),
            (f"0-due pass, {args.pending:,} pending (median of {REPEATS})",
             f"{p['idle_ms']:.2f} ms"),
            (f"next_due() read, {args.pending:,} pending", f"{p['next_due_ms']:.2f} ms"),
            ("pass query plan", f"index scan on {INDEX}" if p["index_scan"]
             else "NOT an index scan on " + INDEX)]
    for n in (100, args.big_due):
        fired, passes, seconds = p[f"due_{n}"]
        rows.append((f"fire {n:,} due among {args.pending:,} pending",
                     f"{fired:,} in {passes} passes, {seconds * 1000:.1f} ms = "
                     f"{seconds * 1000 / max(1, fired):.2f} ms/timer, "
                     f"{fired / seconds:,.0f} timers/s"))
    rows += [(f"lateness p50 / p99 / max ({late['timers']:,} timers over {args.duration:g} s)",
              f"{late['p50_ms']:.1f} / {late['p99_ms']:.1f} / {late['max_ms']:.1f} ms"),
             ("timers fired", f"{late['fired']:,} of {late['timers']:,}"),
             (f"events sent (target {args.rate:g}/s)",
              f"{late['sent']:,} in {late['send_s']:.1f} s = "
              f"{late['sent'] / late['send_s']:.1f}/s"),
             ("events processed when the last timer had fired",
              f"{late['processed_in_window']:,}"),
             ("events processed in all",
              f"{late['processed']:,} ({late['failed']} failed; "
              + (f"backlog drained {late['drain_s']:.1f} s after"
                 if late["drained"] else "BACKLOG NOT DRAINED") + ")"),
             ("event received → processed p50 / p99",
              f"{late['event_p50_ms']:.0f} / {late['event_p99_ms']:.0f} ms")]
    return rows


def main() -> None:
    """Parse the options, run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite",
                        help="'sqlite' (a fresh temp file, default) or a database URL, e.g. "
                             "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pending", type=int, help="timers pending, not due (default 100000)")
    parser.add_argument("--timers", type=int, help="timers fired under load (default 2000)")
    parser.add_argument("--rate", type=float, default=50, help="events per second (default 50)")
    parser.add_argument("--duration", type=float,
                        help="seconds over which the timers come due (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10,000 pending, 1,000 due, 500 timers over 5 s")
    args = parser.parse_args()
    full = {"pending": 100_000, "timers": 2_000, "duration": 20.0, "big_due": 10_000}
    quick = {"pending": 10_000, "timers": 500, "duration": 5.0, "big_due": 1_000}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)

    url = args.database
    if url == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='ioc-bench-')}/bench.sqlite3"
    started = time.perf_counter()
    fresh_database(url)
    ioc, source_id = setup(url)
    db_name = ioc.db.engine.dialect.name
    if ioc.db.is_postgres:
        with ioc.db.read() as s:
            db_name += " " + s.scalar(text("SHOW server_version")).split()[0]
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, database {db_name}")

    print(f"\n1. scheduler pass: inserting {args.pending:,} pending timers …", flush=True)
    passes = measure_passes(ioc.db, args.pending, args.big_due)
    print(f"   inserted in {passes['insert_s']:.1f} s; plan of the pass query:")
    for line in passes["plan"]:
        print(f"     {line}")

    print(f"\n2. lateness: {args.timers:,} timers over {args.duration:g} s, events at "
          f"{args.rate:g}/s …", flush=True)
    late = measure_lateness(ioc, source_id, args.timers, args.duration, args.rate)

    print(f"\nsummary ({db_name}, {time.perf_counter() - started:.0f} s in all)\n")
    print_table(summary(passes, late, args))


if __name__ == "__main__":
    main()
