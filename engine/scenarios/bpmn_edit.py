"""Read and write the engine's properties of one BPMN element: the designer's side panels.

Pure (XML bytes in, XML bytes out). bpmn-js draws shapes, flows, lanes and layout; this module
writes what the engine reads from them (docs/scenarios.md, "BPMN conventions") the way the shipped
scenarios write it: lane names, camunda forms, timers, messages with their correlation, conditions
and scripts. Everything else, the diagram (DI) included, is left as it was.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from lxml import etree

from engine.expressions import ExpressionError, check_expression, check_script
from engine.processes import message_fields
from engine.processes.spiff import TIMER_KINDS, timer_value_problem
from engine.scenarios.bpmn_checks import FORM_TYPES, IDENT, NS, TIMER_EVENTS
from engine.xmlsafe import parse

BPMN, CAMUNDA = NS["bpmn"], NS["camunda"]
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PROVINCE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_NAME = 500
MAX_TEXT = 10_000
DEPARTMENT_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
EVENT_TYPE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
CHOICE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
TIMER_MODES = ("wall", "working_hours", "working_days", "date", "cycle", "expression")
CATCH_DEFINITIONS = ("timer", "message")

_ACTIVITIES = {"task", "serviceTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask",
               "callActivity", "subProcess", "adHocSubProcess", "transaction"}
_GATEWAYS = {"parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
_SIMPLE_KINDS = {"lane": "lane", "userTask": "user_task", "scriptTask": "script_task",
                 "endEvent": "end_event", "exclusiveGateway": "exclusive_gateway",
                 "sequenceFlow": "sequence_flow", "participant": "participant"}
# Gateways whose outgoing flows may be conditional with one default (the others ignore both).
_CHOOSING = {"exclusiveGateway", "inclusiveGateway", "complexGateway"}

_WALL = re.compile(r'^"PT(?:(\d+)H)?(?:(\d+)M)?"$')
_WORKING = re.compile(r"^add_working_(hours|days)\(\s*now\(\)\s*,\s*(\d+(?:\.\d+)?)\s*\)$")
_DATE = re.compile(r'^"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?::00)?\+07:00"$')
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CYCLE = re.compile(r'^"R(\d*)/PT(?:(\d+)H)?(?:(\d+)M)?"$')


class EditError(Exception):
    """Values that cannot be written: a Vietnamese-then-English message and the field at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# -- the document --------------------------------------------------------------------------------

def _parse(xml: bytes) -> etree._Element:
    if not isinstance(xml, bytes):
        raise EditError("Sơ đồ phải là văn bản XML / The diagram must be XML text", "xml")
    try:
        root = parse(xml)  # the text comes from a browser
    except etree.XMLSyntaxError as exc:
        raise EditError(f"XML không hợp lệ (dòng {exc.lineno}) / Not well-formed XML "
                        f"(line {exc.lineno}): {exc.msg}", "xml") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise EditError("Tệp BPMN không được có DOCTYPE / A BPMN file may not have a DOCTYPE", "xml")
    if root.tag != f"{{{BPMN}}}definitions":
        raise EditError("Không phải tệp BPMN 2.0 (thiếu bpmn:definitions) / Not a BPMN 2.0 file "
                        "(the root must be bpmn:definitions)", "xml")
    return root


def _serialize(root: etree._Element, prefixes: list[str]) -> bytes:
    wanted = {"camunda": CAMUNDA, "xsi": XSI}
    missing = {(p if p not in root.nsmap else f"{p}1"): uri for p, uri in wanted.items()
               if uri not in root.nsmap.values()}
    if missing:
        # New camunda/xsi elements got generated prefixes; declare them once on the root, and
        # keep every declaration the file had, used or not.
        etree.cleanup_namespaces(root, top_nsmap=missing, keep_ns_prefixes=prefixes)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _q(tag: str, ns: str = BPMN) -> str:
    return f"{{{ns}}}{tag}"


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _refuse_control_characters(props: dict) -> None:
    """XML 1.0 cannot hold control characters: name the field that has one."""
    def walk(value, field: str) -> None:
        if isinstance(value, str) and _NOT_XML.search(value):
            raise EditError("Có ký tự điều khiển không hợp lệ / Contains a control character",
                            field)
        if isinstance(value, (list, tuple)):
            for item in value:
                walk(item, field)

    for key, value in props.items():
        rows = value if key == "fields" and isinstance(value, (list, tuple)) else ()
        for pos, row in enumerate(rows):
            for name, item in (row.items() if isinstance(row, dict) else ()):
                walk(item, f"fields-{pos}-{name}")
        walk(value, key)


