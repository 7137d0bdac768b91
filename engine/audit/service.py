"""Append to the audit chain (inside the caller's transaction) and verify it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Text, event, func, insert, select, type_coerce, update
from sqlalchemy.orm import Session

from engine.audit import checkpoints, merkle
from engine.audit.checkpoints import Checkpoint
from engine.audit.models import AuditHead, AuditRecord, canonical
from engine.db import utcnow

GENESIS = "0" * 64
RECORDS, HEAD = AuditRecord.__table__, AuditHead.__table__


_HEAD = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _body(seq: int, at: datetime | str, actor: str, action: str, subject_type: str,
          subject_id: str, instance_id: int | None, details: str, prev_hash: str) -> bytes:
    """A record's canonical bytes, hashed into the chain and, as a leaf, into the Merkle tree:
    the JSON array of its fields with `details` as its stored canonical text (`at` in UTC, as a
    datetime or already as that text)."""
    # In UTC whatever the database session's time zone: PostgreSQL returns timestamptz in it.
    moment = at if isinstance(at, str) else \
        at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    # The same bytes as json.dumps of the whole array (sorted keys, no spaces), which is how
    # records were hashed before details were stored as text; without parsing the details.
    head = _HEAD([seq, moment, actor, action, subject_type, subject_id, instance_id])
    # prev_hash is a hash (hex digits): nothing in it to escape.
    return f'{head[:-1]},{details},"{prev_hash}"]'.encode("utf-8")


def _hashes(*fields) -> tuple[str, bytes]:
    """A record's chain hash (hex) and Merkle leaf hash, both from its canonical bytes (fields
    in _body's order, details as canonical text)."""
    body = _body(*fields)
    return hashlib.sha256(body).hexdigest(), merkle.leaf_hash(body)


def hashes_of(record: dict) -> tuple[str, bytes]:
    """The chain hash and leaf hash of a record as to_dict gives it (an evidence bundle's
    copy)."""
    return _hashes(record["seq"], datetime.fromisoformat(record["at"]), record["actor"],
                   record["action"], record["subject_type"], record["subject_id"],
                   record["instance_id"], canonical(record["details"]), record["prev_hash"])


# The columns of a record in _body's order, then its hash: read with Core, streamed.
_COLUMNS = (RECORDS.c.seq, RECORDS.c.at, RECORDS.c.actor, RECORDS.c.action, RECORDS.c.subject_type,
            RECORDS.c.subject_id, RECORDS.c.instance_id,
            # The stored canonical text, hashed as it is (not parsed into a dict).
            type_coerce(RECORDS.c.details, Text), RECORDS.c.prev_hash,
            RECORDS.c.hash)
# On PostgreSQL the moment is read as _body's text, formatted by the server (a tenth of what
# converting a timestamptz and formatting it in Python costs a record).
_MOMENT = func.to_char(func.timezone("UTC", RECORDS.c.at),
                       'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"').label("at")


def _columns(session: Session) -> tuple:
    """_COLUMNS as read fastest from this session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return _COLUMNS[:1] + (_MOMENT,) + _COLUMNS[2:]
    return _COLUMNS


def _between(query, after: int, upto: int | None):
    """`query` over the records after seq `after` (up to `upto`), in order."""
    query = query.where(RECORDS.c.seq > after)
    if upto is not None:
        query = query.where(RECORDS.c.seq <= upto)
    return query.order_by(RECORDS.c.seq)


def _rows(session: Session, after: int = 0, upto: int | None = None):
    """The records after seq `after` (up to `upto`) in order, as tuples of _COLUMNS."""
    return session.execute(_between(select(*_columns(session)), after, upto)
                           .execution_options(yield_per=5000))


def _leaves(session: Session, after: int = 0, upto: int | None = None) -> list[bytes]:
    """The leaf hashes of the records after seq `after` (up to `upto`), in order: as stored,
    else (records written before leaves were stored) computed from their contents."""
    rows = session.execute(_between(select(RECORDS.c.seq, RECORDS.c.leaf), after, upto)
                           .execution_options(yield_per=20000))
    out, missing = [], []
    for seq, stored in rows:
        if stored is None:
            missing.append((len(out), seq))
        out.append(bytes.fromhex(stored) if stored else b"")
    if missing:
        computed = {row[0]: leaf(row) for row in _rows(session, after=missing[0][1] - 1,
                                                       upto=missing[-1][1])}
        for index, seq in missing:
            out[index] = computed[seq]
    return out


def leaf(row) -> bytes:
    """The Merkle leaf hash of a record (a row of _COLUMNS, or an AuditRecord)."""
    if isinstance(row, AuditRecord):
        row = (row.seq, row.at, row.actor, row.action, row.subject_type, row.subject_id,
               row.instance_id, canonical(row.details), row.prev_hash)
    return _hashes(*row[:9])[1]


def _head(session: Session) -> tuple[int, str]:
    """The chain's last (seq, hash), its row locked until the transaction ends."""
    # FOR UPDATE makes concurrent writers on PostgreSQL take turns; SQLite already has one writer.
    locked = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()
    head = session.execute(locked).first()
    if head is None:
        session.execute(insert(HEAD).values(id=1, seq=0, hash=GENESIS))
        head = session.execute(locked).first()
    return head.seq, head.hash


