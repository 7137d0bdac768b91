"""Real processes sign checkpoints at once (the scheduler's timer and administrators running
`ioc audit checkpoint`) while others append to the log, on seeded timings; at the end every
published checkpoint is signed by the one key they all created together, each stored copy has
its file, and the log verifies against all of them (issue 20)."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from engine.audit import checkpoints
from engine.audit import service as audit
from engine.audit.models import AuditCheckpoint

SEED = 20
WRITER = """
import sys, time
from engine.audit import service as audit
from engine.db import Database
db = Database(sys.argv[1])
for i in range(int(sys.argv[2])):
    with db.session() as s:
        audit.record(s, "test.step", actor="can-bo", subject_type="thing", subject_id=i,
                     details={"i": i, "writer": sys.argv[3]})
    time.sleep(0.02)
db.dispose()
"""


def test_concurrent_signers_and_writers_leave_checkpoints_that_all_verify(ioc, tmp_path):
    rng = random.Random(SEED)
    folder, key = tmp_path / "checkpoints", tmp_path / "audit-key.pem"  # the key made by the race
    env = {**os.environ, "IOC_DATABASE_URL": ioc.db.url, "IOC_AUDIT_KEY_FILE": str(key),
           "IOC_AUDIT_CHECKPOINT_DIR": str(folder)}
    ioc_cli = [str(Path(sys.executable).parent / "ioc")]
    with ioc.db.session() as s:  # something to sign from the start
        audit.record(s, "test.step", actor="can-bo", subject_type="thing", subject_id="0")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, ioc.db.url, "60", str(n)], env=env)
               for n in range(2)]
    signers = []
    for _ in range(6):
        time.sleep(rng.uniform(0, 0.4))  # spread over the writers' two seconds or so
        signers.append(subprocess.Popen(ioc_cli + ["audit", "checkpoint"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in writers:
        assert process.wait(120) == 0
    outputs = [process.communicate(timeout=120) for process in signers]
    assert all(process.returncode == 0 for process in signers), outputs
    final = subprocess.run(ioc_cli + ["audit", "checkpoint"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert final.returncode == 0, final.stderr

    public = checkpoints.signing_key(key).public_key()
    kept = [c for _, c in checkpoints.kept(folder)]
    for checkpoint in kept:
        checkpoints.check(checkpoint, public)  # one key, though six processes made it at once
    with ioc.db.read() as s:
        stored = {(row.size, row.root, row.signature) for row in s.query(AuditCheckpoint)}
        result = audit.verify(s, kept)
    assert stored == {(c.size, c.root, c.signature) for c in kept}
    assert max(c.size for c in kept) == 121  # the last checkpoint signed every record
    assert (result.ok, result.checked, result.proved) == (True, 121, len(kept)), result.reason
