"""Benchmark: correlation rules (`all:` patterns tied by `same:`) kept in the database, on
PostgreSQL.

    python bench/correlations.py [--database URL] [--dossiers 100000] [--repeated 50000]
                                 [--stored 1000000] [--stream 20000] [--workers 1]
                                 [--parts detections,restart,throughput]

The shipped rule `repeated-supplement-request` (scenarios/dossier-violations) gives four figures:

1. Exact detections at scale: `--dossiers` dossiers each get a dossier.supplement_requested
   without a CloudEvents subject (so a dossier's two requests fall in different partitions), then
   `--repeated` of them a second one: exactly `--repeated` violations must follow (exit 1 if
   not). Events are stored by the API's service (500 a request, one source) and processed by
   `--workers` new processes, each running `run_once` over its own share of the partitions.
2. Rule memory per open correlation, `--dossiers` of them open: the rule_states table's size
   (pg_total_relation_size) per open row, and the processing processes' RSS growth (after a
   collection) per open correlation.
3. Restart: `--stored` processed dossier events of the correlated type, received within the last
   3 days, are added to the store (INSERT … SELECT generate_series), then a new process builds
   Services, stores one event and processes it: the seconds until it is processed.
4. Matching throughput: a stream of dossier events (received, step started, one or two supplement
   requests, step completed, completed) is stored, then processed by `run_once(200)` in this
   process: events per second.

Only what both designs offer is called, so the same script measures the code before correlations
moved to the database: run it with an older tree first on PYTHONPATH. The database of
`--database` (default: $IOC_BENCH_POSTGRES_URL, or the local server's `test`) has its public
schema dropped and made again.
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text

import engine
from engine.config import Settings
from engine.db import Database
from engine.events import service as events
from engine.events.partitions import PARTITIONS
from engine.ops import garbage
from engine.services import Services

try:  # run as `python -m bench.correlations` from the project root
    from bench.load import machine
    from bench.pipeline import WARDS, setup
except ModuleNotFoundError:  # run as `python bench/correlations.py` (bench/ is on sys.path)
    from load import machine
    from pipeline import WARDS, setup

DATABASE = os.environ.get("IOC_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RULE = "repeated-supplement-request"
SUPPLEMENT = "dossier.supplement_requested"
CE_SOURCE = "/bench/mot-cua"
BATCH = 200  # events a batch, as a worker's job takes them (worker/jobs.BATCH)
PER_REQUEST = 500  # events stored a request
STORED_SLICE = 100_000  # stored events inserted a statement
STORED_DAYS = 3  # the stored events were received over this many days before now


# -- events ---------------------------------------------------------------------------------------

def dossier_event(ce_id: str, kind: str, dossier: str, n: int, subject: bool = False,
                  **extra) -> dict:
    """A CloudEvent of the dossier system about `dossier`, with a subject only if asked."""
    raw = {"specversion": "1.0", "id": ce_id, "source": CE_SOURCE, "type": f"dossier.{kind}",
           "data": {"dossier_id": dossier, "procedure": "1.004227", "unit": WARDS[n % 5],
                    "officer": "can.bo", **extra}}
    if subject:
        raw["subject"] = dossier
    return raw


def supplement(ce_id: str, n: int) -> dict:
    """A supplement request for dossier n, without a subject."""
    return dossier_event(ce_id, "supplement_requested", f"HS-{n:07d}", n,
                         reason="Thiếu bản sao giấy tờ")


def dossier_stream(count: int) -> tuple[list[dict], int]:
    """`count` events of dossiers going through their steps, 50 dossiers at a time; and how many
    of those dossiers were asked twice for supplements (odd ones: a violation each)."""
    due = (datetime.now(timezone.utc) + timedelta(days=10)).isoformat()
    stages = [("received", {"due_at": due}), ("step_started", {"step": "tham-dinh",
                                                                "allotted_hours": 8}),
              ("supplement_requested", {"reason": "Thiếu tờ khai"}),
              ("supplement_requested", {"reason": "Thiếu bản sao"}),
              ("step_completed", {}), ("completed", {})]
    out: list[dict] = []
    block = 0
    while len(out) < count:
        for stage, (kind, extra) in enumerate(stages):
            for n in range(block, block + 50):
                if stage == 3 and n % 2 == 0:
                    continue  # even dossiers are asked once
                out.append(dossier_event(f"s-{n}-{stage}", kind, f"LT-{n:07d}", n,
                                         subject=True, **extra))
        block += 50
    # A cut stream may end between a dossier's two requests: count only second ones kept.
    kept = {raw["data"]["dossier_id"] for raw in out[:count] if raw["id"].endswith("-3")}
    return out[:count], len(kept)


def store(ioc: Services, source_id: int, raws: list[dict]) -> float:
    """Store the events through the API's service, PER_REQUEST a request; return the seconds."""
    t0 = time.perf_counter()
    for first in range(0, len(raws), PER_REQUEST):
        result = events.ingest(ioc.db, source_id, raws[first:first + PER_REQUEST],
                               ioc.vocabulary)
        if result.refused:
            raise SystemExit(f"refused: {result.refused[0].problems}")
    return time.perf_counter() - t0


