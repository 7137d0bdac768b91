"""Names in a scenario's BPMN expressions: each must be a variable the process can hold there.

A gateway condition, a script, a timer expression or a lane expression (`=unit`) that reads a
name the instance data cannot have at that point fails at run time, when a civil servant
completes a task. So this check follows the sequence flows from the start event: a name is known
at a node when some path reaching it sets it (permissive: one path suffices, loops are fine).
Names come from the start data (the rules' `then.data`, plus `violation_id` and `rule_window`
from the pipeline), user task form fields, script assignments, what a message event takes (its
declared fields and its correlation field), DMN outputs, multi-instance variables; functions and
builtins are always known.
"""
from __future__ import annotations

import ast
import difflib
import textwrap
from collections.abc import Iterator, Mapping
from datetime import timezone
from types import SimpleNamespace

from lxml import etree

from engine.expressions import ExpressionError, check_expression, check_script
from engine.expressions.guards import SAFE_BUILTINS
from engine.processes import message_fields
from engine.processes.spiff import TIMER_KINDS, timer_value_problem
from engine.rules.format import RuleSet
from engine.scenarios.bpmn_checks import (
    FLOW_NODES,
    NS,
    SUBPROCESSES,
    TIMER_EVENTS,
    correlation_paths,
    department_tasks,
    lane_elements,
    link_name,
    node_kind,
)
from engine.scenarios.problems import Problem
from engine.worktime.functions import scenario_functions
from engine.xmlsafe import parse

# Set markers that no identifier can equal: ANYTHING, a step whose outputs cannot be known (a
# DMN table that is missing, a script the sandbox refuses); UNKNOWN_START, start data that cannot
# be known (the rules did not parse), so only names the process itself sets are checked.
ANYTHING = "*"
UNKNOWN_START = "?"
MARKERS = frozenset((ANYTHING, UNKNOWN_START))
CATCHES = ("intermediateCatchEvent", "boundaryEvent", "receiveTask")
SHOWN_KNOWN = 12  # known names listed when nothing is close


def _function_names() -> frozenset[str]:
    # Only the names are needed, so the functions are built on a stand-in for the calendar
    # (building reads its time zone; the functions are never called here).
    return frozenset(scenario_functions(SimpleNamespace(tz=timezone.utc), clock=None))


ALWAYS_KNOWN = frozenset(SAFE_BUILTINS) | _function_names()


# -- what the rules and DMN tables give ---------------------------------------------------------

def start_data(ruleset: RuleSet | None) -> frozenset[str] | None:
    """The names an instance may start with: every rule's `then.data` keys and what the pipeline
    adds (see engine/pipeline.py `_on_match`); None when the rules could not be read."""
    if ruleset is None:
        return None
    names: set[str] = set()
    for rule in ruleset.rules:
        names |= set(rule.then.data)
        if rule.then.open:
            names.add("violation_id")
        if rule.temporal is not None:
            names.add("rule_window")
    return frozenset(names)


