"""The working-time calendar: office hours, weekends, public holidays and swapped days.

Public-service deadlines in Việt Nam run in working time: office hours (07:30–11:30 and
13:00–17:00 in the shipped settings) on working days, in Asia/Ho_Chi_Minh. A day is a working
day when its weekday is a working weekday and it is not a holiday, or when the year file lists
it under `working_days`: a Saturday worked in exchange for a weekday given off ("làm bù"). The
weekday given off is listed under `holidays`, so a swap is two entries and needs no rule.

Holidays move every year (Tết and Hùng Kings' day follow the lunar calendar, the government
decides bridges and swaps each year), so they are one data file per year. A year after the last
file is not refused (a deadline that runs into it would stop the engine) but computed from the
Labour Code and the lunar calendar (engine/worktime/projection.py), for up to `project_years`
years. Like a file marked `provisional: true` it is a projection: `is_provisional(year)` and
`provisional_years_between(a, b)` tell callers to mark what they computed through it, and
`coverage_warning(today)` tells operators to add the official file in time. Years before the
first file and gaps between files stay errors: silently assuming "no holidays" would make every
deadline in them wrong without anyone noticing.

Counting: think of a clock that runs only during office time. `working_time_between(a, b)` is
how far it runs from a to b. `add_working_time(m, d)` is the first moment at which it has run
`d` since m. Being the *first* such moment, a count that ends exactly at the end of an office
interval ends there (11:30, not 13:00 after the lunch break): the work is done at 11:30, and a
deadline at 13:00 would give an extra lunch break of slack. Counting from outside office hours
starts at the next office moment. Because both are read off the same clock, the laws hold
exactly (microseconds, no rounding): add(add(m, a), b) == add(m, a + b) and
working_time_between(m, add(m, d)) == d.

Office hours are wall-clock times; the province's zone has had no daylight saving time since
1975, so wall-clock and elapsed time agree.
"""
from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from engine import paths
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import Locator, as_date, load_yaml
from engine.worktime.projection import ComputedHoliday, ProjectionError, compute_holidays

DEFAULT_DIR = paths.CALENDAR_DIR
SETTINGS_FILE = "calendar.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_YEAR_FILE = re.compile(r"^(\d{4})\.ya?ml$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_US = 1_000_000  # microseconds in a second: all counting is in whole microseconds
_SETTINGS_FIELDS = ("timezone", "office_hours", "working_weekdays")
_YEAR_FIELDS = ("year", "holidays", "working_days", "provisional")
_HOLIDAY_FIELDS = ("date", "from", "to", "name", "source")
_WORKING_DAY_FIELDS = ("date", "name", "source")
# Years after the last file that are computed rather than refused. Far enough for any deadline
# and for years of an engine nobody updates; bounded because a projection decades ahead is
# guesswork (the Labour Code changes) and a mistyped year (2962) must not build centuries.
PROJECT_YEARS = 25
WARN_MONTHS = 6  # coverage_warning's default: half a year to get the next official schedule in


