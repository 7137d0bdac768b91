"""Benchmark: the audit log that proves itself (engine/audit), on PostgreSQL.

    python bench/audit_log.py [--database URL] [--records 1000000] [--added 10000]

`--records` audit records (details like a task completion's) are written with their real chain
hashes, then:

1. A checkpoint is signed from scratch (every record hashed into the Merkle tree).
2. `--added` more records, and the next checkpoint: only the new records are hashed (the
   frontier of the last one is kept).
3. `ioc audit verify`'s work: the chain and the tree recomputed from every record and proved
   against both signed checkpoints (the target: 1,000,000 records in under 10 s).
4. An inclusion proof of one record: building it (reads the leaves) and checking it offline
   (log2 n hashes), and its size.

The database of `--database` (default: $IOC_BENCH_POSTGRES_URL, or the local server's `test`) has
its public schema dropped and made again.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select

from engine import migrate
from engine.audit import checkpoints, merkle
from engine.audit import service as audit
from engine.audit.models import AuditRecord, canonical
from engine.clock import SYSTEM_CLOCK
from engine.config import Settings
from engine.db import Database
from engine.services import Services

try:  # run as `python -m bench.audit_log` from the project root
    from bench.load import machine
    from bench.pipeline import fresh_database
except ModuleNotFoundError:  # run as `python bench/audit_log.py` (bench/ is on sys.path)
    from load import machine
    from pipeline import fresh_database

DATABASE = os.environ.get("IOC_BENCH_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SLICE = 20_000


def write_records(db: Database, first: int, count: int, prev: str) -> str:
    """`count` records from seq `first` on, chained after `prev` (with their leaves, as the engine
    writes them); returns the last hash."""
    start = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)
    with db.engine.begin() as conn:
        for base in range(first, first + count, SLICE):
            rows = []
            for seq in range(base, min(base + SLICE, first + count)):
                at = start + timedelta(seconds=seq * 30)
                details = {"task": f"tham_dinh_{seq % 7}", "answers": {"outcome": "approved",
                           "note": "Hồ sơ đầy đủ, đủ điều kiện"}, "department":
                           "trung-tam-phvhcc"}
                fields = (seq, at, f"user:can-bo-{seq % 40}", "task.completed", "task",
                          str(seq), seq // 5, canonical(details), prev)
                digest, leaf = audit._hashes(*fields)
                rows.append({"seq": seq, "at": at, "actor": fields[2], "action": fields[3],
                             "subject_type": "task", "subject_id": str(seq),
                             "instance_id": seq // 5, "details": details, "prev_hash": prev,
                             "hash": digest, "leaf": leaf.hex()})
                prev = digest
            conn.execute(insert(audit.RECORDS), rows)
        conn.execute(audit.HEAD.delete())
        conn.execute(insert(audit.HEAD).values(id=1, seq=first + count - 1, hash=prev))
    return prev


def timed(run):
    """(result, seconds)."""
    began = time.perf_counter()
    out = run()
    return out, time.perf_counter() - began


def main() -> None:
    """Write the log, then sign, verify and prove; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--added", type=int, default=10_000)
    args = parser.parse_args()
    fresh_database(args.database)
    migrate.upgrade(args.database)
    folder = Path(tempfile.mkdtemp(prefix="ioc-bench-audit-"))
    ioc = Services(Settings(database_url=args.database, audit_key_file=str(folder / "key.pem"),
                            checkpoint_dir=str(folder / "checkpoints")), clock=SYSTEM_CLOCK)
    print(f"machine: {machine(args.database)}")
    last, seconds = timed(lambda: write_records(ioc.db, 1, args.records, audit.GENESIS))
    print(f"wrote {args.records:,} records in {seconds:.1f} s")

    def sign():
        with ioc.db.session() as s:
            return ioc.publisher.checkpoint(s)
    first, seconds = timed(sign)
    print(f"1. checkpoint from scratch ({first.size:,} records): {seconds:.2f} s")
    write_records(ioc.db, args.records + 1, args.added, last)
    second, seconds = timed(sign)
    print(f"2. next checkpoint after {args.added:,} more records: {seconds:.2f} s")
    kept = [c for _, c in checkpoints.kept(ioc.settings.checkpoint_path)]
    public = checkpoints.signing_key(ioc.settings.audit_key_path).public_key()
    for checkpoint in kept:
        checkpoints.check(checkpoint, public)

    def verify():
        with ioc.db.read() as s:
            return audit.verify(s, kept)
    result, seconds = timed(verify)
    assert result.ok and result.proved == 2, result
    print(f"3. verify: {result.checked:,} records, chain and tree, proved against "
          f"{result.proved} checkpoints: {seconds:.2f} s "
          f"({result.checked / seconds:,.0f} records/s)")
    seq = args.records // 3

    def prove():
        with ioc.db.read() as s:
            return audit.inclusion(s, seq, second.size)
    path, seconds = timed(prove)
    with ioc.db.read() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).one()
        leaf = audit.leaf(record)
    began = time.perf_counter()
    for _ in range(1000):
        head = merkle.root_from_inclusion(leaf, seq - 1, second.size, path)
    checking = (time.perf_counter() - began) / 1000
    assert head.hex() == second.root
    print(f"4. inclusion proof of record {seq:,} in {second.size:,}: built in {seconds:.2f} s, "
          f"{len(path)} hashes ({len(path) * 32} bytes), checked offline in "
          f"{checking * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
