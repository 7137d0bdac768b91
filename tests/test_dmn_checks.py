"""DMN tables from other modellers (issue 22): what the workflow engine loads with Python's words
and no line (a decision without a table, a table without an output, an id twice, a policy it
would run as another) or runs wrongly (FEEL cells) is refused first, with file:line, the decision
and the fix; a business rule task naming a missing decision is refused on its own line."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engine.events.vocabulary import Vocabulary
from engine.scenarios import service
from engine.scenarios.problems import ScenarioInvalid
from tests.test_modeller_refusals import INTERNALS

VOCABULARY = Vocabulary.load()
HOTLINE = Path(__file__).parent.parent / "scenarios" / "hotline-ticket"
DMN = (HOTLINE / "routing.dmn").read_text(encoding="utf-8")
TABLE = re.compile(r"<decisionTable.*</decisionTable>", re.S)


def _line(text: str, fragment: str) -> int:
    return text[:text.index(fragment)].count("\n") + 1


def _problems(tmp_path, dmn: str) -> list:
    folder = tmp_path / "hotline-ticket"
    shutil.copytree(HOTLINE, folder)
    (folder / "routing.dmn").write_text(dmn, encoding="utf-8")
    departments = {"ioc", "so-nong-nghiep-moi-truong", "so-xay-dung", "cong-an", "so-y-te",
                   "trung-tam-phvhcc", "so-van-hoa-the-thao-du-lich", "so-giao-duc-dao-tao"}
    try:
        service.check_folder(folder, VOCABULARY, departments)
    except ScenarioInvalid as exc:
        return [p for p in exc.problems if "lane" not in p.message]
    return []


def test_the_shipped_table_passes_in_every_dmn_version(tmp_path):
    """DMN 1.1 to 1.5 namespaces, as other modellers write them, all load."""
    for i, uri in enumerate(("http://www.omg.org/spec/DMN/20151101/dmn.xsd",
                             "http://www.omg.org/spec/DMN/20180521/MODEL/",
                             "https://www.omg.org/spec/DMN/20230324/MODEL/")):
        dmn = DMN.replace("https://www.omg.org/spec/DMN/20191111/MODEL/", uri)
        assert _problems(tmp_path / str(i), dmn) == []


CASES = {
    "a decision without a table": (
        TABLE.sub("", DMN), '<decision id="ticket_routing"', "ticket_routing",
        "is empty: the engine runs decision tables only; draw its logic as a decision table"),
    "a literal expression": (
        TABLE.sub("<literalExpression><text>1</text></literalExpression>", DMN),
        '<decision id="ticket_routing"', "ticket_routing",
        "is a literalExpression: the engine runs decision tables only"),
    "a table without an output": (
        re.sub(r'<output id="out_department"[^>]*/>', "", DMN), '<decisionTable',
        "routing_table", "has no output column: add one, named after the process variable"),
    "an output without a name": (
        DMN.replace('name="department" ', "").replace('label="Đơn vị / Unit" ', ""),
        '<output id="out_department"', "out_department", "an output column of"),
    "a decision id twice": (
        DMN.replace("</definitions>", '<decision id="ticket_routing"><decisionTable id="t2">'
                    '<output id="o2" name="x"/></decisionTable></decision>\n</definitions>'),
        '<decision id="ticket_routing"><decisionTable id="t2">', "ticket_routing",
        "is already used at"),
    "a hit policy the engine would run as FIRST": (
        DMN.replace('hitPolicy="FIRST"', 'hitPolicy="RULE ORDER"'), "<decisionTable",
        "routing_table", "has the hit policy RULE ORDER, which the engine does not run"),
    "COLLECT with an aggregation": (
        DMN.replace('hitPolicy="FIRST"', 'hitPolicy="COLLECT" aggregation="SUM"'),
        "<decisionTable", "routing_table", "has the hit policy COLLECT SUM"),
    "a part the engine does not read": (
        DMN.replace('<decisionTable id="routing_table" hitPolicy="FIRST">',
                    '<decisionTable id="routing_table" hitPolicy="FIRST">\n'
                    '      <annotation name="Ghi chú"/>'), '<annotation name', "",
        "holds a <annotation>, which the engine does not read"),
    "a FEEL range": (
        DMN.replace('<text>"traffic"</text>', "<text>[1..5]</text>"), "<text>[1..5]</text>",
        "r_traffic_in", "the rule input '[1..5]' of"),
}


@pytest.mark.parametrize("dmn, fragment, element, says", CASES.values(), ids=CASES.keys())
def test_each_dmn_refusal_names_line_decision_and_fix(tmp_path, dmn, fragment, element, says):
    problems = _problems(tmp_path, dmn)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file.endswith("routing.dmn")
    assert problem.line == _line(dmn, fragment), problem
    assert problem.path == element
    assert says in problem.message
    vi, _, en = problem.message.partition(" / ")
    assert vi and en and not INTERNALS.search(problem.message)


def test_operators_and_question_marks_in_cells_are_what_the_engine_runs(tmp_path):
    """`< 5`, `"a", "b"`-free tests, `? in (...)` and `-` are cells the engine reads."""
    dmn = DMN.replace('<text>"traffic"</text>', '<text>? in ("traffic", "roads")</text>') \
        .replace('<text>"security"</text>', "<text>-</text>") \
        .replace('<text>"health"</text>', '<text>!= "x"</text>')
    assert _problems(tmp_path, dmn) == []


def test_a_business_rule_task_naming_a_missing_decision_is_refused_on_its_line(tmp_path):
    dmn = DMN.replace('<decision id="ticket_routing"', '<decision id="routing_v2"')
    problems = _problems(tmp_path, dmn)
    bpmn = (HOTLINE / "process.bpmn").read_text(encoding="utf-8")
    assert [(p.file.rsplit("/", 1)[-1], p.line, p.path) for p in problems] == [
        ("process.bpmn", _line(bpmn, '<bpmn:businessRuleTask id="route"'), "route")]
    assert "names the decision 'ticket_routing', which no .dmn file of the scenario has " \
           "(decisions: routing_v2)" in problems[0].message


def test_a_file_that_is_not_dmn_says_so(tmp_path):
    problems = _problems(tmp_path, '<?xml version="1.0"?>\n<table/>\n')
    assert [p.line for p in problems if p.file.endswith("routing.dmn")] == [2]
    assert "the file is not DMN" in problems[0].message
    problems = _problems(tmp_path / "b", "<definitions>\n<decision>\n")
    assert "the file is not well-formed XML" in problems[0].message and problems[0].line
