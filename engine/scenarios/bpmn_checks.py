"""Static checks of a scenario's BPMN, each problem pointing at the file, line and element."""
from __future__ import annotations

import ast
import re

from lxml import etree

from engine.expressions import ExpressionError, check_expression, check_script
from engine.processes import message_fields
from engine.processes.spiff import TIMER_KINDS, timer_value_problem
from engine.scenarios.problems import Problem
from engine.tasks.forms import FIELD_TYPES
from engine.xmlsafe import parse

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FORM_TYPES = tuple(t for t in FIELD_TYPES if t != "text")
TIMER_EVENTS = ("startEvent", "intermediateCatchEvent", "boundaryEvent")
FLOW_NODES = frozenset((
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway",
    "complexGateway"))
# Subprocesses whose inner nodes are joined by their own sequence flows (an ad-hoc one has none).
FLOW_CONTAINERS = ("subProcess", "transaction")
SUBPROCESSES = FLOW_CONTAINERS + ("adHocSubProcess",)
# The tasks the runtime puts in a department's inbox (SpiffWorkflow's manual tasks).
DEPARTMENT_TASKS = ("userTask", "manualTask", "task")


# What each kind of timer holds, in the quotes the engine needs.
TIMER_EXAMPLES = {"timeDuration": '"PT4H" (4 hours) or "P2D" (2 days)',
                  "timeDate": '"2026-12-31T17:00:00+07:00"',
                  "timeCycle": '"R3/PT1H" (3 times, hourly)'}


# A Camunda/Activiti expression, `${approved}`: what other modellers write in conditions.
JUEL = re.compile(r"^[$#]\{(.*)\}$", re.S)
_JUEL_WORDS = ((re.compile(r"&&|\band\b"), " and "), (re.compile(r"\|\||\bor\b"), " or "),
               (re.compile(r"!(?!=)|\bnot\b"), " not "), (re.compile(r"\beq\b"), " == "),
               (re.compile(r"\bne\b"), " != "), (re.compile(r"\bgt\b"), " > "),
               (re.compile(r"\blt\b"), " < "), (re.compile(r"\bge\b"), " >= "),
               (re.compile(r"\ble\b"), " <= "), (re.compile(r"\bnull\b"), " None "),
               (re.compile(r"\btrue\b"), " True "), (re.compile(r"\bfalse\b"), " False "))


def from_juel(inner: str) -> str:
    """A JUEL expression's body in the engine's words (`!approved` → `not approved`)."""
    for pattern, word in _JUEL_WORDS:
        inner = pattern.sub(word, inner)
    return " ".join(inner.split())


def not_xml(filename: str, exc: etree.XMLSyntaxError) -> Problem:
    """The problem of a file that is not well-formed XML, with the parser's line."""
    return Problem(filename, f"Tệp không phải XML hợp lệ / the file is not well-formed XML "
                             f"({exc.msg}): correct it at that line, in the tool that made it "
                             "or a text editor", exc.lineno)


def _expr_problem(exc: ExpressionError) -> str:
    return exc.message if hasattr(exc, "message") else str(exc)


def node_kind(node) -> str:
    """The BPMN local name of an element ("userTask"), "" for a comment or processing
    instruction."""
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _has(node, definition: str) -> bool:
    return node.find(f"bpmn:{definition}", NS) is not None


def link_name(node) -> str | None:
    """The name of a link event's definition; None when it is not a link event."""
    link = node.find("bpmn:linkEventDefinition", NS)
    return None if link is None else (link.get("name") or "")


def _triggered(node) -> bool:
    """An event subprocess: started by its own start event, never by a sequence flow."""
    return node.get("triggeredByEvent", "false").lower() == "true"


def _compensation(node) -> bool:
    """A compensation handler or its boundary event: joined by an association, not flows."""
    return node.get("isForCompensation", "false").lower() == "true" or \
        (node_kind(node) == "boundaryEvent" and _has(node, "compensateEventDefinition"))


def lane_elements(root) -> dict[str, etree._Element]:
    """Flow node id → the lane listing it in a flowNodeRef, anywhere in the document."""
    return {ref.text: ref.getparent() for ref in root.iterfind(".//bpmn:flowNodeRef", NS)
            if ref.text}


