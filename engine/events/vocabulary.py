"""The event vocabulary: which CloudEvents types exist and what their `data` must hold.

Read from YAML files (integrations/vocabulary/*.yaml by default), so a source's contract is data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import yaml
from jsonschema import Draft202012Validator

from engine import paths

DEFAULT_DIR = paths.VOCABULARY_DIR
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number",
               "boolean": "boolean", "object": "object", "array": "array", "datetime": "string"}


@dataclass(frozen=True)
class FieldSpec:
    """One `data` field of an event type."""

    name: str
    type: str
    required: bool = False
    ref: str | None = None  # "org-unit": must name an organisation unit
    description: str = ""
    schema: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EventType:
    """One event type and its fields."""

    name: str
    description: str
    fields: dict[str, FieldSpec]
    validator: Draft202012Validator

    def problems(self, data: Any) -> Iterator[tuple[str, str]]:
        """Yield (field path, message) for each thing wrong in `data`."""
        for err in sorted(self.validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in err.absolute_path)
            if err.validator == "required":
                missing = err.message.split("'")[1]
                path = f"{path}.{missing}" if path else missing
                yield f"data.{path}", "is required"
            else:
                yield (f"data.{path}" if path else "data"), err.message
        if not isinstance(data, dict):
            return
        for spec in self.fields.values():
            value = data.get(spec.name)
            if spec.type == "datetime" and isinstance(value, str):
                if parse_datetime(value) is None:
                    yield f"data.{spec.name}", DATETIME_RULE


# The years a moment may fall in: year 1 or 9999 overflows in time-zone arithmetic (and in
# PostgreSQL's range once shifted); nothing in a province's operations lies outside these.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199
DATETIME_RULE = (f"must be an RFC 3339 date-time with a time zone, in the years "
                 f"{EARLIEST_YEAR}–{LATEST_YEAR}")


def parse_datetime(value: str) -> datetime | None:
    """An aware ISO 8601 date-time within EARLIEST_YEAR–LATEST_YEAR, or None."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        return None
    return parsed


def _field_schema(spec: dict) -> dict:
    schema: dict = {"type": _JSON_TYPES[spec["type"]]}
    for key in ("enum", "minimum", "maximum", "properties"):
        if key in spec:
            schema[key] = spec[key]
    if "required_properties" in spec:
        schema["required"] = spec["required_properties"]
    if spec["type"] == "string" and spec.get("required"):
        schema["minLength"] = 1 if spec.get("ref") or spec.get("non_empty", True) else 0
    return schema


class Vocabulary:
    """Every known event type, loaded from a folder of YAML files."""

    def __init__(self, types: dict[str, EventType],
                 families: list[tuple[str, str, tuple[str, ...]]] | None = None):
        self.types = types
        # (file stem, its `name:`, its types): one family of sources per file, in file order.
        self.families = families or []

    @classmethod
    def load(cls, folder: str | Path = DEFAULT_DIR) -> "Vocabulary":
        """Read every *.yaml in `folder`; a malformed file raises ValueError naming it."""
        types: dict[str, EventType] = {}
        families = []
        for path in sorted(Path(folder).glob("*.yaml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            families.append((path.stem, str(doc.get("name") or path.stem),
                             tuple(doc.get("types") or ())))
            for name, body in (doc.get("types") or {}).items():
                if name in types:
                    raise ValueError(f"{path}: event type {name} is defined twice")
                try:
                    fields = {fname: FieldSpec(fname, f["type"], bool(f.get("required")),
                                               f.get("ref"), f.get("description", ""),
                                               _field_schema(f))
                              for fname, f in (body.get("fields") or {}).items()}
                except (KeyError, TypeError) as exc:
                    raise ValueError(f"{path}: event type {name}: bad field ({exc})") from exc
                schema = {"type": "object",
                          "properties": {f.name: f.schema for f in fields.values()},
                          "required": [f.name for f in fields.values() if f.required]}
                types[name] = EventType(name, body.get("description", ""), fields,
                                        Draft202012Validator(schema))
        return cls(types, families)

    def get(self, type_name: str) -> EventType | None:
        """The event type of that name, or None."""
        return self.types.get(type_name)

    def field_types(self) -> dict[str, dict[str, str]]:
        """event type → {field → JSON type}, for checking rules against the vocabulary."""
        return {t.name: {f.name: _JSON_TYPES[f.type] for f in t.fields.values()}
                for t in self.types.values()}