_PENDING = "ioc.audit_pending"


def record(session: Session, action: str, *, actor: str, subject_type: str, subject_id: object,
           instance_id: int | None = None, details: dict | None = None,
           at: datetime | None = None) -> None:
    """Append one record to the chain when the caller's transaction commits (with it, or not at
    all: records made in a savepoint that rolls back are dropped with it)."""
    entry = {"at": at or utcnow(), "actor": actor, "action": action,
             "subject_type": subject_type, "subject_id": str(subject_id),
             "instance_id": instance_id,
             "details": json.loads(json.dumps(details or {}, ensure_ascii=False, default=str))}
    # The savepoint or transaction the record belongs to (a session begins lazily: begin it now).
    scope = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_PENDING, []).append((scope, entry))


def _within(scope, transaction) -> bool:
    """True when `scope` is `transaction` or a savepoint inside it."""
    while scope is not None:
        if scope is transaction:
            return True
        scope = scope.parent
    return False


def _drop_within(session: Session, transaction) -> None:
    pending = session.info.get(_PENDING)
    if pending:
        session.info[_PENDING] = [(scope, entry) for scope, entry in pending
                                  if not _within(scope, transaction)]


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    # A real rollback, of a savepoint or of the whole transaction, just happened in the
    # database: the innermost savepoint still open is the one rolled back (else the root). A
    # savepoint whose flush failed is rolled back here, by the flush, and later merely closed by
    # its `with` block, which sends no "soft rollback": listening for that alone kept the
    # records of failed steps (seen as steps after `instance.ended`).
    rolled_back = session.get_nested_transaction()
    if rolled_back is None:
        session.info.pop(_PENDING, None)
    else:
        _drop_within(session, rolled_back)


@event.listens_for(Session, "after_soft_rollback")
def _drop_soft_rolled_back(session: Session, previous_transaction) -> None:
    _drop_within(session, previous_transaction)


@event.listens_for(Session, "before_commit")
def _chain(session: Session) -> None:
    # The chain is extended at commit, so its head row is locked for the few milliseconds of the
    # commit instead of a whole batch: concurrent workers and ingestion no longer take turns for
    # their whole transactions (measured: the head lock was the bottleneck with two workers).
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: its records wait for the outermost commit
    root = session.get_transaction()
    pending = [entry for scope, entry in session.info.pop(_PENDING, []) if _within(scope, root)]
    if not pending:
        return
    session.flush()  # the step's own rows first: the head is locked from here to the commit
    seq, prev = _head(session)
    rows = []
    for entry in pending:
        seq += 1
        digest, leaf_hash = _hashes(seq, entry["at"], entry["actor"], entry["action"],
                                    entry["subject_type"], entry["subject_id"],
                                    entry["instance_id"], canonical(entry["details"]), prev)
        # The Merkle leaf too, so that proofs and checkpoints read 64 characters a record
        # (verify recomputes it from the contents all the same).
        rows.append({**entry, "seq": seq, "prev_hash": prev, "hash": digest,
                     "leaf": leaf_hash.hex()})
        prev = digest
    # Core statements, not ORM objects: nothing reads the records back in this transaction, and
    # the head stays locked for less time.
    session.execute(insert(RECORDS), rows)
    session.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=seq, hash=prev))


