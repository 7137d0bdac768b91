"""Load the organisation file (validated, all-or-nothing) and look units up by key and date."""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.org.models import OPEN_START, OrgUnit
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import Locator, as_date, load_yaml

KINDS = ("department", "agency", "force", "center", "district", "ward", "commune")
REQUIRED_FIELDS = ("key", "name_vi", "name_en", "kind", "parent", "valid_from", "valid_to", "successor")
OPTIONAL_FIELDS = ("aliases",)
KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_KEY_MAX, _NAME_MAX = 100, 255  # the column lengths in OrgUnit

try:
    TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # no tz database on this host; Việt Nam is UTC+7 with no DST
    TIMEZONE = timezone(timedelta(hours=7))


class OrgFileInvalid(Exception):
    """Raised when an organisation file has problems; carries all of them, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class _Unit:
    """A unit as read from the file, before it is stored."""

    index: int
    line: int | None
    key: str | None  # None when the file's key is missing or malformed
    name_vi: str
    name_en: str
    kind: str
    parent: str | None
    successor: str | None
    valid_from: date  # OPEN_START when the file says null
    valid_to: date | None
    aliases: list[str] = field(default_factory=list)
    dates_ok: bool = True  # both dates read and in order, so validity checks can use them

    @property
    def where(self) -> str:
        return f"units[{self.index}] ({self.key})" if self.key else f"units[{self.index}]"


def today() -> date:
    """Today's date in Asia/Ho_Chi_Minh, the default for every lookup."""
    return datetime.now(TIMEZONE).date()


def local_time(moment: datetime) -> datetime:
    """A stored (UTC) moment as the province's clocks show it."""
    return moment.astimezone(TIMEZONE)


def day_start(day: date) -> datetime:
    """Midnight at the start of `day` on the province's clocks."""
    return datetime.combine(day, time(), TIMEZONE)


# ---------------------------------------------------------------------------------------- loading


def load_file(session: Session, path: str | Path) -> int:
    """Validate the organisation file and upsert its units by (key, valid_from); return their number."""
    path = Path(path)
    units = _read(path)
    _store(session, units)
    return len(units)


def _read(path: Path) -> list[_Unit]:
    file = str(path)
    try:
        data, locator = load_yaml(Path(path), file)
    except ScenarioInvalid as exc:  # unreadable, not UTF-8 or not YAML: same problems, our error
        raise OrgFileInvalid(exc.problems) from exc

    if not isinstance(data, dict) or not isinstance(data.get("units"), list):
        raise OrgFileInvalid([Problem(file, "expected a mapping with a 'units' list")])
    problems = [Problem(file, f"unknown top-level field '{k}'", path=str(k)) for k in data if k != "units"]
    if not data["units"]:
        problems.append(Problem(file, "no units", path="units"))

    lines = _lines(locator, data["units"])
    units: list[_Unit] = []
    for i, raw in enumerate(data["units"]):
        unit = _check_unit(file, i, raw, lines.get(i, {}), problems)
        if unit is not None:
            units.append(unit)
    _check_links(file, units, lines, problems)
    if problems:
        raise OrgFileInvalid(problems)
    return units


def _lines(locator: Locator, units: list) -> dict[int, dict[str, int]]:
    """Line numbers by unit index: '' for the unit itself, then one per field."""
    out: dict[int, dict[str, int]] = {}
    for i, item in enumerate(units):
        out[i] = {"": locator.line(("units", i))}
        if isinstance(item, dict):
            for field in item:
                out[i][str(field)] = locator.line(("units", i, field))
    return out