def decision_outputs(files: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """DMN decision id → the variables its table sets, from the folder's .dmn files."""
    out: dict[str, frozenset[str]] = {}
    for name, text in files.items():
        if not name.endswith(".dmn"):
            continue
        try:
            root = parse(text)
        except etree.XMLSyntaxError:
            continue  # reported when the spec is parsed; its decisions stay unknown
        for decision in root.iter("{*}decision"):
            # As SpiffWorkflow's DMN engine: the output's name (else label), `a.b` sets `a`.
            keys = {(o.get("name") or o.get("label") or "").split(".")[0]
                    for o in decision.iter("{*}output")}
            out[decision.get("id")] = frozenset(k for k in keys if k)
    return out


# -- names read and written by Python text ------------------------------------------------------

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of `scope` outside its nested scopes (those are yielded, not entered), in
    source order so that problems come in reading order."""
    todo = list(ast.iter_child_nodes(scope))[::-1]
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, _SCOPES):
            todo.extend(list(ast.iter_child_nodes(node))[::-1])


def bound_names(scope: ast.AST) -> set[str]:
    """The names `scope` binds itself: assignment targets, loop variables, arguments."""
    names: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = scope.args
        names |= {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                  args.vararg, args.kwarg) if a is not None}
    for node in _own_nodes(scope):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
    return names


def free_names(tree: ast.AST) -> Iterator[ast.Name]:
    """The names `tree` reads and does not bind itself (comprehension variables, lambda
    arguments, a script's own assignments are bound)."""
    # `x := …` binds in the enclosing scope even inside a comprehension: bound everywhere.
    walrus = {n.target.id for n in ast.walk(tree) if isinstance(n, ast.NamedExpr)}
    yield from _free(tree, frozenset(walrus))


def _free(scope: ast.AST, outer: frozenset[str]) -> Iterator[ast.Name]:
    bound = outer | bound_names(scope)
    for node in _own_nodes(scope):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            yield node
        elif isinstance(node, _SCOPES):
            yield from _free(node, bound)


def parse_text(text: str, mode: str) -> tuple[ast.AST, int] | None:
    """(tree, line offset of its first line) of an expression ("eval") or script ("exec"), as
    the sandbox reads it; None when the sandbox refuses it (the BPMN checks report that)."""
    try:
        (check_expression if mode == "eval" else check_script)(text)
    except ExpressionError:
        return None
    if mode == "eval":
        body = text.lstrip()
        return ast.parse(body.rstrip(), mode="eval"), text[:len(text) - len(body)].count("\n")
    return ast.parse(textwrap.dedent(text), mode="exec"), 0


# -- the check ----------------------------------------------------------------------------------

class NameChecker:
    """Which names each flow node of a BPMN document may read, and the expressions that read
    others."""

    def __init__(self, filename: str, root, start: frozenset[str] | None,
                 decisions: Mapping[str, frozenset[str]]):
        self.filename = filename
        self.root = root
        self.decisions = decisions
        self.correlations = correlation_paths(root)  # message id → the fields it correlates on
        self.processes = {p.get("id"): p for p in root.iterfind("bpmn:process", NS)}
        self.start = {UNKNOWN_START} if start is None else set(start)
        self.known_in: dict[str, set[str]] = {}  # node id → names it may read when it starts
        self._all: dict[str, frozenset[str]] = {}
        self._calling: set[str] = set()  # processes whose names are being collected
        self.setters: dict[str, list[str]] = {}  # name → ids of the nodes that set it
        for node in root.iter():
            if node_kind(node) in FLOW_NODES and node.get("id"):
                for name in self._sets(node) - MARKERS:
                    self.setters.setdefault(name, []).append(node.get("id"))
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()

    # -- what a node sets -------------------------------------------------------------------

    def _sets(self, node) -> set[str]:
        """The names a node adds to the instance data, itself (not its inner nodes)."""
        kind = node_kind(node)
        names = self._loop_names(node)
        if kind == "userTask":
            names |= {f.get("id") for f in node.iterfind(".//camunda:formField", NS)
                      if f.get("id")}
        elif kind == "scriptTask":
            script = node.find("bpmn:script", NS)
            parsed = parse_text(script.text or "", "exec") if script is not None else None
            # A refused script is reported already; guessing its outputs would only add noise.
            names |= {ANYTHING} if parsed is None else bound_names(parsed[0]) - {"_"}
        elif kind == "businessRuleTask":
            ref = node.get(f"{{{NS['camunda']}}}decisionRef")
            names |= set(self.decisions.get(ref, {ANYTHING}))
        elif kind == "callActivity":
            names |= self._called_sets(node.get("calledElement"))
        if kind in CATCHES:
            names |= self._payload(node)
        return names

    def _loop_names(self, node) -> set[str]:
        """A multi-instance activity's element variable and collection (Camunda attributes)."""
        loop = node.find("bpmn:multiInstanceLoopCharacteristics", NS)
        if loop is None:
            return set()
        return {loop.get(f"{{{NS['camunda']}}}{attr}") for attr in ("elementVariable",
                                                                    "collection")} - {None}

    def _payload(self, node) -> set[str]:
        """What a catching node takes from its message: the names its output mapping declares
        and the field it correlates on (engine/processes/message_fields.py)."""
        refs = [d.get("messageRef") for d in node.iterfind("bpmn:messageEventDefinition", NS)]
        if node.get("messageRef"):
            refs.append(node.get("messageRef"))
        if not refs:
            return set()
        try:
            names = set(message_fields.outputs_of(node))
        except message_fields.MappingProblem:
            names = set()  # reported by the BPMN checks
        for ref in refs:
            names |= set(self.correlations.get(ref, ()))
        return names

    def _called_sets(self, process_id: str | None) -> set[str]:
        """What a called process sets (nothing more while it is being collected: a cycle)."""
        process = self.processes.get(process_id)
        if process is None:
            return {ANYTHING}  # not in this file: its outputs cannot be known
        if process_id in self._calling:
            return set()
        self._calling.add(process_id)
        try:
            return set(self._children_sets(process))
        finally:
            self._calling.discard(process_id)

    def _all_sets(self, node) -> frozenset[str]:
        """Everything a node sets, with the nodes inside it (a subprocess, a called process)."""
        key = node.get("id")
        if key in self._all:
            return self._all[key]
        names = frozenset(self._sets(node) | self._children_sets(node))
        if key and not self._calling:  # within a call cycle the result is partial
            self._all[key] = names
        return names

    def _children_sets(self, container) -> frozenset[str]:
        out: set[str] = set()
        for child in container:
            if node_kind(child) in FLOW_NODES:
                out |= self._all_sets(child)
        return frozenset(out)

    # -- what a node may read ---------------------------------------------------------------

    def flow(self) -> None:
        """Compute `known_in` for every node of every process."""
        called = {n.get("calledElement") for n in self.root.iter()
                  if node_kind(n) == "callActivity"}
        everything = set(self.setters)
        for pid, process in self.processes.items():
            # A called process starts with its caller's data: any name the document sets.
            self._propagate(process, self.start | (everything if pid in called else set()))

    def _propagate(self, container, entry: set[str]) -> None:
        """Names known at each node of `container`, entered with `entry`; then inner nodes."""
        nodes = {n.get("id"): n for n in container if node_kind(n) in FLOW_NODES and n.get("id")}
        edges = self._edges(container, nodes)
        targets = {t for out in edges.values() for t, _ in out}
        # Nodes no flow enters (event subprocesses, compensation handlers, ad-hoc subprocess
        # content) may run at any moment: give them every name the container can hold.
        floating = entry | self._children_sets(container)
        seeds = [(i, set(entry) if node_kind(n) == "startEvent" else floating)
                 for i, n in nodes.items() if i not in targets or node_kind(n) == "startEvent"]
        known: dict[str, set[str]] = {}
        self._spread(seeds, nodes, edges, known)
        self._spread([(i, floating) for i in nodes if i not in known], nodes, edges, known)
        self.known_in.update(known)
        for i, node in nodes.items():
            if node_kind(node) in SUBPROCESSES:
                self._propagate(node, known[i] | self._loop_names(node))

    def _edges(self, container, nodes: dict) -> dict[str, list[tuple[str, bool]]]:
        """source → [(target, True if the target gets what the source holds after running)].

        A boundary event gets what its activity started with; a link catch, what its throw has.
        """
        edges: dict[str, list[tuple[str, bool]]] = {}
        for flow in container.iterfind("bpmn:sequenceFlow", NS):
            source, target = flow.get("sourceRef"), flow.get("targetRef")
            if source in nodes and target in nodes:
                edges.setdefault(source, []).append((target, True))
        catches: dict[str, list[str]] = {}
        for i, node in nodes.items():
            if node_kind(node) == "intermediateCatchEvent" and link_name(node) is not None:
                catches.setdefault(link_name(node), []).append(i)
        for i, node in nodes.items():
            if node_kind(node) == "boundaryEvent" and node.get("attachedToRef") in nodes:
                edges.setdefault(node.get("attachedToRef"), []).append((i, False))
            if node_kind(node) == "intermediateThrowEvent" and link_name(node) is not None:
                edges.setdefault(i, []).extend((c, True) for c in catches.get(link_name(node), []))
        return edges

    def _spread(self, todo: list, nodes: dict, edges: dict, known: dict) -> None:
        """Push names along the edges until nothing grows (sets only grow: loops end)."""
        while todo:
            i, names = todo.pop()
            if i in known and names <= known[i]:
                continue
            have = known.setdefault(i, set())
            have |= names
            after = have | self._all_sets(nodes[i])
            todo += [(t, after if ran else set(have)) for t, ran in edges.get(i, ())]

    # -- the expressions --------------------------------------------------------------------

    def check(self) -> list[Problem]:
        """Flow the names, then check every condition, script, timer and lane expression."""
        self.flow()
        for process in self.processes.values():
            self._conditions(process)
            self._scripts(process)
            self._timers(process)
            self._lanes(process)
        return sorted(self.problems, key=lambda p: p.line or 0)

    def _at(self, node_id: str | None) -> set[str]:
        # A node the flow did not reach (a broken reference, reported already): anything goes.
        return self.known_in.get(node_id, {ANYTHING})

    def _conditions(self, process) -> None:
        nodes = {n.get("id"): n for n in process.iter() if node_kind(n) in FLOW_NODES}
        for flow in process.iter(f"{{{NS['bpmn']}}}sequenceFlow"):
            cond = flow.find("bpmn:conditionExpression", NS)
            source = nodes.get(flow.get("sourceRef"))
            if cond is None or source is None:
                continue
            # Evaluated on what the source holds once it ran (a task's answers included).
            known = self._at(source.get("id")) | self._all_sets(source)
            text = cond.text or ""
            self._names(cond.sourceline, flow, f"condition {text.strip()!r}", text, "eval",
                        known)

    def _scripts(self, process) -> None:
        for task in process.iter(f"{{{NS['bpmn']}}}scriptTask"):
            script = task.find("bpmn:script", NS)
            if script is not None:
                known = self._at(task.get("id")) | self._loop_names(task)
                self._names(script.sourceline, task, "script", script.text or "", "exec",
                            known)

    def _timers(self, process) -> None:
        for definition in process.iter(f"{{{NS['bpmn']}}}timerEventDefinition"):
            event = definition.getparent()
            if node_kind(event) not in TIMER_EVENTS:
                continue  # reported by the BPMN checks
            for expr in definition:
                kind, text = node_kind(expr), (expr.text or "").strip()
                # An unquoted ISO value (PT1H) is reported as such by the BPMN checks.
                if kind in TIMER_KINDS and timer_value_problem(kind, text) is not None:
                    self._names(expr.sourceline, event, f"timer {kind} {text!r}",
                                expr.text or "", "eval", self._at(event.get("id")))

    def _lanes(self, process) -> None:
        # The lane of each inbox task is evaluated on the data the task starts with.
        for task, lane in department_tasks(process, lane_elements(self.root)):
            name = (lane.get("name") or "").strip() if lane is not None else ""
            if name.startswith("="):
                known = self._at(task.get("id")) | self._loop_names(task)
                self._names(lane.sourceline, lane, f"lane expression {name!r} (at task "
                            f"{task.get('id')})", name[1:], "eval", known)

    def _names(self, first_line: int, owner, what: str, text: str, mode: str,
               known: set[str]) -> None:
        """Report each name `text` (starting on `first_line`) reads that is not known, at the
        line the name is on."""
        parsed = parse_text(text, mode)
        if parsed is None:
            return
        tree, offset = parsed
        own = bound_names(tree)  # a script's own variables: candidates for "did you mean"
        for node in free_names(tree):
            if self._known(node.id, known) or (owner.get("id"), node.id) in self._seen:
                continue
            self._seen.add((owner.get("id"), node.id))
            line = first_line + offset + node.lineno - 1
            self.problems.append(Problem(self.filename,
                                         self._message(what, node.id, known | own),
                                         line, owner.get("id") or ""))

    def _known(self, name: str, known: set[str]) -> bool:
        if name in known or name in ALWAYS_KNOWN or ANYTHING in known:
            return True
        # Unknown start data may hold any name, except those the process only sets itself.
        return UNKNOWN_START in known and name not in self.setters

    def _message(self, what: str, name: str, known: set[str]) -> str:
        data = sorted(known - MARKERS)
        close = difflib.get_close_matches(name, data + sorted(ALWAYS_KNOWN), n=1)
        vi = f"Tên `{name}` chưa có trong dữ liệu quy trình tại bước này"
        en = f"{what} reads `{name}`, which the process does not have at this point"
        setters = self.setters.get(name)
        if setters:
            vi += f"; chỉ {', '.join(setters)} đặt tên này, ở sau hoặc trên nhánh khác"
            en += f"; only {', '.join(setters)} set{'s' if len(setters) == 1 else ''} it, " \
                  "later or on another path"
        if close:
            vi += f"; có phải `{close[0]}`?"
            en += f"; did you mean `{close[0]}`?"
        elif data and UNKNOWN_START not in known:
            shown = ", ".join(data[:SHOWN_KNOWN]) + (", …" if len(data) > SHOWN_KNOWN else "")
            en += f"; known here: {shown}"
        return f"{vi} / {en}"


def check_names(filename: str, bpmn: bytes, start: frozenset[str] | None,
                decisions: Mapping[str, frozenset[str]] | None = None) -> list[Problem]:
    """Problems of the names a BPMN file's expressions read (none when it is not XML)."""
    try:
        root = parse(bpmn)
    except etree.XMLSyntaxError:
        return []  # reported by the BPMN checks
    return NameChecker(filename, root, start, decisions or {}).check()
