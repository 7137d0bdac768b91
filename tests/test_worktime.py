"""The working-time calendar: the shipped data, known deadlines, invalid files and the counting laws."""
from __future__ import annotations

import time as clock
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.worktime import CalendarError, WorkingCalendar, default_calendar, load_calendar
from engine.worktime.calendar import DEFAULT_DIR

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = default_calendar()


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A moment on the province's clocks."""
    return datetime(y, mo, d, h, mi, tzinfo=VN)


def local(moment: datetime) -> datetime:
    return moment.astimezone(VN)


# ------------------------------------------------------------------------------- shipped data


def test_shipped_calendar_covers_2025_to_2027():
    assert CAL.years == (2025, 2026, 2027)
    assert CAL.provisional_years == (2027,)
    assert CAL.day_length == timedelta(hours=8)
    assert str(CAL.tz) == "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize("day", [
    date(2025, 1, 1), date(2025, 1, 27), date(2025, 1, 31), date(2025, 4, 7), date(2025, 5, 2),
    date(2025, 9, 1), date(2026, 1, 2), date(2026, 2, 16), date(2026, 2, 20), date(2026, 4, 27),
    date(2026, 8, 31), date(2026, 9, 1), date(2026, 9, 2),
])
def test_holidays_are_not_working_days(day):
    assert day.weekday() < 5 and not CAL.is_working_day(day)


@pytest.mark.parametrize("day", [date(2025, 4, 26), date(2026, 1, 10), date(2026, 8, 22)])
def test_swapped_saturdays_are_working_days(day):
    assert day.weekday() == 5 and CAL.is_working_day(day)


def test_250_working_days_in_each_year():
    for year in CAL.years:
        days = [date(year, 1, 1) + timedelta(days=k) for k in range(365)]
        assert sum(CAL.is_working_day(d) for d in days) == 250


def test_is_working_day_takes_an_aware_datetime_as_its_local_date():
    # 17:30 UTC on Sunday is 00:30 on Monday in Việt Nam.
    assert CAL.is_working_day(datetime(2025, 3, 16, 17, 30, tzinfo=timezone.utc))
    assert not CAL.is_working_day(datetime(2025, 3, 16, 16, 30, tzinfo=timezone.utc))


# ------------------------------------------------------------------------------- known examples


def test_friday_afternoon_plus_two_hours_is_monday_morning():
    # Fri 16:00–17:00 is one hour, Mon 07:30 + 1 h = 08:30.
    assert local(CAL.add_working_hours(at(2025, 3, 14, 16), 2)) == at(2025, 3, 17, 8, 30)


def test_results_are_aware_utc():
    result = CAL.add_working_hours(at(2025, 3, 14, 16), 2)
    assert result.tzinfo == timezone.utc and result == datetime(2025, 3, 17, 1, 30, tzinfo=timezone.utc)


def test_dossier_received_before_tet_2026_is_due_after_tet():
    # Fri 13/02 10:00 leaves 5.5 h; Tết is 16–20/02; Mon 23 and Tue 24 give 16 h; 2.5 h on Wed 25.
    due = CAL.add_working_days(at(2026, 2, 13, 10), 3)
    assert local(due) == at(2026, 2, 25, 10)
    assert CAL.working_time_between(at(2026, 2, 13, 10), due) == timedelta(hours=24)


def test_swapped_saturday_counts():
    assert local(CAL.add_working_hours(at(2026, 1, 9, 16), 2)) == at(2026, 1, 10, 8, 30)
    assert local(CAL.add_working_hours(at(2025, 4, 25, 16), 2)) == at(2025, 4, 26, 8, 30)
    # The Friday given off in exchange (02/05/2025) does not count: 30/04 and 01/05 are holidays,
    # so from Tue 29/04 16:00 the second hour is on Mon 05/05.
    assert local(CAL.add_working_hours(at(2025, 4, 29, 16), 2)) == at(2025, 5, 5, 8, 30)


def test_count_ending_at_the_end_of_an_interval_returns_that_end():
    assert local(CAL.add_working_hours(at(2025, 3, 17, 7, 30), 4)) == at(2025, 3, 17, 11, 30)
    assert local(CAL.add_working_hours(at(2025, 3, 17, 10, 30), 1)) == at(2025, 3, 17, 11, 30)
    assert local(CAL.add_working_hours(at(2025, 3, 17, 13), 4)) == at(2025, 3, 17, 17)
    assert local(CAL.add_working_days(at(2025, 3, 17, 7, 30), 1)) == at(2025, 3, 17, 17)
    # One microsecond more and the count crosses the break or the night.
    over = CAL.add_working_time(at(2025, 3, 17, 7, 30), timedelta(hours=4, microseconds=1))
    assert local(over) == at(2025, 3, 17, 13).replace(microsecond=1)


