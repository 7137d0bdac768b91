"""Health — epidemic case reports by ward or commune (CSV import or API).

The provincial health surveillance system (CDC) reports new cases per disease, ward or commune
and day. It sends them in two ways:

- `POST /integrations/health/case-reports`: a JSON list of reports (or one report object);
- `ioc import health FILE --source NAME`: a CSV file (UTF-8, Vietnamese allowed, header
  `report_id,disease,ward,report_date,cases,deaths`), as exported from the reporting workbook.

Each report becomes one `health.case_report` event: id = `report_id` (a report sent again is a
duplicate), time = midnight of `report_date` in Asia/Ho_Chi_Minh, subject = the ward's key.
`ward` may be the unit's key, an old key (followed to its successor) or its exact Vietnamese name
("Phường Dĩ An"); it is stored as today's key so rules correlate on one value. There are no
districts since 1 July 2025: a report or file with a `district` is refused, asking for the ward or
commune instead. A bad row refuses that row only (`row N: column: message`, the header being row
1, as a spreadsheet numbers them); the good rows are stored together, like a batch.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from flask import Blueprint

from engine.api import json_body, require_source, services
from engine.events.service import IngestResult
from engine.org import service as org
from integrations import intake
from integrations.native import (
    Batch,
    FileRefused,
    Problems,
    WardLookup,
    blank,
    count_field,
    csv_rows,
    deliver,
    ingest_batch,
    json_items,
    not_an_object,
    read_text,
    refuse_file,
    row_label,
    text_field,
    ward_field,
)

bp = Blueprint("health", __name__, url_prefix="/integrations/health")

SOURCE = "/integrations/health"
REQUIRED_COLUMNS = ("report_id", "disease", "ward", "report_date", "cases")
NO_DISTRICTS = ("there are no districts since 1 July 2025: report by ward or commune "
                "(the ward column: key or Vietnamese name, e.g. Phường Dĩ An)")


# ------------------------------------------------------------------------------ case reports


def _report_date(item: dict, problems: Problems) -> date | None:
    value = item.get("report_date")
    if blank(value):
        problems.append(("report_date", "is required"))
        return None
    text = str(value).strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", text):  # how Vietnamese spreadsheets write it
            day, month, year = (int(p) for p in text.split("/"))
            return date(year, month, day)
    except ValueError:
        pass
    problems.append(("report_date", f"must be a date YYYY-MM-DD (or DD/MM/YYYY), not {value!r}"))
    return None


def report_event(item: Any, wards: WardLookup) -> tuple[list[dict], Problems, str | None]:
    """One report's health.case_report event, or its problems; and its report id if known."""
    problems = not_an_object(item)
    if problems:
        return [], problems, None
    if item.get("district") is not None:
        problems.append(("district", NO_DISTRICTS))
    report_id = text_field(item, "report_id", problems)
    disease = text_field(item, "disease", problems)
    ward = ward_field(item, "ward", problems, wards)
    day = _report_date(item, problems)
    cases = count_field(item, "cases", problems)
    deaths = count_field(item, "deaths", problems, required=False)
    if problems:
        return [], problems, report_id
    data = {"report_id": report_id, "disease": disease, "ward": ward,
            "report_date": day.isoformat(), "cases": cases}
    if deaths is not None:
        data["deaths"] = deaths
    event = intake.cloud_event("health.case_report", report_id, SOURCE, data, subject=ward,
                               time=datetime.combine(day, time(), org.TIMEZONE))
    return [event], [], report_id


@bp.post("/case-reports")
@require_source
def case_reports():
    """Store case reports (a JSON list, or one object) as health.case_report events."""
    items, single = json_items(json_body(), "case report")
    batch = Batch()
    with services().db.read() as s:
        wards = WardLookup(s)
        for index, item in enumerate(items):
            events, problems, report_id = report_event(item, wards)
            batch.take(index, events, problems, report_id)
    return deliver(batch, single)


def import_file(ioc, source_id: int, path: str | Path) -> IngestResult:
    """Import a CSV of case reports for the source; bad rows are refused, good rows stored."""
    try:
        header, rows = csv_rows(read_text(path), REQUIRED_COLUMNS)
    except FileRefused as exc:
        return refuse_file(ioc, source_id, exc.problems)
    if "district" in header:
        # A whole file laid out by district predates the reform: none of its rows can be placed.
        return refuse_file(ioc, source_id, [{"field": "column district", "message": NO_DISTRICTS}])
    batch = Batch(label=row_label([number for number, _, _ in rows]))
    with ioc.db.read() as s:
        wards = WardLookup(s)
        for index, (_, row, cell_problems) in enumerate(rows):
            events, problems, report_id = report_event(row, wards)
            batch.take(index, events, cell_problems + problems, report_id)
    return ingest_batch(ioc, source_id, batch)


