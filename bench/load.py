"""Benchmark: events end to end through the engine's real processes, on PostgreSQL (and Redis).

    python bench/load.py [--mode embedded|redis] [--workers N] [--web serve|gunicorn]
                         [--rate R] [--seconds S] [--drain S] [--profile DIR]
    python bench/load.py --suite [--seconds S]          (what `make bench-load` runs)

Each run gets a PostgreSQL database of its own (dropped afterwards) with the organisation, the
shipped scenarios and the demo's sources, and starts the processes of docker-compose.yml: the web
(`ioc serve`, or gunicorn in Redis mode) and, in Redis mode, N `ioc worker`s and one `ioc
scheduler`; in embedded mode `ioc serve` processes the events itself. Threads post CloudEvents
over keep-alive connections at `--rate` events/s (0: as fast as possible) for `--seconds`: the
simulator's province (integrations/simulator.generate), one simulated day after another, ids
re-stamped, so that rules match, violations open and tasks are created; each slice of `--batch`
events goes as one request per source in it, as the simulator's ticks do.

Reported: the offered rate (events accepted per second of sending), the sustained processed rate
(events processed in the sending window after a warm-up), event → task latency p50 / p99
(task.created_at − event.received_at, for tasks created while their event was processed), the
backlog (pending events) when sending stops, and the database's work per processed event
(transactions, rows inserted and updated: pg_stat_database), and where the machine's CPU went
in the whole sending window, in CPU ms per accepted event (utime + stime from /proc, sampled when
sending starts and when it stops): the web (with gunicorn's workers), the workers, the scheduler,
PostgreSQL (every server process of the machine), the load (this process, which sends), other
(the machine less those: Redis, the kernel, py-spy, anything else running) and the machine (busy
CPU of all cores from /proc/stat, idle and iowait excluded) with its busy share. While a backlog
grows, the workers processed fewer events in the window than were accepted, so their figure reads
low: compare paced runs. `--suite` runs embedded, Redis × 1 and Redis × 2 as fast as possible,
then each at half the best sustained rate. `--profile DIR` records the processing processes with
py-spy (collapsed stacks, one file per process).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from rq import Worker
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from engine import demo
from engine.audit.models import AuditRecord
from engine.auth import service as auth
from engine.db import Database
from engine.events.models import PENDING, PROCESSED, Event
from engine.tasks.models import Task
from integrations import simulator

try:  # run as `python -m bench.load` from the project root
    from bench.pipeline import percentile, setup
except ModuleNotFoundError:  # run as `python bench/load.py` (bench/ is on sys.path)
    from pipeline import percentile, setup

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/15"
BATCH = "application/cloudevents-batch+json"
# Enough events for "as fast as possible": more than the engine can take in a second.
FAST_EVENTS_PER_S = 1500
STOP_TIMEOUT_S = 20.0


# -- the database and the processes ---------------------------------------------------------------

@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `server_url`; dropped afterwards."""
    url = make_url(server_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:  # FORCE: a process left connected must not keep it
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def engine_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    """The environment of the engine's processes: this one's, with only our IOC_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    # A fresh random key: the web refuses a short or published one (engine/auth/secret_key.py).
    env.update(IOC_DATABASE_URL=database_url, IOC_SECRET_KEY=secrets.token_urlsafe(48),
               PYTHONUNBUFFERED="1")
    if redis_url:
        env["IOC_REDIS_URL"] = redis_url
    return env


def machine(postgres_url: str | None) -> str:
    """The cores, CPU model, Python and (given its URL) PostgreSQL versions the figures come
    from."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    out = f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    if postgres_url is None:
        return out
    with Database(postgres_url).read() as s:
        version = s.scalar(text("SHOW server_version")).split()[0]
    return f"{out}, PostgreSQL {version}"


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout_s: float, what: str, step_s: float = 0.1) -> None:
    """Poll `check()` until it is true; RuntimeError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:g} s")
        time.sleep(step_s)


def answers(url: str) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Stack:
    """The engine's processes of one run, each logging to its own file; stopped together."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Start `argv` (its program from this virtualenv) from the project root."""
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=self.env,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        """RuntimeError (with the end of its log) if a process has ended."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM every process, then SIGKILL what has not exited in time."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def web_command(web: str, port: int) -> list[str]:
    """The web process: `ioc serve` (waitress, 8 threads) or gunicorn (2 processes × 4 threads,
    as in docker-compose.yml)."""
    if web == "serve":
        return ["ioc", "serve", "--port", str(port), "--threads", "8"]
    return ["gunicorn", "--workers", "2", "--threads", "4", "--no-control-socket",
            "--bind", f"127.0.0.1:{port}", "engine.app:create_app()"]


def start_stack(stack: Stack, run: "Run", port: int, queue: redis.Redis | None) -> None:
    """Start the web (and the workers and the scheduler) and wait until they are ready."""
    stack.start("web", web_command(run.web, port))
    if run.mode == "redis":
        for i in range(run.workers):
            stack.start(f"worker-{i + 1}", ["ioc", "worker", "--name", f"bench-{i + 1}"])
        stack.start("scheduler", ["ioc", "scheduler"])

    def ready() -> bool:
        stack.check()
        if not answers(f"http://127.0.0.1:{port}/readyz"):
            return False
        return queue is None or Worker.count(queue) == run.workers

    wait_until(ready, 120, "the engine's processes to be ready")


def prepare(url: str) -> dict[str, str]:
    """Schema, organisation, shipped scenarios (bench/pipeline.setup) and the demo's sources;
    return {source name: API token}."""
    ioc, _ = setup(url)
    tokens = {}
    with ioc.db.session() as s:
        for name, types in demo.SOURCES:
            _, tokens[name] = auth.create_source(s, name, types, actor="bench")
    ioc.db.dispose()
    return tokens


# -- the load -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """One request: the source's token, the JSON body, its events, and how many came before."""

    token: str
    body: bytes
    count: int
    offset: int


