"""Append to the audit chain (inside the caller's transaction) and verify it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session

from engine.audit.models import AuditHead, AuditRecord
from engine.db import utcnow

GENESIS = "0" * 64
RECORDS, HEAD = AuditRecord.__table__, AuditHead.__table__


def _digest(seq: int, at: datetime, actor: str, action: str, subject_type: str, subject_id: str,
            instance_id: int | None, details: dict, prev_hash: str) -> str:
    # In UTC whatever the database session's time zone: PostgreSQL returns timestamptz in it.
    moment = at.astimezone(timezone.utc).isoformat(timespec="microseconds")
    body = json.dumps(
        [seq, moment, actor, action, subject_type, subject_id,
         instance_id, details, prev_hash],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


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
        digest = _digest(seq, entry["at"], entry["actor"], entry["action"],
                         entry["subject_type"], entry["subject_id"], entry["instance_id"],
                         entry["details"], prev)
        rows.append({**entry, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    # Core statements, not ORM objects: nothing reads the records back in this transaction, and
    # the head stays locked for less time.
    session.execute(insert(RECORDS), rows)
    session.execute(update(HEAD).where(HEAD.c.id == 1).values(seq=seq, hash=prev))


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain: how many records were checked and the first broken one."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""


def verify(session: Session) -> Verification:
    """Recompute every hash in order; name the first record that was altered, removed or inserted."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq).execution_options(
        yield_per=2000)).scalars()
    for rec in rows:
        if rec.seq != expected_seq:
            return Verification(False, checked, expected_seq,
                                f"record {expected_seq} is missing (next found is {rec.seq})")
        if rec.prev_hash != prev_hash:
            return Verification(False, checked, rec.seq,
                                f"record {rec.seq} does not follow record {rec.seq - 1}")
        digest = _digest(rec.seq, rec.at, rec.actor, rec.action, rec.subject_type, rec.subject_id,
                         rec.instance_id, rec.details, rec.prev_hash)
        if digest != rec.hash:
            return Verification(False, checked, rec.seq,
                                f"record {rec.seq} ({rec.action}) was altered")
        prev_hash, expected_seq, checked = rec.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        return Verification(False, checked, last_seq + 1,
                            f"the chain ends at record {last_seq} but its head names record "
                            f"{head.seq}: newer records were removed")
    return Verification(True, checked)


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
