"""`ioc scheduler`: fires due timers and SLA levels, delivers the notification outbox and runs the
relay, pass after pass. Several may run: timers are taken FOR UPDATE SKIP LOCKED, notifications
are claimed, and a partition has at most one waiting job."""
from __future__ import annotations

import logging
import threading

from engine.services import Services

log = logging.getLogger(__name__)


def run_pass(ioc: Services) -> tuple[int, int, int]:
    """One pass: (timers fired, notifications sent, partitions enqueued)."""
    fired = ioc.scheduler.run_once(limit=200)
    sent = ioc.outbox.run_once(limit=50)
    relayed = ioc.relay.scan()
    return fired, sent, relayed


def run(ioc: Services, stop: threading.Event, interval_s: float = 0.5) -> None:
    """Pass after pass until `stop` is set; a failed pass is logged and the loop goes on."""
    ioc.schedule_checkpoints()
    while not stop.is_set():
        try:
            fired, sent, _ = run_pass(ioc)
            # Relaying alone is not work: under a backlog every pass re-finds the same pending
            # partitions (their jobs already wait), and looping on that would burn a core.
            busy = bool(fired or sent)
        except Exception:  # noqa: BLE001 - keep scheduling; the work stays in the database
            log.exception("scheduler pass failed")
            busy = False
        if not busy:
            stop.wait(interval_s)
