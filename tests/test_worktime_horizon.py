"""The calendar beyond its last file: computed years, provisional marks and the coverage warning.

Every date is passed explicitly: nothing here depends on the day the tests run.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.worktime.calendar import CalendarError, default_calendar, load_calendar
from engine.worktime.projection import compute_holidays, hung_kings_day, lunar_new_year
from tests.test_worktime import _write

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = default_calendar()  # files 2025, 2026 (official) and 2027 (provisional)
WEEKDAYS = frozenset(range(5))


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A moment on the province's clocks."""
    return datetime(y, mo, d, h, mi, tzinfo=VN)


def local(moment: datetime) -> datetime:
    return moment.astimezone(VN)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


# ------------------------------------------------------------------------------- computed years


def test_ten_working_days_from_christmas_eve_2029_skip_the_computed_new_year():
    start = at(2029, 12, 24, 9)
    due = CAL.add_working_days(start, 10)
    # Mon 24/12 + 10: 25–28/12, 31/12, then 1/1/2030 is off: 2–4/1, 7–8/1.
    assert local(due) == at(2030, 1, 8, 9)
    assert CAL.working_time_between(start, due) == timedelta(hours=80)
    assert CAL.provisional_years_between(start, due) == (2029, 2030)
    assert CAL.is_provisional(2029) and CAL.is_provisional(2030)


def test_tet_of_a_computed_year_is_not_working_time():
    # Mùng 1 Tết Canh Tuất in Việt Nam (UTC+7) is Saturday 2 February 2030: the new moon is at
    # 23:08 local time. China (UTC+8) has it a day later, on 3 February.
    assert lunar_new_year(2030) == date(2030, 2, 2)
    # Two days of the old year and mùng 1–3 (Thu 31/1 – Mon 4/2); mùng 1–2 fall on the weekend
    # and are compensated on Tue 5/2 and Wed 6/2.
    for day in days(date(2030, 1, 31), date(2030, 2, 6)):
        assert not CAL.is_working_day(day), day
    assert CAL.is_working_day(date(2030, 1, 30)) and CAL.is_working_day(date(2030, 2, 7))
    assert not CAL.is_working_time(at(2030, 2, 4, 9))
    assert local(CAL.next_working_moment(at(2030, 1, 30, 17, 30))) == at(2030, 2, 7, 7, 30)


def test_hung_kings_day_of_a_computed_year_is_not_working():
    assert hung_kings_day(2030) == date(2030, 4, 12)  # 10/3 Canh Tuất, a Friday
    assert not CAL.is_working_day(date(2030, 4, 12))
    assert CAL.is_working_day(date(2030, 4, 11)) and CAL.is_working_day(date(2030, 4, 15))


def test_national_day_and_its_adjacent_day():
    # 2030: 2/9 is a Monday, the day joined to it is Tuesday 3/9.
    assert [CAL.is_working_day(d) for d in days(date(2030, 8, 30), date(2030, 9, 4))] == \
        [True, False, False, False, False, True]  # Fri, Sat, Sun, Mon 2/9, Tue 3/9, Wed
    # 2029: 2/9 is a Sunday: Monday 3/9 is the adjacent day and Tuesday 4/9 compensates the Sunday.
    assert not CAL.is_working_day(date(2029, 9, 3)) and not CAL.is_working_day(date(2029, 9, 4))
    assert CAL.is_working_day(date(2029, 9, 5))


@pytest.mark.parametrize("holiday, compensation, back_to_work", [
    (date(2034, 1, 1), date(2034, 1, 2), date(2034, 1, 3)),    # New Year on a Sunday
    (date(2034, 4, 30), date(2034, 5, 2), date(2034, 5, 3)),   # Sunday; Monday 1/5 is itself off
    (date(2028, 1, 1), date(2028, 1, 3), date(2028, 1, 4)),    # a Saturday is a rest day too
])
def test_a_holiday_on_a_rest_day_is_compensated_on_the_next_working_day(
        holiday, compensation, back_to_work):
    assert holiday.weekday() >= 5
    assert not CAL.is_working_day(compensation)
    assert CAL.is_working_day(back_to_work)
    assert any(h.day == compensation and h.vi.startswith("Nghỉ bù")
               for h in CAL.computed_holidays(holiday.year))


