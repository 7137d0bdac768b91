"""Signing and publishing the audit log's checkpoints on the engine's own timer (kind `audit`):
every `checkpoint_minutes`, when records were added since the last one, the tree head is
signed, written to the checkpoint folder, kept in audit_checkpoints with its frontier (so the
next one hashes only the new records) and sent to webhook subscribers of the auditors."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import checkpoints, merkle
from engine.audit import service as audit
from engine.audit.models import AuditCheckpoint
from engine.clock import Clock
from engine.config import Settings
from engine.notify import service as notify
from engine.notify.models import WEBHOOK
from engine.timers import service as timers
from engine.timers.models import AUDIT, Timer

log = logging.getLogger(__name__)
REF = "checkpoint"
# Who hears of a checkpoint: webhook subscriptions of the IOC's auditors (or of everyone).
DEPARTMENT, ROLE = "ioc", "auditor"


class Publisher:
    """Signs checkpoints with the configured key into the configured folder."""

    def __init__(self, settings: Settings, clock: Clock):
        self.settings, self.clock = settings, clock

    def checkpoint(self, session: Session) -> checkpoints.Checkpoint | None:
        """Sign and publish the tree head now; None when no record was added since the last."""
        last = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.size.desc())
                               .limit(1)).first()
        since = merkle.Frontier.from_state(last.size, last.frontier) if last else None
        frontier = audit.tree_head(session, since)
        if last is not None and frontier.size == last.size:
            return None
        key = checkpoints.signing_key(self.settings.audit_key_path)
        signed = checkpoints.sign(key, frontier.size, frontier.root(), self.clock.now())
        checkpoints.publish(self.settings.checkpoint_path, signed)
        session.add(AuditCheckpoint(size=signed.size, root=signed.root, time=signed.time,
                                    key_id=signed.key_id, signature=signed.signature,
                                    frontier=frontier.state()))
        notify.send(session, kind="audit.checkpoint", actor="engine", channel=WEBHOOK,
                    subject=f"Audit checkpoint: {signed.size} records",
                    text=signed.to_json(), department_key=DEPARTMENT, role=ROLE, email=False)
        log.info("audit checkpoint signed: %s records, root %s", signed.size, signed.root)
        return signed

    def fire(self, session: Session, timer: Timer) -> None:
        """The scheduler's handler for `audit` timers: sign, then come back after the interval."""
        self.checkpoint(session)
        self.schedule(session)

    def schedule(self, session: Session) -> None:
        """Set the next signing (idempotent: one pending timer)."""
        timers.reschedule(session, AUDIT, REF, self.clock.now() + timedelta(
            minutes=self.settings.checkpoint_minutes))

    def ensure_scheduled(self, session: Session) -> None:
        """Start signing if nothing is scheduled yet (an engine starting for the first time)."""
        if not timers.pending(session, AUDIT, REF):
            self.schedule(session)