def _check_unit(file: str, i: int, raw, lines: dict[str, int], problems: list[Problem]) -> _Unit | None:
    """Check one unit's own fields; return what could be read of it (None if it is not a mapping)."""
    if not isinstance(raw, dict):
        problems.append(Problem(file, "must be a mapping of fields", lines.get(""), f"units[{i}]"))
        return None
    key = raw.get("key")
    where = f"units[{i}] ({key})" if isinstance(key, str) else f"units[{i}]"

    def bad(fname: str, message: str) -> None:
        problems.append(Problem(file, message, lines.get(fname, lines.get("")), f"{where}.{fname}"))

    for fname in raw:
        if fname not in REQUIRED_FIELDS and fname not in OPTIONAL_FIELDS:
            bad(str(fname), f"unknown field '{fname}'")
    for fname in REQUIRED_FIELDS:
        if fname not in raw:
            bad(fname, f"missing field '{fname}'")

    if "key" in raw and not _is_key(key):
        bad("key", f"{key!r} is not a kebab-case ASCII key (a-z, 0-9, '-'; at most {_KEY_MAX})")
    for fname in ("name_vi", "name_en"):
        value = raw.get(fname)
        if fname in raw and (not isinstance(value, str) or not value.strip() or len(value) > _NAME_MAX):
            bad(fname, f"must be a non-empty text of at most {_NAME_MAX} characters")
    kind = raw.get("kind")
    if "kind" in raw and kind not in KINDS:
        bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    links = {}
    for fname in ("parent", "successor"):
        value = raw.get(fname)
        if value is not None and not _is_key(value):
            bad(fname, f"{value!r} is not a unit key")
        links[fname] = value if _is_key(value) else None

    n = len(problems)
    valid_from = _date(raw.get("valid_from"), "valid_from", bad)
    valid_to = _date(raw.get("valid_to"), "valid_to", bad)
    dates_ok = len(problems) == n and "valid_from" in raw and "valid_to" in raw
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        bad("valid_to", f"valid_to {valid_to} is before valid_from {valid_from}")
        dates_ok = False
    if links["successor"] is not None and "valid_to" in raw and raw.get("valid_to") is None:
        bad("successor", "a successor needs a valid_to: the unit must end before another takes over")
    if links["successor"] is not None and links["successor"] == key:
        bad("successor", "a unit cannot succeed itself")

    aliases = raw.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        bad("aliases", "must be a list of non-empty codes")
        aliases = []

    return _Unit(
        index=i, line=lines.get(""), key=key if _is_key(key) else None,
        name_vi=str(raw.get("name_vi") or "").strip(), name_en=str(raw.get("name_en") or "").strip(),
        kind=kind, parent=links["parent"], successor=links["successor"],
        valid_from=valid_from or OPEN_START, valid_to=valid_to, aliases=list(aliases),
        dates_ok=dates_ok,
    )


def _is_key(value) -> bool:
    return isinstance(value, str) and len(value) <= _KEY_MAX and bool(KEY_PATTERN.match(value))


def _date(value, fname: str, bad) -> date | None:
    """A date from YAML (unquoted or ISO text); None for null or after reporting a problem."""
    if value is None:
        return None
    try:
        return as_date(value)
    except ValueError as exc:
        bad(fname, f"{exc}; or null for no date")
        return None