def scalar(db: Database, sql: str, **params):
    """One value of a query."""
    with db.read() as s:
        return s.scalar(text(sql), params)


def statuses(db: Database) -> dict[str, int]:
    """Events per status."""
    with db.read() as s:
        return dict(s.execute(text("SELECT status, count(*) FROM events GROUP BY status")).all())


def violations(db: Database) -> int:
    """Violations the rule opened."""
    return scalar(db, "SELECT count(*) FROM violations WHERE rule_key = :r", r=RULE)


# -- the processing processes ---------------------------------------------------------------------

def rss_bytes() -> int:
    """This process's resident memory after a full collection."""
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def drain(url: str, partitions: list[int]) -> dict:
    """A processing process: run batches over `partitions` until none is pending; the events
    handled, the seconds, the CPU seconds, and the RSS growth after the first batch."""
    ioc = Services(Settings(database_url=url))
    wall, cpu = time.perf_counter(), time.process_time()
    # The first batch loads the rules (the old design replayed the store then) and warms the
    # caches: the memory baseline is taken after it.
    warm = handled = ioc.pipeline.run_once(BATCH, partitions)
    garbage.settle()  # as a worker does once started
    before = rss_bytes()
    while n := ioc.pipeline.run_once(BATCH, partitions):
        handled += n
        garbage.after_batch()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    grown = rss_bytes() - before
    ioc.db.dispose()
    return {"handled": handled, "warm": warm, "seconds": wall, "cpu": cpu,
            "rss_growth": grown}


def process(url: str, workers: int) -> list[dict]:
    """Process what is pending with `workers` new processes over disjoint partition sets."""
    context = multiprocessing.get_context("spawn")  # fresh processes: nothing inherited
    # A pool each: one process per share, never two shares run one after the other.
    pools = [ProcessPoolExecutor(1, mp_context=context) for _ in range(workers)]
    try:
        futures = [pool.submit(drain, url, list(range(i, PARTITIONS, workers)))
                   for i, pool in enumerate(pools)]
        return [f.result() for f in futures]
    finally:
        for pool in pools:
            pool.shutdown()


# -- 1 and 2: detections and memory ---------------------------------------------------------------

def detections(url: str, source_id: int, dossiers: int, repeated: int, workers: int) -> dict:
    """Open `dossiers` correlations, measure their memory, complete `repeated` of them."""
    ioc = Services(Settings(database_url=url))
    out: dict = {"stored_first": store(ioc, source_id, [supplement(f"first-{n}", n)
                                                        for n in range(dossiers)])}
    out["first"] = process(url, workers)
    out["open"] = scalar(ioc.db, "SELECT count(*) FROM rule_states WHERE rule_key = :r", r=RULE)
    out["table_bytes"] = scalar(ioc.db, "SELECT pg_total_relation_size('rule_states')")
    out["stored_second"] = store(ioc, source_id, [supplement(f"second-{n}", n)
                                                  for n in range(repeated)])
    out["second"] = process(url, workers)
    out["violations"] = violations(ioc.db)
    out["left_open"] = scalar(ioc.db, "SELECT count(*) FROM rule_states WHERE rule_key = :r",
                              r=RULE)
    out["statuses"] = statuses(ioc.db)
    ioc.db.dispose()
    return out


