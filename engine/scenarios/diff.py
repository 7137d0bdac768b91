"""What changed between two versions of a scenario, as data an inspector can read.

Besides the text diff of every file, the manifest, the rules and the SLAs are compared by key
and the BPMN process by element id, field by field. Layout (BPMN DI) is not behaviour: it only
sets `layout_changed`. A draft may be broken: a file that does not parse still gets its text
diff, and its semantic section is None with `<section>_note` saying why (e.g. `rules_note`).
Never raises on bad files.
"""
from __future__ import annotations

import difflib
from datetime import date
from typing import Any

from lxml import etree

from engine.scenarios.bpmn_checks import NS
from engine.scenarios.problems import ScenarioInvalid
from engine.scenarios.service import MANIFEST
from engine.scenarios.yamlsource import format_path, load_yaml
from engine.sla.definitions import SLA_FILE
from engine.xmlsafe import parse

SECTIONS = ("manifest", "rules", "elements", "sla")  # each None, with `<section>_note`, if unread
_MISSING = object()  # a key on one side only (None is a value YAML can hold)
DI_NAMESPACES = ("http://www.omg.org/spec/BPMN/20100524/DI",
                 "http://www.omg.org/spec/DD/20100524/DC",
                 "http://www.omg.org/spec/DD/20100524/DI")
BPMN = NS["bpmn"]
CAMUNDA = NS["camunda"]
# Elements described inside their parent's fields, or containers without behaviour of their own.
_PART_OF_PARENT = ("definitions", "laneSet", "incoming", "outgoing", "flowNodeRef",
                   "conditionExpression", "script", "documentation", "extensionElements",
                   "correlationPropertyRetrievalExpression", "messagePath")
_SIDES = {"old": "bản cũ", "new": "bản mới"}


class _Unreadable(Exception):
    """A file that cannot be compared semantically: which file, which side, and why."""

    def __init__(self, file: str, side: str, detail: str):
        super().__init__(detail)
        self.file, self.side, self.detail = file, side, detail


# -- the parts -----------------------------------------------------------------------------------

def diff(old: dict[str, str], new: dict[str, str]) -> dict:
    """Everything that changed from `old` to `new` (a scenario's files by name)."""
    notes: dict[str, str] = {}
    manifests = _guard("manifest", notes, lambda: (_yaml(old, MANIFEST, "old"),
                                                   _yaml(new, MANIFEST, "new")))
    # Each side names its own rules, SLA and process files (defaults if its manifest is broken).
    sides = [(side, files, _names(m)) for side, files, m in
             zip(("old", "new"), (old, new), manifests or ({}, {}))]

    def keyed(part: str) -> list[dict]:
        return _keyed(*(_items(files, names[part], part, side) for side, files, names in sides))

    processes = _guard("elements", notes, lambda: [
        _process(files, names["process"], side) for side, files, names in sides])
    return {
        "files": _files(old, new),
        "manifest": None if manifests is None else _guard("manifest", notes, lambda: [
            {"field": c["path"], "old": c["old"], "new": c["new"]} for c in _changes(*manifests)]),
        "rules": _guard("rules", notes, lambda: keyed("rules")),
        "elements": None if processes is None else _guard(
            "elements", notes, lambda: _by_id(processes[0][0], processes[1][0])),
        "layout_changed": None if processes is None else processes[0][1] != processes[1][1],
        "sla": _guard("sla", notes, lambda: keyed("slas")),
        # Evaluated last: every section above has left its note by now.
        **{f"{section}_note": notes.get(section) for section in SECTIONS},
    }


def _guard(section: str, notes: dict[str, str], compute) -> Any:
    """`compute()`, or None with a note for `section` when a file cannot be compared."""
    try:
        return compute()
    except _Unreadable as exc:
        notes[section] = (f"Không phân tích được {exc.file} ({_SIDES[exc.side]}) / "
                          f"{exc.file} ({exc.side} version) does not parse: {exc.detail}")
    except RecursionError:  # YAML aliases can make a value contain itself
        notes[section] = ("Có giá trị chứa chính nó (bí danh YAML) / a value contains itself "
                          "(YAML aliases)")
    return None


def _files(old: dict[str, str], new: dict[str, str]) -> list[dict]:
    """Every file of either side: added, removed, changed or the same, with its text diff."""
    out = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        status = ("added" if before is None else "removed" if after is None
                  else "same" if before == after else "changed")
        unified = "" if status == "same" else "\n".join(difflib.unified_diff(
            _text(before).splitlines(), _text(after).splitlines(),
            f"a/{name}", f"b/{name}", lineterm=""))
        out.append({"name": name, "status": status, "unified": unified})
    return out