def _check_links(file: str, units: list[_Unit], lines, problems: list[Problem]) -> None:
    """Checks across units: overlapping versions, parents, successors and aliases."""
    versions: dict[str, list[_Unit]] = defaultdict(list)
    for u in units:
        if u.key is not None:
            versions[u.key].append(u)

    def bad(u: _Unit, fname: str, message: str) -> None:
        problems.append(Problem(file, message, lines.get(u.index, {}).get(fname, u.line), f"{u.where}.{fname}"))

    for key, vs in versions.items():
        vs.sort(key=lambda u: u.valid_from)
        vs = [u for u in vs if u.dates_ok]
        for prev, nxt in zip(vs, vs[1:]):
            if prev.valid_to is None or nxt.valid_from <= prev.valid_to:
                bad(nxt, "valid_from", f"duplicate key '{key}': validity overlaps units[{prev.index}] "
                    f"({_span(prev.valid_from, prev.valid_to)} and {_span(nxt.valid_from, nxt.valid_to)})")

    for u in units:
        if u.parent is not None:
            if u.parent not in versions:
                bad(u, "parent", f"unknown parent '{u.parent}'")
            elif _dated(u, versions[u.parent]) and not _covers(versions[u.parent], u.valid_from, u.valid_to):
                bad(u, "parent", f"parent '{u.parent}' is not valid throughout {_span(u.valid_from, u.valid_to)}")
        if u.successor is not None:
            if u.successor not in versions:
                bad(u, "successor", f"unknown successor '{u.successor}'")
            elif _dated(u, versions[u.successor]) and u.valid_to is not None and u.valid_to < date.max:
                day_after = u.valid_to + timedelta(days=1)
                if not any(_valid(s, day_after) for s in versions[u.successor]):
                    bad(u, "successor", f"successor '{u.successor}' is not valid on {day_after}, "
                        "the day after this unit ends")

    # An alias must name one unit only, and never shadow a key, or resolve() would be ambiguous.
    owner: dict[str, str] = {}
    for u in units:
        for alias in u.aliases:
            code = alias.casefold()
            if code in versions:
                bad(u, "aliases", f"alias '{alias}' is also a unit key")
            elif owner.setdefault(code, u.key) != u.key:
                bad(u, "aliases", f"alias '{alias}' is also an alias of '{owner[code]}'")


def _dated(unit: _Unit, others: list[_Unit]) -> bool:
    """True if the dates of `unit` and of all `others` were read, so comparing them is meaningful."""
    return unit.dates_ok and all(v.dates_ok for v in others)


def _valid(u: _Unit, on: date) -> bool:
    return u.valid_from <= on and (u.valid_to is None or on <= u.valid_to)


def _covers(versions: list[_Unit], start: date, end: date | None) -> bool:
    """True if the versions (sorted by valid_from) leave no gap between start and end."""
    cursor = start
    for v in versions:
        if v.valid_to is not None and v.valid_to < cursor:
            continue
        if v.valid_from > cursor:
            return False
        if v.valid_to is None or v.valid_to == date.max:
            return True
        cursor = v.valid_to + timedelta(days=1)
        if end is not None and cursor > end:
            return True
    return False


def _span(start: date, end: date | None) -> str:
    return f"{'…' if start == OPEN_START else start}–{end or '…'}"


def _store(session: Session, units: list[_Unit]) -> None:
    """Upsert by (key, valid_from); versions of these keys that the file no longer lists are removed."""
    keys = {u.key for u in units}
    existing = {
        (row.key, row.valid_from): row
        for row in session.scalars(select(OrgUnit).where(OrgUnit.key.in_(keys)))
    }
    wanted = set()
    for u in units:
        wanted.add((u.key, u.valid_from))
        row = existing.get((u.key, u.valid_from))
        if row is None:
            row = OrgUnit(key=u.key, valid_from=u.valid_from)
            session.add(row)
        row.valid_to = u.valid_to
        row.name_vi = u.name_vi
        row.name_en = u.name_en
        row.kind = u.kind
        row.parent_key = u.parent
        row.successor_key = u.successor
        row.aliases = list(u.aliases)
    # Keeping a version the file dropped would leave two versions valid on the same day.
    for ident, row in existing.items():
        if ident not in wanted:
            session.delete(row)
    session.flush()


# ---------------------------------------------------------------------------------------- lookups


def _valid_on(on: date):
    return (OrgUnit.valid_from <= on, or_(OrgUnit.valid_to.is_(None), OrgUnit.valid_to >= on))


def current(session: Session, key: str, on: date | None = None) -> OrgUnit | None:
    """The version of unit `key` valid on `on` (default: today in Asia/Ho_Chi_Minh), or None."""
    on = on or today()
    stmt = select(OrgUnit).where(OrgUnit.key == key, *_valid_on(on)).order_by(OrgUnit.valid_from.desc())
    return session.scalars(stmt.limit(1)).first()