def test_the_computed_2027_is_the_hand_projection_of_2027_yaml():
    projected = {d for d in CAL.holidays if d.year == 2027}
    assert {h.day for h in compute_holidays(2027, WEEKDAYS)} == projected


def test_lunar_dates_agree_with_the_official_years():
    assert (lunar_new_year(2025), hung_kings_day(2025)) == (date(2025, 1, 29), date(2025, 4, 7))
    assert (lunar_new_year(2026), hung_kings_day(2026)) == (date(2026, 2, 17), date(2026, 4, 26))


def test_computed_holidays_carry_names_and_sources():
    for holiday in CAL.computed_holidays(2030):
        assert holiday.vi.endswith("(dự kiến)") and holiday.en.endswith("projected")
        assert holiday.source.startswith("COMPUTED") and "Labour Code 2019" in holiday.source
    assert not any(h.day == date(2030, 11, 24) for h in CAL.computed_holidays(2030))


def test_counting_runs_on_from_the_last_file_into_computed_years():
    # Friday 31/12/2027 16:00 + 2 h: 1/1/2028 is a Saturday, compensated on Monday 3/1.
    assert local(CAL.add_working_hours(at(2027, 12, 31, 16), 2)) == at(2028, 1, 4, 8, 30)
    assert CAL.working_time_between(at(2027, 6, 1), at(2028, 1, 3)) == \
        CAL.working_time_between(at(2027, 6, 1), at(2028, 1, 1))
    assert CAL.provisional_years_between(at(2026, 12, 28), at(2027, 1, 4)) == (2027,)


# ------------------------------------------------------------------------------- unchanged


def test_official_2026_is_unchanged():
    off = {date(2026, 1, 1), date(2026, 1, 2), *days(date(2026, 2, 16), date(2026, 2, 20)),
           date(2026, 4, 27), date(2026, 4, 30), date(2026, 5, 1), date(2026, 8, 31),
           date(2026, 9, 1), date(2026, 9, 2)}
    worked_saturdays = {date(2026, 1, 10), date(2026, 8, 22)}
    for day in days(date(2026, 1, 1), date(2026, 12, 31)):
        expected = (day.weekday() < 5 and day not in off) or day in worked_saturdays
        assert CAL.is_working_day(day) == expected, day
    assert not CAL.is_provisional(2026)
    assert CAL.provisional_years_between(at(2026, 1, 5), at(2026, 12, 31)) == ()
    # Friday 6 March 2026 16:00 + 1 working day: Monday 16:00, as before.
    assert local(CAL.add_working_days(at(2026, 3, 6, 16), 1)) == at(2026, 3, 9, 16)


def test_a_year_with_a_file_is_never_computed(tmp_path):
    # This 2025 lists only New Year's Day: its file wins over the law, so Tết 2025 is worked.
    _write(tmp_path, "2025.yaml", YEAR_2025_NEW_YEAR_ONLY)
    cal = load_calendar(tmp_path)
    assert cal.is_working_day(date(2025, 1, 29)) and not cal.is_provisional(2025)
    # 2026 has no file: computed, with its Tết (mùng 1 = Tuesday 17/2).
    assert not cal.is_working_day(date(2026, 2, 17)) and cal.is_provisional(2026)