def _text(value: Any) -> str:
    """The file's text; anything else (a broken draft) reads as empty."""
    return value if isinstance(value, str) else ""


def _names(manifest: dict) -> dict[str, str]:
    """The file names the manifest gives (the defaults when it gives none, or is broken)."""
    defaults = {"rules": "rules.yaml", "slas": SLA_FILE, "process": "process.bpmn"}
    manifest_key = {"rules": "rules", "slas": "sla", "process": "process"}
    return {part: manifest.get(manifest_key[part]) if isinstance(
        manifest.get(manifest_key[part]), str) else default for part, default in defaults.items()}


# -- YAML: manifest, rules, SLAs -----------------------------------------------------------------

def _yaml(files: dict, name: str, side: str) -> dict:
    """The parsed mapping of a YAML file (empty when the file is absent or empty)."""
    if name not in files:
        return {}
    try:
        data, _ = load_yaml(_text(files[name]), name)
    except ScenarioInvalid as exc:
        raise _Unreadable(name, side, str(exc.problems[0])) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _Unreadable(name, side, f"the document is a {type(data).__name__}, not a mapping")
    return data


def _items(files: dict, name: str, list_key: str, side: str) -> dict[str, dict]:
    """The items of `list_key` (rules, slas) by their key; an item without a usable key is
    named by its place, e.g. rules[2]."""
    items = _yaml(files, name, side).get(list_key, [])
    if not isinstance(items, list):
        raise _Unreadable(name, side, f"`{list_key}` is not a list")
    out: dict[str, dict] = {}
    for index, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str) or key in out:
            key = format_path((list_key, index))
        out[key] = item if isinstance(item, dict) else {"value": item}
    return out


def _compared(before: dict[str, dict], after: dict[str, dict], describe) -> list[dict]:
    """Items compared by key: added, removed, or changed with the fields that changed; each
    row is `describe(key, the item as it is now or was last)` plus change and fields."""
    out = []
    for key in _union(before, after):
        a, b = before.get(key), after.get(key)
        change = "added" if a is None else "removed" if b is None else "changed"
        fields = _changes(a, b) if change == "changed" else []
        if change != "changed" or fields:
            out.append({**describe(key, b if b is not None else a), "change": change,
                        "fields": fields})
    return out


def _keyed(before: dict[str, dict], after: dict[str, dict]) -> list[dict]:
    """Rules or SLAs compared by key."""
    return _compared(before, after, lambda key, item: {"key": key,
                                                       "name": _plain(item.get("name"))})


def _union(before: dict, after: dict) -> list:
    """Keys in the new order, then those only the old side has."""
    return list(after) + [k for k in before if k not in after]


def _changes(old: Any, new: Any, path: tuple = ()) -> list[dict]:
    """Every leaf that differs, as {path, old, new}; a side without the value gives None."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in _union(old, new)
                for c in _changes(old.get(k, _MISSING), new.get(k, _MISSING), path + (k,))]
    if isinstance(old, list) and isinstance(new, list):
        return [c for i in range(max(len(old), len(new)))
                for c in _changes(old[i] if i < len(old) else _MISSING,
                                  new[i] if i < len(new) else _MISSING, path + (i,))]
    if old == new and type(old) is type(new):
        return []
    return [{"path": format_path(path), "old": _plain(old), "new": _plain(new)}]


def _plain(value: Any) -> Any:
    """A JSON-ready copy: dates as ISO text, a missing side as None."""
    if value is _MISSING:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -- BPMN: elements by id, layout apart ----------------------------------------------------------

def _layout(shape) -> tuple:
    """One shape or edge as comparable data: editors such as bpmn-js reorder the shapes of a
    diagram (not a change), but the order of an edge's waypoints is its route."""
    return (shape.get("bpmnElement") or "", etree.QName(shape).localname,
            tuple(sorted((k, v) for k, v in shape.attrib.items() if k != "id")),
            tuple((etree.QName(el).localname, tuple(sorted(el.attrib.items())))
                  for el in shape.iterdescendants() if isinstance(el.tag, str)))