@dataclass(frozen=True)
class Verification:
    """The result of checking the log: how many records were checked, the first broken one, the
    tree head, and how many signed checkpoints the records were proved against."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""
    root: str = ""
    proved: int = 0


class _Checkpoints:
    """The kept checkpoints, smallest first, compared with the tree as it grows."""

    def __init__(self, checkpoints: Sequence[Checkpoint]):
        self.todo = sorted(checkpoints, key=lambda c: c.size)
        self.matched: Checkpoint | None = None
        self.proved = 0

    def at(self, frontier: merkle.Frontier) -> str | None:
        """Why the tree of this size is not the one a checkpoint of that size signed, if so."""
        while self.todo and self.todo[0].size == frontier.size:
            checkpoint = self.todo.pop(0)
            if frontier.root().hex() != checkpoint.root:
                since = self.matched.size if self.matched else 0
                return (f"records {since + 1}–{checkpoint.size} are not the ones the checkpoint "
                        f"of {checkpoint.time} signed (size {checkpoint.size}): one of them was "
                        "changed, removed or inserted after it was signed, and the chain "
                        "re-hashed to hide it")
            self.matched, self.proved = checkpoint, self.proved + 1
        return None

    def within(self, lo: int, hi: int) -> bool:
        """Whether a checkpoint still to compare signed a size strictly between lo and hi."""
        return any(lo < checkpoint.size < hi for checkpoint in self.todo)

    def beyond(self, size: int) -> str | None:
        """Why the log is shorter than a checkpoint says it was, if it is."""
        if not self.todo:
            return None
        checkpoint = self.todo[0]
        if size == 0:
            return (f"the log is empty, but the checkpoint of {checkpoint.time} signed "
                    f"{checkpoint.size} records: every record was deleted")
        return (f"the log holds {size} records, but the checkpoint of {checkpoint.time} signed "
                f"{checkpoint.size}: records {size + 1}–{checkpoint.size} were removed")


# Stretches checked in parallel start on a multiple of 2**BLOCK_HEIGHT records, and each hashes
# its whole blocks of that many leaves into their subtree roots: the process joining them then
# hashes one node per block instead of one per record.
BLOCK_HEIGHT = 14


@dataclass(frozen=True)
class _Range:
    """What checking one stretch of the log found: its records' leaf hashes up to the first
    broken one (and the subtree roots of its whole blocks of 2**height leaves, when it starts on
    one), the hashes at its two ends, and that break (seq, reason) if any."""

    first: int
    count: int
    first_prev: str | None
    last_hash: str | None
    leaves: bytes
    broken: tuple[int, str] | None
    height: int = BLOCK_HEIGHT
    blocks: bytes = b""

    def leaf(self, i: int) -> bytes:
        """The leaf hash of the stretch's i-th record."""
        return self.leaves[32 * i:32 * i + 32]

    def block(self, i: int) -> bytes | None:
        """The subtree root of the block that begins with the stretch's i-th record, if any."""
        n, rest = divmod(i, 1 << self.height)
        return None if rest else self.blocks[32 * n:32 * n + 32] or None


def _block_roots(first: int, leaves: bytes, height: int) -> bytes:
    """The subtree roots of the whole blocks of 2**height leaves (32 bytes each) of a stretch
    beginning at record `first`; none unless it begins on a block."""
    if (first - 1) % (1 << height):
        return b""
    size, roots = 32 << height, bytearray()
    for start in range(0, len(leaves) - size + 1, size):
        roots += merkle.root(leaves[j:j + 32] for j in range(start, start + size, 32))
    return bytes(roots)


