"""`matches:` tests evaluated by RE2 (linear time, no backtracking to exploit), not by
durable-rules' own regex engine, which silently fails to match an alternation followed by more
text whenever the text ends in the start of another branch: `.*(ab|cd).*` misses "abc",
`.*(Bão|Lũ).*` misses "BãoL" (measured with durable-rules 2.0.28; tests/test_rules_patterns.py).

A compiled rule keeps its `{"$mt": {path: pattern}}` tests (what the dry run and the tests read).
When the matcher loads it, each becomes a test of a mark, `{"mt.<n>": True}`, and before each
post the matcher marks in the message the tests whose pattern matches the whole value at their
path (its text, for a number), as to_message marks blank values.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

MARKS = "mt"  # the message key holding the marks (beside "blank"; no event field is an envelope)


@dataclass(frozen=True)
class PatternTest:
    """One `matches:` test of a loaded ruleset: its mark number, field path and pattern."""

    number: int
    path: str
    pattern: str


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str):
    # `.` takes any character, a line break too, as it did in durable-rules (which saw a line
    # break as the two characters of its JSON escape).
    return re2.compile("(?s)" + pattern)


def take_tests(definition: Mapping[str, Any], start: int = 0) \
        -> tuple[dict[str, Any], list[PatternTest]]:
    """A new definition whose `$mt` tests read marks (the one given is left as it is), and those
    tests (numbered from `start`, so that several definitions loaded together never share one)."""
    tests: list[PatternTest] = []

    def rewrite(node: Any) -> Any:
        if isinstance(node, Mapping):
            if set(node) == {"$mt"} and isinstance(node["$mt"], Mapping) and len(node["$mt"]) == 1:
                [(path, pattern)] = node["$mt"].items()
                tests.append(PatternTest(start + len(tests), path, pattern))
                return {f"{MARKS}.p{tests[-1].number}": True}
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    return rewrite(dict(definition)), tests  # rewrite builds new mappings and lists


def _value(message: Mapping[str, Any], path: str) -> Any:
    value: Any = message
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def marked(message: Mapping[str, Any], tests: list[PatternTest]) -> dict[str, Any]:
    """The message with a mark for each test whose pattern matches the whole value at its path
    (text, or a number's text; nothing else matches)."""
    marks = {}
    for test in tests:
        value = _value(message, test.path)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue
        if _compiled(test.pattern).fullmatch(str(value)):
            marks[f"p{test.number}"] = True
    return {**message, MARKS: marks} if marks else dict(message)
