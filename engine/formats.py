"""How the province writes numbers and moments for people (Babel's CLDR data): 1.234,5 and
02/03/2026 09:00 on Vietnam's clocks, with the English forms beside them. One place for the
pages, the case file's PDF and the engine's notifications."""
from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

from engine.org.service import TIMEZONE

LOCALE = "vi"
# Babel (CLDR) patterns by name: day first, four-digit years, 24-hour clock, as Vietnamese
# administrative documents write them (CLDR's own "short" writes 2/3/26).
PATTERNS = {"minute": "dd/MM/y HH:mm", "second": "dd/MM/y HH:mm:ss", "date": "dd/MM/y",
            "clock_first": "HH:mm dd/MM/y", "weekday": "EEEE, dd/MM/y HH:mm"}


def number(value, digits: int = 1, locale: str = LOCALE) -> str:
    """A number as Vietnamese write it: 1.234,5 (at most `digits` decimals); `locale="en"`
    for the English beside it."""
    return format_decimal(value, format=f"#,##0.{'#' * digits}" if digits else "#,##0",
                          locale=locale)


def percent(value, digits: int = 1) -> str:
    """A percentage given in percent (98.5 → "98,5 %")."""
    return format_percent(value / 100, format=f"#,##0.{'#' * digits} %" if digits
                          else "#,##0 %", locale=LOCALE)


def moment(value: datetime | date | str | None, style: str = "minute",
           locale: str = LOCALE) -> str:
    """A moment on the province's clocks (Asia/Ho_Chi_Minh) in one of the PATTERNS: a stored
    UTC datetime, a naive one taken as already local, a date, or ISO text; "" for none, text that
    is not a moment as it is."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = (date if len(value) == 10 else datetime).fromisoformat(value)
        except ValueError:
            return value
    if style not in PATTERNS:
        raise ValueError(f"no moment style {style!r}: one of {', '.join(PATTERNS)}")
    if not isinstance(value, datetime):
        return format_date(value, "EEEE, dd/MM/y" if style == "weekday" else PATTERNS["date"],
                           locale=locale)
    if value.tzinfo is None:
        return format_datetime(value, PATTERNS[style], locale=locale)
    return format_datetime(value, PATTERNS[style], tzinfo=TIMEZONE, locale=locale)
