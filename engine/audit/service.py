"""Append to the audit chain (inside the caller's transaction) and verify it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit.models import AuditHead, AuditRecord
from engine.db import utcnow

GENESIS = "0" * 64


def _digest(seq: int, at: datetime, actor: str, action: str, subject_type: str, subject_id: str,
            instance_id: int | None, details: dict, prev_hash: str) -> str:
    body = json.dumps(
        [seq, at.isoformat(timespec="microseconds"), actor, action, subject_type, subject_id,
         instance_id, details, prev_hash],
        sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _head(session: Session) -> AuditHead:
    # FOR UPDATE makes concurrent writers on PostgreSQL take turns; SQLite already has one writer.
    # The lock lasts until the transaction ends, so within one transaction the head read first
    # serves every later record (a rolled-back savepoint expires it: it is read again).
    transaction = session.get_transaction()
    cached = session.info.get("ioc.audit_head")
    if cached is not None and cached[0] is transaction:
        return cached[1]
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    session.info["ioc.audit_head"] = (transaction, head)
    return head


def record(session: Session, action: str, *, actor: str, subject_type: str, subject_id: object,
           instance_id: int | None = None, details: dict | None = None,
           at: datetime | None = None) -> AuditRecord:
    """Append one record to the chain, in the caller's transaction."""
    head = _head(session)
    at = (at or utcnow())
    details = json.loads(json.dumps(details or {}, ensure_ascii=False, default=str))
    seq = head.seq + 1
    digest = _digest(seq, at, actor, action, subject_type, str(subject_id), instance_id, details,
                     head.hash)
    rec = AuditRecord(seq=seq, at=at, actor=actor, action=action, subject_type=subject_type,
                      subject_id=str(subject_id), instance_id=instance_id, details=details,
                      prev_hash=head.hash, hash=digest)
    session.add(rec)
    head.seq, head.hash = seq, digest
    return rec


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
