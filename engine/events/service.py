"""Accept CloudEvents: validate each one, store it once (source + id), acknowledge only after commit."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.clock import SYSTEM_CLOCK, Clock
from engine.db import Database, utcnow
from engine.events import ids as event_ids
from engine.events.models import PENDING, Event, Source
from engine.events.partitions import partition_of
from engine.events.vocabulary import DATETIME_RULE, Vocabulary, parse_datetime
from engine.org import service as org

MAX_ID, MAX_SOURCE, MAX_SUBJECT = 200, 500, 500
JSON_CONTENT_TYPES = ("application/json", "text/json")


@dataclass
class Refusal:
    """An event that was not accepted, with every problem found in it."""

    index: int
    id: str | None
    problems: list[dict[str, str]]

    def to_dict(self) -> dict:
        """As shown in the API response."""
        return {"index": self.index, "id": self.id, "errors": self.problems}


@dataclass
class IngestResult:
    """What happened to a request's events."""

    accepted: list[Event] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The acknowledgement body."""
        return {"accepted": len(self.accepted), "duplicates": len(self.duplicates),
                "refused": len(self.refused),
                "accepted_ids": [e.ce_id for e in self.accepted],
                "duplicate_ids": self.duplicates,
                "errors": [r.to_dict() for r in self.refused]}


def _envelope_problems(raw: Any, source: Source, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return [("", "an event must be a JSON object")]
    out: list[tuple[str, str]] = []

    def text(name: str, limit: int, required: bool) -> None:
        value = raw.get(name)
        if value is None:
            if required:
                out.append((name, "is required"))
        elif not isinstance(value, str) or not value.strip():
            out.append((name, "must be a non-empty string"))
        elif len(value) > limit:
            out.append((name, f"must be at most {limit} characters"))

    if raw.get("specversion") != "1.0":
        out.append(("specversion", 'must be "1.0" (CloudEvents 1.0)'))
    text("id", MAX_ID, True)
    text("source", MAX_SOURCE, True)
    text("type", 200, True)
    text("subject", MAX_SUBJECT, False)
    if raw.get("time") is not None and (not isinstance(raw["time"], str)
                                        or parse_datetime(raw["time"]) is None):
        out.append(("time", DATETIME_RULE))
    ctype = raw.get("datacontenttype")
    if ctype is not None and not (isinstance(ctype, str) and (
            ctype.split(";")[0].strip() in JSON_CONTENT_TYPES or ctype.endswith("+json"))):
        out.append(("datacontenttype", "must be application/json"))
    if "data_base64" in raw:
        out.append(("data_base64", "binary data is not accepted; send JSON in data"))
    type_name = raw.get("type")
    if isinstance(type_name, str) and type_name:
        etype = vocabulary.get(type_name)
        if etype is None:
            out.append(("type", f"unknown event type {type_name!r}"))
        elif source.allowed_types and type_name not in source.allowed_types:
            out.append(("type", f"source {source.name!r} may not send {type_name!r}"))
        elif "data" not in raw:
            out.append(("data", "is required"))
        else:
            out.extend(etype.problems(raw["data"]))
    return out


def _unit_refs(raw: dict, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    """(field, value) of each organisation unit an envelope-valid event names."""
    fields = vocabulary.get(raw["type"]).fields.values()
    return [(spec.name, value) for spec in fields if spec.ref == "org-unit"
            and isinstance(value := raw["data"].get(spec.name), str) and value]


def _reference_problems(raw: dict, vocabulary: Vocabulary,
                        unit_exists: Callable[[str], bool]) -> list[tuple[str, str]]:
    return [(f"data.{name}", f"unknown organisation unit {value!r}")
            for name, value in _unit_refs(raw, vocabulary) if not unit_exists(value)]


def validate(session: Session, raw: Any, source: Source, vocabulary: Vocabulary,
             unit_exists: Callable[[str], bool] | None = None) -> list[dict[str, str]]:
    """Every problem in one raw event as [{"field", "message"}]; empty when it is valid."""
    problems = _envelope_problems(raw, source, vocabulary)
    if not problems:
        if unit_exists is None:
            unit_exists = _unit_lookup(session)
        problems = _reference_problems(raw, vocabulary, unit_exists)
    return [{"field": f, "message": m} for f, m in problems]


def _unit_lookup(session: Session) -> Callable[[str], bool]:
    cache: dict[str, bool] = {}

    def exists(key: str) -> bool:
        if key not in cache:
            cache[key] = org.resolve(session, key) is not None
        return cache[key]
    return exists


def _store(session: Session, raws: list[Any], source: Source, vocabulary: Vocabulary,
           actor: str, clock: Clock) -> IngestResult:
    result = IngestResult()
    checked = [(index, raw, _envelope_problems(raw, source, vocabulary))
               for index, raw in enumerate(raws)]
    # The units the request names, checked in one query rather than one per unit.
    known = org.resolvable(session, {value for _, raw, problems in checked if not problems
                                     for _, value in _unit_refs(raw, vocabulary)})
    valid: list[tuple[int, dict]] = []
    for index, raw, problems in checked:
        if not problems:
            problems = _reference_problems(raw, vocabulary, known.__contains__)
        if problems:
            ce_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            result.refused.append(Refusal(index, ce_id, [{"field": f, "message": m}
                                                         for f, m in problems]))
        else:
            valid.append((index, raw))
    ids = [raw["id"] for _, raw in valid]
    seen = set(session.scalars(select(Event.ce_id).where(
        Event.source_id == source.id, Event.ce_id.in_(ids)))) if ids else set()
    fresh = []
    for _, raw in valid:
        if raw["id"] in seen:
            result.duplicates.append(raw["id"])
        else:
            seen.add(raw["id"])
            fresh.append(raw)
    now = clock.now()  # the engine's clock: a message is handled at the moment it arrived
    rows = [{"id": event_id, "source_id": source.id, "ce_id": raw["id"],
             "ce_source": raw["source"], "type": raw["type"], "subject": raw.get("subject"),
             "time": parse_datetime(raw["time"]) if raw.get("time") else None,
             "data": raw["data"], "received_at": now, "status": PENDING, "attempts": 0,
             "partition": partition_of(raw.get("subject"), raw["source"], raw["id"])}
            for event_id, raw in zip(event_ids.take(session, len(fresh)), fresh)]
    if rows:
        session.execute(insert(Event.__table__), rows)
    result.accepted = [Event(**row) for row in rows]  # as stored (not part of the session)
    if result.accepted:
        # One record per request, naming its events: the chain grows by a row per batch, not
        # per event (measured: extending the chain
        # was a quarter of the web process's time under load).
        audit.record(session, "events.accepted", actor=actor, subject_type="source",
                     subject_id=source.id, details={
                         "source": source.name, "count": len(result.accepted),
                         "events": [{"event_id": e.id, "id": e.ce_id, "type": e.type,
                                     "subject": e.subject} for e in result.accepted]})
    _count(session, source.id, result)
    return result


LAST_ERRORS_KEPT = 20


def _count(session: Session, source_id: int, result: IngestResult) -> None:
    # The administrators' view of a source: counters and its last refusals, kept with the events.
    if not result.refused:
        # The usual request: counters moved in the database, the row not read first.
        table = Source.__table__
        values = {"accepted_count": table.c.accepted_count + len(result.accepted),
                  "duplicate_count": table.c.duplicate_count + len(result.duplicates)}
        if result.accepted:
            values["last_event_at"] = utcnow()
        session.execute(update(table).where(table.c.id == source_id).values(values))
        return
    source = session.get(Source, source_id)
    source.accepted_count += len(result.accepted)
    source.duplicate_count += len(result.duplicates)
    source.refused_count += len(result.refused)
    if result.accepted:
        source.last_event_at = utcnow()
    now = utcnow().isoformat()
    fresh = [{"at": now, "id": r.id, "errors": r.problems} for r in result.refused]
    source.last_errors = (fresh[::-1] + list(source.last_errors or []))[:LAST_ERRORS_KEPT]


def refuse(db: Database, source_id: int, problems: list[dict[str, str]],
           ce_id: str | None = None) -> None:
    """Count a request refused before it became events (bad XML, bad CSV…) for its source."""
    with db.session() as session:
        _count(session, source_id, IngestResult(refused=[Refusal(0, ce_id, problems)]))


def ingest(db: Database, source: Source | int, raws: list[Any],
           vocabulary: Vocabulary, clock: Clock = SYSTEM_CLOCK) -> IngestResult:
    """Validate and store a batch in one transaction; committed before this returns. `source`:
    the source as already read (the API has it from its token: not read again), or its id.
    The events are received at `clock`'s now.

    If another request stored one of these events at the same moment, the unique key refuses
    our insert: retry once, and the retry sees it as a duplicate.
    """
    for attempt in range(3):
        try:
            with db.session() as session:
                if isinstance(source, int):
                    source = session.get(Source, source)
                return _store(session, raws, source, vocabulary, actor=f"source:{source.name}",
                              clock=clock)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def to_dict(event: Event) -> dict:
    """An event as the API shows it (CloudEvents fields plus processing state)."""
    return {"event_id": event.id, "specversion": "1.0", "id": event.ce_id,
            "source": event.ce_source, "type": event.type, "subject": event.subject,
            "time": event.time.isoformat() if event.time else None, "data": event.data,
            "received_at": event.received_at.isoformat(), "status": event.status,
            "error": event.error}


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 string as an aware datetime, or None."""
    return parse_datetime(value) if value else None


def source_to_dict(source: Source) -> dict:
    """A source as administrators see it (never its token or secret)."""
    return {"id": source.id, "name": source.name, "allowed_types": source.allowed_types,
            "disabled": source.disabled, "signed": bool(source.hmac_secret),
            "rate_limit_per_minute": source.rate_limit_per_minute,
            "accepted": source.accepted_count, "duplicates": source.duplicate_count,
            "refused": source.refused_count,
            "last_event_at": source.last_event_at.isoformat() if source.last_event_at else None,
            "last_errors": source.last_errors or [],
            "created_at": source.created_at.isoformat()}