def test_counting_from_outside_office_hours_starts_at_the_next_working_moment():
    assert local(CAL.add_working_hours(at(2025, 3, 16, 10), 1)) == at(2025, 3, 17, 8, 30)  # Sunday
    assert local(CAL.add_working_hours(at(2025, 3, 17, 12), 0.5)) == at(2025, 3, 17, 13, 30)  # lunch
    assert local(CAL.add_working_hours(at(2025, 3, 17, 5), 1)) == at(2025, 3, 17, 8, 30)  # dawn
    assert local(CAL.add_working_hours(at(2025, 3, 17, 20), 1)) == at(2025, 3, 18, 8, 30)  # night


def test_adding_zero_returns_the_moment():
    m = at(2025, 3, 16, 10)  # a Sunday
    assert CAL.add_working_time(m, timedelta(0)) == m


def test_next_working_moment():
    assert local(CAL.next_working_moment(at(2025, 3, 17, 9))) == at(2025, 3, 17, 9)
    assert local(CAL.next_working_moment(at(2025, 3, 17, 11, 30))) == at(2025, 3, 17, 13)
    assert local(CAL.next_working_moment(at(2025, 3, 17, 17))) == at(2025, 3, 18, 7, 30)
    assert local(CAL.next_working_moment(at(2026, 2, 13, 17))) == at(2026, 2, 23, 7, 30)


def test_is_working_time_is_half_open():
    assert CAL.is_working_time(at(2025, 3, 17, 7, 30))
    assert not CAL.is_working_time(at(2025, 3, 17, 11, 30))
    assert not CAL.is_working_time(at(2025, 3, 17, 12))
    assert not CAL.is_working_time(at(2025, 3, 17, 17))
    assert not CAL.is_working_time(at(2025, 4, 30, 9))  # Reunification Day


def test_working_time_between():
    assert CAL.working_time_between(at(2025, 3, 14, 16), at(2025, 3, 17, 8, 30)) == timedelta(hours=2)
    assert CAL.working_time_between(at(2025, 3, 17, 8, 30), at(2025, 3, 14, 16)) == -timedelta(hours=2)
    assert CAL.working_time_between(at(2025, 3, 17, 12), at(2025, 3, 17, 12, 50)) == timedelta(0)
    assert CAL.working_time_between(at(2025, 3, 17), at(2025, 3, 24)) == timedelta(hours=40)


def test_fractional_working_days():
    assert local(CAL.add_working_days(at(2025, 3, 17, 7, 30), 0.5)) == at(2025, 3, 17, 11, 30)
    assert local(CAL.add_working_days(at(2025, 3, 17, 7, 30), 1.5)) == at(2025, 3, 18, 11, 30)


def test_adding_100_working_days_is_fast():
    m = at(2025, 6, 3, 9, 15)
    start = clock.perf_counter()
    for _ in range(1000):
        CAL.add_working_days(m, 100)
    assert (clock.perf_counter() - start) / 1000 < 0.001


# ------------------------------------------------------------------------------- refusals


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        CAL.add_working_hours(datetime(2025, 3, 17, 9), 1)
    with pytest.raises(ValueError, match="naive"):
        CAL.working_time_between(at(2025, 3, 17, 9), datetime(2025, 3, 18, 9))
    with pytest.raises(ValueError, match="naive"):
        CAL.is_working_time(datetime(2025, 3, 17, 9))


def test_negative_working_time_is_refused():
    with pytest.raises(ValueError, match="negative"):
        CAL.add_working_time(at(2025, 3, 17, 9), timedelta(hours=-1))


def test_years_without_a_file_are_refused_when_nothing_may_be_computed():
    """With projection off (project_years=0) the old rule holds: a year needs its file. By
    default later years are computed instead (tests/test_worktime_horizon.py)."""
    strict = load_calendar(DEFAULT_DIR, project_years=0)
    with pytest.raises(CalendarError, match="no holiday file for 2029 in data/calendar"):
        strict.is_working_day(date(2029, 1, 5))
    with pytest.raises(CalendarError, match="no holiday file for 2024"):
        CAL.add_working_hours(at(2024, 12, 31, 9), 1)  # before the first file: never computed
    with pytest.raises(CalendarError, match="no holiday file for 2028"):
        strict.add_working_hours(at(2027, 12, 31, 16), 2)  # runs past the last covered year
    with pytest.raises(CalendarError, match="no holiday file for 2028"):
        strict.working_time_between(at(2027, 6, 1), at(2028, 1, 3))
    # Up to the very end of the last covered working day is fine.
    assert local(strict.add_working_hours(at(2027, 12, 31, 16), 1)) == at(2027, 12, 31, 17)


