"""A length of time as scenario files write it: wall time ("30m", "2h") or working time.

    within: 10m                     # wall clock: 10 minutes
    within: {working_days: 5}       # five working days of the calendar (office hours only)
    within: {working_hours: 4}
    within: {working_hours: "=allotted_hours"}   # the amount is a field of the event

Wall spans count every second; working spans count only the calendar's office time, so a
deadline never lands on a weekend, a holiday or a night.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.worktime.calendar import WorkingCalendar

_WALL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_WALL_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WALL_NAMES = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
WORKING_UNITS = ("working_days", "working_hours")
EXAMPLES = "e.g. 30m, 2h, 1d, {working_days: 5} or {working_hours: 4}"


class SpanError(ValueError):
    """A length of time that cannot be read."""


@dataclass(frozen=True)
class Span:
    """`amount` of `unit`: "seconds" (wall time), "working_hours" or "working_days"."""

    amount: float
    unit: str = "seconds"
    field: str | None = None  # the amount comes from this field of an event (see resolve)

    @property
    def working(self) -> bool:
        """True when only office time counts."""
        return self.unit in WORKING_UNITS

    def length(self, calendar: WorkingCalendar) -> timedelta:
        """The span in its own basis: wall seconds, or office time for working spans."""
        if self.field is not None:
            raise SpanError(f"the span's amount comes from field '{self.field}'; resolve it first")
        if self.unit == "working_days":
            return calendar.day_length * self.amount
        if self.unit == "working_hours":
            return timedelta(hours=self.amount)
        return timedelta(seconds=self.amount)

    def after(self, start: datetime, calendar: WorkingCalendar, fraction: float = 1.0) -> datetime:
        """The moment `fraction` of this span has passed since `start`."""
        length = self.length(calendar) * fraction
        return calendar.add_working_time(start, length) if self.working else start + length

    def elapsed(self, start: datetime, end: datetime, calendar: WorkingCalendar) -> timedelta:
        """Time counted between two moments in this span's basis."""
        return calendar.working_time_between(start, end) if self.working else end - start

    def resolve(self, data: Mapping[str, Any]) -> Span:
        """This span with its amount read from `data` when it names a field."""
        if self.field is None:
            return self
        amount = data.get(self.field)
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
            raise SpanError(f"field '{self.field}' should hold a positive number of "
                            f"{self.unit}, not {amount!r}")
        return Span(float(amount), self.unit)

    def describe(self) -> dict:
        """The span as data: {"amount": 5, "unit": "working_days"}."""
        return {"amount": self.amount, "unit": self.unit}

    @property
    def _amount_text(self) -> str:
        return f"={self.field}" if self.field is not None else f"{self.amount:g}"

    def words(self) -> tuple[str, str]:
        """The span in Vietnamese and in English, ("5 ngày làm việc", "5 working days"); a wall
        time span as str() writes it, "30m", in both."""
        amount = self._amount_text
        if self.unit == "working_days":
            return f"{amount} ngày làm việc", f"{amount} working days"
        if self.unit == "working_hours":
            return f"{amount} giờ làm việc", f"{amount} working hours"
        return str(self), str(self)

    def __str__(self) -> str:
        amount = self._amount_text
        if self.unit == "working_days":
            return f"{amount} ngày làm việc / working days"
        if self.unit == "working_hours":
            return f"{amount} giờ làm việc / working hours"
        for name, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.amount >= size and self.amount % size == 0:
                return f"{self.amount / size:g}{name}"
        return f"{amount}s"


def parse_span(value: Any) -> Span:
    """Read "30m" / {working_days: 5} / {minutes: 30}; SpanError says what is wrong."""
    if isinstance(value, str):
        m = _WALL.match(value)
        if not m:
            raise SpanError(f"{value!r} is not a length of time ({EXAMPLES})")
        seconds = float(m.group(1)) * _WALL_SECONDS[m.group(2)]
        return _positive(Span(seconds))
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise SpanError(f"a length of time has one unit ({EXAMPLES})")
        (unit, amount), = value.items()
        if isinstance(amount, str) and amount.startswith("="):
            name = amount[1:].strip()
            if unit not in WORKING_UNITS or not name:
                raise SpanError("only working_days/working_hours take an amount from a field, "
                                "written {working_hours: \"=allotted_hours\"}")
            return Span(0.0, unit, field=name)
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise SpanError(f"'{unit}' needs a number, not {amount!r}")
        if unit in WORKING_UNITS:
            return _positive(Span(float(amount), unit))
        if unit in _WALL_NAMES:
            return _positive(Span(float(amount) * _WALL_NAMES[unit]))
        raise SpanError(f"unknown unit '{unit}'; use working_days, working_hours, days, hours, "
                        "minutes or seconds")
    raise SpanError(f"a length of time is written {EXAMPLES}, not {value!r}")


def _positive(span: Span) -> Span:
    if span.amount <= 0:
        raise SpanError("a length of time must be more than zero")
    return span