def department_tasks(container, lanes: dict, inherited=None):
    """Yield each inbox task under `container` with the lane whose name picks its department
    (None: outside every named lane), matching the runtime.

    SpiffWorkflow gives a node the name of the lane whose flowNodeRef lists it, anywhere in the
    document; nodes inside a subprocess that has a lane take that lane instead.
    """
    for node in container:
        own = lanes.get(node.get("id"))
        lane = inherited if inherited is not None else \
            (own if own is not None and (own.get("name") or "").strip() else None)
        if node_kind(node) in DEPARTMENT_TASKS:
            yield node, lane
        if node_kind(node) in SUBPROCESSES:
            yield from department_tasks(node, lanes, lane)


class BpmnChecker:
    """Collects problems in one BPMN document."""

    def __init__(self, filename: str, department_keys: set[str],
                 event_fields: dict[str, dict[str, str]]):
        self.filename = filename
        self.departments = department_keys
        self.event_fields = event_fields
        self.problems: list[Problem] = []
        self.ids: set[str] = set()  # every id in the document, to tell missing from misplaced

    def _add(self, node, message: str) -> None:
        ident = node.get("id") if node is not None else ""
        line = node.sourceline if node is not None else None
        self.problems.append(Problem(self.filename, message, line, ident or ""))

    def check(self, text: bytes) -> etree._Element | None:
        """Parse and check; returns the document root (None when it is not XML)."""
        try:
            root = parse(text)
        except etree.XMLSyntaxError as exc:
            self.problems.append(not_xml(self.filename, exc))
            return None
        processes = root.findall("bpmn:process", NS)
        if not processes:
            self._add(root, "Tệp không có quy trình nào / no bpmn:process element: draw a "
                            "process (a pool) in the diagram")
        self.ids = set()
        first: dict[str, int | None] = {}
        for el in root.iter():
            ident = el.get("id") if isinstance(el.tag, str) else None
            if not ident:
                continue
            self.ids.add(ident)
            if etree.QName(el).namespace != NS["bpmn"]:
                continue  # Camunda's form fields and properties are named per task
            if ident in first:
                # Two elements, one id: a save keeps one of them and drops the other silently.
                self._add(el, f"mã {ident!r} đã dùng ở dòng {first[ident]} / the id {ident!r} "
                              f"is already used on line {first[ident]}: ids must be unique in "
                              "the file; rename one of them")
            else:
                first[ident] = el.sourceline
        for store in root.iterfind("bpmn:dataStore", NS):
            # Declared once for the document; the engine loads (and refuses) it with any process.
            self._add(store, f"kho dữ liệu {label_of(store)}: bộ máy không chạy kho dữ liệu / the "
                             f"data store {label_of(store)} has no implementation in the engine: "
                             "remove it and its references (keep the value in a process "
                             "variable)")
        for process in processes:
            self._reserved_ids(process)
            self._lanes(process)
            self._unlaned_tasks(root, process)
            self._graph(process)
            self._user_tasks(process)
            self._flows(process)
            self._scripts(process)
            self._events(root, process)
            self._engine_support(root, process)
        return root

    def _reserved_ids(self, process) -> None:
        # SpiffWorkflow names its own start and end tasks so: an element with such an id breaks
        # the instance when it starts ("No output task connected").
        reserved = {"Start", "End", f"{process.get('id')}.EndJoin"}
        for el in process.iter():
            if isinstance(el.tag, str) and el.get("id") in reserved:
                self._add(el, f"mã {el.get('id')!r} dành riêng cho bộ máy quy trình, hãy đổi "
                              f"tên / the id {el.get('id')!r} is reserved by the workflow "
                              "engine: rename it")

    def _lanes(self, process) -> None:
        for lane in process.iterfind(".//bpmn:lane", NS):
            name = (lane.get("name") or "").strip()
            if name.startswith("="):
                self._expression(lane, name[1:].strip(), "lane expression")
            elif not name:
                self._add(lane, "Làn chưa có tên / the lane has no name, so its tasks go to no "
                                "department: choose the department in the lane's panel (the "
                                "lane's name is the department key, e.g. so-xay-dung)")
            elif name not in self.departments:
                self._add(lane, f"Tên làn {name!r} không phải mã một đơn vị / lane name "
                                f"{name!r} is not a department key of the organisation (or an "
                                "expression starting with '='): choose the department in the "
                                "lane's panel, e.g. so-xay-dung")

    def _user_tasks(self, process) -> None:
        element_ids = {e.get("id") for e in process.iter() if e.get("id")
                       and not e.tag.startswith("{%s}" % NS["camunda"])}
        for task in process.iterfind(".//bpmn:userTask", NS):
            ids = set()
            for field in task.iterfind(".//camunda:formField", NS):
                fid, ftype = field.get("id") or "", field.get("type") or ""
                if not IDENT.match(fid):
                    self._add(field, f"Mã trường {fid!r} không hợp lệ / form field id {fid!r} "
                                     "must be a name (letters, digits, _)")
                if fid in ids:
                    self._add(field, f"Trường {fid!r} xuất hiện hai lần / form field {fid!r} "
                                     "appears twice: rename or remove one")
                if fid in element_ids:
                    # SpiffWorkflow finds elements by id anywhere in the file.
                    self._add(field, f"Mã trường {fid!r} trùng mã một phần tử / form field id "
                                     f"{fid!r} is also the id of a process element; rename one "
                                     "of them")
                ids.add(fid)
                if ftype not in FORM_TYPES:
                    self._add(field, f"Trường {fid!r} có kiểu {ftype!r} không dùng được / form "
                                     f"field {fid!r} has type {ftype!r}; use one of "
                                     f"{', '.join(FORM_TYPES)}")
                if ftype == "enum" and field.find("camunda:value", NS) is None:
                    self._add(field, f"Trường chọn {fid!r} chưa có lựa chọn nào / enum field "
                                     f"{fid!r} has no camunda:value choices: add the choices")
            if task.find(".//camunda:formField", NS) is None:
                self._add(task, "Công việc không có trường biểu mẫu nào: người nhận không có gì "
                                "để trả lời / the user task has no form field, so the person has "
                                "nothing to answer; add a camunda:formField (an outcome, a note)")

    def _unlaned_tasks(self, root, process) -> None:
        """Inbox tasks outside every lane: they go to the scenario's owner, which a diagram
        with lanes does not show."""
        if not any((lane.get("name") or "").strip()
                   for lane in process.iterfind(".//bpmn:lane", NS)):
            return
        for node, lane in department_tasks(process, lane_elements(root)):
            if lane is None:
                self._add(node, "Công việc nằm ngoài mọi làn nên không rõ giao cho đơn vị nào "
                                "(sẽ về đơn vị chủ trì kịch bản) / the task is outside every lane, "
                                "so its department is not shown (it would go to the scenario's "
                                "owner); put it in a lane")

    def _graph(self, container) -> None:
        """Flows naming missing nodes, nodes no start event reaches, nodes leading nowhere."""
        nodes = {n.get("id"): n for n in container
                 if node_kind(n) in FLOW_NODES and n.get("id")}
        edges: dict[str, list[str]] = {}
        leaving: set[str] = set()
        for flow in container.iterfind("bpmn:sequenceFlow", NS):
            source, target = flow.get("sourceRef"), flow.get("targetRef")
            ok = self._flow_end(flow, "sourceRef", source, nodes)
            ok = self._flow_end(flow, "targetRef", target, nodes) and ok
            if source in nodes:
                leaving.add(source)
            if ok:
                edges.setdefault(source, []).append(target)
        self._unreachable(container, nodes, edges)
        self._dead_ends(nodes, leaving)
        for node in nodes.values():
            if node_kind(node) in FLOW_CONTAINERS:
                self._graph(node)

    def _flow_end(self, flow, attr: str, ref: str | None, nodes: dict) -> bool:
        if ref in nodes:
            return True
        if not ref:
            self._add(flow, f"Luồng thiếu {attr} / the sequence flow has no {attr}")
        elif ref in self.ids:
            self._add(flow, f"{attr} {ref!r} không phải một bước trong cùng quy trình (hoặc quy "
                            f"trình con) với luồng / {attr} {ref!r} is not a flow node of the "
                            "process or subprocess that holds the flow")
        else:
            self._add(flow, f"{attr} {ref!r} không tồn tại / {attr} {ref!r} does not exist")
        return False

    def _unreachable(self, container, nodes: dict, edges: dict) -> None:
        starts = [i for i, n in nodes.items() if node_kind(n) == "startEvent"]
        if node_kind(container) in FLOW_CONTAINERS and len(starts) != 1:
            # The engine enters a subprocess at its one start event (a collapsed one drawn in
            # another tool is often empty).
            self._add(container, f"quy trình con {label_of(container)} cần đúng một sự kiện bắt "
                                 f"đầu (có {len(starts)}) / the sub-process {label_of(container)} "
                                 f"needs exactly one start event (it has {len(starts)}): open it "
                                 "and draw its steps from one start event, or make it a plain "
                                 "task")
            return
        if not starts:
            if nodes:
                self._add(container, "Không có sự kiện bắt đầu / there is no start event, so no "
                                     "step can be reached")
            return
        attached: dict[str, list[str]] = {}
        catches: dict[str, list[str]] = {}
        for i, n in nodes.items():
            if node_kind(n) == "boundaryEvent":
                attached.setdefault(n.get("attachedToRef"), []).append(i)
            elif node_kind(n) == "intermediateCatchEvent" and link_name(n) is not None:
                catches.setdefault(link_name(n), []).append(i)
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            todo += edges.get(i, []) + attached.get(i, [])
            if node_kind(nodes[i]) == "intermediateThrowEvent" and link_name(nodes[i]) is not None:
                todo += catches.get(link_name(nodes[i]), [])
        for i, n in nodes.items():
            if i in seen or _triggered(n) or _compensation(n):
                continue
            if node_kind(n) == "boundaryEvent" and n.get("attachedToRef") not in nodes:
                self._add(n, f"attachedToRef {n.get('attachedToRef')!r} không phải một bước của "
                             "quy trình / the boundary event is attached to "
                             f"{n.get('attachedToRef')!r}, which is not a node of this process")
                continue
            if node_kind(n) == "boundaryEvent" and n.get("attachedToRef") not in seen:
                continue  # its activity is reported already
            self._add(n, "Không thể tới bước này từ sự kiện bắt đầu theo các luồng / the node "
                         "cannot be reached from a start event along sequence flows")

    def _dead_ends(self, nodes: dict, leaving: set[str]) -> None:
        exits: dict[str, list[str]] = {}
        for i, n in nodes.items():
            if node_kind(n) == "boundaryEvent" and i in leaving:
                exits.setdefault(n.get("attachedToRef"), []).append(i)
        for i, n in nodes.items():
            kind = node_kind(n)
            if i in leaving or kind == "endEvent" or _triggered(n) or _compensation(n):
                continue
            if kind == "intermediateThrowEvent" and link_name(n) is not None:
                continue  # the path goes on at the link's catch event
            if kind == "boundaryEvent":
                self._add(n, "Sự kiện biên không có luồng ra: khi xảy ra thì không có gì tiếp "
                             "theo / the boundary event has no outgoing sequence flow: when it "
                             "fires nothing follows; connect it or end it with an end event")
            elif i in exits:
                # Completing the activity normally is always possible: that path stops here.
                self._add(n, "Bước chỉ có luồng ra qua sự kiện biên "
                             f"{', '.join(exits[i])}; hoàn thành bình thường thì dừng tại đây / "
                             f"the activity only leaves through its boundary event "
                             f"{', '.join(exits[i])}: completing it normally ends the path "
                             "here; add an outgoing sequence flow")
            else:
                self._add(n, "Bước không có luồng ra và không phải sự kiện kết thúc / the node "
                             "has no outgoing sequence flow and is not an end event: the path "
                             "stops here; connect it or add an end event")

    def _flows(self, process) -> None:
        flows = {f.get("id"): f for f in process.iterfind("bpmn:sequenceFlow", NS)}
        for flow in flows.values():
            cond = flow.find("bpmn:conditionExpression", NS)
            if cond is not None:
                self._expression(flow, (cond.text or "").strip(), "condition")
        for gateway in process.iterfind("bpmn:exclusiveGateway", NS):
            outgoing = [flows[o.text] for o in gateway.iterfind("bpmn:outgoing", NS)
                        if o.text in flows]
            if len(outgoing) > 1 and not gateway.get("default"):
                self._add(gateway, f"Cổng {label_of(gateway)} cần một luồng mặc định / exclusive "
                                   "gateway with several outgoing flows needs a default flow, "
                                   "so that no case can get stuck: mark one outgoing flow as "
                                   "the default")

    def _engine_support(self, root, container) -> None:
        """What the workflow engine refuses to load, said in a modeller's words with the fix
        (its own refusals name no line and are sometimes Python's: issue 22)."""
        flows = [f for f in container if node_kind(f) == "sequenceFlow"]
        leaving: dict[str, list] = {}
        for flow in flows:
            if flow.get("targetRef") in self.ids:  # a broken flow is reported on its own
                leaving.setdefault(flow.get("sourceRef"), []).append(flow)
        data_objects = {r.get("id") for r in root.iter(f"{{{NS['bpmn']}}}dataObjectReference")} | \
            {r.get("id") for r in root.iter(f"{{{NS['bpmn']}}}dataObject")}
        data_stores = {r.get("id") for r in root.iter(f"{{{NS['bpmn']}}}dataStoreReference")}
        used = {(r.text or "").strip() for path in ("dataInputAssociation/bpmn:sourceRef",
                                                     "dataOutputAssociation/bpmn:targetRef")
                for r in container.iterfind(f".//bpmn:{path}", NS)}
        for store in container.iterfind("bpmn:dataStoreReference", NS):
            if store.get("id") not in used:
                self._add(store, f"kho dữ liệu {label_of(store)}: bộ máy không chạy kho dữ liệu / "
                                 f"the data store {label_of(store)} has no implementation in the "
                                 "engine: remove it (keep the value in a process variable)")
        for node in container:
            kind = node_kind(node)
            if kind not in FLOW_NODES:
                continue
            label = label_of(node)
            out = leaving.get(node.get("id"), [])
            if len(out) > 1 and "Gateway" not in kind and kind != "startEvent":
                self._add(node, f"{label} có {len(out)} luồng ra; bộ máy không rẽ nhánh tại "
                                f"đây: thêm một cổng song song (hoặc cổng loại trừ có điều kiện) "
                                f"sau nó / {label} has {len(out)} outgoing flows, and the engine "
                                f"does not split at a {kind}: add a parallel gateway after it (or "
                                f"an exclusive one with conditions)")
            if kind == "businessRuleTask" and not node.get(f"{{{NS['camunda']}}}decisionRef"):
                self._add(node, f"{label} chưa chọn bảng quyết định / {label} names no DMN "
                                "decision: set camunda:decisionRef to the id of a decision in a "
                                ".dmn file of the scenario, or make it a plain task")
            loop = node.find("bpmn:multiInstanceLoopCharacteristics", NS)
            if loop is not None and loop.find("bpmn:loopCardinality", NS) is None and \
                    not loop.get(f"{{{NS['camunda']}}}collection"):
                self._add(node, f"{label} lặp nhiều lần nhưng không nói bao nhiêu lần hay trên "
                                f"danh sách nào / the multi-instance {label} says neither how "
                                "many times (loopCardinality) nor over which list "
                                "(camunda:collection): give one of them")
            for ref in node.iterfind("bpmn:dataInputAssociation/bpmn:sourceRef", NS):
                self._data_ref(node, label, (ref.text or "").strip(), data_objects, data_stores,
                               "đọc", "reads")
            for ref in node.iterfind("bpmn:dataOutputAssociation/bpmn:targetRef", NS):
                self._data_ref(node, label, (ref.text or "").strip(), data_objects, data_stores,
                               "ghi", "writes")
            if kind in ("exclusiveGateway", "inclusiveGateway") and len(out) > 1:
                for flow in out:
                    if flow.get("id") != node.get("default") and \
                            flow.find("bpmn:conditionExpression", NS) is None:
                        self._add(flow, f"luồng {label_of(flow)} ra từ {label} không có điều kiện "
                                        f"và không phải luồng mặc định / the flow {label_of(flow)} "
                                        f"out of {label} has no condition and is not the "
                                        "gateway's default: give it a condition, or make it the "
                                        "default flow")
            if kind in SUBPROCESSES:  # event subprocesses too: the engine loads them all
                self._engine_support(root, node)

    def _data_ref(self, node, label: str, ref: str, data_objects: set, stores: set,
                  vi: str, en: str) -> None:
        if ref in stores:
            self._add(node, f"{label} {vi} kho dữ liệu {ref!r}, bộ máy không chạy kho dữ liệu / "
                            f"{label} {en} the data store {ref!r}, and the engine runs no data "
                            "store (it has no implementation): remove the data store and its "
                            "association, and keep the value in a process variable")
        elif ref not in data_objects:
            self._add(node, f"{label} {vi} dữ liệu {ref!r} không có trong quy trình / {label} "
                            f"{en} the data {ref!r}, which this process does not have: draw "
                            "the data object, or remove the association")

    def _scripts(self, process) -> None:
        for task in process.iterfind(".//bpmn:scriptTask", NS):
            script = task.find("bpmn:script", NS)
            try:
                check_script((script.text or "") if script is not None else "")
            except ExpressionError as exc:
                self._add(task, f"Kịch bản lệnh của {label_of(task)} không dùng được / script: "
                                f"{_expr_problem(exc)}")

    def _events(self, root, process) -> None:
        messages = {m.get("id"): m for m in root.iterfind("bpmn:message", NS)}
        paths = correlation_paths(root)
        for timer in process.iterfind(".//bpmn:timerEventDefinition", NS):
            self._timer(timer)
        for definition in process.iterfind(".//bpmn:messageEventDefinition", NS):
            event = definition.getparent()
            ref = definition.get("messageRef")
            message = messages.get(ref)
            if not ref:
                self._add(event, f"sự kiện tin nhắn {label_of(event)} không chờ tin nhắn nào / the "
                                 f"message event {label_of(event)} waits for no message: choose "
                                 "the event type it waits for (a messageRef to a bpmn:message "
                                 "whose name is the event type, e.g. hotline.ticket.resolved)")
                continue
            if message is None:
                self._add(event, f"sự kiện tin nhắn {label_of(event)} chờ tin nhắn {ref!r} không "
                                 f"có trong tệp / the message event {label_of(event)} refers to "
                                 f"the message {ref!r}, which the file does not define: add "
                                 f"<bpmn:message id=\"{ref}\" name=\"<event type>\"/> or "
                                 "choose another")
                continue
            name = message.get("name") or ""
            if event.tag.endswith("}startEvent") or event.tag.endswith("ThrowEvent"):
                self._add(event, f"{label_of(event)}: chỉ dùng được sự kiện chờ tin nhắn / only "
                                 "catching message events (intermediate or boundary) are "
                                 "supported; processes are started by rules: use a plain start "
                                 "event, and a rule (rules.yaml) for what starts the process")
                continue
            fields = self.event_fields.get(name)
            if fields is None:
                self._add(message, f"Tin nhắn {name!r} không phải một loại sự kiện / message "
                                   f"name {name!r} is not a known event type: name the message "
                                   "after the event it waits for, e.g. hotline.ticket.resolved")
                continue
            if not paths.get(ref):
                self._add(message, f"Tin nhắn {name!r} chưa nói đối chiếu theo trường nào / "
                                   f"message {name!r} needs a correlationProperty whose "
                                   "messagePath names the event field to correlate on")
            for path in paths.get(ref, []):
                if path not in fields:
                    self._add(message, f"Trường đối chiếu {path!r} không có trong {name} / "
                                       f"correlation messagePath {path!r} is not a field of "
                                       f"{name} (fields: {', '.join(sorted(fields))})")
            self._taken(event, name, fields)

    def _taken(self, event, name: str, fields: dict[str, str]) -> None:
        """The fields a catch event takes from its message (message_fields) must be its."""
        try:
            mapping = message_fields.outputs_of(event)
        except message_fields.MappingProblem as exc:
            self._add(exc.element, str(exc))
            return
        for target, source in mapping.items():
            if source.split(".")[0] not in fields:
                self._add(event, f"{name} không có trường {source!r} / {name} has no field "
                                 f"{source!r} for {target!r} (fields: "
                                 f"{', '.join(sorted(fields))})")

    def _timer(self, definition) -> None:
        event = definition.getparent()
        if etree.QName(event).localname not in TIMER_EVENTS:
            self._add(event, "Hẹn giờ chỉ đặt ở sự kiện bắt đầu, chờ hoặc biên / a timer can "
                             "only be a start, intermediate catch or boundary event")
            return
        given = [(kind, node) for kind in TIMER_KINDS
                 for node in definition.iterfind(f"bpmn:{kind}", NS)]
        if len(given) != 1:
            found = ", ".join(kind for kind, _ in given) or "none"
            self._add(event, "Hẹn giờ cần đúng một trong ngày giờ, khoảng thời gian, chu kỳ / "
                             "timer needs exactly one of timeDate, timeDuration or timeCycle "
                             f"(found {found})")
            return
        kind, node = given[0]
        if kind == "timeCycle" and etree.QName(event).localname == "boundaryEvent" and \
                event.get("cancelActivity", "true").lower() != "false":
            # SpiffWorkflow runs the branch at every occurrence and interrupts after the last.
            self._add(event, "Chu kỳ trên sự kiện biên ngắt không ngắt ở lần đầu / a timeCycle "
                             "on an interrupting boundary event does not interrupt at its first "
                             'occurrence; use timeDuration or timeDate, or cancelActivity="false" '
                             "to repeat")
            return
        expr = (node.text or "").strip()
        if expr and timer_value_problem(kind, expr) is None:
            # Spiff evaluates the text as Python: PT1H unquoted is an unknown name.
            self._add(event, f"Giá trị hẹn giờ {expr!r} cần đặt trong ngoặc kép / timer {kind} "
                             f"{expr!r} is a Python expression: write the ISO 8601 value in "
                             f"quotes, \"{expr}\"")
            return
        if not self._expression(event, expr, f"timer {kind}", TIMER_EXAMPLES[kind]):
            return
        value = ast.parse(expr, mode="eval").body
        if isinstance(value, ast.Constant):
            # A literal can be checked now; anything else is checked when the timer starts.
            problem = timer_value_problem(kind, value.value) if isinstance(value.value, str) \
                else (f"gives {type(value.value).__name__} {value.value!r}; a timer needs an "
                      "ISO 8601 string (in quotes)")
            if problem:
                self._add(event, f"Giá trị hẹn giờ {expr!r} không dùng được / timer {kind} "
                                 f"{expr!r}: {problem}")

    def _expression(self, node, expr: str, what: str,
                    example: str = 'finding == "confirmed"') -> bool:
        if not expr:
            self._add(node, f"{label_of(node)}: biểu thức trống / {what} is empty: write it, "
                            f"e.g. {example}")
            return False
        juel = JUEL.match(expr)
        if juel:
            self._add(node, f"{label_of(node)}: biểu thức Camunda (JUEL) / {what} {expr!r} is "
                            "written for Camunda (JUEL); the engine reads the restricted Python "
                            f"of docs/scenarios.md: write {from_juel(juel.group(1))}")
            return False
        try:
            check_expression(expr)
        except ExpressionError as exc:
            self._add(node, f"{label_of(node)}: biểu thức không dùng được / {what} {expr!r}: "
                            f"{_expr_problem(exc)} (the restricted Python syntax of "
                            f"docs/scenarios.md, e.g. {example})")
            return False
        return True


