"""Working-time arithmetic for scenario expressions and scripts (in the restricted evaluator).

    deadline = add_working_days(now(), 5)            # ISO text, Asia/Ho_Chi_Minh offset
    late = working_hours_between(received_at, now()) > 8

Moments go in as ISO 8601 text (what task data holds) and come out as ISO text, so process data
stays JSON; "now" is the engine's clock, so tests and dry runs move it by hand.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from engine.clock import Clock
from engine.worktime.calendar import WorkingCalendar


def _moment(value: object, what: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not an ISO 8601 date-time") from None
    else:
        raise ValueError(f"{what}: expected an ISO 8601 date-time, not {type(value).__name__}")
    if moment.tzinfo is None:
        raise ValueError(f"{what}: {value!r} has no UTC offset (write e.g. +07:00)")
    return moment


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what}: expected a number of 0 or more, not {value!r}")
    return float(value)


def scenario_functions(calendar: WorkingCalendar, clock: Clock) -> dict[str, Callable]:
    """The names scenario expressions may call: now, add_working_days/hours, working_hours_between."""
    tz = calendar.tz

    def text(moment: datetime) -> str:
        return moment.astimezone(tz).isoformat()

    def now() -> str:
        """The engine's now, in the province's time zone."""
        return text(clock.now())

    def add_working_days(moment: object, days: object) -> str:
        """The moment `days` working days after `moment`."""
        return text(calendar.add_working_days(_moment(moment, "add_working_days"),
                                              _number(days, "add_working_days")))

    def add_working_hours(moment: object, hours: object) -> str:
        """The moment `hours` working hours after `moment`."""
        return text(calendar.add_working_time(_moment(moment, "add_working_hours"),
                                              timedelta(hours=_number(hours, "add_working_hours"))))

    def working_hours_between(start: object, end: object) -> float:
        """Working hours from `start` to `end` (negative if end is earlier)."""
        delta = calendar.working_time_between(_moment(start, "working_hours_between"),
                                              _moment(end, "working_hours_between"))
        return delta.total_seconds() / 3600

    return {f.__name__: f for f in (now, add_working_days, add_working_hours,
                                    working_hours_between)}
