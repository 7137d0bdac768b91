"""Holidays of a year that has no calendar file, computed from the Labour Code.

The government announces each year's schedule (which Tết days, the day next to 2 September,
swapped Saturdays) only months ahead, so the calendar's files end somewhere. A deadline that runs
past the last file must still be computable: the engine would otherwise stop processing the event
that needed it. Such a year is computed here the way data/calendar/2027.yaml was projected by
hand, and is provisional like that file: replace it with the official schedule when it is out.

- Bộ luật Lao động 2019 (Labour Code, Law 45/2019/QH14) art. 112(1): 1 January; Tết 5 days;
  Hùng Kings' day (10th day of the 3rd lunar month); 30 April; 1 May; 2 September plus one
  adjacent day.
- Tết: the last two days of the old lunar year and mùng 1–3 (the 2027.yaml projection; the
  government picks the 5 days each year, 1–2 before mùng 1 and 3–4 after).
- The day next to 2 September is the one the government chose in 2021–2026 for the same
  weekday: the one that joins the holiday to the weekend, or Monday when 2/9 is a Sunday.
- Art. 111(3): a holiday on a weekly rest day is compensated on the next working day (one that
  is neither a rest day nor a holiday).
- Not projected: swapped working Saturdays (decided case by case) and Vietnamese Culture Day
  (24 November), which is no holiday until art. 112 is amended (see the note in 2026.yaml).

Lunar dates come from the `holidays` library's Vietnamese lunar calendar, reckoned in UTC+7: it
differs from the Chinese calendar (UTC+8) in some years, e.g. mùng 1 Tết 2030 is Saturday
2 February in Việt Nam and 3 February in China.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

_LAW = "Labour Code 2019 art. 112(1)"
_COMPENSATION = "Labour Code 2019 art. 111(3) (a holiday on a weekly rest day is compensated " \
                "on the next working day)"
_COMPUTED = "COMPUTED (no file for this year): "
_VI_PROJECTED, _EN_PROJECTED = " (dự kiến)", " – projected"
# 2 September's weekday (date.weekday()) -> the adjacent day off, in days from 2 September.
_NATIONAL_DAY_NEIGHBOUR = {0: +1, 1: -1, 2: -1, 3: +1, 4: -1, 5: -1, 6: +1}
# The library's own (Vietnamese) names of the two lunar holidays, looked up with language="vi"
# so the host's locale cannot change them.
_LIB_TET = "Tết Nguyên Đán"
_LIB_HUNG_KINGS = "Ngày Giỗ Tổ Hùng Vương"


class ProjectionError(ValueError):
    """The lunar calendar library cannot give a year's lunar holidays."""


@dataclass(frozen=True)
class ComputedHoliday:
    """One day off of a computed year, named and sourced like the entries of a year file."""

    day: date
    vi: str
    en: str
    source: str


def compute_holidays(year: int, working_weekdays: frozenset[int]) -> tuple[ComputedHoliday, ...]:
    """The projected days off of `year`, in date order, compensation days included."""
    days = _fixed_days(year) + _tet(year) + [_hung_kings(year)] + _national_day(year)
    days.sort(key=lambda h: h.day)
    return tuple(sorted(days + _compensation(days, working_weekdays), key=lambda h: h.day))


def lunar_new_year(year: int) -> date:
    """Mùng 1 Tết (1st day of the 1st lunar month) in `year`, Vietnamese calendar."""
    return _lunar_dates(year)[0]


def hung_kings_day(year: int) -> date:
    """The 10th day of the 3rd lunar month in `year`, Vietnamese calendar."""
    return _lunar_dates(year)[1]


@lru_cache(maxsize=None)
def _lunar_dates(year: int) -> tuple[date, date]:
    import holidays  # on first use: most runs never leave the years of the files (~0.1 s saved)

    found = holidays.country_holidays("VN", years=year, observed=False, language="vi")
    tet = found.get_named(_LIB_TET, lookup="exact")
    hung = found.get_named(_LIB_HUNG_KINGS, lookup="exact")
    if len(tet) != 1 or len(hung) != 1:
        raise ProjectionError(f"the holidays library ({holidays.__version__}) gives no lunar new "
                              f"year or Hùng Kings' day for {year}")
    return tet[0], hung[0]


def _holiday(day: date, vi: str, en: str, source: str) -> ComputedHoliday:
    return ComputedHoliday(day, vi + _VI_PROJECTED, en + _EN_PROJECTED, _COMPUTED + source)


def _fixed_days(year: int) -> list[ComputedHoliday]:
    return [
        _holiday(date(year, 1, 1), "Tết Dương lịch", "New Year's Day", f"{_LAW} (1 January)"),
        _holiday(date(year, 4, 30), "Ngày Chiến thắng (Giải phóng miền Nam, thống nhất đất nước)",
                 "Reunification Day", f"{_LAW} (30 April)"),
        _holiday(date(year, 5, 1), "Ngày Quốc tế Lao động", "International Labour Day",
                 f"{_LAW} (1 May)"),
    ]


def _tet(year: int) -> list[ComputedHoliday]:
    first = lunar_new_year(year)
    source = (f"{_LAW} (5 days); projected as the last two days of the old lunar year and "
              f"mùng 1–3, mùng 1 = {first:%d/%m/%Y} (holidays library, Vietnamese calendar)")
    return [_holiday(first + timedelta(days=k), "Tết Nguyên đán", "Lunar New Year (Tết)", source)
            for k in range(-2, 3)]


def _hung_kings(year: int) -> ComputedHoliday:
    day = hung_kings_day(year)
    return _holiday(day, "Giỗ Tổ Hùng Vương (10/3 âm lịch)",
                    "Hùng Kings' Commemoration Day (10th day of the 3rd lunar month)",
                    f"{_LAW}; 10/3 lunar = {day:%d/%m/%Y} (holidays library, Vietnamese calendar)")


def _national_day(year: int) -> list[ComputedHoliday]:
    second = date(year, 9, 2)
    neighbour = second + timedelta(days=_NATIONAL_DAY_NEIGHBOUR[second.weekday()])
    source = (f"{_LAW} (2 September and one adjacent day; {neighbour:%d/%m} projected as the "
              "government chose for the same weekday in 2021–2026)")
    return [_holiday(d, "Quốc khánh", "National Day", source) for d in sorted((second, neighbour))]


def _compensation(days: list[ComputedHoliday], working_weekdays: frozenset[int]) -> list[ComputedHoliday]:
    """Art. 111(3): one day off on the next working day for each holiday on a rest day."""
    if not working_weekdays:  # no working day to move to (and none to count either)
        return []
    taken = {h.day for h in days}
    extra: list[ComputedHoliday] = []
    for holiday in days:  # in date order, so compensation days follow their holidays' order
        if holiday.day.weekday() in working_weekdays:
            continue
        day = holiday.day + timedelta(days=1)
        while day.weekday() not in working_weekdays or day in taken:
            day += timedelta(days=1)
        taken.add(day)
        extra.append(_holiday(
            day, f"Nghỉ bù {holiday.vi.removesuffix(_VI_PROJECTED)}",
            f"Compensatory day off for {holiday.en.removesuffix(_EN_PROJECTED)}",
            f"{_COMPENSATION}: {holiday.day:%d/%m/%Y} is a weekly rest day"))
    return extra
