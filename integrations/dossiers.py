"""Public-service dossier system — bulk import of a day's dossier log (CSV/JSON).

The one-stop-shop dossier system (hệ thống một cửa điện tử) sends its events one by one to
`/api/v1/events`; when it was offline, or when a unit's older system only keeps a log, the day's
log comes in bulk instead:

- `ioc import dossiers FILE --source NAME`, FILE a CSV (UTF-8, header
  `time,type,dossier_id,procedure,unit,officer,step,reason,due_at,allotted_hours`) or a JSON
  list of objects with the same keys (`.json`, or text starting with `[`);
- `POST /integrations/dossiers/log` with the same JSON list, for systems that push their log.

Each entry becomes one `dossier.<type>` event; `type` is the short name (received, step_started,
step_completed, supplement_requested, returned, completed). Only the columns that type has in
the vocabulary (integrations/vocabulary/public_services.yaml) go into `data`, and empty cells are
dropped: a `reason` left on a `received` row is not sent, a `returned` row without a reason is
sent without one (which is what the returned-without-reason scenario looks for). Numbers and
date-times are read from the CSV text by the vocabulary's field types. `time` (with its UTC
offset) is the event's time; the id is `<dossier_id>/<type>/<time>` as written, so importing the
same log again stores nothing twice. A bad entry refuses that entry only — `row N: column:
message` for CSV rows (the header is row 1), the field name with the entry's index for JSON —
and the good entries are stored together in one transaction.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from flask import Blueprint

from engine.api import json_body, require_source, services
from engine.events.service import IngestResult
from engine.events.vocabulary import Vocabulary
from integrations import intake
from integrations import native as feed

bp = Blueprint("dossiers", __name__, url_prefix="/integrations/dossiers")

SOURCE = "/integrations/dossiers"
# Columns every entry needs, whatever its type: a file without them is not a dossier log.
REQUIRED_COLUMNS = ("time", "type", "dossier_id", "procedure", "unit")
TYPES = ("received", "step_started", "step_completed", "supplement_requested", "returned",
         "completed")


def _value(item: dict, name: str, kind: str, problems: feed.Problems) -> Any:
    # One present field by its vocabulary type; CSV cells are text, JSON values may be typed.
    if kind == "number":
        value = feed.number_field(item, name, problems)
        return int(value) if value is not None and value.is_integer() else value
    if kind == "integer":
        return feed.count_field(item, name, problems)
    if kind == "datetime":
        moment = feed.moment_field(item, name, problems)  # stored in RFC 3339, as the engine reads
        return moment.isoformat() if moment is not None else None
    return feed.text_field(item, name, problems)


def entry_event(item: Any, vocabulary: Vocabulary
                ) -> tuple[list[dict], feed.Problems, str | None]:
    """One log entry's dossier.<type> event, or its problems; and its event id if known."""
    problems = feed.not_an_object(item)
    if problems:
        return [], problems, None
    moment = feed.moment_field(item, "time", problems)
    short = feed.text_field(item, "type", problems)
    etype = None
    if short is not None:
        short = short.lower().removeprefix("dossier.")
        etype = vocabulary.get(f"dossier.{short}") if short in TYPES else None
        if etype is None:
            problems.append(("type", f"must be one of {', '.join(TYPES)}, not {item['type']!r}"))
    data: dict[str, Any] = {}
    for spec in etype.fields.values() if etype else ():
        if feed.blank(item.get(spec.name)):  # an empty cell is no value, not an empty text
            if spec.required:
                problems.append((spec.name, f"is required for {short}"))
            continue
        value = _value(item, spec.name, spec.type, problems)
        if value is not None:
            data[spec.name] = value
    dossier_id = data.get("dossier_id")
    ce_id = (f"{dossier_id}/{short}/{str(item['time']).strip()}"
             if dossier_id and etype and moment else None)
    if problems:
        return [], problems, ce_id
    return [intake.cloud_event(etype.name, ce_id, SOURCE, data, subject=dossier_id,
                               time=moment)], [], ce_id


def entries_batch(entries: list, vocabulary: Vocabulary, label: Callable | None = None,
                  read_problems: list[feed.Problems] | None = None) -> feed.Batch:
    """The events of a log's entries, each bad entry refused with its problems.

    `label` names an entry in its problems (CSV: "row N: "); `read_problems` are those found
    while reading each entry (a CSV row with too many cells).
    """
    batch = feed.Batch(label=label) if label else feed.Batch()
    for index, item in enumerate(entries):
        events, problems, ce_id = entry_event(item, vocabulary)
        batch.take(index, events, (read_problems[index] if read_problems else []) + problems,
                   ce_id)
    return batch


def _entries(path: Path) -> tuple[list, list[feed.Problems] | None, Callable | None]:
    """(entries, problems found reading each, label) of a log file; FileRefused if unreadable."""
    text = feed.read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip().startswith("[")):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise feed.FileRefused([{"field": "file", "message": f"is not JSON: {exc}"}]) from None
        if not isinstance(entries, list):
            raise feed.FileRefused([{"field": "file",
                                     "message": "must be a JSON list of log entries"}])
        return entries, None, None
    _, rows = feed.csv_rows(text, REQUIRED_COLUMNS)
    return ([row for _, row, _ in rows], [problems for _, _, problems in rows],
            feed.row_label([number for number, _, _ in rows]))


def import_file(ioc, source_id: int, path: str | Path) -> IngestResult:
    """Import a day's dossier log (CSV or JSON) for the source; bad entries refused, good stored."""
    try:
        entries, read_problems, label = _entries(Path(path))
    except feed.FileRefused as exc:
        return feed.refuse_file(ioc, source_id, exc.problems)
    return feed.ingest_batch(ioc, source_id,
                             entries_batch(entries, ioc.vocabulary, label, read_problems))


@bp.post("/log")
@require_source
def log():
    """Store a day's dossier log (a JSON list of entries) as dossier events."""
    body = json_body()
    if not isinstance(body, list):
        intake.refuse([{"field": "", "message": "must be a JSON list of log entries"}],
                      "the body must be a JSON list of log entries")
    entries, _ = feed.json_items(body, "log entry")
    return feed.deliver(entries_batch(entries, services().vocabulary), single=False)
