"""The inspectors' rule file: parsing, every problem with its line, templates, YAML lines."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.rules.dialect import regex_problem
from engine.rules.format import (
    Action,
    Condition,
    Correlation,
    FieldTest,
    parse_rules,
    parse_template,
    render,
)
from engine.rules.message import to_message
from engine.scenarios.problems import ScenarioInvalid
from engine.scenarios.yamlsource import format_path, load_yaml
from tests.rule_vocabulary import VOCABULARY, one_problem, problems_of, rule_with

GOOD = """\
rules:
  - key: second-supplement-request
    name: {vi: "Yêu cầu bổ sung hồ sơ lần thứ hai", en: "Second supplement request"}
    when:
      all:
        - event: dossier.supplement_requested
          as: first
        - event: dossier.supplement_requested
          as: second
          same: {dossier_id: first.dossier_id}
    then:
      open: violation
      severity: medium
      title:
        vi: "Hồ sơ {second.dossier_id} bị yêu cầu bổ sung lần thứ hai"
        en: "Dossier {second.dossier_id}: second supplement request"
      subject: "{second.dossier_id}"
      data:
        dossier_id: "{second.dossier_id}"
        unit: "{second.unit}"
        requests: ["{first.id}", "{second.id}"]
  - key: returned-without-reason
    description: Trả hồ sơ mà không nêu lý do
    when:
      event: dossier.returned
      where:
        reason: {empty: true}
        days_late: {gte: 1, lt: 30}
        any:
          - unit: {in: [so-tu-phap, so-xay-dung]}
          - source: dvc-portal
    then:
      open: violation
      title: "Hồ sơ {event.dossier_id} bị trả không nêu lý do"
  - key: hotline-flood
    when:
      any:
        - event: hotline.ticket.created
          where: {category: flood, location.ward: {matches: "(Dĩ An|Thuận An)"}}
        - event: dossier.returned
          where: {urgent: true}
    then:
      data: {ward: "{event.ward}"}
