"""How one stored event is represented to the rule engine (a "message"), and reading fields back.

    {"id": 4711,                 # the event store's primary key: a unique INTEGER (see below)
     "sid": "0",                 # the one durable-rules session every ruleset uses
     "t": "dossier.returned",    # the event type
     "source": "dvc-portal",     # envelope: which system sent it
     "subject": "H12.34-250101-0001",   # envelope: the key the event is about (may be None)
     "data": {"dossier_id": "...", "reason": " ", ...},   # the event's own fields, untouched
     "blank": {"data": {"reason": True}}}   # only if something is blank: which values are

Why this shape:
- durable-rules refuses some distinct events as "already observed" unless each carries a unique
  integer `id` (ENGINES.md), so the event store's primary key is the id.
- Only one session (`sid` "0") per ruleset: durable-rules holds at most 1,024 sessions, so keys
  such as dossiers are correlated inside the session, never one session per key.
- The event's fields stay nested under `data` (durable-rules tests nested paths like
  "data.reason", measured): a field called `id`, `t` or `source` can never collide with the
  envelope, and the data reaches actions exactly as it was stored.
- `blank` marks, at the same path as in the message, every value that is a whitespace-only
  string ("", "  ", "\t"), an empty list or an empty mapping. `empty:` tests it: durable-rules'
  regexes cannot say "not only whitespace" reliably (its [^...] classes misbehave, see
  dialect.py), and Python's str.isspace() is the one definition of blank this way.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SESSION = "0"

# Envelope names a rule may read besides the event's data (templates also get id and type).
ENVELOPE_TYPES = {"source": "string", "subject": "string"}
TEMPLATE_ENVELOPE_TYPES = {"id": "integer", "type": "string", **ENVELOPE_TYPES}
_ENVELOPE_KEYS = {"id": "id", "type": "t", "source": "source", "subject": "subject"}


def to_message(
    event_id: int, type: str, source: str, subject: str | None, data: Mapping[str, Any]
) -> dict:
    """Build the rule-engine message for one stored event (the only way messages are made)."""
    if isinstance(event_id, bool) or not isinstance(event_id, int):
        raise TypeError(f"event_id must be the event's integer primary key, got {event_id!r}")
    if not isinstance(type, str) or not type:
        raise TypeError(f"type must be a non-empty string, got {type!r}")
    message = {
        "id": event_id,
        "sid": SESSION,
        "t": type,
        "source": source,
        "subject": subject,
        "data": dict(data or {}),
    }
    blank = {k: mark for k in ("source", "subject", "data") if (mark := _blank(message[k]))}
    if blank:
        message["blank"] = blank
    return message


def _blank(value: Any) -> Any:
    """True for a blank value; for a mapping with blank values inside, their marks; else None."""
    if isinstance(value, str):
        return True if not value.strip() else None
    if isinstance(value, Mapping):
        if not value:
            return True
        marks = {k: m for k, v in value.items() if isinstance(k, str) and (m := _blank(v))}
        return marks or None
    if isinstance(value, (list, tuple)) and not value:
        return True
    return None


def field_value(message: Mapping[str, Any] | None, field: str) -> Any:
    """Value of `field` ("reason", "location.ward", "source", "id"…) in a message, or None."""
    if not message:
        return None
    head, _, rest = field.partition(".")
    data = message.get("data") or {}
    # A data field shadows an envelope name, as in rule conditions.
    if head in data:
        value: Any = data[head]
    elif head in _ENVELOPE_KEYS and not rest:
        return message.get(_ENVELOPE_KEYS[head])
    else:
        return None
    for part in rest.split(".") if rest else ():
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
