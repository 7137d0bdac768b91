"""Task forms: the definition read from a user task's `camunda:formData`, and checking answers."""
from __future__ import annotations

from datetime import date
from typing import Any

FIELD_TYPES = ("string", "long", "boolean", "date", "enum", "text")


def form_from_spec(task_spec) -> dict:
    """The form of a SpiffWorkflow user task spec as plain data: {"fields": [...]}."""
    form = getattr(task_spec, "form", None)
    fields = []
    for f in (form.fields if form is not None else []):
        props = {p.id: p.value for p in getattr(f, "properties", [])}
        ftype = "text" if f.type == "string" and props.get("multiline") == "true" else f.type
        fields.append({
            "id": f.id,
            "label": f.label or f.id,
            "type": ftype,
            "required": any(v.name == "required" for v in getattr(f, "validation", [])),
            "options": [{"id": o.id, "label": o.name} for o in getattr(f, "options", []) or []],
            "default": f.default_value,
        })
    return {"fields": fields}


def _coerce(field: dict, value: Any) -> tuple[Any, str | None]:
    ftype = field["type"]
    if ftype in ("string", "text"):
        if not isinstance(value, str):
            return None, "must be text"
        return value.strip(), None
    if ftype == "long":
        if isinstance(value, bool):
            return None, "must be a whole number"
        try:
            return int(str(value).strip()), None
        except ValueError:
            return None, "must be a whole number"
    if ftype == "boolean":
        if isinstance(value, bool):
            return value, None
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True, None
        if str(value).lower() in ("false", "0", "no", "off", ""):
            return False, None
        return None, "must be true or false"
    if ftype == "date":
        try:
            return date.fromisoformat(str(value)).isoformat(), None
        except ValueError:
            return None, "must be a date (YYYY-MM-DD)"
    if ftype == "enum":
        ids = [o["id"] for o in field["options"]]
        if value not in ids:
            return None, f"must be one of {', '.join(ids)}"
        return value, None
    return None, f"has an unsupported type {ftype!r}"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def clean(form: dict, submitted: Any) -> tuple[dict, list[dict[str, str]]]:
    """Check submitted answers against the form; return (clean data, [{field, message}])."""
    if not isinstance(submitted, dict):
        return {}, [{"field": "data", "message": "must be an object of field answers"}]
    known = {f["id"]: f for f in form.get("fields", [])}
    errors = [{"field": name, "message": "is not a field of this form"}
              for name in submitted if name not in known]
    data: dict = {}
    for fid, field in known.items():
        value = submitted.get(fid)
        if _blank(value) and field["type"] != "boolean":
            if field["required"]:
                errors.append({"field": fid, "message": "is required"})
            continue
        if value is None:
            value = False
        coerced, problem = _coerce(field, value)
        if problem:
            errors.append({"field": fid, "message": problem})
        else:
            data[fid] = coerced
    return data, errors
