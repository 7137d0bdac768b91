"""A child process that checks one stretch of the audit log for `verify` (python -m
engine.audit.range_child LO HI LAST HEIGHT, the database URL in IOC_AUDIT_RANGE_DATABASE_URL): its verdict as one JSON line on stdout, then the
stretch's leaf hashes (32 bytes each), then its blocks' subtree roots. A process of its own, not a multiprocessing worker, so
that no caller's __main__ is imported again."""
from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Check records LO..HI; write the result to stdout."""
    import os

    from engine.audit import service as audit
    from engine.db import Database

    lo, hi, last, height = int(argv[0]), int(argv[1]), argv[2] == "1", int(argv[3])
    db = Database(os.environ[audit.RANGE_URL])
    try:
        with db.read() as s:
            found = audit._check_range(s, lo, hi, last, height)
    finally:
        db.dispose()
    head = {"first": found.first, "count": found.count, "first_prev": found.first_prev,
            "last_hash": found.last_hash, "broken": found.broken, "height": height}
    sys.stdout.buffer.write(json.dumps(head).encode() + b"\n" + found.leaves + found.blocks)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