"""


# --- a good file -------------------------------------------------------------------------------


def test_a_good_file_parses_into_rules():
    ruleset = parse_rules(GOOD, "rules.yaml", VOCABULARY)
    assert [r.key for r in ruleset.rules] == [
        "second-supplement-request", "returned-without-reason", "hotline-flood",
    ]
    second = ruleset.rule("second-supplement-request")
    assert second.mode == "all" and second.line == 2
    assert second.name == {"vi": "Yêu cầu bổ sung hồ sơ lần thứ hai",
                           "en": "Second supplement request"}
    assert [(p.event, p.alias, p.line) for p in second.patterns] == [
        ("dossier.supplement_requested", "first", 6),
        ("dossier.supplement_requested", "second", 8),
    ]
    assert second.patterns[1].same == (Correlation("dossier_id", "first", "dossier_id"),)
    assert second.then == Action(
        open="violation", severity="medium",
        title={"vi": "Hồ sơ {second.dossier_id} bị yêu cầu bổ sung lần thứ hai",
               "en": "Dossier {second.dossier_id}: second supplement request"},
        subject="{second.dossier_id}",
        data={"dossier_id": "{second.dossier_id}", "unit": "{second.unit}",
              "requests": ["{first.id}", "{second.id}"]},
    )

    returned = ruleset.rule("returned-without-reason")
    assert returned.mode == "one" and returned.aliases == ("event",)
    assert returned.description == {"vi": "Trả hồ sơ mà không nêu lý do"}
    assert returned.patterns[0].where == Condition("all", (
        FieldTest("reason", "empty", True, "string", False, 27),
        FieldTest("days_late", "gte", 1, "integer", False, 28),
        FieldTest("days_late", "lt", 30, "integer", False, 28),
        Condition("any", (
            FieldTest("unit", "in", ["so-tu-phap", "so-xay-dung"], "string", False, 30),
            FieldTest("source", "eq", "dvc-portal", "string", True, 31),
        )),
    ))
    assert returned.then.severity is None and returned.then.data == {}

    flood = ruleset.rule("hotline-flood")
    assert flood.mode == "any" and flood.aliases == ("event",)
    assert flood.then.open is None  # only starts the process
    assert flood.patterns[0].where.items == (
        FieldTest("category", "eq", "flood", "string", False, 39),
        FieldTest("location.ward", "matches", "(Dĩ An|Thuận An)", None, False, 39),
    )
    assert ruleset.event_types == set(VOCABULARY)


def test_a_path_is_read_as_a_file(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert len(parse_rules(path, "rules.yaml", VOCABULARY).rules) == 3
    path.write_bytes("rules: []\n# Hồ sơ\n".encode("utf-16"))
    with pytest.raises(ScenarioInvalid) as info:
        parse_rules(path, "rules.yaml", VOCABULARY)
    assert "not UTF-8" in info.value.problems[0].message


def test_an_empty_rule_list_is_allowed_but_an_empty_file_is_not():
    assert parse_rules("rules: []\n", "rules.yaml", VOCABULARY).rules == ()
    assert one_problem("") == (
        None, "", "the file is empty; it needs `rules:` with a list of rules")


# --- a bad file: every problem, with its line and path ------------------------------------------

BAD = """\
rules:
  - key: Second_Supplement
    nam: "x"
    when:
      all:
        - event: dossier.suplement_requested
          as: first
        - event: dossier.supplement_requested
          as: second
          same: {dossier_id: frist.dossier_id}
        - event: dossier.supplement_requested
          as: third
          same: {dossier_id: fourth.dossier_id}
        - event: dossier.supplement_requested
          as: fourth
    then:
      open: violaton
      title: "Hồ sơ {second.dosier_id} {nope.x}"
  - key: returned
    when:
      event: dossier.returned
      where:
        reasn: {empty: true}
        urgent: {gt: 1}
        days_late: {gte: "3", matches: "x"}
        dossier_id: 10
        procedure: {in: []}
        unit: {matches: "^HS[0-9]+$"}
        officer: {startswith: "a"}
        any:
          - reason: {eq: null}
          - reason: [a, b]
    then:
      severity: urgent
      data: {x: "{event.dossier_id}", y: "{second.unit}"}
  - key: returned
    when: {event: hotline.ticket.created, where: {location: {eq: 1}, location.ward: "Dĩ An"}}
    then: {subject: 5, colour: red}
  - when: {}
