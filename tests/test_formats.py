"""Numbers and moments as the province writes them (engine/formats.py, Babel's CLDR data)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from engine import formats

MOMENT = datetime(2026, 3, 2, 1, 5, 9, tzinfo=timezone.utc)  # 08:05:09 in Vietnam


@pytest.mark.parametrize(("style", "vietnamese", "english"), [
    ("minute", "02/03/2026 08:05", "02/03/2026 08:05"),
    ("second", "02/03/2026 08:05:09", "02/03/2026 08:05:09"),
    ("date", "02/03/2026", "02/03/2026"),
    ("clock_first", "08:05 02/03/2026", "08:05 02/03/2026"),
    ("weekday", "Thứ Hai, 02/03/2026 08:05", "Monday, 02/03/2026 08:05"),
])
def test_a_stored_moment_is_written_on_vietnams_clocks(style, vietnamese, english):
    assert formats.moment(MOMENT, style) == vietnamese
    assert formats.moment(MOMENT, style, locale="en") == english


def test_moments_come_as_iso_text_dates_or_local_datetimes():
    assert formats.moment("2026-03-01T20:00:00+00:00") == "02/03/2026 03:00"  # the next day
    assert formats.moment("2026-03-09") == "09/03/2026"
    assert formats.moment(date(2026, 3, 9), "weekday") == "Thứ Hai, 09/03/2026"
    assert formats.moment(datetime(2026, 3, 2, 9, 0)) == "02/03/2026 09:00"  # naive: local
    assert formats.moment(None) == formats.moment("") == ""
    assert formats.moment("not a moment") == "not a moment"


def test_an_unknown_style_is_refused_by_name():
    with pytest.raises(ValueError, match="'%d/%m': one of minute"):
        formats.moment(MOMENT, "%d/%m")


def test_numbers_use_the_vietnamese_separators_and_english_beside():
    assert formats.number(1234567.25, 2) == "1.234.567,25"
    assert formats.number(8.0) == "8"
    assert formats.number(1234.5, locale="en") == "1,234.5"
    assert formats.percent(99.95) == "100 %"