def test_what_stays_refused(tmp_path):
    with pytest.raises(CalendarError, match="no holiday file for 2024"):  # before the first file
        CAL.add_working_hours(at(2024, 12, 31, 9), 1)
    with pytest.raises(CalendarError, match=r"no holiday file for 2053 .*computed up to 2052"):
        CAL.is_working_day(date(2053, 1, 5))  # beyond the 25 computed years
    with pytest.raises(CalendarError, match="no holiday file for 2053"):
        CAL.add_working_days(at(2052, 12, 20, 9), 30)
    _write(tmp_path, "2025.yaml", YEAR_2025_NEW_YEAR_ONLY)
    _write(tmp_path, "2027.yaml", "year: 2027\nholidays: []\n")
    with pytest.raises(CalendarError, match="no holiday file for 2026"):  # a gap between files
        load_calendar(tmp_path).add_working_days(at(2025, 12, 30, 9), 5)
    strict = load_calendar(tmp_path, project_years=0)  # the behaviour before computed years
    with pytest.raises(CalendarError, match="no holiday file for 2028"):
        strict.add_working_hours(at(2027, 12, 31, 16), 2)
    with pytest.raises(ValueError, match="project_years"):
        load_calendar(tmp_path, project_years=-1)


# ------------------------------------------------------------------------------- warning


def test_last_official_year_skips_provisional_files():
    assert CAL.last_official_year == 2026
    assert CAL.is_provisional(2027)  # its file says provisional: true


def test_the_warning_starts_six_months_before_the_last_official_year_ends():
    assert CAL.coverage_warning(date(2025, 12, 31)) is None  # a year before
    assert CAL.coverage_warning(date(2026, 6, 30)) is None
    message = CAL.coverage_warning(date(2026, 7, 1))
    assert message is not None
    vi, en = message.split(" / ")
    assert vi.startswith("Lịch làm việc: lịch nghỉ lễ chính thức chỉ có đến hết năm 2026")
    assert "(còn 184 ngày)" in vi and "2027.yaml" in vi
    assert en.startswith("Working-time calendar: official holidays end with 2026 (184 days left)")
    assert CAL.coverage_warning(at(2026, 12, 31, 23)) is not None  # a datetime: its local date


def test_the_warning_window_is_a_parameter():
    assert CAL.coverage_warning(date(2026, 1, 1), months=12) is not None
    assert CAL.coverage_warning(date(2026, 9, 30), months=3) is None
    assert CAL.coverage_warning(date(2026, 10, 1), months=3) is not None
    with pytest.raises(ValueError, match="months"):
        CAL.coverage_warning(date(2026, 10, 1), months=-1)


def test_the_warning_stays_while_a_provisional_year_is_in_use(tmp_path):
    message = CAL.coverage_warning(date(2029, 3, 1))
    assert message is not None and "đã hết từ cuối năm 2026" in message
    assert "2027.yaml, 2028.yaml, 2029.yaml" in message
    # An official year after a provisional one: the provisional year warns while it is today.
    _write(tmp_path, "2025.yaml", YEAR_2025_NEW_YEAR_ONLY)
    _write(tmp_path, "2026.yaml", "year: 2026\nprovisional: true\nholidays: []\n")
    _write(tmp_path, "2027.yaml", "year: 2027\nholidays: []\n")
    cal = load_calendar(tmp_path)
    assert cal.last_official_year == 2027
    assert cal.coverage_warning(date(2025, 3, 1)) is None
    assert "2026.yaml" in cal.coverage_warning(date(2026, 3, 1))


# ------------------------------------------------------------------------------- laws

MOMENTS = st.datetimes(min_value=datetime(2027, 6, 1), max_value=datetime(2029, 12, 31),
                       timezones=st.just(VN))
DELTAS = st.integers(0, 300 * 8 * 60).map(lambda m: timedelta(minutes=m))


@settings(max_examples=100, deadline=None)
@given(MOMENTS, DELTAS, DELTAS)
def test_the_counting_laws_hold_across_computed_years(m, a, b):
    assert CAL.add_working_time(CAL.add_working_time(m, a), b) == CAL.add_working_time(m, a + b)
    assert CAL.working_time_between(m, CAL.add_working_time(m, a)) == a


# ------------------------------------------------------------------------------- helpers

YEAR_2025_NEW_YEAR_ONLY = """\
year: 2025
holidays:
  - date: 2025-01-01
    name: {vi: Tết Dương lịch, en: New Year's Day}
    source: Labour Code 2019 art. 112
"""
