"""Reading native input for the feed adapters: fields with named problems, wards, batches, CSV.

What the feed adapters (cameras, security, health, dossiers) share beyond `intake`: each native
item's fields are read with a problem named in the source's own terms; a ward or commune is
found by key, old key or exact Vietnamese name; a batch keeps each event's native item, so the
engine's own refusals point back at the item and its field; CSV files are read with their rows
numbered as a spreadsheet does.
"""
from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from flask import g, jsonify
from sqlalchemy import select

from engine.api import ApiProblem, services
from engine.events import service
from engine.events.service import IngestResult, Refusal
from engine.org import service as org
from engine.org.models import OrgUnit
from integrations import intake

MAX_ITEMS = 1000  # like a CloudEvents batch on /api/v1/events
WARD_KINDS = ("ward", "commune")
Problems = list  # of (field, message)


def blank(value: Any) -> bool:
    """True for a missing value: None, or a string of spaces (an empty CSV cell)."""
    return value is None or (isinstance(value, str) and not value.strip())


def text_field(item: dict, name: str, problems: Problems, required: bool = True) -> str | None:
    """A non-empty text (a whole number is taken as its digits, for ids); None if absent or bad."""
    value = item.get(name)
    if blank(value):
        if required:
            problems.append((name, "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append((name, "must be text"))
        return None
    return str(value).strip()


def count_field(item: dict, name: str, problems: Problems, required: bool = True) -> int | None:
    """A whole number ≥ 0 (JSON number or CSV digits); None if absent or bad."""
    value = item.get(name)
    if blank(value):
        if required:
            problems.append((name, "is required"))
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.append((name, f"must be a whole number ≥ 0, not {value!r}"))
    return None


def number_field(item: dict, name: str, problems: Problems, required: bool = True) -> float | None:
    """A finite number (JSON number or CSV text such as 7.5); None if absent or bad."""
    value = item.get(name)
    if blank(value):
        if required:
            problems.append((name, "is required"))
        return None
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        problems.append((name, f"must be a number, not {value!r}"))
        return None
    return number


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset (also Wazuh's `+0700` form); None otherwise."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Wazuh writes "+0700": spelled "+07:00" here so the accepted forms do not depend on which
    # ones this Python's fromisoformat happens to read.
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def moment_field(item: dict, name: str, problems: Problems,
                 required: bool = True) -> datetime | None:
    """An aware date-time field; None if absent or bad (a time without offset is bad)."""
    value = item.get(name)
    if blank(value):
        if required:
            problems.append((name, "is required"))
        return None
    moment = parse_moment(value)
    if moment is None:
        problems.append((name, "must be an ISO 8601 date-time with a UTC offset, e.g. "
                               f"2026-11-27T08:15:00+07:00, not {value!r}"))
    return moment


def _folded(name: str) -> str:
    # Vietnamese text may come composed or decomposed (NFD from some systems) and in any case.
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


class WardLookup:
    """Ward and commune keys valid today by key, old key, alias or exact Vietnamese name.

    Built on one read session for one request or file; each value is resolved once.
    """

    def __init__(self, session):
        self._session = session
        self._cache: dict[str, str | None] = {}
        self._names: dict[str, set[str]] | None = None

    def key(self, value: str) -> str | None:
        """Today's key of the ward or commune `value` names, or None."""
        if value not in self._cache:
            self._cache[value] = self._find(value)
        return self._cache[value]

    def _find(self, value: str) -> str | None:
        unit = org.resolve(self._session, value)
        if unit is None:
            owners = self._by_name().get(_folded(value), set())
            if len(owners) == 1:  # a name two units share names neither
                unit = org.resolve(self._session, next(iter(owners)))
        return unit.key if unit is not None and unit.kind in WARD_KINDS else None

    def _by_name(self) -> dict[str, set[str]]:
        if self._names is None:
            self._names = defaultdict(set)
            for key, name in self._session.execute(select(OrgUnit.key, OrgUnit.name_vi)):
                self._names[_folded(name)].add(key)
        return self._names


def ward_field(item: dict, name: str, problems: Problems, wards: WardLookup,
               required: bool = True) -> str | None:
    """A ward or commune named by key or Vietnamese name, as today's key; None if absent or bad."""
    value = text_field(item, name, problems, required)
    if value is None:
        return None
    key = wards.key(value)
    if key is None:
        problems.append((name, f"no ward or commune {value!r}: give its key (phuong-di-an) or "
                               "its Vietnamese name (Phường Dĩ An)"))
    return key


def _native_field(engine_field: str, renames: dict[str, str]) -> str:
    name = engine_field.removeprefix("data.")
    return renames.get(name, name)


@dataclass
class Batch:
    """Events built from native items, each remembering its item, and the items refused.

    `label(index)` prefixes the fields of an item's problems ("row 3: " for a CSV row);
    `renames` maps the vocabulary's field names back to the native ones.
    """

    label: Callable[[int], str] = lambda index: ""
    renames: dict[str, str] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def take(self, index: int, events: list[dict], problems: Problems,
             ce_id: str | None = None) -> None:
        """Keep an item's events, or refuse the item with its problems (never half of it)."""
        if problems:
            self.refused.append(Refusal(index, ce_id, [
                {"field": self.label(index) + f, "message": m} for f, m in problems]))
            return
        self.events.extend(events)
        self.origins.extend([index] * len(events))

    def merge(self, result: IngestResult) -> IngestResult:
        """The engine's result, its refusals pointing at native items and fields, with ours."""
        engine_refused = [
            Refusal(self.origins[r.index], r.id, [
                {"field": self.label(self.origins[r.index])
                 + _native_field(p["field"], self.renames), "message": p["message"]}
                for p in r.problems])
            for r in result.refused]
        result.refused = sorted(self.refused + engine_refused, key=lambda r: r.index)
        return result


def _count_refused(db, source_id: int, batch: Batch) -> None:
    # The source's counters and last errors show items refused here like the engine's refusals.
    for refusal in batch.refused:
        service.refuse(db, source_id, refusal.problems, refusal.id)


def deliver(batch: Batch, single: bool):
    """Over HTTP: store the batch for the authenticated source; 202, or 422 naming fields."""
    if not batch.events and not batch.refused:
        return jsonify(IngestResult().to_dict()), 202  # an empty page: nothing new, not an error
    result = intake.store(batch.events) if batch.events else IngestResult()
    _count_refused(services().db, g.source.id, batch)
    body, status = intake.answer(batch.merge(result), single)
    return jsonify(body), status


def ingest_batch(ioc, source_id: int, batch: Batch) -> IngestResult:
    """From the command line: store the batch for the source in one transaction; the result."""
    result = (service.ingest(ioc.db, source_id, batch.events, ioc.vocabulary, ioc.clock)
              if batch.events else IngestResult())
    _count_refused(ioc.db, source_id, batch)
    return batch.merge(result)


def json_items(body: Any, what: str) -> tuple[list, bool]:
    """(items, single) from a JSON body: one object or a list of them; refused otherwise."""
    if isinstance(body, dict):
        return [body], True
    if not isinstance(body, list):
        intake.refuse([{"field": "", "message": f"must be one {what} (a JSON object) or a list"}],
                      f"the body must be one {what} or a list of them")
    if len(body) > MAX_ITEMS:
        raise ApiProblem(413, "Content Too Large", f"at most {MAX_ITEMS} items per request")
    return body, False


def not_an_object(item: Any) -> Problems:
    """[("", message)] when a list item is not a JSON object, else []."""
    return [] if isinstance(item, dict) else [("", "must be a JSON object")]


class FileRefused(Exception):
    """A whole file that cannot become events (not UTF-8, missing columns…), with its problems."""

    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['message']}" for p in problems))


def refuse_file(ioc, source_id: int, problems: list[dict[str, str]]) -> IngestResult:
    """Count a refused file for the source; the result the CLI prints (nothing accepted)."""
    service.refuse(ioc.db, source_id, problems)
    return IngestResult(refused=[Refusal(0, None, problems)])


def read_text(path: str | Path) -> str:
    """A file's text as UTF-8 (a BOM, as Excel writes, is dropped); FileRefused otherwise."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused([{"field": "file", "message": f"is not UTF-8 (byte {exc.start}): save "
                                                         "it as CSV UTF-8"}]) from None


def csv_rows(text: str, required: tuple[str, ...]
             ) -> tuple[list[str], list[tuple[int, dict, Problems]]]:
    """(header, [(row number, {column: cell}, problems)]) of a CSV text; FileRefused for a bad
    header. Row numbers are a spreadsheet's: the header is row 1. Blank rows are skipped."""
    first = text.split("\n", 1)[0]
    # Excel in a Vietnamese locale writes `;` between cells.
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [cell.strip().lower() for cell in next(reader, [])]
    problems = []
    if not any(header):
        raise FileRefused([{"field": "header", "message": "the file is empty: its first row "
                            f"must name the columns {','.join(required)}"}])
    for name in sorted({c for c in header if header.count(c) > 1}):
        problems.append({"field": f"column {name}", "message": "appears twice in the header"})
    for name in required:
        if name not in header:
            problems.append({"field": f"column {name}", "message": "is missing from the header"})
    if problems:
        raise FileRefused(problems)
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        # A short row leaves its last cells empty; a long one has a cell with no column.
        problems = [("cells", f"{len(cells)} cells where the header names {len(header)} "
                              "columns")] if len(cells) > len(header) else []
        rows.append((number, dict(zip(header, cells)), problems))
    return header, rows


def row_label(numbers: list[int]) -> Callable[[int], str]:
    """Labels for items taken from CSV rows (`numbers[index]`): 'row N: '."""
    return lambda index: f"row {numbers[index]}: "
