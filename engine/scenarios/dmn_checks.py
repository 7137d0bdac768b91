"""Static checks of a scenario's DMN tables and of the decisions its BPMN names, each problem
with its file, line and element, in Vietnamese and English, with what to do.

The workflow engine loads a decision without a table, a table without an output column or a
decision id given twice with Python's words (IndexError, "'list' object has no attribute 'tag'")
and no line; these checks say it first, in a modeller's words (issue 22).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from lxml import etree

from engine.expressions import ExpressionError, check_expression
from engine.scenarios.bpmn_checks import NS, label_of, node_kind, not_xml
from engine.scenarios.problems import Problem
from engine.xmlsafe import parse

# DMN 1.1 to 1.5, as Camunda, Trisotech, Signavio and others write them.
DMN_NAMESPACES = ("http://www.omg.org/spec/DMN/20151101/dmn.xsd",
                  "http://www.omg.org/spec/DMN/20180521/MODEL/",
                  "https://www.omg.org/spec/DMN/20191111/MODEL/",
                  "https://www.omg.org/spec/DMN/20211108/MODEL/",
                  "https://www.omg.org/spec/DMN/20230324/MODEL/")
# What a decision may hold instead of the table the engine runs.
# The workflow engine's DMN runs the first matching rule (UNIQUE, FIRST, ANY give it) or all of
# them as lists (COLLECT, without aggregation); it would run any other policy as FIRST.
HIT_POLICIES = ("UNIQUE", "FIRST", "ANY", "COLLECT")
TABLE_PARTS = ("input", "output", "rule")
# The engine's `?` in an entry stands for the input's value (outside quotes).
_QUESTION = re.compile(r"\?(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")
_OTHER_LOGIC = ("literalExpression", "context", "invocation", "relation", "list",
                "functionDefinition", "conditional", "filter", "iterator")


def _problem(fname: str, el, vi: str, en: str) -> Problem:
    return Problem(fname, f"{vi} / {en}", el.sourceline, el.get("id") or "")


def check_dmn(files: Mapping[str, str], fname: Callable[[str], str]
              ) -> tuple[list[Problem], dict[str, tuple[str, int | None]]]:
    """Check every .dmn file; return (problems, decision id → (file, line))."""
    problems: list[Problem] = []
    decisions: dict[str, tuple[str, int | None]] = {}
    for name in sorted(n for n in files if n.endswith(".dmn")):
        try:
            root = parse(files[name])
        except etree.XMLSyntaxError as exc:
            problems.append(not_xml(fname(name), exc))
            continue
        if etree.QName(root).namespace not in DMN_NAMESPACES or node_kind(root) != "definitions":
            problems.append(_problem(fname(name), root, "tệp không phải bảng quyết định DMN",
                                     f"the file is not DMN (its root is {etree.QName(root).text}): "
                                     "export the decision from the modeller as DMN 1.1–1.5"))
            continue
        for decision in root.iterfind("{*}decision"):
            problems += _decision(fname(name), decision, decisions)
    return problems, decisions


def _decision(fname: str, decision, decisions: dict) -> list[Problem]:
    ident, label = decision.get("id") or "", label_of(decision)
    if ident in decisions:
        where = decisions[ident]
        return [_problem(fname, decision, f"mã bảng quyết định {ident!r} đã dùng ở "
                                          f"{where[0]}:{where[1]}",
                         f"the decision id {ident!r} is already used at {where[0]}:{where[1]}: "
                         "rename one of them")]
    decisions[ident] = (fname, decision.sourceline)
    tables = decision.findall("{*}decisionTable")
    if not tables:
        other = [node_kind(c) for c in decision if node_kind(c) in _OTHER_LOGIC]
        what = f"is a {other[0]}" if other else "is empty"
        return [_problem(fname, decision, f"bảng quyết định {label} không có bảng",
                         f"the decision {label} {what}: the engine runs decision tables only; "
                         "draw its logic as a decision table")]
    out = []
    for table in tables:
        out += _table(fname, table, label)
    return out


def _table(fname: str, table, label: str) -> list[Problem]:
    out = []
    policy = (table.get("hitPolicy") or "UNIQUE").upper()
    if policy not in HIT_POLICIES or table.get("aggregation"):
        given = policy + (f" {table.get('aggregation')}" if table.get("aggregation") else "")
        out.append(_problem(fname, table, f"bảng của {label} dùng chính sách {given} mà bộ máy "
                                          "không chạy",
                            f"the decision table of {label} has the hit policy {given}, which "
                            "the engine does not run: use FIRST (the first matching rule) or "
                            "COLLECT (every match, as lists, no aggregation)"))
    for part in table:
        if node_kind(part) and node_kind(part) not in TABLE_PARTS:
            out.append(_problem(fname, part, f"bảng của {label} có phần <{node_kind(part)}> "
                                             "mà bộ máy không đọc",
                                f"the decision table of {label} holds a <{node_kind(part)}>, "
                                "which the engine does not read: remove it (a rule's note "
                                "can go in the rule's description)"))
    out += _entries(fname, table, label)
    outputs = table.findall("{*}output")
    if not outputs:
        out.append(_problem(fname, table, f"bảng của {label} không có cột kết quả",
                            f"the decision table of {label} has no output column: add one, "
                            "named after the process variable it sets"))
    for column in outputs:
        if not (column.get("name") or column.get("label") or "").strip():
            out.append(_problem(fname, column, f"cột kết quả của {label} chưa có tên",
                                f"an output column of {label} has no name: name it after the "
                                "process variable it sets"))
    return out


def _entries(fname: str, table, label: str) -> list[Problem]:
    """Table cells are the restricted Python of docs/scenarios.md, as the engine runs them."""
    out = []
    cells = [(e, "input", False) for e in table.iterfind("{*}input/{*}inputExpression")] + \
        [(e, "rule input", True) for e in table.iterfind("{*}rule/{*}inputEntry")] + \
        [(e, "rule output", False) for e in table.iterfind("{*}rule/{*}outputEntry")]
    for cell, what, test in cells:
        text = (cell.findtext("{*}text") or "").strip()
        if not text or (test and text == "-"):
            continue
        problem = _cell_problem(_QUESTION.sub("dmninput", text) if test else text, test)
        if problem:
            out.append(_problem(fname, cell, f"ô {what} {text!r} của {label} không đọc được",
                                f"the {what} {text!r} of {label} cannot be read: {problem} "
                                "(cells are the restricted Python of docs/scenarios.md, not "
                                'FEEL: e.g. "environment", < 5, in ("a", "b"))'))
    return out


def _cell_problem(text: str, test: bool) -> str | None:
    """None when the engine can run the cell: an expression, or for a test an operator and
    its operand (`< 5` is read as `value < 5`)."""
    try:
        check_expression(text)
        return None
    except ExpressionError as exc:
        if not test:
            return getattr(exc, "message", str(exc))
        first = exc
    try:
        check_expression(f"dmninput {text}")
        return None
    except ExpressionError:
        return getattr(first, "message", str(first))


def check_decision_refs(fname: str, bpmn: str, decisions: Mapping[str, tuple]) -> list[Problem]:
    """Each business rule task must name a decision of the scenario's .dmn files."""
    try:
        root = parse(bpmn)
    except etree.XMLSyntaxError:
        return []  # reported by the BPMN checks
    out = []
    known = ", ".join(sorted(decisions)) or "none: add a .dmn file"
    for task in root.iter(f"{{{NS['bpmn']}}}businessRuleTask"):
        ref = task.get(f"{{{NS['camunda']}}}decisionRef")
        if ref and ref not in decisions:
            out.append(Problem(fname, f"{label_of(task)} dùng bảng quyết định {ref!r} không có "
                                      f"trong kịch bản / {label_of(task)} names the decision "
                                      f"{ref!r}, which no .dmn file of the scenario has "
                                      f"(decisions: {known}): choose one of them",
                               task.sourceline, task.get("id") or ""))
    return out
