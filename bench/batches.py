"""Benchmark: a worker's batches on PostgreSQL — statements and CPU per event, by statement.

    python bench/batches.py [--events 2000] [--per-batch 20] [--top 15]

The simulated province's stream (as bench/load.py sends it) is stored `--per-batch` events at a
time, each slice then processed as a worker does: one `run_once` over all partitions, one
transaction. At 250 events/s a worker's batches held about 20 events. Reported: statements per
event, wall and CPU (this process: Python, SQLAlchemy, psycopg) ms per event of the batches, and
the most frequent statements per event. Garbage is collected as in a worker (engine/ops/garbage).
No web, Redis or other process takes part, so the CPU
figure varies far less from run to run than the end-to-end ones: compare changes with it first.
"""
from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import event as sa_event

from engine import demo
from engine.auth import service as auth
from engine.events import service as events
from engine.events.partitions import PARTITIONS
from engine.ops import garbage
from integrations import simulator

try:  # run as `python -m bench.batches` from the project root
    from bench.load import POSTGRES, machine, scratch_database
    from bench.pipeline import setup
except ModuleNotFoundError:  # run as `python bench/batches.py` (bench/ is on sys.path)
    from load import POSTGRES, machine, scratch_database
    from pipeline import setup


def stream(events_n: int, seed: int = 2025) -> list[simulator.Planned]:
    """`events_n` events of the simulated province, one day after another."""
    start = simulator.parse_start("auto")
    out: list[simulator.Planned] = []
    day = 0
    while len(out) < events_n:
        out += simulator.generate(seed + day, start + timedelta(days=day), 24)
        day += 1
    return out[:events_n]


def measure(url: str, events_n: int, per_batch: int) -> dict:
    """Store and process the stream slice by slice; return the counts and times."""
    ioc, _ = setup(url)
    sources = {}
    with ioc.db.session() as s:
        for name, types in demo.SOURCES:
            sources[name] = auth.create_source(s, name, types, actor="bench")[0].id
    planned = stream(events_n)
    garbage.settle()  # as `ioc worker` does once started
    statements: Counter[str] = Counter()
    counting = False

    def count(_conn, _cursor, statement, *_args):
        if counting:
            statements[re.sub(r"\s+", " ", statement)[:100]] += 1

    sa_event.listen(ioc.db.engine, "before_cursor_execute", count)
    handled, wall, cpu = 0, 0.0, 0.0
    for first in range(0, events_n, per_batch):
        by_source: dict[str, list[dict]] = defaultdict(list)
        for n, p in enumerate(planned[first:first + per_batch], start=first):
            by_source[p.source].append({**p.event, "id": f"{p.event['id']}~{n}"})
        for name, raws in by_source.items():
            events.ingest(ioc.db, sources[name], raws, ioc.vocabulary)
        counting, w, c = True, time.perf_counter(), time.process_time()
        # The only runner: it holds every partition, as one job would.
        done = ioc.pipeline.run_once(200, range(PARTITIONS))
        if done:
            garbage.after_batch()  # as the worker's job does
        handled += done
        wall, cpu = wall + time.perf_counter() - w, cpu + time.process_time() - c
        counting = False
    ioc.db.dispose()
    return {"handled": handled, "wall": wall, "cpu": cpu, "statements": statements}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--per-batch", type=int, default=20)
    parser.add_argument("--top", type=int, default=15, help="statements listed")
    args = parser.parse_args()
    if args.events < 1 or args.per_batch < 1:
        parser.error("--events and --per-batch must be at least 1")
    with scratch_database(POSTGRES, "ioc_bench_batches") as url:
        r = measure(url, args.events, args.per_batch)
    n = r["handled"]
    total = sum(r["statements"].values())
    print(f"machine: {machine(POSTGRES)}; {n} events in batches of {args.per_batch}")
    print(f"{total / n:.2f} statements per event, {1000 * r['wall'] / n:.2f} ms wall and "
          f"{1000 * r['cpu'] / n:.2f} ms CPU per event")
    for text, times in r["statements"].most_common(args.top):
        print(f"{times / n:7.3f}  {text}")


if __name__ == "__main__":
    main()