def resolve(session: Session, key: str, on: date | None = None) -> OrgUnit | None:
    """The unit valid on `on` for `key` or an alias, following successors of units that ended."""
    on = on or today()
    seen: set[str] = set()
    while key not in seen:  # a successor cycle in stored data must not loop forever
        seen.add(key)
        versions = list(session.scalars(select(OrgUnit).where(OrgUnit.key == key)))
        if not versions:
            alias_of = _alias_owner(session, key)
            if alias_of is None:
                return None
            key = alias_of
            continue
        valid = [v for v in versions if v.valid_on(on)]
        if valid:
            return max(valid, key=lambda v: v.valid_from)
        ended = [v for v in versions if v.valid_to is not None and v.valid_to < on]
        if not ended:
            return None  # the unit does not exist yet on that date
        last = max(ended, key=lambda v: v.valid_to)
        if last.successor_key is None:
            return None
        key = last.successor_key
    return None


def _alias_owner(session: Session, code: str) -> str | None:
    """The key whose versions list `code` as an alias (case-insensitive), if any."""
    code = code.casefold()
    # The table holds a few hundred rows at most; matching in Python avoids dialect-specific JSON SQL.
    owners = sorted(
        key for key, aliases in session.execute(select(OrgUnit.key, OrgUnit.aliases))
        if any(a.casefold() == code for a in aliases or ())
    )
    return owners[0] if owners else None


def units(session: Session, on: date | None = None, kinds: Iterable[str] | None = None) -> list[OrgUnit]:
    """Units valid on `on` (default today), optionally only these kinds, in Vietnamese order of name_vi."""
    on = on or today()
    stmt = select(OrgUnit).where(*_valid_on(on))
    if kinds is not None:
        stmt = stmt.where(OrgUnit.kind.in_(list(kinds)))
    # Sorted here, not in SQL: database collations differ and few know Vietnamese letter order.
    return sorted(session.scalars(stmt), key=lambda u: (vi_sort_key(u.name_vi), u.key))


def resolvable(session: Session, keys: Iterable[str], on: date | None = None) -> set[str]:
    """The keys among `keys` that `resolve` finds a unit for on `on` (default today): one query
    for the usual case, units in force under their own key; `resolve` for the rest (aliases,
    ended units and their successors, unknown keys)."""
    on = on or today()
    keys = set(keys)
    if not keys:
        return set()
    found = set(session.scalars(select(OrgUnit.key).where(OrgUnit.key.in_(keys),
                                                          *_valid_on(on))))
    return found | {key for key in keys - found if resolve(session, key, on) is not None}


def known_keys(session: Session, on: date | None = None) -> set[str]:
    """Keys of the units valid on `on` (default today)."""
    on = on or today()
    return set(session.scalars(select(OrgUnit.key).where(*_valid_on(on))))


def display_name(unit: OrgUnit) -> str:
    """'name_vi (name_en)'."""
    return f"{unit.name_vi} ({unit.name_en})"


# Vietnamese alphabetical order: letters with breve, circumflex or horn, and đ, are letters of their
# own; tone marks only break ties (in the order none, huyền, hỏi, ngã, sắc, nặng).
_ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz"
_LETTER_RANK = {ch: i for i, ch in enumerate(_ALPHABET)}
_LETTER_MARKS = {"\u0306", "\u0302", "\u031b"}
_TONE_RANK = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}


def vi_sort_key(text: str) -> tuple:
    """A sort key that orders Vietnamese text as a dictionary does."""
    groups: list[list[str]] = []
    for ch in unicodedata.normalize("NFD", text.casefold()):
        if unicodedata.combining(ch) and groups:
            groups[-1][1] += ch
        else:
            groups.append([ch, ""])
    letters, tones = [], []
    for base, marks in groups:
        letter = unicodedata.normalize("NFC", base + "".join(m for m in marks if m in _LETTER_MARKS))
        rank = _LETTER_RANK.get(letter)
        # Spaces, digits and punctuation come before letters, as in a dictionary.
        letters.append((1, rank) if rank is not None else (0, ord(letter[0])))
        tones.append(max((_TONE_RANK.get(m, 0) for m in marks), default=0))
    return tuple(letters), tuple(tones), text
