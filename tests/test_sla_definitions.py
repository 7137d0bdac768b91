"""The scenario's SLA file (sla.yaml): a valid file, its defaults, and every refusal with its line.

`parse_slas(text, filename, elements, departments)` checks names against the process's elements
(id → BPMN tag) and the organisation's departments when they are given; the shipped scenario
files must parse on their own (elements=None).
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.scenarios.problems import ScenarioInvalid
from engine.sla.definitions import Level, SlaDefinition, parse_slas
from engine.worktime.span import Span

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
ELEMENTS = {"answer": "userTask", "review": "userTask", "wait": "intermediateCatchEvent",
            "start": "startEvent", "done": "endEvent"}
DEPARTMENTS = {"ioc", "van-phong-ubnd"}
USER_TASKS = "answer, review"

GOOD = """\
slas:
  - key: apology
    name: {vi: "Gửi phiếu xin lỗi", en: Apology}
    measures: task
    task: answer
    until: claimed
    target: {working_days: 1}
    pause_while: [wait]
    levels:
      - {at: 50%, notify: assignee}
      - {at: 100%, escalate: head}
      - {at: 200%, escalate: van-phong-ubnd}
      - {at: 300%, reassign: ioc}
  - key: resolve
    name: Giải quyết phản ánh
    measures: instance
    start_at: start
    stop_at: done
    pause_while: wait
    target: 4h
    levels:
      - {at: 80%, notify: department}
      - {at: " 100 % ", escalate: ioc}
      - {at: 150.5%, notify: head}
"""


def parse(text: str, elements=ELEMENTS, departments=DEPARTMENTS):
    return parse_slas(textwrap.dedent(text), "sla.yaml", elements, departments)


def problems_of(text: str, elements=ELEMENTS, departments=DEPARTMENTS) \
        -> list[tuple[int | None, str, str]]:
    with pytest.raises(ScenarioInvalid) as info:
        parse(text, elements, departments)
    assert all(p.file == "sla.yaml" for p in info.value.problems)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def one_problem(text: str, elements=ELEMENTS, departments=DEPARTMENTS) \
        -> tuple[int | None, str, str]:
    found = problems_of(text, elements, departments)
    assert len(found) == 1, found
    return found[0]


# --- a valid file and the defaults --------------------------------------------------------------


def test_a_valid_file_with_every_key():
    assert parse(GOOD) == (
        SlaDefinition(
            key="apology", name={"vi": "Gửi phiếu xin lỗi", "en": "Apology"}, measures="task",
            target=Span(1.0, "working_days"),
            levels=(Level(50.0, "notify", "assignee"), Level(100.0, "escalate", "head"),
                    Level(200.0, "escalate", "van-phong-ubnd"), Level(300.0, "reassign", "ioc")),
            task="answer", until="claimed", pause_while=frozenset({"wait"})),
        SlaDefinition(
            key="resolve", name={"vi": "Giải quyết phản ánh"}, measures="instance",
            target=Span(14400.0),
            levels=(Level(80.0, "notify", "department"), Level(100.0, "escalate", "ioc"),
                    Level(150.5, "notify", "head")),
            start_at="start", stop_at="done", pause_while=frozenset({"wait"})),
    )


def test_the_defaults():
    [sla] = parse("""\
        slas:
          - key: minimal
            measures: instance
            target: 30m
            levels: [{at: 100%, escalate: head}]
        """)
    assert sla == SlaDefinition(key="minimal", name={}, measures="instance", target=Span(1800.0),
                                levels=(Level(100.0, "escalate", "head"),))
    assert (sla.task, sla.until, sla.start_at, sla.stop_at, sla.pause_while) == (
        None, "completed", None, None, frozenset())
    [task_sla] = parse("""\
        slas:
          - key: minimal
            measures: task
            task: answer
            target: {working_hours: 4}
            levels: [{at: 100%, escalate: head}]
        """)
    assert (task_sla.task, task_sla.until) == ("answer", "completed")


def test_an_empty_list_of_slas_is_allowed():
    assert parse("slas: []\n") == ()


def test_a_level_breaches_from_100_percent():
    assert [lvl.breach for lvl in parse(GOOD)[0].levels] == [False, True, True, True]


def test_without_elements_and_departments_names_are_not_checked():
    [sla] = parse("""\
        slas:
          - key: a
            measures: task
            task: anything
            pause_while: [whatever]
            target: 1h
            levels: [{at: 100%, escalate: so-khac}, {at: 200%, reassign: so-khac}]
        """, elements=None, departments=None)
    assert sla.task == "anything" and sla.pause_while == {"whatever"}
    [instance] = parse("""\
        slas:
          - key: b
            measures: instance
            start_at: anything
            stop_at: else
            target: 1h
            levels: [{at: 100%, escalate: head}]
        """, elements=None, departments=None)
    assert (instance.start_at, instance.stop_at) == ("anything", "else")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*/sla.yaml")),
                         ids=lambda p: p.parent.name)
def test_the_shipped_sla_files_parse(path: Path):
    slas = parse_slas(path.read_text(encoding="utf-8"), str(path), elements=None)
    assert slas and all(sla.levels for sla in slas)
    assert len({sla.key for sla in slas}) == len(slas)


def test_there_are_shipped_sla_files():
    assert len(list(SCENARIOS.glob("*/sla.yaml"))) >= 1


# --- refusals, each with its line and path -------------------------------------------------------

TASK_SLA = """\
slas:
  - key: answer-sla
    measures: task
    task: answer
    target: 4h
    levels:
      - {at: 100%, escalate: head}