def test_a_gap_between_covered_years_is_refused(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025)
    _write(tmp_path, "2027.yaml", "year: 2027\nholidays: []\n")
    cal = load_calendar(tmp_path)
    assert cal.years == (2025, 2027)
    with pytest.raises(CalendarError, match="no holiday file for 2026"):
        cal.working_time_between(at(2025, 12, 1), at(2027, 1, 4))
    with pytest.raises(CalendarError, match="no holiday file for 2026"):
        cal.add_working_days(at(2025, 12, 30, 9), 5)


# ------------------------------------------------------------------------------- invalid files

SETTINGS = """\
timezone: Asia/Ho_Chi_Minh
office_hours:
  - ["07:30", "11:30"]
  - ["13:00", "17:00"]
working_weekdays: [mon, tue, wed, thu, fri]
"""
YEAR_2025 = """\
year: 2025
holidays:
  - date: 2025-01-01
    name: {vi: Tết Dương lịch, en: New Year's Day}
    source: Labour Code 2019 art. 112
working_days:
  - date: 2025-04-26
    name: {vi: Làm bù, en: Swapped working day}
    source: Thông báo 6150/TB-BLĐTBXH
"""


def _write(directory: Path, name: str, text: str) -> None:
    if not (directory / "calendar.yaml").exists() and name != "calendar.yaml":
        (directory / "calendar.yaml").write_text(SETTINGS, encoding="utf-8")
    (directory / name).write_text(text, encoding="utf-8")


def _dir(tmp_path: Path, year_text: str) -> Path:
    _write(tmp_path, "2025.yaml", year_text)
    return tmp_path


def _error(directory: Path) -> str:
    with pytest.raises(CalendarError) as info:
        load_calendar(directory)
    return str(info.value)


def test_a_valid_small_directory_loads(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025)
    cal = load_calendar(tmp_path)
    assert cal.years == (2025,) and not cal.is_working_day(date(2025, 1, 1))
    assert cal.is_working_day(date(2025, 4, 26))


def test_unknown_key_names_file_and_line(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025.replace("    source: Labour", "    kind: fixed\n    source: Labour"))
    message = _error(tmp_path)
    assert f"{tmp_path / '2025.yaml'}:5:" in message and "unknown field 'kind'" in message


def test_bad_date_names_the_line(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025.replace("date: 2025-01-01", "date: 2025-13-01"))
    message = _error(tmp_path)
    assert "2025.yaml:3:" in message and "'2025-13-01' is not a date" in message


def test_holiday_outside_the_file_year(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025.replace("date: 2025-01-01", "date: 2026-01-01"))
    assert "2025.yaml:3:" in (message := _error(tmp_path)) and "not in 2025" in message


def test_range_reaching_outside_the_file_year(tmp_path):
    text = YEAR_2025.replace("date: 2025-01-01", "from: 2025-12-30\n    to: 2026-01-02")
    message = _error(_dir(tmp_path, text))
    assert "2025.yaml:3:" in message and "2026-01-01 is not in 2025" in message


def test_swapped_working_day_must_be_a_weekend_day(tmp_path):
    message = _error(_dir(tmp_path, YEAR_2025.replace("2025-04-26", "2025-04-25")))
    assert "2025.yaml:7:" in message and "only a weekend day" in message


def test_duplicate_dates(tmp_path):
    text = YEAR_2025.replace("working_days:", """\
  - from: 2024-12-31
    to: 2025-01-01
    name: {vi: x, en: x}
    source: s
working_days:""").replace("from: 2024-12-31", "from: 2025-01-01")
    message = _error(_dir(tmp_path, text))
    assert "2025.yaml:6:" in message and "already a holiday (line 3)" in message


def test_working_day_that_is_also_a_holiday(tmp_path):
    text = YEAR_2025.replace("date: 2025-01-01", "from: 2025-04-26\n    to: 2025-04-27")
    message = _error(_dir(tmp_path, text))
    assert "also listed as a holiday" in message


def test_missing_source_and_bad_name(tmp_path):
    text = YEAR_2025.replace("    source: Labour Code 2019 art. 112\n", "").replace(
        "{vi: Làm bù, en: Swapped working day}", "Làm bù")
    message = _error(_dir(tmp_path, text))
    assert "2025.yaml:3:" in message and "source must say" in message
    assert "2025.yaml:7:" in message and "name must be {vi" in message


def test_year_disagreeing_with_the_file_name(tmp_path):
    _write(tmp_path, "2026.yaml", "year: 2025\nholidays: []\n")
    message = _error(tmp_path)
    assert "2026.yaml:1:" in message and "does not match the file name" in message


def test_overlapping_office_hours(tmp_path):
    _write(tmp_path, "calendar.yaml", SETTINGS.replace('"13:00"', '"11:00"'))
    _write(tmp_path, "2025.yaml", YEAR_2025)
    message = _error(tmp_path)
    assert "calendar.yaml:4:" in message and "overlaps" in message