def province(tokens: dict[str, str], events: int, size: int, seed: int = 2025) -> list[Batch]:
    """`events` events of the simulated province, one day after another from the next working
    morning, ids re-stamped so that none repeats. Like the simulator's ticks, each slice of
    `size` consecutive events becomes one request per source in it: a source's events are not
    held back to fill a batch (50 tickets at once would be a burst no province sends)."""
    start = simulator.parse_start("auto")
    out: list[Batch] = []
    stream: list[simulator.Planned] = []
    day = 0
    while len(stream) < events:
        stream += simulator.generate(seed + day, start + timedelta(days=day), 24)
        day += 1
    offset = 0
    for first in range(0, events, size):
        groups: dict[str, list[dict]] = {}
        for n, planned in enumerate(stream[first:min(events, first + size)], start=first):
            groups.setdefault(planned.source, []).append(
                {**planned.event, "id": f"{planned.event['id']}~{n}"})
        for name, group in groups.items():
            out.append(Batch(tokens[name], json.dumps(group, ensure_ascii=False).encode(),
                             len(group), offset))
            offset += len(group)
    return out


@dataclass
class Sent:
    """What the generator did: events accepted, requests failed, request durations."""

    accepted: int = 0
    failed: int = 0
    seconds: float = 0.0
    request_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def send(port: int, batches: list[Batch], rate: float, seconds: float, connections: int) -> Sent:
    """Post the batches over `connections` keep-alive connections, batch i due at
    offset / rate seconds (all at once when rate is 0), until `seconds` have passed."""
    sent, lock = Sent(), threading.Lock()
    cursor = iter(range(len(batches)))
    start = time.perf_counter()
    deadline = start + seconds

    def post_loop() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                break
            batch = batches[i]
            due = start + batch.offset / rate if rate else start
            if due >= deadline or time.perf_counter() >= deadline:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/events", batch.body, {
                    "Content-Type": BATCH, "Authorization": f"Bearer {batch.token}"})
                resp = conn.getresponse()
                answer = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()  # reconnect on the next request
                with lock:
                    sent.failed += 1
                    sent.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                sent.request_ms.append(elapsed)
                if resp.status == 202:
                    sent.accepted += json.loads(answer)["accepted"]
                else:
                    sent.failed += 1
                    sent.errors.append(f"HTTP {resp.status}: {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=post_loop) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent.seconds = time.perf_counter() - start
    return sent


# -- the CPU --------------------------------------------------------------------------------------

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
CPU_GROUPS = ("web", "workers", "scheduler", "postgres", "load")


@dataclass(frozen=True)
class Proc:
    """One process at a sample: its parent, CPU ticks of its own and of its reaped children."""

    ppid: int
    own: int
    reaped: int
    postgres: bool


def read_proc(pid: int) -> Proc | None:
    """The process `pid` from /proc/<pid>/stat; None if it has gone meanwhile."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces or ")": split after the last one.
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is proc(5)'s field 3, state
    return Proc(int(fields[1]), int(fields[11]) + int(fields[12]),
                int(fields[13]) + int(fields[14]), is_postgres(comm, argv))


def is_postgres(comm: str, argv0: bytes) -> bool:
    """True for a PostgreSQL server process: the postmaster, a backend, a background worker."""
    # A backend rewrites its command line to "postgres: 15/main: user db …"; its comm stays.
    program = argv0.decode(errors="replace").split(":", 1)[0]
    return comm == "postgres" or Path(program).name == "postgres"


def processes() -> dict[int, Proc]:
    """Every process of the machine now, by pid."""
    procs = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            procs[int(entry.name)] = proc
    return procs


def descendants(procs: dict[int, Proc], roots: set[int]) -> set[int]:
    """`roots` and their live descendants among `procs`."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    out, todo = set(), [pid for pid in roots if pid in procs]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo += children.get(pid, [])
    return out


def machine_ticks() -> dict[str, int]:
    """The machine's CPU ticks since boot, all cores (/proc/stat): busy, steal, all; and cores."""
    lines = Path("/proc/stat").read_text().splitlines()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in lines[0].split()[1:9])
    # guest and guest_nice (fields 9 and 10) are counted in user and nice already.
    busy = user + nice + system + irq + softirq + steal
    return {"machine": busy, "steal": steal, "all": busy + idle + iowait,
            "cores": sum(line.startswith("cpu") for line in lines[1:])}