"""  # key on line 2, measures 3, task 4, target 5, levels 6, first level 7

INSTANCE_SLA = """\
slas:
  - key: resolve
    measures: instance
    target: 4h
    levels:
      - {at: 100%, escalate: head}
"""  # key on line 2, measures 3, target 4, levels 5, first level 6


def test_the_valid_templates_parse():
    assert parse(TASK_SLA)[0].task == "answer"
    assert parse(INSTANCE_SLA)[0].measures == "instance"


def test_unknown_keys_in_an_sla_and_at_the_top():
    assert problems_of(TASK_SLA + "    colour: red\nextra: 1\n") == [
        (8, "slas[0].colour", "unknown key 'colour'; allowed: key, name, measures, task, until, "
                              "target, start_at, stop_at, pause_while, levels"),
        (9, "extra", "unknown key 'extra'; the file has only `slas:`"),
    ]


@pytest.mark.parametrize("missing", ["key", "measures", "target", "levels"])
def test_an_sla_needs_key_measures_target_and_levels(missing):
    lines = {"key": "key: a", "measures": "measures: instance", "target": "target: 1h",
             "levels": "levels: [{at: 100%, escalate: head}]"}
    body = [line for name, line in lines.items() if name != missing]
    text = "slas:\n  - " + "\n    ".join(body) + "\n"
    assert (2, "slas[0]", f"an SLA needs `{missing}`") in problems_of(text)


@pytest.mark.parametrize("text, problem", [
    (TASK_SLA.replace("task: answer", "task: wait"),
     (4, "slas[0].task", f"`task` names a user task of the process ({USER_TASKS}), not 'wait'")),
    (TASK_SLA.replace("task: answer", "task: nope"),
     (4, "slas[0].task", f"`task` names a user task of the process ({USER_TASKS}), not 'nope'")),
    (TASK_SLA.replace("    task: answer\n", ""),
     (2, "slas[0]", f"`measures: task` needs `task:`, the user task measured (one of: "
                    f"{USER_TASKS})")),
    (INSTANCE_SLA + "    task: answer\n",
     (7, "slas[0].task", "`task` is only for `measures: task`")),
    (INSTANCE_SLA + "    until: claimed\n",
     (7, "slas[0].until", "`until` (completed, claimed) is only for `measures: task`")),
    (TASK_SLA + "    start_at: start\n",
     (8, "slas[0].start_at", "`start_at` is only for `measures: instance`")),
    (TASK_SLA + "    stop_at: done\n",
     (8, "slas[0].stop_at", "`stop_at` is only for `measures: instance`")),
    (INSTANCE_SLA + "    start_at: nope\n",
     (7, "slas[0].start_at", "'nope' is not an element of the process")),
    (INSTANCE_SLA + "    stop_at: nope\n",
     (7, "slas[0].stop_at", "'nope' is not an element of the process")),
    (INSTANCE_SLA + "    pause_while: [wait, nope]\n",
     (7, "slas[0].pause_while", "`pause_while` lists elements of the process where the clock "
                                "stops; unknown: nope")),
    (INSTANCE_SLA + "    pause_while: nope\n",
     (7, "slas[0].pause_while", "`pause_while` lists elements of the process where the clock "
                                "stops; unknown: nope")),
    (INSTANCE_SLA.replace("measures: instance", "measures: process"),
     (3, "slas[0].measures", "`measures` is one of task, instance")),
    (INSTANCE_SLA.replace("key: resolve", "key: Resolve_1"),
     (2, "slas[0].key", "an SLA key uses a-z, 0-9 and '-' (e.g. resolution)")),
    (INSTANCE_SLA + "    name: [a, b]\n",
     (7, "slas[0].name", "name is text or {vi: ..., en: ...}")),
])
def test_names_and_kinds_are_checked(text, problem):
    assert one_problem(text) == problem


def test_a_bad_until_on_a_task_sla_names_the_value():
    line, path, message = one_problem(TASK_SLA + "    until: never\n")
    assert (line, path) == (8, "slas[0].until")
    assert "'never'" in message and "only for" not in message


@pytest.mark.parametrize("target, message", [
    ('{working_hours: "=allotted_hours"}', "an SLA target is a fixed length of time"),
    ("10 minutes", "'10 minutes' is not a length of time (e.g. 30m, 2h, 1d, "
                   "{working_days: 5} or {working_hours: 4})"),
    ("0m", "a length of time must be more than zero"),
    ("{weeks: 1}", "unknown unit 'weeks'; use working_days, working_hours, days, hours, "
                   "minutes or seconds"),
])
def test_a_bad_target(target, message):
    text = INSTANCE_SLA.replace("target: 4h", f"target: {target}")
    assert one_problem(text) == (4, "slas[0].target", message)


LEVELS_AT = "slas[0].levels"


@pytest.mark.parametrize("levels, problem", [
    ("[{at: 100%, escalate: head}, {at: 50%, notify: assignee}]",
     (5, f"{LEVELS_AT}[1].at", "levels must go up: each `at` above the one before")),
    ("[{at: 100%, escalate: head}, {at: 100%, escalate: ioc}]",
     (5, f"{LEVELS_AT}[1].at", "levels must go up: each `at` above the one before")),
    ("[{at: fifty, escalate: head}]",
     (5, f"{LEVELS_AT}[0].at", "`at` is a percent of the target, like 75%, not 'fifty'")),
    ("[{at: 80, escalate: head}]",
     (5, f"{LEVELS_AT}[0].at", "`at` is a percent of the target, like 75%, not 80; write it with a % "
                                  "sign: 80%")),
    ("[{at: true, escalate: head}]",
     (5, f"{LEVELS_AT}[0].at", "`at` is a percent of the target, like 75%, not True")),
    ("[{at: 100%, escalate: head, notify: assignee}]",
     (5, f"{LEVELS_AT}[0]", "a level does exactly one of notify, escalate, reassign; this "
                            "one has escalate and notify")),
    ("[{at: 100%}]",
     (5, f"{LEVELS_AT}[0]", "a level does exactly one of notify, escalate, reassign; this one has nothing")),
    ("[{at: 100%, call: head}]",
     (5, f"{LEVELS_AT}[0]", "a level does exactly one of notify, escalate, reassign; this one has call")),
    ("[{escalate: head}]",
     (5, f"{LEVELS_AT}[0]", "a level is {at: <percent>, <notify|escalate|reassign>: <who>}")),
    ("[7]",
     (5, f"{LEVELS_AT}[0]", "a level is {at: <percent>, <notify|escalate|reassign>: <who>}")),
    ("[{at: 100%, escalate: so-xyz}]",
     (5, f"{LEVELS_AT}[0].escalate", "`escalate` goes to assignee, department, head or a "
                                     "department key, not 'so-xyz'")),
    ("[{at: 100%, notify: everyone}]",
     (5, f"{LEVELS_AT}[0].notify", "`notify` goes to assignee, department, head or a "
                                   "department key, not 'everyone'")),
    ("[{at: 100%, escalate: 5}]",
     (5, f"{LEVELS_AT}[0].escalate", "`escalate` goes to assignee, department, head or a "
                                     "department key, not 5")),
    ("[{at: 100%, reassign: head}]",
     (5, f"{LEVELS_AT}[0].reassign", "`reassign` goes to a department key, not 'head'")),
    ("[{at: 100%, reassign: so-xyz}]",
     (5, f"{LEVELS_AT}[0].reassign", "`reassign` goes to a department key, not 'so-xyz'")),
    ("[]", (5, LEVELS_AT, "`levels` is a list like - {at: 100%, escalate: head}")),
    ("{at: 100%, escalate: head}",
     (5, LEVELS_AT, "`levels` is a list like - {at: 100%, escalate: head}")),
])
def test_bad_levels(levels, problem):
    text = INSTANCE_SLA.replace("levels:\n      - {at: 100%, escalate: head}\n",
                                f"levels: {levels}\n")
    assert one_problem(text) == problem


def test_levels_on_their_own_lines_are_reported_on_their_line():
    text = INSTANCE_SLA + "      - {at: 50%, notify: assignee}\n      - {at: 200%, call: x}\n"
    assert problems_of(text) == [
        (7, f"{LEVELS_AT}[1].at", "levels must go up: each `at` above the one before"),
        (8, f"{LEVELS_AT}[2]", "a level does exactly one of notify, escalate, reassign; this one has call"),
    ]


def test_departments_are_checked_only_when_given():
    text = INSTANCE_SLA.replace("escalate: head", "escalate: so-xyz")
    assert parse(text, departments=None)[0].levels == (Level(100.0, "escalate", "so-xyz"),)
    assert one_problem(text, departments={"ioc"})[:2] == (6, f"{LEVELS_AT}[0].escalate")
    # `reassign` names a department, never a role, even without the list of departments.
    reassign = INSTANCE_SLA.replace("escalate: head", "reassign: assignee")
    assert one_problem(reassign, departments=None) == (
        6, f"{LEVELS_AT}[0].reassign", "`reassign` goes to a department key, not 'assignee'")


def test_duplicate_sla_keys():
    text = INSTANCE_SLA + "  - key: resolve\n    measures: instance\n    target: 8h\n" \
                          "    levels: [{at: 100%, escalate: ioc}]\n"
    assert one_problem(text) == (7, "slas[1].key", "SLA key 'resolve' is used twice")


def test_an_sla_that_is_not_a_mapping():
    assert one_problem("slas:\n  - resolve\n") == (
        2, "slas[0]", "an SLA is a mapping (key:, measures:, target:, levels:)")


@pytest.mark.parametrize("text", ["", "rules: []\n", "slas:\n", "slas: {key: a}\n", "- a\n"])
def test_a_file_without_a_list_of_slas(text):
    assert one_problem(text) == (1, "", "the file needs `slas:` with a list of SLAs")


def test_every_problem_of_a_file_is_reported_in_line_order():
    text = """\
