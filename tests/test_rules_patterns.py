"""`matches:` is evaluated by RE2 (engine/rules/patterns.py), because durable-rules' own regex
engine silently misses an alternation followed by more text; this file pins both behaviours."""
from __future__ import annotations

import json

import durable_rules_engine
import pytest

from engine.rules.matcher import RuleMatcher
from engine.rules.message import to_message

PATTERN = ".*(ab|cd).*"


def _durable_matches(pattern: str, texts: list[str]) -> list[bool]:
    """What durable-rules' `$mt` makes of each text (its C engine, directly)."""
    handle = durable_rules_engine.create_ruleset("pin", json.dumps(
        {"r": {"all": [{"m": {"$mt": {"v": pattern}}}]}}, ensure_ascii=False))
    try:
        return [durable_rules_engine.assert_event(handle, json.dumps(
            {"id": i + 1, "sid": "0", "v": text}, ensure_ascii=False))[0] != 1
            for i, text in enumerate(texts)]
    finally:
        durable_rules_engine.delete_ruleset(handle)


def test_durable_rules_misses_an_alternation_followed_by_the_start_of_another_branch():
    # Why the matcher does not let durable-rules match patterns: should a new durable-rules get
    # this right, this test says so, and patterns.py could go.
    assert _durable_matches(PATTERN, ["ab", "abab", "abc", "cdc"]) == [True, True, False, False]
    assert _durable_matches(".*(Bão|Lũ).*", ["Bão", "BãoL"]) == [True, False]


@pytest.fixture
def matcher():
    found = RuleMatcher()
    found.load("pin", {"r": {"all": [{"m": {"$and": [
        {"t": "social.post"}, {"$mt": {"data.text": PATTERN}}]}}], "run": "r"},
        "s": {"all": [{"m": {"$and": [
            {"t": "social.post"}, {"$mt": {"data.text": ".*(Bão|Lũ).*"}},
            {"$mt": {"subject": "HS-[0-9]+"}}]}}], "run": "s"}})
    return found


@pytest.mark.parametrize(("text", "subject", "rules"), [
    ("abc", None, ["r"]),
    ("cdc", None, ["r"]),
    ("xyz", None, []),
    ("BãoL", "HS-12", ["s"]),
    ("BãoL", "HS-", []),  # both tests of a rule must hold
    ("dòng một\nLũ về, ab", "HS-7", ["r", "s"]),  # . takes a line break, as before
])
def test_the_matcher_matches_what_the_pattern_says(matcher, text, subject, rules):
    message = to_message(abs(hash((text, subject))) % 10**9 + 1, "social.post", "/mxh", subject,
                         {"text": text})
    assert [m.rule_key for m in matcher.post("pin", message)] == rules


def test_a_number_is_matched_through_its_text_and_other_values_never(matcher):
    numbers = RuleMatcher()
    numbers.load("n", {"r": {"all": [{"m": {"$and": [
        {"t": "x"}, {"$mt": {"data.v": "1[0-9]"}}]}}], "run": "r"}})
    found = [[m.rule_key for m in numbers.post("n", to_message(i + 1, "x", "/s", None,
                                                                 {"v": value}))]
             for i, value in enumerate([12, "12", 7, True, None, ["12"]])]
    assert found == [["r"], ["r"], [], [], [], []]


def test_loading_leaves_the_callers_definition_as_it_was():
    definition = {"r": {"all": [{"m": {"$and": [{"t": "x"}, {"$mt": {"data.v": "a.*"}}]}}],
                        "run": "r"}}
    before = json.dumps(definition, sort_keys=True)
    RuleMatcher().load("kept", definition)
    assert json.dumps(definition, sort_keys=True) == before  # its $mt and its "run" stay
