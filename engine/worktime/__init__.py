"""Working time: office hours, weekends, holidays and swapped days, for SLA deadlines."""
from engine.worktime.calendar import (
    DEFAULT_DIR,
    CalendarError,
    WorkingCalendar,
    default_calendar,
    load_calendar,
)

__all__ = ["DEFAULT_DIR", "CalendarError", "WorkingCalendar", "default_calendar", "load_calendar"]
