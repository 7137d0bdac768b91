"""The engine's clock: real time in production, a hand-driven clock in tests.

Everything that decides *when* (timer due times, SLA elapsed time, rule windows, scheduler
passes) asks a Clock instead of calling datetime.now(), so a test moves time forward instead of
sleeping. Record-keeping timestamps (created_at columns) keep using real time.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    """Real time, as an aware UTC datetime."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(timezone.utc)


class ManualClock(Clock):
    """A clock that only moves when told to (tests, benchmarks, dry runs)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current moment."""
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (never backwards: timers already fired stay fired)."""
        moment = moment.astimezone(timezone.utc)
        with self._lock:
            if moment < self._now:
                raise ValueError(f"the clock cannot go back from {self._now} to {moment}")
            self._now = moment

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by `delta` (or timedelta(**kwargs)); return the new now."""
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now


class ShiftedClock(Clock):
    """Real time shifted to start at a chosen moment, then running at real speed (a served app
    in a test: timers fire in real seconds, yet no outcome depends on today's date)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        self._shift = start.astimezone(timezone.utc) - datetime.now(timezone.utc)

    def now(self) -> datetime:
        """Real time plus the shift."""
        return datetime.now(timezone.utc) + self._shift


SYSTEM_CLOCK = Clock()