def print_detections(d: dict, dossiers: int, repeated: int, workers: int) -> bool:
    """Print the figures of parts 1 and 2; True if the count is exact."""
    for phase, stored, count in (("first", "stored_first", dossiers),
                                 ("second", "stored_second", repeated)):
        took = max(r["seconds"] for r in d[phase])
        handled = sum(r["handled"] for r in d[phase])
        print(f"detections: {count:,} {phase} requests (no subject) stored in {d[stored]:.1f} s, "
              f"processed by {workers} worker(s) in {took:.1f} s = {handled / took:,.0f} "
              f"events/s ({handled:,} handled)")
    exact = d["violations"] == repeated
    others = {k: v for k, v in d["statuses"].items() if k != "processed"}
    # The old design kept open correlations in the workers: no rows to count.
    left = f"{d['left_open']:,} correlations left open" if d["open"] else "no rows kept"
    print(f"detections: {d['violations']:,} violations of {RULE} (expected {repeated:,}): "
          f"{'EXACT' if exact else 'WRONG'}; {left}; events not processed: {others or 'none'}")
    if d["open"]:
        print(f"memory: rule_states {d['table_bytes'] / 2**20:.1f} MiB for {d['open']:,} open "
              f"correlations = {d['table_bytes'] / d['open']:,.0f} B per open correlation "
              "(database, with its indexes)")
    else:
        print("memory: no rule_states row for open correlations (kept by the workers)")
    grown = [r["rss_growth"] for r in d["first"]]
    each = ", ".join(f"{g / 2**20:+.1f} MiB" for g in grown)
    opened = dossiers - sum(r["warm"] for r in d["first"])  # after the baselines
    print(f"memory: processing process RSS growth while {opened:,} correlations opened: "
          f"{max(grown) / max(1, opened):,.0f} B per open correlation (the most of {workers} "
          f"worker(s): {each})")
    return exact


# -- 3: restart ----------------------------------------------------------------------------------

def store_processed(db: Database, source_id: int, count: int) -> float:
    """Add `count` processed supplement requests, two a dossier, received over the last days,
    in slices of one INSERT … SELECT each; return the seconds (ANALYZE included)."""
    # Pairs, as the old design replayed them: each pair matches and leaves nothing held.
    # The partition is spread, not hashed: nothing reads it once an event is processed.
    insert = text("""
        INSERT INTO events (source_id, ce_id, ce_source, type, data, received_at, status,
                            processed_at, partition, attempts)
        SELECT :source, 'stored-' || g, :ce_source, :type,
               jsonb_build_object('dossier_id', 'CU-' || lpad((g / 2)::text, 7, '0'),
                                  'procedure', '1.004227', 'unit', 'phuong-di-an',
                                  'officer', 'can.bo', 'reason', 'Thiếu bản sao giấy tờ'),
               at, 'processed', at + interval '50 milliseconds', g % :partitions, 0
        FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g,
             LATERAL (SELECT now() - interval '1 hour' - (CAST(:count AS integer) - g)
                             * (CAST(:days AS integer) * interval '1 day' / :count) AS at) AS t
    """)
    t0 = time.perf_counter()
    for first in range(0, count, STORED_SLICE):
        with db.session() as s:
            s.execute(insert, {"source": source_id, "ce_source": CE_SOURCE, "type": SUPPLEMENT,
                               "first": first, "last": min(count, first + STORED_SLICE) - 1,
                               "count": count, "days": STORED_DAYS, "partitions": PARTITIONS})
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # As autovacuum would have by then: a store filled over days has its statistics.
        conn.execute(text("ANALYZE events"))
    return time.perf_counter() - t0


def restart_child(url: str, source_id: int, raw: dict) -> None:
    """In a new process: build Services, store `raw`, process until it is; print the figures."""
    t0 = time.perf_counter()
    ioc = Services(Settings(database_url=url))
    built = time.perf_counter() - t0
    event_id = events.ingest(ioc.db, source_id, [raw], ioc.vocabulary).accepted[0].id
    deadline = time.monotonic() + 3600
    while scalar(ioc.db, "SELECT status FROM events WHERE id = :i", i=event_id) != "processed":
        if time.monotonic() > deadline:
            raise SystemExit(f"event {event_id} not processed within an hour")
        ioc.pipeline.run_once(BATCH)
    seconds = time.perf_counter() - t0
    matched = scalar(ioc.db, "SELECT count(*) FROM violations WHERE rule_key = :r AND "
                     "subject = :d", r=RULE, d=raw["data"]["dossier_id"])
    print(json.dumps({"seconds": seconds, "built": built, "matched": bool(matched)}))


def restart(url: str, source_id: int, stored: int, dossier: int, second: bool) -> dict:
    """Store `stored` processed events, then time a new process to its first processed event:
    a request for `dossier` (its `second` one: it completes a correlation opened before)."""
    db = Database(url)
    out = {"insert_s": store_processed(db, source_id, stored)}
    out["events"] = scalar(db, "SELECT count(*) FROM events")
    db.dispose()
    raw = supplement(f"restart-{time.time_ns()}", dossier)
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--database", url, "--restart-child",
                            json.dumps([source_id, raw])], capture_output=True, text=True)
    out["process_s"] = time.perf_counter() - t0
    if child.returncode:
        raise SystemExit(f"the restarted process failed:\n{child.stderr[-3000:]}")
    out.update(json.loads(child.stdout.splitlines()[-1]), second=second)
    return out