slas:
  - key: a
    measures: task
    task: wait
    target: 1h
    levels: [{at: 100%, escalate: head}]
  - key: b
    measures: instance
    target: {working_hours: "=hours"}
    levels: [{at: 100%, escalate: head}, {at: 50%, notify: assignee}]
  - 5
  - key: c
    measures: instance
    pause_while: [nope]
    target: 1h
    levels: [{at: 100%, reassign: head}]
"""
    assert problems_of(text) == [
        (4, "slas[0].task", f"`task` names a user task of the process ({USER_TASKS}), not 'wait'"),
        (9, "slas[1].target", "an SLA target is a fixed length of time"),
        (10, "slas[1].levels[1].at", "levels must go up: each `at` above the one before"),
        (11, "slas[2]", "an SLA is a mapping (key:, measures:, target:, levels:)"),
        (14, "slas[3].pause_while", "`pause_while` lists elements of the process where the "
                                    "clock stops; unknown: nope"),
        (16, "slas[3].levels[0].reassign", "`reassign` goes to a department key, not 'head'"),
    ]


def test_one_sla_measures_several_tasks_alike():
    from engine.sla.definitions import parse_slas

    text = ("slas:\n  - key: acknowledge\n    measures: task\n    task: [answer, review]\n"
            "    until: claimed\n    target: 30m\n    levels: [{at: 100%, escalate: head}]\n")
    [sla] = parse_slas(text, "sla.yaml", {"answer": "userTask", "review": "userTask"}, set())
    assert sla.measures_task("answer") and sla.measures_task("review")
    assert not sla.measures_task("other")
    with pytest.raises(ScenarioInvalid) as refused:
        parse_slas(text.replace("[answer, review]", "[answer, wait]"), "sla.yaml",
                   {"answer": "userTask", "review": "userTask", "wait": "intermediateCatchEvent"},
                   set())
    [problem] = refused.value.problems
    assert problem.path == "slas[0].task" and "not 'wait'" in problem.message