def correlation_paths(root) -> dict[str, list[str]]:
    """Message id → the event fields its correlation properties read (messagePath)."""
    paths: dict[str, list[str]] = {}
    for expr in root.iterfind("bpmn:correlationProperty/"
                              "bpmn:correlationPropertyRetrievalExpression", NS):
        paths.setdefault(expr.get("messageRef"), []).append(
            (expr.findtext("bpmn:messagePath", "", NS) or "").strip())
    return paths


def label_of(node) -> str:
    """An element as a modeller sees it: its name and id ('Phân loại' (route))."""
    name = (node.get("name") or "").strip()
    ident = node.get("id") or "?"
    return f"'{name}' ({ident})" if name else ident


def check_bpmn(filename: str, text: bytes, department_keys: set[str],
               event_fields: dict[str, dict[str, str]]
               ) -> tuple[list[Problem], dict[str, int | None]]:
    """Check one BPMN file; return (problems, executable process id → its line, in document
    order)."""
    checker = BpmnChecker(filename, department_keys, event_fields)
    root = checker.check(text)
    processes = [] if root is None else root.findall("bpmn:process", NS)
    ids = {p.get("id"): p.sourceline for p in processes
           if p.get("isExecutable", "true") != "false"}
    for process in processes:
        if process.get("id") in ids and not any(node_kind(n) in FLOW_NODES for n in process):
            checker._add(process, f"quy trình {label_of(process)} chưa có bước nào / the process "
                                  f"{label_of(process)} has no steps: draw it from a start event, "
                                  "or, if it is another participant's pool, set "
                                  'isExecutable="false" on it')
    if processes and not ids:
        for process in processes:
            checker._add(process, f"quy trình {label_of(process)} được đánh dấu không chạy được / "
                                  f"the process {label_of(process)} is marked not executable: set "
                                  "isExecutable=\"true\" on it so that the engine runs it")
    return checker.problems, ids