"""


def test_a_bad_file_reports_every_problem_with_line_and_path():
    assert problems_of(BAD) == [
        (2, "rules[0].key", "a rule key uses only a-z, 0-9 and '-' (e.g. "
            "second-supplement-request), not the text 'Second_Supplement'"),
        (3, "rules[0].nam", "unknown key 'nam' in a rule (did you mean 'name'?); allowed: key, "
            "name, description, when, then"),
        (6, "rules[0].when.all[0].event", "unknown event type 'dossier.suplement_requested' "
            "(did you mean 'dossier.supplement_requested'?)"),
        (10, "rules[0].when.all[1].same.dossier_id", "unknown alias 'frist' (did you mean "
             "'first'?); earlier patterns: first"),
        (13, "rules[0].when.all[2].same.dossier_id", "alias 'fourth' is used before it is "
             "defined; `same:` can only refer to earlier patterns"),
        (17, "rules[0].then.open", "`open` is one of violation, incident, suggestion, not the text "
             "'violaton' (did you mean 'violation'?)"),
        (18, "rules[0].then.title", "'second' (dossier.supplement_requested) has no field "
             "'dosier_id' (did you mean 'dossier_id'?)"),
        (18, "rules[0].then.title", "unknown alias 'nope' in {nope.x}; this rule's aliases: "
             "first, second, third, fourth"),
        (23, "rules[1].when.where.reasn", "event type dossier.returned has no field 'reasn' "
             "(did you mean 'reason'?); its fields: dossier_id, procedure, unit, officer, "
             "reason, days_late, fee, urgent, source, subject"),
        (24, "rules[1].when.where.urgent.gt", "`gt` cannot be used on the boolean field "
             "'urgent'; use eq: true or eq: false"),
        (25, "rules[1].when.where.days_late.gte", "'days_late' is an integer field, so `gte` "
             "needs an integer, not the text '3'"),
        (25, "rules[1].when.where.days_late.matches", "`matches` tests text, and 'days_late' "
             "is an integer field"),
        (26, "rules[1].when.where.dossier_id", "'dossier_id' is a string field, so `eq` needs a "
             "string, not the number 10; write it in quotes: \"10\""),
        (27, "rules[1].when.where.procedure.in", "`in` needs a list of values, e.g. [a, b]"),
        (28, "rules[1].when.where.unit.matches", "'^' is not supported: `matches` always tests "
             "the whole value; use .* to allow text before or after"),
        (29, "rules[1].when.where.officer.startswith", "unknown test 'startswith'; tests: eq, "
             "ne, gt, gte, lt, lte, in, not_in, matches, empty, exists"),
        (31, "rules[1].when.where.any[0].reason.eq", "`eq` needs a value; to test for a missing "
             "value use `empty: true` or `exists: false`"),
        (32, "rules[1].when.where.any[1].reason", "a list is not a test; write `reason: {in: "
             "[...]}` to accept any of several values"),
        (34, "rules[1].then.severity", "`severity` is one of low, medium, high, critical (or "
             "bands of a number: {by: event.aqi, bands: {0: low, 151: high}}), not the text "
             "'urgent'"),
        (35, "rules[1].then.data.y", "unknown alias 'second' in {second.unit}; this rule's "
             "aliases: event"),
        (36, "rules[2].key", "rule key 'returned' is already used by rules[1] (line 19); rule "
             "keys must be unique in the file"),
        (37, "rules[2].when.where.location.eq", "'location' is an object field; only `exists` "
             "and `empty` can test it (or test one of its sub-fields, e.g. location.ward)"),
        (38, "rules[2].then.colour", "unknown key 'colour' in `then`; allowed: open, severity, "
             "title, subject, data, notify"),
        (38, "rules[2].then.subject", "`subject` must be text (a template like "
             "\"{event.dossier_id}\"), not the number 5"),
        (39, "rules[3]", "a rule needs 'key'"),
        (39, "rules[3]", "a rule needs 'then'"),
        (39, "rules[3].when", "`when` needs `event:` (one pattern) or `all:` / `any:` (several "
             "patterns)"),
    ]


def test_problem_str_names_file_line_and_path():
    with pytest.raises(ScenarioInvalid) as info:
        parse_rules(BAD, "scenarios/dvc/rules.yaml", VOCABULARY)
    assert str(info.value).splitlines()[0] == (
        "scenarios/dvc/rules.yaml:2: rules[0].key: a rule key uses only a-z, 0-9 and '-' "
        "(e.g. second-supplement-request), not the text 'Second_Supplement'"
    )


def test_unknown_event_type_and_unknown_field():
    assert one_problem(rule_with("event: hotline.ticket.create\n")) == (
        4, "rules[0].when.event",
        "unknown event type 'hotline.ticket.create' (did you mean 'hotline.ticket.created'?)")
    assert one_problem(rule_with("event: hotline.ticket.created\nwhere: {wrd: X}\n")) == (
        5, "rules[0].when.where.wrd",
        "event type hotline.ticket.created has no field 'wrd' (did you mean 'ward'?); its "
        "fields: ticket_id, category, ward, description, location, source, subject")
    assert one_problem(rule_with("event: hotline.ticket.created\nwhere: {ward.name: X}\n")) == (
        5, "rules[0].when.where.ward.name",
        "'ward' is a string field of hotline.ticket.created; it has no sub-fields")


def test_value_types_follow_the_vocabulary():
    where = "event: dossier.returned\nwhere:\n  {}\n"
    cases = {
        "fee: {gt: 1.5}": None,
        "days_late: {gt: 1.5}": None,  # a comparison may use any number
        "days_late: 1.5": "'days_late' is an integer field, so `eq` needs an integer, not the "
                          "number 1.5",
        "urgent: true": None,
        "urgent: {in: [true, 1]}": "'urgent' is a boolean field, so `in` needs a boolean, not "
                                   "the number 1",
        "fee: {eq: yes}": "'fee' is a number field, so `eq` needs a number, not the boolean true",
        "reason: {matches: ''}": "the pattern is empty; to test for a missing or blank value "
                                 "use `empty: true`",
        "reason: {empty: 1}": "`empty` takes true or false, not the number 1",
        "reason: {eq: 2025-07-01}": "dates and times must be written in quotes, e.g. "
                                    "\"2025-07-01\"",
        "reason: {}": "no test given for 'reason'; tests: eq, ne, gt, gte, lt, lte, in, not_in, "
                      "matches, empty, exists",
        "reason:": "no test given for 'reason'; write `reason: {empty: true}` to require it to "
                   "be missing or blank",
    }
    for test, expected in cases.items():
        text = rule_with(where.format(test))
        if expected is None:
            parse_rules(text, "rules.yaml", VOCABULARY)
        else:
            assert one_problem(text)[2] == expected, test


def test_aliases_in_all_any_and_same():
    assert one_problem(rule_with("""\
        all:
          - event: dossier.returned
          - {event: dossier.returned, as: b}
        """)) == (5, "rules[0].when.all[0]", "each pattern of `all:` needs a name (`as:`) so "
                  "that `same:`, the title and the data can refer to it")
    assert one_problem(rule_with("""\
        all:
          - {event: dossier.returned, as: a, same: {dossier_id: a.dossier_id}}
        """)) == (5, "rules[0].when.all[0].same", "`same:` refers to earlier patterns; the "
                  "first pattern of `all:` has none")
    assert one_problem(rule_with("""\
        any:
          - {event: dossier.returned, as: a}
          - {event: dossier.returned, as: b, same: {dossier_id: a.dossier_id}}
        """)) == (6, "rules[0].when.any[1].same", "`same:` correlates events, so it only works "
                  "in a pattern of `all:` after the first")
    assert one_problem(rule_with("""\
        all:
          - {event: dossier.returned, as: a}
          - {event: hotline.ticket.created, as: b, same: {ticket_id: a.days_late}}
        """)) == (6, "rules[0].when.all[1].same.ticket_id", "'ticket_id' is a string but "
                  "a.days_late is an integer; they can never be equal")
    assert one_problem(rule_with("""\
        all:
          - {event: dossier.returned, as: a}
          - {event: dossier.returned, as: a}
        """)) == (6, "rules[0].when.all[1].as", "alias 'a' is already used by an earlier "
                  "pattern; each pattern of `all:` needs its own alias")
    # Envelope fields correlate too.
    parse_rules(rule_with("""\
        all:
          - {event: dossier.returned, as: a}
          - {event: hotline.ticket.created, as: b, same: {subject: a.dossier_id}}
        """), "rules.yaml", VOCABULARY)


@pytest.mark.parametrize("key", ["within", "count", "absent", "sustained", "silence", "key"])
def test_temporal_keys_only_work_on_a_single_pattern(key):
    # next to `all:`
    assert one_problem(rule_with(f"{key}: 2h\nall:\n  - {{event: dossier.returned, as: a}}\n")) \
        == (4, f"rules[0].when.{key}", f"'{key}' is temporal; temporal rules watch one pattern "
            "(`event:`), not `all:`")
    # inside a pattern of `all:`
    assert one_problem(rule_with(f"all:\n  - {{event: dossier.returned, as: a, {key}: 3}}\n")) \
        == (5, f"rules[0].when.all[0].{key}", f"'{key}' is temporal; temporal rules watch one "
            "pattern (`event:` directly under `when`), not a pattern of `all:` / `any:`")


def test_then_needs_a_title_to_open_a_case():
    assert one_problem(rule_with("event: dossier.returned\n", "{open: incident}")) == (
        5, "rules[0].then", "`then` opens an incident, so it needs a `title`")
    # An empty `then:` only starts the process.
    ruleset = parse_rules(rule_with("event: dossier.returned\n", ""), "rules.yaml", VOCABULARY)
    assert ruleset.rules[0].then == Action()


# --- `matches:` in durable-rules' dialect ------------------------------------------------------


@pytest.mark.parametrize("pattern, expected", [
    ("HS-[0-9]+", None),
    (".*(ngập|lụt).*", None),
    ("[A-Z][0-9]{2}[.][0-9]{2}-.*", None),
    ("^HS", "'^' is not supported"),
    ("HS$", "'$' is not supported"),
    ("HS\\d+", "backslashes are not supported"),
    ("[^0-9]+", "[^...] (any character except ...) is not reliable"),
    ("[à-ỹ]+", "the range à-ỹ is not supported: ranges only work between ASCII characters"),
    ("[z-a]", "not a valid pattern: bad character range z-a"),
    ("(?i)abc", "(?...) groups and flags are not supported"),
    ("(abc", "not a valid pattern: missing ), unterminated subpattern"),
    ("[]a]", "a character class cannot start with ']'"),
    (".{0,200}", "a {n,m} repeat can be at most 50"),
    ("(b|a)*a(b|a)*", "the rule engine refuses this pattern (error 503)"),
    # The shapes that crashed durable-rules' C core (and the server with it) while validating.
    ("a?" * 127, "the pattern is 254 characters long; at most 200"),
    ("(ab)?" * 127, "the pattern is 635 characters long; at most 200"),
    ("ạ?" * 127, "the pattern is 254 characters long; at most 200"),
    ("a?" * 25, "the pattern has 25 repeats (*, +, ?, {…}); at most 24 are allowed"),
    ("[0-9]{1,3}([.][0-9]{1,3}){3}", None),  # repeats two deep: an IP address
    ("((a(b(c)*)*)*)*", "repeats nest 4 deep (a repeated group inside a repeated group …); "
                        "at most 3"),
])
def test_matches_patterns_are_checked_against_the_engine_dialect(pattern, expected):
    found = regex_problem(pattern)
    if expected is None:
        assert found is None
    else:
        assert found is not None and found.startswith(expected), found


def test_the_engine_tries_a_pattern_in_a_child_process_whose_crash_is_a_refusal():
    """Past the checks, durable-rules compiles a pattern in a child process: one that crashes
    the C core (here "a?" × 127, which the checks would refuse first) kills only that child."""
    from engine.rules.dialect import CRASHED, _durable_error

    assert _durable_error("a?" * 127) == CRASHED
    assert _durable_error("HS-[0-9]+") is None
    assert _durable_error("(b|a)*a(b|a)*") == 503


# --- templates -------------------------------------------------------------------------------


def test_templates_render_from_the_matched_events():
    events = {
        "first": to_message(7, "dossier.supplement_requested", "dvc", "H1",
                            {"dossier_id": "H1", "unit": "Sở Tư pháp", "count": 2,
                             "location": {"ward": "Dĩ An", "lat": 10.9}}),
        "second": to_message(9, "dossier.supplement_requested", "dvc", None,
                             {"dossier_id": "H1", "unit": None}),
    }
    # Exactly one placeholder keeps the raw value (and its type).
    assert render("{first.count}", events) == 2
    assert render("{first.location}", events) == {"ward": "Dĩ An", "lat": 10.9}
    assert render("{first.location.lat}", events) == 10.9
    assert render("{second.unit}", events) is None
    assert render("{second.missing}", events) is None
    assert render("{third.x}", events) is None
    # Envelope fields.
    assert render("{first.id}", events) == 7
    assert render("{first.type}", events) == "dossier.supplement_requested"
    assert render("{first.source}/{first.subject}/{second.subject}", events) == "dvc/H1/"
    # Interpolation: missing → empty text; {{ }} are literal braces.
    assert render("Hồ sơ {first.dossier_id} ({first.unit}, {second.unit}) x{first.count}",
                  events) == "Hồ sơ H1 (Sở Tư pháp, ) x2"
    assert render("{{literal}} {first.location.ward}", events) == "{literal} Dĩ An"
    # Mappings and lists render recursively; other values pass through.
    assert render({"ids": ["{first.id}", "{second.id}"], "n": 3, "ok": True}, events) == {
        "ids": [7, 9], "n": 3, "ok": True}
    assert parse_template("a {x.y} b") == ("a ", ("x", "y"), " b")


def test_action_render_fills_title_subject_and_data():
    ruleset = parse_rules(GOOD, "rules.yaml", VOCABULARY)
    action = ruleset.rule("second-supplement-request").then
    events = {
        "first": to_message(1, "dossier.supplement_requested", "dvc", None,
                            {"dossier_id": "H1", "unit": "U"}),
        "second": to_message(2, "dossier.supplement_requested", "dvc", None,
                             {"dossier_id": "H1", "unit": "U"}),
    }
    assert action.render(events) == {
        "open": "violation",
        "severity": "medium",
        "title": {"vi": "Hồ sơ H1 bị yêu cầu bổ sung lần thứ hai",
                  "en": "Dossier H1: second supplement request"},
        "subject": "H1",
        "data": {"dossier_id": "H1", "unit": "U", "requests": [1, 2]},
        "notify": [],
    }


@pytest.mark.parametrize("template, message", [
    ("{event.dossier_id", "a '{' is never closed; write '{{' for a literal brace"),
    ("x } y", "a '}' has no opening '{'; write '}}' for a literal brace"),
    ("{dossier_id}", "'{dossier_id}' is not a placeholder; write {alias.field}, e.g. "
                     "{event.dossier_id}"),
])
def test_bad_templates_are_reported(template, message):
    text = rule_with("event: dossier.returned\n", f"{{data: {{x: '{template}'}}}}")
    assert one_problem(text) == (5, "rules[0].then.data.x", message)


# --- yamlsource --------------------------------------------------------------------------------


def test_yaml_lines_and_paths():
    data, locator = load_yaml(GOOD, "rules.yaml")
    assert data["rules"][1]["when"]["where"]["reason"] == {"empty": True}
    assert locator.line(("rules", 1, "when", "where", "reason")) == 27
    assert locator.line(("rules", 0, "when", "all", 1, "same", "dossier_id")) == 10
    assert locator.line(("rules", 0)) == 2
    assert locator.line(("rules", 0, "when")) == 5  # a block value starts on the next line
    assert locator.key_line(("rules", 0, "when")) == 4
    assert locator.line(("rules", 9)) is None
    assert locator.nearest(("rules", 0, "when", "nothing", "here")) == 4
    assert format_path(("rules", 0, "when", "where", "reason")) == "rules[0].when.where.reason"
    assert format_path(("data", "a b", 2)) == 'data["a b"][2]'


def test_yaml_syntax_errors_and_duplicate_keys_carry_lines():
    with pytest.raises(ScenarioInvalid) as info:
        load_yaml("rules:\n  - key: a\n    when: [x\n", "rules.yaml")
    [problem] = info.value.problems
    assert problem.line == 4 and problem.message.startswith("YAML syntax error: ")
    with pytest.raises(ScenarioInvalid) as info:
        load_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "x.yaml")
    assert [(p.line, p.path, p.message) for p in info.value.problems] == [
        (4, "b.c", "duplicate key 'c' (first at line 3); a key may appear only once in a "
                   "mapping"),
        (5, "a", "duplicate key 'a' (first at line 1); a key may appear only once in a mapping"),
    ]
    # Merge keys may override what they merge; that is not a duplicate.
    data, locator = load_yaml("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  x: 3\n", "x.yaml")
    assert data["item"] == {"x": 3, "y": 2} and locator.line(("item", "x")) == 4