def _is_bpmn(el) -> bool:
    return isinstance(el.tag, str) and el.tag.startswith(f"{{{BPMN}}}")


def _element(root, element_id: str) -> etree._Element:
    if not element_id:
        raise EditError("Thiếu mã phần tử / The element id is required", "element_id")
    for el in root.iter(_q("*")):
        if el.get("id") == element_id:
            return el
    raise EditError(f"Không có phần tử {element_id!r} trong sơ đồ / No element {element_id!r} in "
                    "the diagram", "element_id")


def _by_id(root, element_id: str | None):
    if not element_id:
        return None
    return next((el for el in root.iter(_q("*")) if el.get("id") == element_id), None)


def _ids(root, *, forms: bool = True) -> set[str]:
    return {el.get("id") for el in root.iter() if isinstance(el.tag, str) and el.get("id")
            and (forms or not el.tag.startswith(f"{{{CAMUNDA}}}"))}


def _new_id(root, base: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    base = base if base[:1].isalpha() else f"id_{base}"
    taken, ident, n = _ids(root), base, 1
    while ident in taken:
        n += 1
        ident = f"{base}_{n}"
    return ident


def _indented(root) -> bool:
    return bool(root.text) and "\n" in root.text


def _insert(parent, index: int, child) -> None:
    """Put the new `child` at `index`, indented like its siblings when the file is indented."""
    parent.insert(index, child)
    root = parent.getroottree().getroot()
    if not _indented(root):
        return
    depth = sum(1 for _ in child.iterancestors())
    prev = child.getprevious()
    before = prev.tail if prev is not None else parent.text
    if before is not None and before.strip():
        return  # mixed content: leave it alone
    if not before:
        before = "\n" + "  " * (depth if child.getnext() is not None else depth - 1)
    child.tail = before
    if prev is not None:
        prev.tail = "\n" + "  " * depth
    else:
        parent.text = "\n" + "  " * depth
    etree.indent(child, space="  ", level=depth)


def _append(parent, child) -> None:
    _insert(parent, len(parent), child)


def _make(parent, tag: str, ns: str = BPMN, **attrs) -> etree._Element:
    """A new element in `parent`'s document (so it uses the file's prefixes), not yet placed."""
    el = etree.SubElement(parent, _q(tag, ns), {k: v for k, v in attrs.items() if v is not None})
    parent.remove(el)
    return el


def _remove(el) -> None:
    """Remove `el`; the whitespace after it moves to its place so the indentation stays right."""
    parent, prev = el.getparent(), el.getprevious()
    tail = el.tail if el.tail is not None and not el.tail.strip() else None
    if prev is not None and (prev.tail is None or not prev.tail.strip()):
        prev.tail = tail
    elif prev is None and (parent.text is None or not parent.text.strip()):
        parent.text = tail
    parent.remove(el)
    if len(parent) == 0 and parent.text is not None and not parent.text.strip():
        parent.text = None


def _child(el, tag: str, ns: str = BPMN):
    return el.find(_q(tag, ns))


def _extension_elements(el, ext):
    """`el`'s extensionElements (`ext`), made where BPMN wants it when there is none: after
    documentation, before everything else."""
    if ext is None:
        ext = _make(el, "extensionElements")
        _insert(el, sum(1 for c in el if _local(c) == "documentation"), ext)
    return ext


def _formal_expression(parent, tag: str, text: str) -> etree._Element:
    """`<bpmn:tag xsi:type="bpmn:tFormalExpression">text</bpmn:tag>`, as bpmn-js writes it."""
    node = _make(parent, tag)
    prefix = next((p for p, uri in parent.nsmap.items() if uri == BPMN and p), None)
    node.set(_q("type", XSI), f"{prefix}:tFormalExpression" if prefix else "tFormalExpression")
    node.text = text
    return node


def _check(source: str, field: str, *, script: bool = False) -> str:
    text = (source or "").strip() if isinstance(source, str) else None
    if text is None:
        raise EditError("Phải là văn bản / Must be text", field)
    if not text:
        raise EditError("Bắt buộc / Required", field)
    if len(text) > MAX_TEXT:
        raise EditError(f"Quá dài (tối đa {MAX_TEXT} ký tự) / Too long (at most {MAX_TEXT} "
                        "characters)", field)
    try:
        (check_script if script else check_expression)(text)
    except ExpressionError as exc:
        raise EditError(f"Biểu thức không hợp lệ / Invalid expression: {exc.message}"
                        + (f" (dòng / line {exc.line})" if exc.line else ""), field) from None
    return text


# -- kinds ---------------------------------------------------------------------------------------

def _definitions(event) -> list[str]:
    return [_local(d) for d in event if _is_bpmn(d) and _local(d).endswith("EventDefinition")]


def _kind(el) -> str:
    name = _local(el)
    if name in _SIMPLE_KINDS:
        return _SIMPLE_KINDS[name]
    if name in _ACTIVITIES:
        return "task"
    if name in _GATEWAYS:
        return "gateway"
    if name in TIMER_EVENTS:
        found = _definitions(el)
        if found == ["timerEventDefinition"]:
            return "timer_event"
        if name == "startEvent":
            return "start_event"
        if found == ["messageEventDefinition"]:
            return "message_event"
        if not found:
            return "catch_event"
    return "other"


def element_kind(xml: bytes, element_id: str) -> str:
    """Which panel the element gets: "lane", "user_task", "timer_event", ... or "other"."""
    return _kind(_element(_parse(xml), element_id))


# -- lanes ---------------------------------------------------------------------------------------

def _read_lane(root, lane) -> dict:
    return {"department": lane.get("name", "")}


def _write_lane(root, lane, props: dict) -> None:
    if "department" not in props:
        return
    value = props["department"].strip() if isinstance(props["department"], str) else ""
    if value.startswith("="):
        value = "=" + _check(value[1:], "department")
    elif not DEPARTMENT_KEY.match(value):
        raise EditError("Chọn một đơn vị / Choose a department", "department")
    lane.set("name", value)


# -- user task forms -----------------------------------------------------------------------------

def _form_fields(task) -> list:
    return task.findall("bpmn:extensionElements/camunda:formData/camunda:formField", NS)


def _read_user_task(root, task) -> dict:
    fields = []
    for f in _form_fields(task):
        props = {p.get("id"): p.get("value")
                 for p in f.iterfind("camunda:properties/camunda:property", NS)}
        fields.append({
            "id": f.get("id", ""), "label": f.get("label", ""), "type": f.get("type", ""),
            "required": f.find("camunda:validation/camunda:constraint[@name='required']", NS)
            is not None,
            "choices": [(v.get("id", ""), v.get("name", "")) for v in f.iterfind("camunda:value", NS)],
            "multiline": props.get("multiline") == "true"})
    return {"fields": fields}


def _clean_row(pos: int, row, taken: set[str], seen: set[str]) -> dict | None:
    def bad(key: str, vi: str, en: str) -> EditError:
        return EditError(f"Dòng {pos + 1}: {vi} / Row {pos + 1}: {en}", f"fields-{pos}-{key}")

    if not isinstance(row, dict):
        raise bad("id", "dữ liệu không hợp lệ", "not a form field")
    fid = row.get("id") if isinstance(row.get("id"), str) else ""
    fid = fid.strip()
    if not fid:
        return None  # an empty id drops the row
    if not IDENT.match(fid):
        raise bad("id", f"mã trường {fid!r} phải là một tên (chữ, số, _; bắt đầu bằng chữ)",
                  f"field id {fid!r} must be a name (letters, digits, _; starting with a letter)")
    if fid in seen:
        raise bad("id", f"mã trường {fid!r} bị trùng", f"field id {fid!r} appears twice")
    if fid in taken:
        # SpiffWorkflow finds elements by id anywhere in the file (see bpmn_checks).
        raise bad("id", f"mã trường {fid!r} trùng mã một phần tử của sơ đồ; hãy đổi tên",
                  f"field id {fid!r} is also the id of a diagram element; rename it")
    ftype = row.get("type") or "string"
    if ftype not in FORM_TYPES:
        raise bad("type", f"kiểu {ftype!r} không hỗ trợ", f"type {ftype!r} is not one of "
                  f"{', '.join(FORM_TYPES)}")
    label = row.get("label") if isinstance(row.get("label"), str) else ""
    if len(label) > MAX_NAME:
        raise bad("label", "nhãn quá dài", f"the label is longer than {MAX_NAME} characters")
    choices = row.get("choices") or []
    if not isinstance(choices, (list, tuple)):
        raise bad("choices", "danh sách lựa chọn không hợp lệ", "the choices must be a list")
    if ftype == "enum" and not choices:
        raise bad("choices", "trường kiểu danh sách cần ít nhất một lựa chọn",
                  "an enum field needs at least one choice")
    if ftype != "enum" and choices:
        raise bad("choices", "chỉ trường kiểu danh sách (enum) mới có lựa chọn",
                  "only enum fields take choices")
    if row.get("multiline") and ftype != "string":
        raise bad("multiline", "chỉ trường văn bản mới nhiều dòng được",
                  "only string fields can be multi-line")
    pairs: dict[str, str] = {}
    for choice in choices:
        cid, clabel = choice if isinstance(choice, (list, tuple)) and len(choice) == 2 else ("", "")
        if not isinstance(cid, str) or not CHOICE_ID.match(cid) or cid in pairs:
            raise bad("choices", f"lựa chọn {cid!r} phải là mã không trùng (chữ, số, _ . -)",
                      f"choice {cid!r} must be a unique id (letters, digits, _ . -)")
        pairs[cid] = (clabel.strip() if isinstance(clabel, str) else "") or cid
    seen.add(fid)
    return {"id": fid, "label": label.strip(), "type": ftype, "required": bool(row.get("required")),
            "multiline": bool(row.get("multiline")), "choices": list(pairs.items())}


def _form_field(parent, row: dict, old) -> etree._Element:
    """A camunda:formField; what the panel does not edit (defaultValue, other properties and
    constraints) is kept from the field of the same id."""
    field = _make(parent, "formField", CAMUNDA, id=row["id"], label=row["label"] or None,
                  type=row["type"])
    for name, value in (old.attrib.items() if old is not None else ()):
        if name not in ("id", "label", "type"):
            field.set(name, value)
    keep_props = [] if old is None else [
        p for p in old.iterfind("camunda:properties/camunda:property", NS) if p.get("id") != "multiline"]
    keep_rules = [] if old is None else [
        c for c in old.iterfind("camunda:validation/camunda:constraint", NS)
        if c.get("name") != "required"]
    if row["multiline"] or keep_props:
        props = etree.SubElement(field, _q("properties", CAMUNDA))
        if row["multiline"]:
            etree.SubElement(props, _q("property", CAMUNDA), id="multiline", value="true")
        props.extend(keep_props)
    if row["required"] or keep_rules:
        rules = etree.SubElement(field, _q("validation", CAMUNDA))
        if row["required"]:
            etree.SubElement(rules, _q("constraint", CAMUNDA), name="required")
        rules.extend(keep_rules)
    for cid, clabel in row["choices"]:
        etree.SubElement(field, _q("value", CAMUNDA), id=cid, name=clabel)
    for node in field.iter():
        node.tail = None  # copied nodes bring their old indentation
    return field


def _write_user_task(root, task, props: dict) -> None:
    if "fields" not in props:
        return
    if not isinstance(props["fields"], (list, tuple)):
        raise EditError("Danh sách trường không hợp lệ / The form fields must be a list", "fields")
    taken, seen = _ids(root, forms=False), set()
    rows = [r for r in (_clean_row(i, row, taken, seen) for i, row in enumerate(props["fields"]))
            if r is not None]
    old = {f.get("id"): f for f in _form_fields(task)}
    ext = _child(task, "extensionElements")
    form = ext.find("camunda:formData", NS) if ext is not None else None
    if not rows:
        if form is not None:
            _remove(form)
        if ext is not None and len(ext) == 0:
            _remove(ext)
        return
    ext = _extension_elements(task, ext)
    if form is None:
        form = _make(ext, "formData", CAMUNDA)
        _append(ext, form)
    for field in form.findall("camunda:formField", NS):
        _remove(field)
    for row in rows:
        _append(form, _form_field(form, row, old.get(row["id"])))


# -- scripts -------------------------------------------------------------------------------------

def _read_script(root, task) -> dict:
    script = _child(task, "script")
    return {"script": (script.text or "") if script is not None else ""}


def _write_script(root, task, props: dict) -> None:
    if "script" not in props:
        return
    text = _check(props["script"], "script", script=True)
    script = _child(task, "script")
    if script is None:
        script = _make(task, "script")
        _append(task, script)
    script.text = text


# -- timers --------------------------------------------------------------------------------------

def _interrupting(event) -> bool | None:
    if _local(event) != "boundaryEvent":
        return None
    return event.get("cancelActivity", "true").lower() != "false"


def _plain(number: str) -> int | float:
    value = Decimal(number)
    return int(value) if value == value.to_integral_value() else float(value)


def _hours_minutes(hours: str | None, minutes: str | None) -> tuple[int, int]:
    return divmod(int(hours or 0) * 60 + int(minutes or 0), 60)


def _read_timer(root, event) -> dict:
    out = {"mode": "wall", "amount": None, "hours": None, "minutes": None, "value": "",
           "timer_kind": "timeDuration", "interrupting": _interrupting(event)}
    definition = _child(event, "timerEventDefinition")
    given = [(kind, node) for kind in TIMER_KINDS for node in definition.iterfind(_q(kind))]
    if not given:
        return out  # a timer just added: the panel proposes a wall-clock duration
    kind, node = given[0]
    text = (node.text or "").strip()
    out.update(mode="expression", value=text, timer_kind=kind)
    wall, working = _WALL.match(text), _WORKING.match(text)
    date, cycle = _DATE.match(text), _CYCLE.match(text)
    if kind == "timeDuration" and wall and any(wall.groups()):
        hours, minutes = _hours_minutes(*wall.groups())
        out.update(mode="wall", hours=hours, minutes=minutes, value="")
    elif kind == "timeDate" and working:
        out.update(mode=f"working_{working[1]}", amount=_plain(working[2]), value="")
    elif kind == "timeDate" and date:
        out.update(mode="date", value=date[1])
    elif kind == "timeCycle" and cycle and (cycle[2] or cycle[3]):
        hours, minutes = _hours_minutes(cycle[2], cycle[3])
        out.update(mode="cycle", amount=int(cycle[1]) if cycle[1] else None, hours=hours,
                   minutes=minutes, value="")
    return out


def _number(props: dict, field: str, *, whole: bool, maximum: int) -> int | float | None:
    raw = props.get(field)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = None if isinstance(raw, bool) else Decimal(str(raw).strip())
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > maximum or \
            (whole and value != value.to_integral_value()):
        kind_vi, kind_en = ("số nguyên", "a whole number") if whole else ("số", "a number")
        raise EditError(f"Phải là {kind_vi} từ 0 đến {maximum} / Must be {kind_en} from 0 to "
                        f"{maximum}", field)
    return int(value) if value == value.to_integral_value() else float(value)


def _period(props: dict) -> str:
    hours = _number(props, "hours", whole=True, maximum=100_000) or 0
    minutes = _number(props, "minutes", whole=True, maximum=59) or 0
    if not hours and not minutes:
        raise EditError("Nhập số giờ hoặc số phút / Enter the hours or the minutes", "hours")
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")


def _moment(props: dict) -> str:
    raw = props.get("value")
    try:
        moment = datetime.fromisoformat(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise EditError("Nhập ngày giờ (YYYY-MM-DDTHH:MM) / Enter a date and time "
                        "(YYYY-MM-DDTHH:MM)", "value")
    # A wall time typed in the designer is the province's time.
    moment = moment.astimezone(PROVINCE_TZ) if moment.tzinfo else moment.replace(tzinfo=PROVINCE_TZ)
    return f'"{moment.isoformat(timespec="seconds")}"'


def _expression_timer(props: dict) -> tuple[str, str]:
    kind = props.get("timer_kind")
    if kind not in TIMER_KINDS:
        raise EditError(f"Chọn một trong {', '.join(TIMER_KINDS)} / Choose one of "
                        f"{', '.join(TIMER_KINDS)}", "timer_kind")
    text = props.get("value")
    if isinstance(text, str) and text.strip() and timer_value_problem(kind, text.strip()) is None:
        # Spiff evaluates the text as Python: PT1H unquoted is an unknown name.
        raise EditError(f'Giá trị ISO 8601 phải đặt trong dấu nháy: "{text.strip()}" / An ISO 8601 '
                        f'value needs quotes: "{text.strip()}"', "value")
    text = _check(text, "value")
    literal = re.fullmatch(r'"([^"\\]*)"', text)
    problem = timer_value_problem(kind, literal[1]) if literal else None
    if problem:
        raise EditError(f"Giá trị hẹn giờ không hợp lệ / Invalid timer value: {problem}", "value")
    return kind, text


def _timer_text(props: dict) -> tuple[str, str]:
    """(timeDate | timeDuration | timeCycle, expression text) for the panel's values."""
    mode = props.get("mode")
    if mode == "wall":
        return "timeDuration", f'"{_period(props)}"'
    if mode in ("working_hours", "working_days"):
        amount = _number(props, "amount", whole=False, maximum=100_000)
        if not amount:
            raise EditError("Nhập số lớn hơn 0 / Enter a number above 0", "amount")
        return "timeDate", f"add_{mode}(now(), {amount})"
    if mode == "date":
        return "timeDate", _moment(props)
    if mode == "cycle":
        times = _number(props, "amount", whole=True, maximum=100_000)
        return "timeCycle", f'"R{times or ""}/{_period(props)}"'
    if mode == "expression":
        return _expression_timer(props)
    raise EditError(f"Chọn cách hẹn giờ: {', '.join(TIMER_MODES)} / Choose how the timer is set: "
                    f"{', '.join(TIMER_MODES)}", "mode")


def _write_timer(root, event, props: dict) -> None:
    if _local(event) == "boundaryEvent" and "interrupting" in props:
        event.set("cancelActivity", "true" if props["interrupting"] else "false")
    if "mode" not in props:
        return
    kind, text = _timer_text(props)
    if kind == "timeCycle" and _interrupting(event):
        # SpiffWorkflow runs the branch at every occurrence and interrupts after the last.
        raise EditError("Hẹn giờ lặp lại không dùng được trên sự kiện biên ngắt công việc; bỏ "
                        "chọn «ngắt» hoặc dùng thời hạn / A repeating timer cannot interrupt its "
                        "task; untick interrupting or use a duration", "mode")
    definition = _child(event, "timerEventDefinition")
    for node in [n for kind_ in TIMER_KINDS for n in definition.iterfind(_q(kind_))]:
        _remove(node)
    _append(definition, _formal_expression(definition, kind, text))


# -- messages ------------------------------------------------------------------------------------

def _retrievals(root, message_id: str | None) -> list[tuple]:
    """(correlationProperty, retrieval expression, messagePath text) for one message."""
    return [(prop, expr, (expr.findtext("bpmn:messagePath", "", NS) or "").strip())
            for prop in root.iterfind("bpmn:correlationProperty", NS)
            for expr in prop.iterfind("bpmn:correlationPropertyRetrievalExpression", NS)
            if message_id and expr.get("messageRef") == message_id]


def _read_message(root, event) -> dict:
    ref = _child(event, "messageEventDefinition").get("messageRef")
    message = _by_id(root, ref)
    paths = [path for _, _, path in _retrievals(root, ref)]
    try:
        takes = sorted(message_fields.outputs_of(event).values())
    except message_fields.MappingProblem:
        takes = []  # a hand-written mapping the panel cannot show; the checks report it
    return {"event_type": message.get("name", "") if message is not None else "",
            "correlate_on": paths[0] if paths else "", "takes": takes}


def _write_takes(event, takes) -> None:
    """The fields the instance takes from the message: one output parameter each, by its name
    (engine/processes/message_fields.py); none removes the mapping."""
    if not isinstance(takes, (list, tuple)) or not all(
            isinstance(t, str) and IDENT.match(t) for t in takes):
        raise EditError("Danh sách trường không hợp lệ / The fields to take must be field "
                        "names", "takes")
    ext = _child(event, "extensionElements")
    io = ext.find("camunda:inputOutput", NS) if ext is not None else None
    if io is not None:
        _remove(io)
    if not takes:
        if ext is not None and len(ext) == 0:
            _remove(ext)
        return
    ext = _extension_elements(event, ext)
    io = _make(ext, "inputOutput", CAMUNDA)
    _append(ext, io)
    for name in dict.fromkeys(takes):
        param = _make(io, "outputParameter", CAMUNDA, name=name)
        param.text = "${" + name + "}"
        _append(io, param)


def _top_insert(root, el) -> None:
    """Place a new message or correlation property with the others, before the processes."""
    index = 0
    for i, child in enumerate(root):
        if _local(child) in ("import", "extension", "message", "correlationProperty"):
            index = i + 1
        elif _is_bpmn(child):
            break
    _insert(root, index, el)


def _drop_if_unused(root, message_id: str | None) -> None:
    if not message_id or any(el.get("messageRef") == message_id for el in root.iter()
                             if _local(el) != "correlationPropertyRetrievalExpression"):
        return
    for prop, expr, _ in _retrievals(root, message_id):
        _remove(expr)
        if prop.find("bpmn:correlationPropertyRetrievalExpression", NS) is None:
            _remove(prop)
    message = _by_id(root, message_id)
    if message is not None and _local(message) == "message":
        _remove(message)


def _write_message(root, event, props: dict) -> None:
    if "event_type" not in props and "correlate_on" not in props:
        return
    event_type = props.get("event_type")
    field = props.get("correlate_on")
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type.strip()):
        raise EditError("Chọn loại sự kiện / Choose an event type", "event_type")
    if not isinstance(field, str) or not IDENT.match(field.strip()):
        raise EditError("Chọn trường để đối chiếu / Choose the field to correlate on",
                        "correlate_on")
    event_type, field = event_type.strip(), field.strip()
    definition = _child(event, "messageEventDefinition")
    old_ref = definition.get("messageRef")
    message = next((m for m in root.iterfind("bpmn:message", NS)
                    if m.get("name") == event_type), None)
    if message is None:
        message = _make(root, "message", id=_new_id(root, f"msg_{event_type}"), name=event_type)
        _top_insert(root, message)
    mid = message.get("id")
    definition.set("messageRef", mid)
    # One correlation field per message: the message reaches instances whose `field` matches.
    kept = False
    for prop, expr, path in _retrievals(root, mid):
        if prop.get("name") == field and path == field and not kept:
            kept = True
            continue
        _remove(expr)
        if prop.find("bpmn:correlationPropertyRetrievalExpression", NS) is None:
            _remove(prop)
    if not kept:
        prop = next((p for p in root.iterfind("bpmn:correlationProperty", NS)
                     if p.get("name") == field), None)
        if prop is None:
            prop = _make(root, "correlationProperty", id=_new_id(root, f"cp_{field}"), name=field)
            _top_insert(root, prop)
        expr = _make(prop, "correlationPropertyRetrievalExpression", messageRef=mid)
        etree.SubElement(expr, _q("messagePath")).text = field
        _append(prop, expr)
    if old_ref != mid:
        _drop_if_unused(root, old_ref)
    if "takes" in props:
        _write_takes(event, props["takes"])


def _add_definition(root, event, which) -> None:
    if which not in CATCH_DEFINITIONS:
        raise EditError("Chọn loại sự kiện chờ: hẹn giờ hoặc thông điệp / Choose what the event "
                        "waits for: a timer or a message", "definition")
    tag = f"{which}EventDefinition"
    _append(event, _make(event, tag, id=_new_id(root, f"{event.get('id')}_{which}")))


# -- flows and gateways --------------------------------------------------------------------------

def _flows_from(root, node_id: str) -> list:
    return [f for f in root.iter(_q("sequenceFlow")) if f.get("sourceRef") == node_id]


def _flow_label(root, flow) -> str:
    if flow.get("name"):
        return f"{flow.get('name')} ({flow.get('id')})"
    target = _by_id(root, flow.get("targetRef"))
    to = (target.get("name") or target.get("id")) if target is not None else "?"
    return f"{flow.get('id')} → {to}"


def _read_flow(root, flow) -> dict:
    source = _by_id(root, flow.get("sourceRef"))
    return {"condition": (flow.findtext("bpmn:conditionExpression", "", NS) or "").strip(),
            "is_default": source is not None and source.get("default") == flow.get("id"),
            "from_gateway": source is not None and _local(source) in _CHOOSING}


def _drop_condition(flow) -> None:
    cond = _child(flow, "conditionExpression")
    if cond is not None:
        _remove(cond)


def _write_flow(root, flow, props: dict) -> None:
    source = _by_id(root, flow.get("sourceRef"))
    fid = flow.get("id")
    if "is_default" in props:
        if props["is_default"]:
            if source is None or _local(source) not in _CHOOSING:
                raise EditError("Chỉ luồng ra từ cổng rẽ nhánh mới là luồng mặc định được / Only a "
                                "flow leaving an exclusive gateway can be its default", "is_default")
            source.set("default", fid)
        elif source is not None and source.get("default") == fid:
            del source.attrib["default"]
    if source is not None and source.get("default") == fid:
        _drop_condition(flow)  # a default flow is taken when no condition holds: it has none
        return
    if "condition" not in props:
        return
    text = props["condition"].strip() if isinstance(props["condition"], str) else ""
    if not text:
        _drop_condition(flow)
        return
    if source is not None and _local(source) in ("parallelGateway", "eventBasedGateway"):
        raise EditError("Luồng ra từ cổng song song hoặc cổng sự kiện không có điều kiện / Flows "
                        "leaving a parallel or event-based gateway take no condition", "condition")
    text = _check(text, "condition")
    _drop_condition(flow)
    _append(flow, _formal_expression(flow, "conditionExpression", text))


def _read_gateway(root, gateway) -> dict:
    return {"default": gateway.get("default", ""),
            "outgoing": [(f.get("id"), _flow_label(root, f))
                         for f in _flows_from(root, gateway.get("id"))]}


def _write_gateway(root, gateway, props: dict) -> None:
    if "default" not in props:
        return
    choice = props["default"] or ""
    if not choice:
        gateway.attrib.pop("default", None)
        return
    flow = next((f for f in _flows_from(root, gateway.get("id")) if f.get("id") == choice), None)
    if flow is None:
        raise EditError(f"{choice!r} không phải luồng ra của cổng này / {choice!r} is not a flow "
                        "leaving this gateway", "default")
    gateway.set("default", choice)
    _drop_condition(flow)


# -- the panels' entry points --------------------------------------------------------------------

def _read_catch(root, event) -> dict:
    return {"definition": ""}


def _write_name(el, name) -> None:
    name = name.strip() if isinstance(name, str) else None
    if name is None or len(name) > MAX_NAME:
        raise EditError(f"Tên phải là văn bản đến {MAX_NAME} ký tự / The name must be text of at "
                        f"most {MAX_NAME} characters", "name")
    if name:
        el.set("name", name)
    else:
        el.attrib.pop("name", None)


_READERS = {"lane": _read_lane, "user_task": _read_user_task, "script_task": _read_script,
            "timer_event": _read_timer, "message_event": _read_message,
            "catch_event": _read_catch, "sequence_flow": _read_flow,
            "exclusive_gateway": _read_gateway}
_WRITERS = {"lane": _write_lane, "user_task": _write_user_task, "script_task": _write_script,
            "timer_event": _write_timer, "message_event": _write_message,
            "sequence_flow": _write_flow, "exclusive_gateway": _write_gateway}


def read_properties(xml: bytes, element_id: str) -> dict:
    """The element's current values for its panel (which keys depends on its kind)."""
    root = _parse(xml)
    el = _element(root, element_id)
    kind = _kind(el)
    props = {} if kind == "lane" else {"name": el.get("name", "")}
    reader = _READERS.get(kind)
    if reader is not None:
        props.update(reader(root, el))
    return props


def apply_properties(xml: bytes, element_id: str, props: dict) -> bytes:
    """The XML with the element's properties set from `props` (keys left out stay as they are)."""
    if not isinstance(props, dict):
        raise EditError("Giá trị không hợp lệ / The values must be a mapping")
    _refuse_control_characters(props)
    root = _parse(xml)
    prefixes = sorted({p for el in root.iter() if isinstance(el.tag, str) for p in el.nsmap if p})
    el = _element(root, element_id)
    kind = _kind(el)
    if kind != "lane" and "name" in props:
        _write_name(el, props["name"])
    if kind == "catch_event" and props.get("definition") is not None:
        _add_definition(root, el, props["definition"])
        kind = _kind(el)
    writer = _WRITERS.get(kind)
    if writer is not None:
        writer(root, el, props)
    return _serialize(root, prefixes)