def cpu_sample(stack: Stack) -> dict[str, int | None]:
    """CPU ticks used so far by each group of processes (None: none in this run), and the
    machine's."""
    procs = processes()
    roots: dict[str, set[int]] = {"web": set(), "workers": set(), "scheduler": set()}
    for name, proc in stack.procs.items():
        roots["workers" if name.startswith("worker") else name].add(proc.pid)
    # Own ticks plus those of reaped children: a child that exits in the window (a gunicorn
    # worker, a PostgreSQL backend or autovacuum worker, reaped by the postmaster) moves its
    # ticks into its parent's, so they are neither lost nor counted twice. What remains is the
    # small error of processes that start, exit or are reaped while /proc is being read.
    sample: dict[str, int | None] = {
        group: sum(procs[p].own + procs[p].reaped for p in descendants(procs, pids))
        if pids else None for group, pids in roots.items()}
    sample["postgres"] = sum(p.own + p.reaped for p in procs.values() if p.postgres)
    # This process alone: its children are the engine's processes (and py-spy).
    sample["load"] = procs[os.getpid()].own
    return sample | machine_ticks()


def cpu_per_event(before: dict, after: dict, accepted: int) -> dict[str, float | None]:
    """CPU ms per accepted event of each group and of the machine between two samples, the
    machine's cores and its busy share (%)."""
    ms = 1000 / TICKS_PER_S / max(1, accepted)
    out: dict[str, float | None] = {
        key: None if before[key] is None else (after[key] - before[key]) * ms
        for key in (*CPU_GROUPS, "machine", "steal")}
    out["cores"] = after["cores"]
    out["busy_pct"] = 100 * (after["machine"] - before["machine"]) / max(
        1, after["all"] - before["all"])
    return out


# -- the figures ----------------------------------------------------------------------------------

def pg_work(db: Database) -> dict[str, int]:
    """This database's counters: transactions committed, rows inserted, updated, deleted."""
    with db.engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = conn.execute(text(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
            "WHERE datname = current_database()")).one()
    return dict(zip(("commits", "inserted", "updated", "deleted"), row))


def counts(db: Database) -> dict[str, int]:
    """Events per status."""
    with db.read() as s:
        return dict(s.execute(select(Event.status, func.count()).group_by(Event.status)).all())


def processed_between(db: Database, start: datetime, end: datetime) -> int:
    """Events processed in [start, end)."""
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(Event).where(
            Event.status == PROCESSED, Event.processed_at >= start, Event.processed_at < end))


def task_latencies_ms(db: Database) -> list[float]:
    """task.created_at − event.received_at for each instance's first task, where the task was
    created while its triggering event (the newest of its match) was processed — not later by a
    timer (absence, silence), whose delay is the rule's, not the engine's."""
    with db.read() as s:
        first_task = dict(s.execute(select(Task.instance_id, func.min(Task.created_at))
                                    .group_by(Task.instance_id)).all())
        trigger = {}
        for instance_id, details in s.execute(select(AuditRecord.instance_id, AuditRecord.details)
                                              .where(AuditRecord.action == "instance.started")):
            if instance_id in first_task and details.get("event_ids"):
                trigger[instance_id] = max(details["event_ids"])
        times = {eid: (got, done) for eid, got, done in s.execute(
            select(Event.id, Event.received_at, Event.processed_at)
            .where(Event.id.in_(set(trigger.values()))))} if trigger else {}
    out = []
    for instance_id, event_id in trigger.items():
        got, done = times[event_id]
        made = first_task[instance_id]
        if done is not None and made <= done:
            out.append((made - got).total_seconds() * 1000)
    return out