class CalendarError(ValueError):
    """A calendar file is wrong (every problem, with file and line), or a date is not covered."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            self.problems: list[Problem] = []
            super().__init__(problems)
        else:
            self.problems = list(problems)
            super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class _Span:
    """A run of consecutive covered years, with its working days in order."""

    first_year: int
    last_year: int
    working: tuple[int, ...]  # date ordinals of the working days, ascending


@dataclass(frozen=True)
class WorkingCalendar:
    """Office hours, working weekdays, holidays and swapped working days of the covered years."""

    tz: tzinfo
    office_hours: tuple[tuple[time, time], ...]
    working_weekdays: frozenset[int]  # date.weekday(): 0 = Monday
    holidays: frozenset[date]
    swapped_working_days: frozenset[date]
    years: tuple[int, ...]
    provisional_years: tuple[int, ...] = ()  # projections to replace with the official schedule
    where: str = "data/calendar"  # named in "no holiday file for ... in ..." errors
    project_years: int = PROJECT_YEARS  # years after the last file computed (0: refused)
    _intervals: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _spans: dict[int, _Span] = field(init=False, repr=False, compare=False)
    # Computed years, filled on first use. Threads may race to fill an entry; both compute the
    # same value, so the caches need no lock.
    _computed: dict[int, tuple[ComputedHoliday, ...]] = field(init=False, repr=False, compare=False)
    _computed_days: dict[int, frozenset[date]] = field(init=False, repr=False, compare=False)
    _tails: dict[int, _Span] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        us = tuple((_micros(start), _micros(end)) for start, end in self.office_hours)
        if not us or any(s >= e for s, e in us) or any(a[1] > b[0] for a, b in zip(us, us[1:])):
            raise ValueError("office hours must be non-empty, ordered, non-overlapping intervals")
        if isinstance(self.project_years, bool) or not isinstance(self.project_years, int) \
                or self.project_years < 0:
            raise ValueError(f"project_years must be a whole number >= 0, not {self.project_years!r}")
        for name in ("_computed", "_computed_days", "_tails"):
            object.__setattr__(self, name, {})
        object.__setattr__(self, "_intervals", us)
        object.__setattr__(self, "years", tuple(sorted(set(self.years))))
        spans: dict[int, _Span] = {}
        for first, last in _runs(self.years):
            day, end = date(first, 1, 1), date(last, 12, 31)
            working = []
            while day <= end:
                if self._working(day):
                    working.append(day.toordinal())
                day += timedelta(days=1)
            span = _Span(first, last, tuple(working))
            for year in range(first, last + 1):
                spans[year] = span
        object.__setattr__(self, "_spans", spans)

    # ------------------------------------------------------------------------------- queries

    @property
    def day_length(self) -> timedelta:
        """Office time in one working day (8 h with the shipped office hours)."""
        return timedelta(microseconds=sum(e - s for s, e in self._intervals))

    def is_working_day(self, d: date) -> bool:
        """True if `d` (a date, or an aware datetime's local date) is a working day."""
        if isinstance(d, datetime):
            d = self._local(d).date()
        self._span(d.year)
        return self._working(d)

    def is_working_time(self, moment: datetime) -> bool:
        """True if `moment` falls in office hours ([start, end)) of a working day."""
        local = self._local(moment)
        self._span(local.year)
        t = _micros(local.time())
        return self._working(local.date()) and any(s <= t < e for s, e in self._intervals)

    def next_working_moment(self, moment: datetime) -> datetime:
        """`moment` (as UTC) if it is in office hours, else the start of the next office interval."""
        span, position = self._position(moment)
        if self.is_working_time(moment):
            return moment.astimezone(timezone.utc)
        return self._moment(span, position, at_end=False)

    def add_working_time(self, moment: datetime, delta: timedelta) -> datetime:
        """The first moment at which `delta` of office time has passed since `moment` (UTC)."""
        if not isinstance(delta, timedelta):
            raise TypeError(f"delta must be a timedelta, not {type(delta).__name__}")
        if delta < timedelta(0):
            raise ValueError(f"cannot add a negative working time ({delta})")
        span, position = self._position(moment)
        if not delta:
            return moment.astimezone(timezone.utc)
        return self._moment(span, position + _total_micros(delta), at_end=True)

    def add_working_days(self, moment: datetime, n: int | float) -> datetime:
        """`moment` plus `n` working days of office time (n × day_length)."""
        return self.add_working_time(moment, self.day_length * n)

    def add_working_hours(self, moment: datetime, h: int | float) -> datetime:
        """`moment` plus `h` hours of office time."""
        return self.add_working_time(moment, timedelta(hours=h))

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Office time in [a, b); negative (minus the reverse) when b is before a."""
        span_a, pos_a = self._position(a)
        span_b, pos_b = self._position(b)
        # A computed year continues the last run of files: positions from the same first year
        # agree, whichever of the two spans (one may be longer) they were read from.
        if span_a.first_year != span_b.first_year:  # a year without a file lies between them
            early = min(span_a, span_b, key=lambda s: s.first_year)
            raise self._not_covered(early.last_year + 1)
        return timedelta(microseconds=pos_b - pos_a)

    # ------------------------------------------------------------------------------- horizon

    @property
    def last_official_year(self) -> int | None:
        """The last year with an official (not provisional) file; None if there is none."""
        official = [y for y in self.years if y not in self.provisional_years]
        return official[-1] if official else None

    def is_provisional(self, year: int) -> bool:
        """True if `year`'s holidays are a projection: a provisional file, or a computed year."""
        return year in self.provisional_years or self._after_files(year)

    def provisional_years_between(self, a: date | datetime, b: date | datetime) -> tuple[int, ...]:
        """The provisional years from a's local date to b's (in either order), ascending."""
        first, last = sorted((self._local_date(a), self._local_date(b)))
        return tuple(y for y in range(first.year, last.year + 1) if self.is_provisional(y))

    def computed_holidays(self, year: int) -> tuple[ComputedHoliday, ...]:
        """The projected days off of a year after the last file, in date order."""
        if not self._computable(year):
            raise self._not_covered(year)
        return self._computed_of(year)

    def coverage_warning(self, today: date | datetime, months: int = WARN_MONTHS) -> str | None:
        """Vietnamese / English text when official holidays end within `months` or already did."""
        if isinstance(months, bool) or not isinstance(months, int) or months < 0:
            raise ValueError(f"months must be a whole number >= 0, not {months!r}")
        day = self._local_date(today)
        last = self.last_official_year
        if last is not None and day < _months_before(date(last + 1, 1, 1), months) \
                and not self.is_provisional(day.year):
            return None
        return self._coverage_text(day, last)

    def _coverage_text(self, day: date, last: int | None) -> str:
        start = day.year if last is None else min(day.year, last + 1)
        stop = day.year if last is None else max(day.year, last + 1)
        pending = [y for y in range(start, stop + 1) if self.is_provisional(y)] or [day.year]
        files = ", ".join(f"{y}.yaml" for y in pending)
        head_vi, head_en = _coverage_head(day, last)
        vi = (f"Lịch làm việc: {head_vi}. Từ năm {pending[0]}, thời hạn được tính theo lịch nghỉ "
              "dự kiến (Bộ luật Lao động 2019, điều 111–112) và có thể lệch với lịch Chính phủ "
              f"công bố. Cần thêm lịch chính thức vào {self.where}: {files}.")
        en = (f"Working-time calendar: {head_en}. From {pending[0]}, deadlines are computed from "
              "projected holidays (Labour Code 2019 art. 111–112) and may differ from the "
              f"government's schedule. Add the official schedule to {self.where}: {files}.")
        return f"{vi} / {en}"

    # ------------------------------------------------------------------------------- counting

    def _working(self, d: date) -> bool:
        if self._after_files(d.year):
            return d.weekday() in self.working_weekdays and d not in self._computed_days_of(d.year)
        if d in self.swapped_working_days:
            return True
        return d.weekday() in self.working_weekdays and d not in self.holidays

    def _local_date(self, value: date | datetime) -> date:
        return self._local(value).date() if isinstance(value, datetime) else value

    def _after_files(self, year: int) -> bool:
        return bool(self.years) and year > self.years[-1]

    def _computable(self, year: int) -> bool:
        """A year after the last file and within the projection horizon."""
        return self._after_files(year) and year <= self.years[-1] + self.project_years

    def _computed_of(self, year: int) -> tuple[ComputedHoliday, ...]:
        found = self._computed.get(year)
        if found is None:
            try:
                found = compute_holidays(year, self.working_weekdays)
            except ProjectionError as exc:
                raise CalendarError(f"{exc}; add {year}.yaml to {self.where}") from exc
            self._computed[year] = found
        return found

    def _computed_days_of(self, year: int) -> frozenset[date]:
        days = self._computed_days.get(year)
        if days is None:
            days = frozenset(h.day for h in self._computed_of(year))
            self._computed_days[year] = days
        return days

    def _span_through(self, year: int) -> _Span:
        """The last run of file years continued with the computed years through `year`."""
        for y in range(self.years[-1] + 1, year + 1):
            if y not in self._tails:
                before = self._tails.get(y - 1) or self._spans[y - 1]
                first = date(y, 1, 1).toordinal()
                days = range(first, date(y + 1, 1, 1).toordinal())
                working = tuple(o for o in days if self._working(date.fromordinal(o)))
                self._tails[y] = _Span(before.first_year, y, before.working + working)
        return self._tails[year]

    def _local(self, moment: datetime) -> datetime:
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime, not {type(moment).__name__}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware datetime")
        return moment.astimezone(self.tz)

    def _span(self, year: int) -> _Span:
        span = self._spans.get(year)
        if span is None:
            if not self._computable(year):
                raise self._not_covered(year)
            span = self._span_through(year)
        return span

    def _not_covered(self, year: int) -> CalendarError:
        covered = f"{self.years[0]}–{self.years[-1]}" if self.years else "none"
        if self.years and self.project_years:
            covered += f", computed up to {self.years[-1] + self.project_years}"
        return CalendarError(f"no holiday file for {year} in {self.where} (covered years: {covered}); "
                             f"add {year}.yaml with that year's official holiday schedule")

    def _position(self, moment: datetime) -> tuple[_Span, int]:
        """Office microseconds from the start of the moment's span of years up to `moment`."""
        local = self._local(moment)
        day = local.date()
        span = self._span(day.year)
        index = bisect_left(span.working, day.toordinal())
        position = index * self._day_micros()
        if index < len(span.working) and span.working[index] == day.toordinal():
            t = _micros(local.time())
            position += sum(min(max(t - s, 0), e - s) for s, e in self._intervals)
        return span, position

    def _moment(self, span: _Span, position: int, at_end: bool) -> datetime:
        """The first moment at `position` (at_end: ends of intervals count) as aware UTC."""
        day_us = self._day_micros()
        if at_end:  # position > 0: the (1-based) microsecond of office time that must have passed
            index, offset = divmod(position - 1, day_us)
            offset += 1
        else:  # the moment office time resumes at `position`
            index, offset = divmod(position, day_us)
        while index >= len(span.working):  # runs past the span: on into computed years
            if not self._computable(span.last_year + 1):
                raise self._not_covered(span.last_year + 1)
            span = self._span_through(span.last_year + 1)
        elapsed = 0
        for s, e in self._intervals:
            if offset < elapsed + (e - s) or (at_end and offset == elapsed + (e - s)):
                local = datetime.combine(date.fromordinal(span.working[index]), time())
                local += timedelta(microseconds=s + offset - elapsed)
                return local.replace(tzinfo=self.tz).astimezone(timezone.utc)
            elapsed += e - s
        raise AssertionError("offset beyond the working day")  # divmod keeps it within the day

    def _day_micros(self) -> int:
        return sum(e - s for s, e in self._intervals)


def _micros(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US + t.microsecond


def _total_micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * _US + delta.microseconds


def _coverage_head(day: date, last: int | None) -> tuple[str, str]:
    """How far official holidays reach, seen from `day`, in Vietnamese and English."""
    if last is None:
        return ("chưa có năm nào có lịch nghỉ lễ chính thức",
                "no year has an official holiday schedule")
    if day.year > last:
        return (f"lịch nghỉ lễ chính thức đã hết từ cuối năm {last}",
                f"official holidays ended with {last}")
    left = (date(last + 1, 1, 1) - day).days
    return (f"lịch nghỉ lễ chính thức chỉ có đến hết năm {last} (còn {left} ngày)",
            f"official holidays end with {last} ({left} days left)")


def _months_before(day: date, months: int) -> date:
    """The first day of the month `months` months before `day`'s month."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _runs(years: Iterable[int]) -> list[tuple[int, int]]:
    """Consecutive runs of years: [2025, 2026, 2028] -> [(2025, 2026), (2028, 2028)]."""
    runs: list[tuple[int, int]] = []
    for year in sorted(set(years)):
        if runs and runs[-1][1] == year - 1:
            runs[-1] = (runs[-1][0], year)
        else:
            runs.append((year, year))
    return runs


# ---------------------------------------------------------------------------------------- loading


@dataclass
class _Settings:
    tz: tzinfo | None = None
    office_hours: list[tuple[time, time]] = field(default_factory=list)
    weekdays: frozenset[int] | None = None


@dataclass
class _Year:
    year: int
    holidays: dict[date, int] = field(default_factory=dict)  # date -> line, to report duplicates
    working_days: dict[date, int] = field(default_factory=dict)
    provisional: bool = False


def load_calendar(directory: str | Path | None = None,
                  project_years: int = PROJECT_YEARS) -> WorkingCalendar:
    """Read and validate calendar.yaml and every YYYY.yaml in `directory` (default data/calendar)."""
    directory = Path(directory) if directory is not None else DEFAULT_DIR
    where = _display(directory)
    if not directory.is_dir():
        raise CalendarError(f"{where}: no such directory of calendar files")
    problems: list[Problem] = []
    settings_path = directory / SETTINGS_FILE
    settings = _Settings()
    if settings_path.is_file():
        settings = _read_settings(settings_path, problems)
    else:
        problems.append(Problem(_display(settings_path), "missing: the calendar settings "
                                "(timezone, office_hours, working_weekdays)"))

    years: list[_Year] = []
    seen: dict[int, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name == SETTINGS_FILE or path.suffix not in (".yaml", ".yml"):
            continue
        if not _YEAR_FILE.match(path.name):
            problems.append(Problem(_display(path), f"unexpected file; a calendar directory holds "
                                    f"{SETTINGS_FILE} and one YYYY.yaml per year"))
            continue
        number = int(_YEAR_FILE.match(path.name).group(1))
        if number in seen:
            problems.append(Problem(_display(path), f"a second file for {number} (also {seen[number]})"))
            continue
        seen[number] = path.name
        year = _read_year(path, settings, problems)
        if year is not None:
            years.append(year)
    if not years and not problems:
        problems.append(Problem(where, "no year files (YYYY.yaml): holidays are needed for every "
                                "year the calendar is used in"))
    if problems:
        raise CalendarError(problems)
    assert settings.tz is not None and settings.weekdays is not None
    return WorkingCalendar(
        tz=settings.tz,
        office_hours=tuple(settings.office_hours),
        working_weekdays=settings.weekdays,
        holidays=frozenset(d for y in years for d in y.holidays),
        swapped_working_days=frozenset(d for y in years for d in y.working_days),
        years=tuple(y.year for y in years),
        provisional_years=tuple(y.year for y in years if y.provisional),
        where=where,
        project_years=project_years,
    )


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The shipped calendar (data/calendar), loaded once."""
    return load_calendar(DEFAULT_DIR)


def _display(path: Path) -> str:
    """A path as messages show it: relative to data/'s parent (the repository) when inside it."""
    try:
        return str(path.resolve().relative_to(paths.DATA_ROOT))
    except ValueError:
        return str(path)


def _load(path: Path, problems: list[Problem]) -> tuple[Any, Locator] | None:
    try:
        return load_yaml(path, _display(path))
    except ScenarioInvalid as exc:  # unreadable, not UTF-8 or not YAML: same problems, our error
        problems.extend(exc.problems)
        return None
    except ValueError as exc:
        # PyYAML turns an unquoted 2025-13-01 into a date itself and fails with a bare ValueError.
        line, value = _bad_timestamp(path)
        what = f"{value!r} is not a date (YYYY-MM-DD)" if value is not None else "bad value"
        problems.append(Problem(_display(path), f"{what}: {exc}", line))
        return None


def _bad_timestamp(path: Path) -> tuple[int | None, str | None]:
    """Line and text of the first unquoted date-like scalar that is not a real date."""
    try:
        stack = [yaml.compose(path.read_text(encoding="utf-8-sig"), Loader=yaml.SafeLoader)]
    except (OSError, ValueError, yaml.YAMLError):
        return None, None
    bad: list[tuple[int, str]] = []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
            try:
                yaml.safe_load(node.value)
            except ValueError:
                bad.append((node.start_mark.line + 1, node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
    return min(bad) if bad else (None, None)


def _unknown_fields(raw: dict, allowed: tuple[str, ...], path: tuple, locator: Locator,
                    problems: list[Problem]) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(locator.problem(f"unknown field '{key}' (expected {', '.join(allowed)})",
                                            path + (key,)))


def _read_settings(path: Path, problems: list[Problem]) -> _Settings:
    settings = _Settings()
    loaded = _load(path, problems)
    if loaded is None:
        return settings
    data, loc = loaded
    if not isinstance(data, dict):
        problems.append(Problem(loc.file, "expected a mapping with timezone, office_hours and "
                                "working_weekdays", 1))
        return settings
    _unknown_fields(data, _SETTINGS_FIELDS, (), loc, problems)
    for key in _SETTINGS_FIELDS:
        if key not in data:
            problems.append(loc.problem(f"missing field '{key}'", ()))

    if "timezone" in data:
        settings.tz = _zone(data["timezone"], loc, problems)
    if "office_hours" in data:
        settings.office_hours = _office_hours(data["office_hours"], loc, problems)
    if "working_weekdays" in data:
        settings.weekdays = _weekdays(data["working_weekdays"], loc, problems)
    return settings


def _zone(value: Any, loc: Locator, problems: list[Problem]) -> tzinfo | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(loc.problem(f"{value!r} is not a time zone name (e.g. Asia/Ho_Chi_Minh)",
                                    ("timezone",)))
        return None
    try:
        return ZoneInfo(value)
    except ZoneInfoNotFoundError:
        if value == "Asia/Ho_Chi_Minh":  # no tz database on this host; UTC+7 with no DST
            return timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
    except ValueError:
        pass
    problems.append(loc.problem(f"unknown time zone {value!r}", ("timezone",)))
    return None


def _office_hours(value: Any, loc: Locator, problems: list[Problem]) -> list[tuple[time, time]]:
    if not isinstance(value, list) or not value:
        problems.append(loc.problem('must be a non-empty list of ["HH:MM", "HH:MM"] pairs',
                                    ("office_hours",)))
        return []
    hours: list[tuple[time, time]] = []
    for i, pair in enumerate(value):
        path = ("office_hours", i)
        if not isinstance(pair, list) or len(pair) != 2:
            problems.append(loc.problem(f'{pair!r} is not a ["HH:MM", "HH:MM"] pair', path))
            continue
        start, end = (_hhmm(v, path + (j,), loc, problems) for j, v in enumerate(pair))
        if start is None or end is None:
            continue
        if start >= end:
            problems.append(loc.problem(f"{start:%H:%M} is not before {end:%H:%M}", path))
        elif hours and start < hours[-1][1]:
            problems.append(loc.problem(
                f"{start:%H:%M}–{end:%H:%M} overlaps or comes before the previous interval "
                f"{hours[-1][0]:%H:%M}–{hours[-1][1]:%H:%M}; list office hours in order, "
                "without overlaps", path))
        else:
            hours.append((start, end))
    return hours if len(hours) == len(value) else []


def _hhmm(value: Any, path: tuple, loc: Locator, problems: list[Problem]) -> time | None:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 13:00 as the number 780 (base 60).
        problems.append(loc.problem(f'{value!r} is a number; write times in quotes ("13:00")', path))
        return None
    m = _HHMM.match(value) if isinstance(value, str) else None
    if m is None:
        problems.append(loc.problem(f'{value!r} is not a time "HH:MM" (00:00–23:59)', path))
        return None
    return time(int(m.group(1)), int(m.group(2)))


def _weekdays(value: Any, loc: Locator, problems: list[Problem]) -> frozenset[int] | None:
    if not isinstance(value, list) or not value:
        problems.append(loc.problem(f"must be a non-empty list of {', '.join(WEEKDAYS)}",
                                    ("working_weekdays",)))
        return None
    days: set[int] = set()
    ok = True
    for i, name in enumerate(value):
        path = ("working_weekdays", i)
        if name not in WEEKDAYS:
            problems.append(loc.problem(f"{name!r} is not one of {', '.join(WEEKDAYS)}", path))
            ok = False
        elif WEEKDAYS.index(name) in days:
            problems.append(loc.problem(f"'{name}' is listed twice", path))
            ok = False
        else:
            days.add(WEEKDAYS.index(name))
    return frozenset(days) if ok else None


def _read_year(path: Path, settings: _Settings, problems: list[Problem]) -> _Year | None:
    expected = int(_YEAR_FILE.match(path.name).group(1))
    loaded = _load(path, problems)
    if loaded is None:
        return None
    data, loc = loaded
    if not isinstance(data, dict):
        problems.append(Problem(loc.file, "expected a mapping with year, holidays and working_days", 1))
        return None
    n = len(problems)
    _unknown_fields(data, _YEAR_FIELDS, (), loc, problems)
    for key in ("year", "holidays"):
        if key not in data:
            problems.append(loc.problem(f"missing field '{key}'", ()))
    year = data.get("year")
    if "year" in data and (isinstance(year, bool) or year != expected):
        problems.append(loc.problem(f"year {year!r} does not match the file name {path.name}",
                                    ("year",)))
    provisional = data.get("provisional", False)
    if not isinstance(provisional, bool):
        problems.append(loc.problem("must be true or false", ("provisional",)))

    result = _Year(expected, provisional=provisional is True)
    for key in ("holidays", "working_days"):
        entries = data.get(key) or []
        if not isinstance(entries, list):
            problems.append(loc.problem("must be a list of entries", (key,)))
            continue
        for i, raw in enumerate(entries):
            if key == "holidays":
                _holiday(raw, (key, i), result, loc, problems)
            else:
                _working_day(raw, (key, i), result, settings, loc, problems)
    return result if len(problems) == n else None


def _entry_common(raw: Any, path: tuple, allowed: tuple[str, ...], loc: Locator,
                  problems: list[Problem]) -> bool:
    """Checks every entry shares: a mapping, known fields, a {vi, en} name and a source."""
    if not isinstance(raw, dict):
        problems.append(loc.problem("must be a mapping (date, name, source)", path))
        return False
    _unknown_fields(raw, allowed, path, loc, problems)
    name = raw.get("name")
    if not isinstance(name, dict) or set(name) != {"vi", "en"} or not all(
            isinstance(v, str) and v.strip() for v in name.values()):
        problems.append(loc.problem("name must be {vi: ..., en: ...}, both non-empty texts",
                                    path + ("name",)))
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        problems.append(loc.problem("source must say where the date comes from (a law article "
                                    "or the government's notice)", path + ("source",)))
    return True


def _holiday(raw: Any, path: tuple, year: _Year, loc: Locator, problems: list[Problem]) -> None:
    if not _entry_common(raw, path, _HOLIDAY_FIELDS, loc, problems):
        return
    if "date" in raw and ("from" in raw or "to" in raw):
        problems.append(loc.problem("give either date or from/to, not both", path + ("date",)))
        return
    if "date" in raw:
        day = _date(raw["date"], path + ("date",), loc, problems)
        days = [day] if day is not None else []
        first_field = "date"
    elif "from" in raw and "to" in raw:
        start = _date(raw["from"], path + ("from",), loc, problems)
        end = _date(raw["to"], path + ("to",), loc, problems)
        if start is None or end is None:
            return
        if end < start:
            problems.append(loc.problem(f"to {end} is before from {start}", path + ("to",)))
            return
        days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
        first_field = "from"
    else:
        problems.append(loc.problem("needs a date, or a from/to range", path))
        return
    line = loc.nearest(path + (first_field,))
    for day in days:
        if day.year != year.year:
            problems.append(loc.problem(f"{day} is not in {year.year}, the year of this file",
                                        path + (first_field,)))
            return
        if day in year.holidays:
            problems.append(loc.problem(f"{day} is already a holiday (line {year.holidays[day]})",
                                        path + (first_field,)))
            return
    for day in days:
        year.holidays[day] = line


def _working_day(raw: Any, path: tuple, year: _Year, settings: _Settings, loc: Locator,
                 problems: list[Problem]) -> None:
    if not _entry_common(raw, path, _WORKING_DAY_FIELDS, loc, problems):
        return
    if "date" not in raw:
        problems.append(loc.problem("needs the date of the swapped working day", path))
        return
    where = path + ("date",)
    day = _date(raw["date"], where, loc, problems)
    if day is None:
        return
    if day.year != year.year:
        problems.append(loc.problem(f"{day} is not in {year.year}, the year of this file", where))
    elif day in year.working_days:
        problems.append(loc.problem(f"{day} is already a working day (line {year.working_days[day]})",
                                    where))
    elif day in year.holidays:
        problems.append(loc.problem(f"{day} is also listed as a holiday (line {year.holidays[day]})",
                                    where))
    elif settings.weekdays is not None and day.weekday() in settings.weekdays:
        problems.append(loc.problem(f"{day} is a {WEEKDAYS[day.weekday()]}, already a working day; "
                                    "only a weekend day can be swapped into a working day", where))
    else:
        year.working_days[day] = loc.nearest(where)


def _date(value: Any, path: tuple, loc: Locator, problems: list[Problem]) -> date | None:
    """A date from YAML (unquoted or ISO text); None after reporting a problem."""
    try:
        return as_date(value)
    except ValueError as exc:
        problems.append(loc.problem(str(exc), path))
        return None