def test_unquoted_time_is_explained(tmp_path):
    _write(tmp_path, "calendar.yaml", SETTINGS.replace('"13:00"', "13:00"))
    _write(tmp_path, "2025.yaml", YEAR_2025)
    message = _error(tmp_path)
    assert "calendar.yaml:4:" in message and "write times in quotes" in message


def test_settings_problems(tmp_path):
    text = SETTINGS.replace("Asia/Ho_Chi_Minh", "Mars/Olympus").replace("fri]", "fry]") + "lunch: 1\n"
    _write(tmp_path, "calendar.yaml", text)
    _write(tmp_path, "2025.yaml", YEAR_2025)
    message = _error(tmp_path)
    assert "calendar.yaml:1:" in message and "unknown time zone" in message
    assert "calendar.yaml:5:" in message and "'fry' is not one of" in message
    assert "calendar.yaml:6:" in message and "unknown field 'lunch'" in message


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    _write(tmp_path, "2025.yaml", "year: 2025\nyear: 2025\nholidays: []\n")
    assert "2025.yaml:2:" in (message := _error(tmp_path)) and "duplicate key" in message
    _write(tmp_path, "2025.yaml", "year: 2025\nholidays: [\n")
    assert "YAML syntax error" in _error(tmp_path)


def test_missing_settings_or_years(tmp_path):
    (tmp_path / "2025.yaml").write_text(YEAR_2025, encoding="utf-8")
    assert "calendar.yaml: missing" in _error(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "calendar.yaml").write_text(SETTINGS, encoding="utf-8")
    assert "no year files" in _error(empty)
    assert "no such directory" in _error(tmp_path / "nowhere")


def test_unexpected_yaml_file(tmp_path):
    _write(tmp_path, "2025.yaml", YEAR_2025)
    _write(tmp_path, "holidays.yaml", "x: 1\n")
    assert "holidays.yaml: unexpected file" in _error(tmp_path)


def test_calendar_is_immutable():
    with pytest.raises(AttributeError):
        CAL.holidays = frozenset()  # type: ignore[misc]


# ------------------------------------------------------------------------------- laws

# Moments in 2025–2026 and deltas up to 60 working days stay inside the covered 2025–2027.
MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31, 23, 59, 59),
    timezones=st.just(VN),
)
# Whole minutes often land exactly on interval ends; microseconds probe everything else.
DELTAS = st.one_of(
    st.integers(0, 60 * 8 * 60).map(lambda m: timedelta(minutes=m)),
    st.integers(0, 60 * 8 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us)),
)
LAWS = settings(max_examples=200, deadline=None)


def _on_office_interval(cal: WorkingCalendar, moment: datetime) -> bool:
    """The local date is a working day and the local time lies in [start, end] of an interval."""
    wall = moment.astimezone(cal.tz)
    return cal.is_working_day(wall.date()) and any(s <= wall.time() <= e for s, e in cal.office_hours)


@LAWS
@given(MOMENTS, DELTAS, DELTAS)
def test_monotonic(m, d1, d2):
    d1, d2 = sorted((d1, d2))
    assert CAL.add_working_time(m, d1) <= CAL.add_working_time(m, d2)


@LAWS
@given(MOMENTS, DELTAS, DELTAS)
def test_additive(m, a, b):
    assert CAL.add_working_time(CAL.add_working_time(m, a), b) == CAL.add_working_time(m, a + b)


@LAWS
@given(MOMENTS, DELTAS)
def test_result_is_on_an_office_interval(m, d):
    result = CAL.add_working_time(m, d)
    assert result.tzinfo == timezone.utc
    if d > timedelta(0):
        assert result > m and _on_office_interval(CAL, result)
    else:
        assert result == m


@LAWS
@given(MOMENTS, DELTAS)
def test_between_inverts_add(m, d):
    assert CAL.working_time_between(m, CAL.add_working_time(m, d)) == d


@LAWS
@given(MOMENTS, MOMENTS, MOMENTS)
def test_between_is_additive_over_a_split_point(a, b, c):
    ab, bc = CAL.working_time_between(a, b), CAL.working_time_between(b, c)
    assert ab + bc == CAL.working_time_between(a, c)
    assert CAL.working_time_between(b, a) == -ab
    if a <= b:
        assert timedelta(0) <= ab <= b - a


@LAWS
@given(MOMENTS)
def test_next_working_moment_is_the_first_office_moment(m):
    nxt = CAL.next_working_moment(m)
    assert nxt >= m and CAL.is_working_time(nxt)
    assert CAL.working_time_between(m, nxt) == timedelta(0)
    assert (nxt == m) == CAL.is_working_time(m)