@dataclass(frozen=True)
class Run:
    """One configuration to measure."""

    mode: str  # embedded | redis
    workers: int
    web: str  # serve | gunicorn
    rate: float
    seconds: float
    drain: float

    @property
    def label(self) -> str:
        """E.g. "redis ×2 (gunicorn)"."""
        return "embedded (serve)" if self.mode == "embedded" else \
            f"redis ×{self.workers} ({self.web})"


def measure(run: Run, postgres: str, redis_url: str, connections: int, size: int,
            profile: Path | None = None) -> dict:
    """One run on a database of its own; return its figures."""
    wanted = int((run.rate or FAST_EVENTS_PER_S) * run.seconds) + size
    with scratch_database(postgres, "ioc_bench") as url, \
            tempfile.TemporaryDirectory(prefix="ioc-load-") as logs:
        tokens = prepare(url)
        batches = province(tokens, wanted, size)
        queue = redis.Redis.from_url(redis_url) if run.mode == "redis" else None
        if queue is not None:
            queue.flushdb()
        stack = Stack(engine_env(url, redis_url if queue is not None else None), Path(logs))
        db = Database(url)
        port = free_port()
        try:
            start_stack(stack, run, port, queue)
            spies = spy(stack, profile, run) if profile else []
            before, began = pg_work(db), datetime.now(timezone.utc)
            cpu_before = cpu_sample(stack)
            sent = send(port, batches, run.rate, run.seconds, connections)
            cpu = cpu_per_event(cpu_before, cpu_sample(stack), sent.accepted)
            ended = datetime.now(timezone.utc)
            backlog = counts(db).get(PENDING, 0)
            drained = None
            if run.drain:
                t0 = time.monotonic()
                try:
                    wait_until(lambda: counts(db).get(PENDING, 0) == 0, run.drain, "drain", 0.25)
                    drained = time.monotonic() - t0
                except RuntimeError:
                    drained = None
            for proc in spies:
                proc.wait()
            stack.check()
            after = pg_work(db)
            warm = began + timedelta(seconds=min(5.0, run.seconds / 5))
            processed = processed_between(db, warm, ended)
            final = counts(db)
            latencies = task_latencies_ms(db)
        finally:
            stack.stop()
            db.dispose()
            if queue is not None:
                queue.flushdb()
                queue.close()
    # Per event only once everything sent was processed: ingestion and processing both counted.
    work = ({k: (after[k] - before[k]) / max(1, sent.accepted) for k in before}
            if not final.get(PENDING) else None)
    return {"run": run, "sent": sent, "offered": sent.accepted / sent.seconds,
            "processed_per_s": processed / (ended - warm).total_seconds(),
            "backlog": backlog, "drained_s": drained, "final": final,
            "p50": percentile(latencies, 50) if latencies else float("nan"),
            "p99": percentile(latencies, 99) if latencies else float("nan"),
            "tasks": len(latencies), "work": work, "cpu": cpu}