def _process(files: dict, name: str, side: str) -> tuple[dict[str, dict], list]:
    """({element id: its fields}, the layout) of the BPMN file; empty when the file is absent."""
    if name not in files:
        return {}, []
    try:
        root = parse(_text(files[name]))
    except etree.LxmlError as exc:
        detail = getattr(exc, "msg", None) or str(exc)
        raise _Unreadable(name, side, f"line {getattr(exc, 'lineno', '?')}: not well-formed "
                                      f"XML ({detail})") from None
    layout = sorted(_layout(el) for el in root.iter()
                    if isinstance(el.tag, str) and etree.QName(el).namespace in DI_NAMESPACES
                    and etree.QName(el).localname in ("BPMNShape", "BPMNEdge"))
    lanes = {ref.text.strip(): lane.get("id") for lane in root.iterfind(".//bpmn:lane", NS)
             for ref in lane.iterfind("bpmn:flowNodeRef", NS) if ref.text}
    messages = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", NS)}
    elements = {}
    for el in root.iter():
        if not isinstance(el.tag, str) or not el.get("id"):
            continue
        qname = etree.QName(el)
        if qname.namespace != BPMN or qname.localname in _PART_OF_PARENT \
                or qname.localname.endswith("EventDefinition"):
            continue
        elements[el.get("id")] = _fields(el, qname.localname, lanes, messages)
    return elements, layout


def _attribute_name(name: str) -> str:
    """`sourceRef`, or `camunda:decisionRef` for Camunda's extension attributes."""
    qname = etree.QName(name)
    return f"camunda:{qname.localname}" if qname.namespace == CAMUNDA else qname.localname


def _child_text(el, path: str) -> str | None:
    """The stripped text of the first child at `path`, None when there is none."""
    child = el.find(path, NS)
    return None if child is None else (child.text or "").strip()


# BPMN's default values: an editor may write them or leave them out (bpmn-js leaves them out).
_ATTRIBUTE_DEFAULTS = {"cancelActivity": "true", "isInterrupting": "true", "isImmediate": "true",
                       "isForCompensation": "false", "parallelMultiple": "false",
                       "instantiate": "false", "eventGatewayType": "Exclusive",
                       "gatewayDirection": "Unspecified"}


def _fields(el, kind: str, lanes: dict, messages: dict) -> dict:
    """What an element does: its type, attributes, lane and the definitions inside it."""
    fields: dict[str, Any] = {"type": kind}
    fields.update((_attribute_name(k), v) for k, v in sorted(el.attrib.items())
                  if k != "id" and _ATTRIBUTE_DEFAULTS.get(k) != v)
    if el.get("id") in lanes:
        fields["lane"] = lanes[el.get("id")]
    for label, path in (("condition", "bpmn:conditionExpression"), ("script", "bpmn:script"),
                        ("documentation", "bpmn:documentation")):
        text = _child_text(el, path)
        if text is not None:
            fields[label] = text
    for definition in el.iterfind("*", NS):
        local = etree.QName(definition).localname
        if local == "timerEventDefinition":
            fields["timer"] = {etree.QName(t).localname: (t.text or "").strip()
                               for t in definition if isinstance(t.tag, str)}
        elif local.endswith("EventDefinition"):
            fields["event"] = local.removesuffix("EventDefinition")
            if definition.get("messageRef"):
                fields["messageRef"] = definition.get("messageRef")
                fields["message"] = messages.get(definition.get("messageRef"))
    retrievals = {r.get("messageRef"): _child_text(r, "bpmn:messagePath")
                  for r in el.iterfind("bpmn:correlationPropertyRetrievalExpression", NS)}
    if retrievals:
        fields["messagePath"] = retrievals
    form = {f.get("id"): _form_field(f) for f in el.iterfind(
        "bpmn:extensionElements/camunda:formData/camunda:formField", NS)}
    if form:
        fields["form"] = form
    return fields


def _form_field(field) -> dict:
    """A camunda form field: label, type, required, properties and enum choices."""
    out: dict[str, Any] = {"label": field.get("label"), "type": field.get("type")}
    if field.get("defaultValue") is not None:
        out["defaultValue"] = field.get("defaultValue")
    out["required"] = any(c.get("name") == "required" for c in field.iterfind(
        "camunda:validation/camunda:constraint", NS))
    properties = {p.get("id"): p.get("value") for p in field.iterfind(
        "camunda:properties/camunda:property", NS)}
    if properties:
        out["properties"] = properties
    values = {v.get("id"): v.get("name") for v in field.iterfind("camunda:value", NS)}
    if values:
        out["values"] = values
    return out


def _by_id(before: dict[str, dict], after: dict[str, dict]) -> list[dict]:
    """Process elements compared by id."""
    return _compared(before, after, lambda ident, el: {"id": ident, "type": el["type"],
                                                       "name": el.get("name")})