def _check_range(session: Session, lo: int, hi: int | None, last: bool,
                 height: int = BLOCK_HEIGHT) -> _Range:
    """Records lo..hi: each present, following the one before, its hash its contents'."""
    expected, prev, first_prev, leaves = lo, None, None, bytearray()

    def done(broken: tuple[int, str] | None = None) -> _Range:
        return _Range(lo, expected - lo, first_prev, prev, bytes(leaves), broken, height,
                      _block_roots(lo, leaves, height))

    def cut(seq: int, reason: str) -> _Range:
        return done((seq, reason))
    for row in _rows(session, after=lo - 1, upto=hi):
        seq = row[0]
        if seq != expected:
            return cut(expected, f"record {expected} is missing (next found is {seq})")
        if prev is None:
            first_prev = row[8]
        elif row[8] != prev:
            return cut(seq, f"record {seq} does not follow record {seq - 1}")
        digest, leaf_hash = _hashes(*row[:9])
        if digest != row[9]:
            return cut(seq, f"record {seq} ({row[3]}) was altered")
        leaves += leaf_hash
        prev, expected = row[9], expected + 1
    if not last and hi is not None and expected <= hi:
        found = session.scalar(select(func.min(RECORDS.c.seq)).where(RECORDS.c.seq > expected))
        return cut(expected, f"record {expected} is missing (next found is {found})")
    return done()


def _range_in_child(url: str, lo: int, hi: int, last: bool, height: int) -> subprocess.Popen:
    """Start checking records lo..hi in a child process (engine/audit/range_child.py); the
    database URL goes in its environment, which other users cannot read (argv they can)."""
    return subprocess.Popen([sys.executable, "-m", "engine.audit.range_child", str(lo),
                             str(hi), "1" if last else "0", str(height)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, RANGE_URL: url})


def _range_of(child: subprocess.Popen) -> _Range:
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"checking a stretch of the audit log failed (exit {child.returncode})")
    head, _, hashes = out.partition(b"\n")
    found = json.loads(head)
    broken = tuple(found["broken"]) if found["broken"] else None
    count = found["count"]
    return _Range(found["first"], count, found["first_prev"], found["last_hash"],
                  hashes[:32 * count], broken, found["height"], hashes[32 * count:])


RANGE_URL = "IOC_AUDIT_RANGE_DATABASE_URL"
# Below this many records one process checks the log; above, one per core on PostgreSQL (the
# chain and the leaves need every record re-serialised: measured ~20 µs a record).
PARALLEL_FROM = 200_000


def _ranges(session: Session, processes: int | None, height: int) -> list[_Range]:
    last_seq = session.scalar(select(func.max(RECORDS.c.seq))) or 0
    bind = session.get_bind()
    processes = processes or os.cpu_count() or 1
    if last_seq < PARALLEL_FROM or processes < 2 or bind.dialect.name != "postgresql":
        return [_check_range(session, 1, None, True, height)]
    block = 1 << height
    step = -(-last_seq // processes // block) * block  # each stretch begins on a block
    bounds = [(lo, min(lo + step - 1, last_seq)) for lo in range(1, last_seq + 1, step)]
    url = bind.url.render_as_string(hide_password=False)
    children = [_range_in_child(url, lo, hi, hi == last_seq, height) for lo, hi in bounds]
    found = [_range_of(child) for child in children]
    # Records added after the count (the log is live): checked here, after the last range.
    return found + [_check_range(session, last_seq + 1, None, True, height)]


def verify(session: Session, checkpoints: Sequence[Checkpoint] = (),
           processes: int | None = None, block_height: int = BLOCK_HEIGHT) -> Verification:
    """Recompute every hash in order and the Merkle tree over the records; name the first record
    that was altered, removed or inserted, and any checkpoint (signature already checked) the
    records no longer match: a re-hashed chain, a cut tail or a wiped log with its head reset.
    A large log on PostgreSQL is read by `processes` processes (default: one per core), which
    hash whole blocks of 2**block_height records into their subtrees."""
    kept = _Checkpoints(checkpoints)
    frontier = merkle.Frontier()
    reason = kept.at(frontier)
    if reason:
        return Verification(False, 0, 1, reason)
    prev_hash, checked = GENESIS, 0
    for stretch in _ranges(session, processes, block_height):
        if stretch.count and stretch.first_prev != prev_hash:
            return Verification(False, checked, stretch.first, f"record {stretch.first} does "
                                f"not follow record {stretch.first - 1}")
        i = 0
        while i < stretch.count:
            block = stretch.block(i)
            if block and not kept.within(frontier.size, frontier.size + (1 << stretch.height)):
                frontier.append_subtree(stretch.height, block)
                i += 1 << stretch.height
            else:
                frontier.append(stretch.leaf(i))
                i += 1
            checked = frontier.size
            reason = kept.at(frontier)
            if reason:
                since = kept.matched.size if kept.matched else 0
                return Verification(False, checked, since + 1, reason)
        if stretch.broken:
            return Verification(False, checked, *stretch.broken)
        prev_hash = stretch.last_hash or prev_hash
    reason = kept.beyond(checked)
    if reason:
        return Verification(False, checked, checked + 1, reason)
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != prev_hash):
        return Verification(False, checked, checked + 1,
                            f"the chain ends at record {checked} but its head names record "
                            f"{head.seq}: newer records were removed")
    return Verification(True, checked, root=frontier.root().hex(), proved=kept.proved)