def spy(stack: Stack, folder: Path, run: Run) -> list[subprocess.Popen]:
    """py-spy records the processing processes for the run's seconds (collapsed stacks)."""
    tool = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(tool).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    names = [n for n in stack.procs if n.startswith(("worker", "scheduler"))] or ["web"]
    if run.mode == "redis":
        names.append("web")
    tag = run.label.replace(" ", "").replace("×", "x").replace("(", "-").replace(")", "")
    return [subprocess.Popen([tool, "record", "--format", "raw", "--subprocesses", "--nonblocking",
                              "--duration", str(int(run.seconds)), "--rate", "200",
                              "--output", str(folder / f"{tag}-{name}.txt"),
                              "--pid", str(stack.procs[name].pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name in names]


# -- the report -----------------------------------------------------------------------------------

HEADER = ("run", "offered", "accepted/s", "processed/s", "backlog at end",
          "event → task p50 / p99", "tasks", "ingest request p50 / p99",
          "commits / rows ins / upd per event")


def row(r: dict) -> tuple[str, ...]:
    """The table row of one run's figures."""
    run, sent = r["run"], r["sent"]
    drained = ("" if not run.drain else f" (drained in {r['drained_s']:.1f} s)"
               if r["drained_s"] is not None else " (not drained)")
    req = sent.request_ms
    w = r["work"]
    return (run.label, "as fast as possible" if not run.rate else f"{run.rate:.0f}/s",
            f"{r['offered']:.0f}", f"{r['processed_per_s']:.0f}",
            f"{r['backlog']:,}{drained}",
            f"{r['p50']:.0f} / {r['p99']:.0f} ms", f"{r['tasks']:,}",
            f"{percentile(req, 50):.0f} / {percentile(req, 99):.0f} ms" if req else "-",
            f"{w['commits']:.1f} / {w['inserted']:.1f} / {w['updated']:.1f}" if w else "-")


CPU_HEADER = ("run", "web", "workers", "scheduler", "postgres", "load", "other", "machine",
              "machine busy")


def cpu_row(r: dict) -> tuple[str, ...]:
    """The CPU table row of one run: ms per accepted event, "-" for a group the run has not."""
    cpu = r["cpu"]
    other = cpu["machine"] - sum(cpu[g] or 0.0 for g in CPU_GROUPS)
    return (r["run"].label, *("-" if cpu[g] is None else f"{cpu[g]:.2f}" for g in CPU_GROUPS),
            f"{other:.2f}", f"{cpu['machine']:.2f}",
            f"{cpu['cores']} cores {cpu['busy_pct']:.0f} % busy")


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A Markdown table, columns padded to their widest cell."""
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, cells in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def print_runs(results: list[dict]) -> None:
    """The runs as Markdown tables (ready to quote in the README): the figures, then the CPU."""
    print_table(HEADER, [row(r) for r in results])
    print()
    print("CPU ms per accepted event over the sending window (other: the machine less the groups)")
    print()
    print_table(CPU_HEADER, [cpu_row(r) for r in results])
    for r in results:
        failed = r["final"].get("failed", 0)
        if r["sent"].failed or failed:
            print(f"{r['run'].label}: {r['sent'].failed} requests failed "
                  f"({'; '.join(r['sent'].errors[:3])}), {failed} events failed")


def main() -> None:
    """Parse the options, run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "redis"), default="redis")
    parser.add_argument("--workers", type=int, default=1,
                        help="rq workers (Redis mode; 0 measures ingestion alone)")
    parser.add_argument("--web", choices=("serve", "gunicorn"), default="serve",
                        help="the web process in Redis mode (embedded mode is `ioc serve`); "
                             "measured: gunicorn is not faster here")
    parser.add_argument("--rate", type=float, default=0,
                        help="events per second to offer (default 0: as fast as possible)")
    parser.add_argument("--seconds", type=float, default=30, help="how long to send")
    parser.add_argument("--drain", type=float, default=None,
                        help="seconds to wait for the backlog afterwards (default: 60 when "
                             "paced, 0 when as fast as possible)")
    parser.add_argument("--batch", type=int, default=50, help="events per request")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--postgres", default=POSTGRES,
                        help="a URL of the PostgreSQL server (a database is made per run)")
    parser.add_argument("--redis", default=REDIS, help="the Redis database to use (flushed)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the workers (or the embedded server) with py-spy here")
    parser.add_argument("--suite", action="store_true",
                        help="embedded, redis ×1 and ×2 as fast as possible, then each at half "
                             "the best sustained rate")
    args = parser.parse_args()

    def make(mode: str, workers: int, rate: float) -> Run:
        drain = args.drain if args.drain is not None else (60.0 if rate else 0.0)
        return Run(mode, workers, "serve" if mode == "embedded" else args.web, rate,
                   args.seconds, drain)

    def go(run: Run) -> dict:
        print(f"… {run.label}, {'as fast as possible' if not run.rate else f'{run.rate:.0f}/s'}"
              f" for {run.seconds:g} s", flush=True)
        return measure(run, args.postgres, args.redis, args.connections, args.batch,
                       args.profile)

    print(f"machine: {machine(args.postgres)}, batches of {args.batch} over {args.connections} "
          "connections")
    if args.suite:
        shapes = [("embedded", 1), ("redis", 1), ("redis", 2)]
        results = [go(make(mode, n, 0)) for mode, n in shapes]
        half = max(r["processed_per_s"] for r in results) / 2
        results += [go(make(mode, n, round(half))) for mode, n in shapes]
    else:
        results = [go(make(args.mode, args.workers, args.rate))]
    print()
    print_runs(results)


if __name__ == "__main__":
    main()