def print_restart(r: dict, stored: int) -> bool:
    """Print the figures of part 3; True if the event matched as it should."""
    expected = "matched" if r["second"] else "opened a correlation"
    ok = r["matched"] == r["second"]
    print(f"restart: {stored:,} processed events added in {r['insert_s']:.1f} s "
          f"({r['events']:,} stored); a new process: Services built → next event processed in "
          f"{r['seconds']:.2f} s (building {r['built']:.2f} s; the whole process with Python's "
          f"start and imports {r['process_s']:.2f} s); that event "
          f"{expected if ok else 'did NOT ' + expected}")
    return ok


# -- 4: throughput -------------------------------------------------------------------------------

def throughput(url: str, count: int) -> dict:
    """A fresh schema; store a stream of dossier events, then time their processing here."""
    ioc, source_id = setup(url)
    stream, twice = dossier_stream(count)
    stored = store(ioc, source_id, stream)
    garbage.settle()
    wall, cpu, handled = time.perf_counter(), time.process_time(), 0
    # run_once(limit): the one signature both designs share (the embedded runner's).
    while n := ioc.pipeline.run_once(BATCH):
        handled += n
        garbage.after_batch()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"events": count, "handled": handled, "stored_s": stored, "seconds": wall,
           "cpu": cpu, "violations": violations(ioc.db), "expected": twice,
           "supplements": sum(raw["type"] == SUPPLEMENT for raw in stream)}
    ioc.db.dispose()
    return out


def print_throughput(t: dict) -> bool:
    """Print the figures of part 4; True if every event was handled and each pair matched."""
    ok = t["handled"] == t["events"] and t["violations"] == t["expected"]
    print(f"throughput: {t['handled']:,} dossier events ({100 * t['supplements'] / t['events']:.0f}"
          f" % supplement requests; stored in {t['stored_s']:.1f} s) processed in "
          f"{t['seconds']:.1f} s = {t['handled'] / t['seconds']:,.0f} events/s, "
          f"{1000 * t['cpu'] / t['handled']:.2f} ms CPU per event; {t['violations']:,} "
          f"violations (expected {t['expected']:,}){'' if ok else ' — WRONG'}")
    return ok


def main() -> None:
    """Parse the options, run the parts asked for and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=DATABASE, help="a PostgreSQL database URL "
                        "(its public schema is dropped)")
    parser.add_argument("--dossiers", type=int, default=100_000,
                        help="dossiers with one supplement request (open correlations)")
    parser.add_argument("--repeated", type=int, default=50_000,
                        help="of them, dossiers with a second request (violations)")
    parser.add_argument("--stored", type=int, default=1_000_000,
                        help="processed events added to the store before the restart")
    parser.add_argument("--stream", type=int, default=20_000,
                        help="dossier events of the throughput part")
    parser.add_argument("--workers", type=int, default=1,
                        help="processing processes of the detections part")
    parser.add_argument("--parts", default="detections,restart,throughput")
    parser.add_argument("--restart-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restart_child:
        restart_child(args.database, *json.loads(args.restart_child))
        return
    parts = set(args.parts.split(","))
    if parts - {"detections", "restart", "throughput"} or not parts:
        parser.error("--parts: a comma-separated list of detections, restart, throughput")
    if not 0 < args.repeated <= args.dossiers or args.workers < 1:
        parser.error("need 0 < --repeated <= --dossiers and --workers >= 1")
    print(f"machine: {machine(args.database)}; engine: {Path(engine.__file__).parent}",
          flush=True)
    ok, began = True, time.perf_counter()
    if parts & {"detections", "restart"}:
        _, source_id = setup(args.database)
        if "detections" in parts:
            d = detections(args.database, source_id, args.dossiers, args.repeated, args.workers)
            ok &= print_detections(d, args.dossiers, args.repeated, args.workers)
        if "restart" in parts:
            # The last dossier asked once: its second request completes an open correlation.
            second = "detections" in parts and args.repeated < args.dossiers
            r = restart(args.database, source_id, args.stored, args.dossiers - 1, second)
            ok &= print_restart(r, args.stored)
        sys.stdout.flush()
    if "throughput" in parts:
        ok &= print_throughput(throughput(args.database, args.stream))
    print(f"took {time.perf_counter() - began:.0f} s")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