def verify_published(settings, db, folder=None, key_file=None
                     ) -> tuple[Verification, list[Checkpoint], str]:
    """The log checked against the checkpoints of `folder` (default: the engine's published
    folder), each signature checked first with the public key in `key_file` (default: the
    engine's own); (result, checkpoints, a checkpoint's or key's refusal or "")."""
    try:
        public = checkpoints.read_public_key(key_file) if key_file else \
            checkpoints.signing_key(settings.audit_key_path).public_key()
        kept = [checkpoint for _, checkpoint in checkpoints.kept(folder or
                                                                 settings.checkpoint_path)]
        for checkpoint in kept:
            checkpoints.check(checkpoint, public)
    except checkpoints.CheckpointError as exc:
        return Verification(False, 0, None, str(exc)), [], str(exc)
    with db.read() as s:
        return verify(s, kept), kept, ""


def tree_head(session: Session, since: merkle.Frontier | None = None) -> merkle.Frontier:
    """The Merkle tree of every record, grown from `since` (the tree of the first records)."""
    frontier = since or merkle.Frontier()
    for node in _leaves(session, after=frontier.size):
        frontier.append(node)
    return frontier


def inclusions(session: Session, seqs: Sequence[int], size: int) -> dict[int, list[bytes]]:
    """The audit paths of records `seqs` in the tree of the first `size` records (one read of
    the log, whatever their number)."""
    leaves = _leaves(session, upto=size)
    if len(leaves) != size:
        raise ValueError(f"the log holds {len(leaves)} records, not {size}")
    paths = merkle.inclusion_proofs(leaves, [seq - 1 for seq in seqs], size)
    return {seq: paths[seq - 1] for seq in seqs}


def inclusion(session: Session, seq: int, size: int) -> list[bytes]:
    """The audit path of record `seq` in the tree of the first `size` records."""
    return inclusions(session, [seq], size)[seq]


def viewed(session: Session, username: str, instance_id: int, via: str) -> None:
    """Record that a person opened a case (who read which case file is evidence too); not part
    of the case's own history, so reading it does not change it."""
    record(session, "case.viewed", actor=f"user:{username}", subject_type="instance",
           subject_id=instance_id, details={"via": via})


def about(session: Session, subject_type: str, subject_id: object,
          limit: int = 50) -> list[AuditRecord]:
    """The newest records about one subject (a user, a source), newest first."""
    return list(session.scalars(select(AuditRecord).where(
        AuditRecord.subject_type == subject_type, AuditRecord.subject_id == str(subject_id))
        .order_by(AuditRecord.seq.desc()).limit(limit)))


def history(session: Session, instance_id: int) -> list[AuditRecord]:
    """An instance's audit records in the order they happened."""
    return list(session.scalars(select(AuditRecord).where(AuditRecord.instance_id == instance_id)
                                .order_by(AuditRecord.seq)))


def to_dict(rec: AuditRecord) -> dict:
    """The record as the API shows it."""
    return {"seq": rec.seq, "at": rec.at.isoformat(), "actor": rec.actor, "action": rec.action,
            "subject_type": rec.subject_type, "subject_id": rec.subject_id,
            "instance_id": rec.instance_id, "details": rec.details, "hash": rec.hash,
            "prev_hash": rec.prev_hash}
