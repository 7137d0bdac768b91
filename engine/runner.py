"""The embedded runner: a thread that processes events, fires due timers, delivers the outbox."""
from __future__ import annotations

import logging
import threading

from engine.notify.delivery import Outbox
from engine.ops import garbage
from engine.pipeline import Pipeline
from engine.timers.scheduler import Scheduler

log = logging.getLogger(__name__)


class EmbeddedRunner:
    """Runs the pipeline and the scheduler when woken (after ingestion) and every `idle_s`."""

    def __init__(self, pipeline: Pipeline, scheduler: Scheduler, outbox: Outbox | None = None,
                 idle_s: float = 1.0):
        self.pipeline, self.scheduler, self.outbox = pipeline, scheduler, outbox
        self.idle_s = idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ioc-runner", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Ask for a pass now (new events were stored)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current pass."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _wait_s(self) -> float:
        # Sleep until the next timer is due, but never longer than idle_s.
        try:
            due = self.scheduler.next_due()
        except Exception:  # noqa: BLE001 - a failed read only shortens the nap
            log.exception("could not read the next timer")
            return self.idle_s
        if due is None:
            return self.idle_s
        return min(self.idle_s, max(0.0, (due - self.scheduler.clock.now()).total_seconds()))

    def _work(self) -> None:
        # Due timers between event batches: under a steady stream of events the queue never
        # empties, and a timer must not wait for it (measured: seconds late otherwise). On
        # SQLite (one writer) small batches keep each write transaction short, so ingestion
        # never waits long; PostgreSQL lets ingestion write meanwhile, and there a batch's own
        # statements and commit are shared by more events.
        postgres = self.pipeline.db.is_postgres
        batch = 100 if postgres else 10
        timers = 50 if postgres else 10  # likewise: a burst of due timers, ten at a time
        while not self._stop.is_set():
            fired = self.scheduler.run_once(limit=timers)
            handled = self.pipeline.run_once(limit=batch)
            if handled:
                garbage.after_batch()
            sent = self.outbox.run_once(limit=20) if self.outbox is not None else 0
            if not fired and not handled and not sent:
                return

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._wait_s())
            self._wake.clear()
            try:
                self._work()
            except Exception:  # noqa: BLE001 - keep the runner alive; work stays pending
                log.exception("runner pass failed")
