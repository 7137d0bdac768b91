"""Static checks of a scenario's BPMN, each problem pointing at the file, line and element."""
from __future__ import annotations

import ast
import re

from lxml import etree

from engine.expressions import ExpressionError, check_expression, check_script
from engine.processes.spiff import TIMER_KINDS, timer_value_problem
from engine.scenarios.problems import Problem
from engine.tasks.forms import FIELD_TYPES

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
FORM_TYPES = tuple(t for t in FIELD_TYPES if t != "text")
TIMER_EVENTS = ("startEvent", "intermediateCatchEvent", "boundaryEvent")


def _expr_problem(exc: ExpressionError) -> str:
    return exc.message if hasattr(exc, "message") else str(exc)


class BpmnChecker:
    """Collects problems in one BPMN document."""

    def __init__(self, filename: str, department_keys: set[str],
                 event_fields: dict[str, dict[str, str]]):
        self.filename = filename
        self.departments = department_keys
        self.event_fields = event_fields
        self.problems: list[Problem] = []

    def _add(self, node, message: str) -> None:
        ident = node.get("id") if node is not None else ""
        line = node.sourceline if node is not None else None
        self.problems.append(Problem(self.filename, message, line, ident or ""))

    def check(self, text: bytes) -> etree._Element | None:
        """Parse and check; returns the document root (None when it is not XML)."""
        try:
            root = etree.fromstring(text)
        except etree.XMLSyntaxError as exc:
            self.problems.append(Problem(self.filename, f"not well-formed XML: {exc.msg}",
                                         exc.lineno))
            return None
        processes = root.findall("bpmn:process", NS)
        if not processes:
            self._add(root, "no bpmn:process element")
        for process in processes:
            self._lanes(process)
            self._user_tasks(process)
            self._flows(process)
            self._scripts(process)
            self._events(root, process)
        return root

    def _lanes(self, process) -> None:
        for lane in process.iterfind(".//bpmn:lane", NS):
            name = (lane.get("name") or "").strip()
            if name.startswith("="):
                self._expression(lane, name[1:].strip(), "lane expression")
            elif name not in self.departments:
                self._add(lane, f"lane name {name!r} is not a department key of the "
                                f"organisation (or an expression starting with '=')")

    def _user_tasks(self, process) -> None:
        element_ids = {e.get("id") for e in process.iter() if e.get("id")
                       and not e.tag.startswith("{%s}" % NS["camunda"])}
        for task in process.iterfind(".//bpmn:userTask", NS):
            ids = set()
            for field in task.iterfind(".//camunda:formField", NS):
                fid, ftype = field.get("id") or "", field.get("type") or ""
                if not IDENT.match(fid):
                    self._add(field, f"form field id {fid!r} must be a name (letters, digits, _)")
                if fid in ids:
                    self._add(field, f"form field {fid!r} appears twice")
                if fid in element_ids:
                    # SpiffWorkflow finds elements by id anywhere in the file.
                    self._add(field, f"form field id {fid!r} is also the id of a process "
                                     "element; rename one of them")
                ids.add(fid)
                if ftype not in FORM_TYPES:
                    self._add(field, f"form field {fid!r} has type {ftype!r}; use one of "
                                     f"{', '.join(FORM_TYPES)}")
                if ftype == "enum" and field.find("camunda:value", NS) is None:
                    self._add(field, f"enum field {fid!r} has no camunda:value choices")

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
                self._add(gateway, "exclusive gateway with several outgoing flows needs a "
                                   "default flow, so that no case can get stuck")

    def _scripts(self, process) -> None:
        for task in process.iterfind(".//bpmn:scriptTask", NS):
            script = task.find("bpmn:script", NS)
            try:
                check_script((script.text or "") if script is not None else "")
            except ExpressionError as exc:
                self._add(task, f"script: {_expr_problem(exc)}")

    def _events(self, root, process) -> None:
        messages = {m.get("id"): m for m in root.iterfind("bpmn:message", NS)}
        paths: dict[str, list[str]] = {}
        for prop in root.iterfind("bpmn:correlationProperty", NS):
            for expr in prop.iterfind("bpmn:correlationPropertyRetrievalExpression", NS):
                path = expr.find("bpmn:messagePath", NS)
                paths.setdefault(expr.get("messageRef"), []).append(
                    (path.text or "").strip() if path is not None else "")
        for timer in process.iterfind(".//bpmn:timerEventDefinition", NS):
            self._timer(timer)
        for definition in process.iterfind(".//bpmn:messageEventDefinition", NS):
            event = definition.getparent()
            ref = definition.get("messageRef")
            message = messages.get(ref)
            if message is None:
                self._add(event, f"message event refers to unknown message {ref!r}")
                continue
            name = message.get("name") or ""
            if event.tag.endswith("}startEvent") or event.tag.endswith("ThrowEvent"):
                self._add(event, "only catching message events (intermediate or boundary) "
                                 "are supported; processes are started by rules")
                continue
            fields = self.event_fields.get(name)
            if fields is None:
                self._add(message, f"message name {name!r} is not a known event type")
                continue
            if not paths.get(ref):
                self._add(message, f"message {name!r} needs a correlationProperty whose "
                                   "messagePath names the event field to correlate on")
            for path in paths.get(ref, []):
                if path not in fields:
                    self._add(message, f"correlation messagePath {path!r} is not a field of "
                                       f"{name} (fields: {', '.join(sorted(fields))})")

    def _timer(self, definition) -> None:
        event = definition.getparent()
        if etree.QName(event).localname not in TIMER_EVENTS:
            self._add(event, "a timer can only be a start, intermediate catch or boundary event")
            return
        given = [(kind, node) for kind in TIMER_KINDS
                 for node in definition.iterfind(f"bpmn:{kind}", NS)]
        if len(given) != 1:
            found = ", ".join(kind for kind, _ in given) or "none"
            self._add(event, "timer needs exactly one of timeDate, timeDuration or timeCycle "
                             f"(found {found})")
            return
        kind, node = given[0]
        if kind == "timeCycle" and etree.QName(event).localname == "boundaryEvent" and \
                event.get("cancelActivity", "true").lower() != "false":
            # SpiffWorkflow runs the branch at every occurrence and interrupts after the last.
            self._add(event, "a timeCycle on an interrupting boundary event does not interrupt "
                             "at its first occurrence; use timeDuration or timeDate, or "
                             'cancelActivity="false" to repeat')
            return
        expr = (node.text or "").strip()
        if expr and timer_value_problem(kind, expr) is None:
            # Spiff evaluates the text as Python: PT1H unquoted is an unknown name.
            self._add(event, f"timer {kind} {expr!r} is a Python expression: write the ISO "
                             f"8601 value in quotes, \"{expr}\"")
            return
        if not self._expression(event, expr, f"timer {kind}"):
            return
        value = ast.parse(expr, mode="eval").body
        if isinstance(value, ast.Constant):
            # A literal can be checked now; anything else is checked when the timer starts.
            problem = timer_value_problem(kind, value.value) if isinstance(value.value, str) \
                else (f"gives {type(value.value).__name__} {value.value!r}; a timer needs an "
                      "ISO 8601 string (in quotes)")
            if problem:
                self._add(event, f"timer {kind} {expr!r}: {problem}")

    def _expression(self, node, expr: str, what: str) -> bool:
        if not expr:
            self._add(node, f"{what} is empty")
            return False
        try:
            check_expression(expr)
        except ExpressionError as exc:
            self._add(node, f"{what} {expr!r}: {_expr_problem(exc)}")
            return False
        return True


def check_bpmn(filename: str, text: bytes, department_keys: set[str],
               event_fields: dict[str, dict[str, str]]) -> tuple[list[Problem], list[str]]:
    """Check one BPMN file; return (problems, executable process ids)."""
    checker = BpmnChecker(filename, department_keys, event_fields)
    root = checker.check(text)
    ids = [] if root is None else [p.get("id") for p in root.findall("bpmn:process", NS)
                                   if p.get("isExecutable", "true") != "false"]
    return checker.problems, ids
