"""The embedded runner: a background thread that drains pending events through the pipeline."""
from __future__ import annotations

import logging
import threading

from engine.pipeline import Pipeline

log = logging.getLogger(__name__)


class EmbeddedRunner:
    """Runs `pipeline.drain()` whenever woken (after ingestion) and every `idle_s` seconds."""

    def __init__(self, pipeline: Pipeline, idle_s: float = 1.0):
        self.pipeline, self.idle_s = pipeline, idle_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ioc-pipeline", daemon=True)
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

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.idle_s)
            self._wake.clear()
            try:
                # Small batches keep each write transaction short, so ingestion never waits long.
                self.pipeline.drain(limit=50)
            except Exception:  # noqa: BLE001 - keep the runner alive; the events stay pending
                log.exception("pipeline pass failed")
