"""Compile a parsed RuleSet into a durable-rules JSON ruleset definition.

The result is `{rule_key: {"all" | "any": [{alias: test}, ...], "run": rule_key}}`, the format
`durable.engine.Host.set_rulesets({name: definition})` accepts, with the action named by our
rule key (a Host binds it by name in `get_action`). It is plain JSON: store it with the scenario
version and load it into a `RuleMatcher` without re-parsing the YAML.

Messages (see engine/rules/message.py, `to_message`): one stored event is posted as
    {"id": <event store primary key, int>, "sid": "0", "t": <event type>,
     "source": ..., "subject": ..., "data": {<the event's fields, nested as stored>},
     "blank": {<marks of blank values, at their paths>}}   # only when something is blank
so a data field is tested at the path "data.<field>" and an envelope field at "source" or
"subject". durable-rules reads nested paths itself (measured); nesting keeps a data field named
`id` or `t` from ever colliding with the envelope.

What durable-rules really does, measured with version 2.0.28, and how the compiler copes:
- `$neq` and every comparison fail on a missing or null field, so `ne`/`not_in` add
  "or missing or null" explicitly: a dossier without a reason is "not equal to X".
- `$mt` matches the whole value's JSON-escaped text in its own regex dialect (see dialect.py),
  and silently misses `.*(ab|cd).*` on "abc": the matcher has RE2 evaluate these tests instead
  (patterns.py); the parser checks the inspectors' `matches` patterns against the dialect. `empty` does not use it:
  "missing, null, or blank" reads the `blank` marks that to_message() computes.
- Equality is loose across types (5 == "5", true == 1); the parser's type checks against the
  vocabulary keep rules from relying on it.
- An event is consumed by the first rule that fires on it within one durable ruleset, so two of
  our rules must never share a durable ruleset: the RuleMatcher gives each rule its own.
- Every compiled rule has one pattern (or `any:` of single patterns): durable-rules holds no
  event between posts. What rules remember between events is in the database: temporal
  windows (temporal.py) and the waiting events of `all:` rules (correlation.py).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from engine.rules.format import Condition, FieldTest, Pattern, Rule, RuleSet
from engine.rules.message import to_message  # noqa: F401 - re-exported: build messages here

__all__ = ["compile_ruleset", "compile_rule", "compile_temporal", "compile_correlation",
           "event_types", "alias_of", "to_message", "copy_definition", "part_key", "split_part", "START", "STOP", "HOLD"]

# Parts of a temporal rule: its pattern (START), the event that must come (STOP, absent) and
# the pattern with the sustained test (HOLD). Rule keys cannot contain "#".
PART_SEPARATOR = "#"
START, STOP, HOLD = "start", "stop", "hold"

# `any:` patterns may share one alias ("event"); durable needs distinct ones, so they get
# "<alias>__<index>" (user aliases cannot contain "__") and alias_of() maps them back.
_ANY_SEPARATOR = "__"


def alias_of(durable_alias: str) -> str:
    """Our alias for a durable alias ("event__1" → "event")."""
    return durable_alias.split(_ANY_SEPARATOR, 1)[0]


def _path(name: str, envelope: bool) -> str:
    return name if envelope else f"data.{name}"


def _and(tests: list[dict]) -> dict:
    return tests[0] if len(tests) == 1 else {"$and": tests}


def _or(tests: list[dict]) -> dict:
    return tests[0] if len(tests) == 1 else {"$or": tests}


def _missing(path: str) -> list[dict]:
    return [{"$nex": {path: 1}}, {path: None}]


def _present(path: str) -> list[dict]:
    return [{"$ex": {path: 1}}, {"$neq": {path: None}}]


def _field_test(test: FieldTest) -> dict:
    path = _path(test.field, test.envelope)
    op, value = test.op, test.value
    if op == "eq":
        return {path: value}
    if op == "ne":
        return _or(_missing(path) + [{"$neq": {path: value}}])
    if op in ("gt", "gte", "lt", "lte"):
        return {f"${op}": {path: value}}
    if op == "in":
        return _or([{path: v} for v in value])
    if op == "not_in":
        return _or(_missing(path) + [_and([{"$neq": {path: v}} for v in value])])
    if op == "matches":
        return {"$mt": {path: value}}
    if op == "exists":
        return _and(_present(path)) if value else _or(_missing(path))
    if op == "empty":
        mark = f"blank.{path}"  # set by to_message() for "", "  ", [] and {}
        if value:
            return _or(_missing(path) + [{mark: True}])
        return _and(_present(path) + [{"$nex": {mark: 1}}])
    raise ValueError(f"unknown operator {op!r}")


def _condition(condition: Condition) -> dict:
    parts = [_field_test(i) if isinstance(i, FieldTest) else _condition(i)
             for i in condition.items]
    return _and(parts) if condition.mode == "all" else _or(parts)


def _pattern(pattern: Pattern) -> dict:
    # The type test comes first: event_types() reads it back to route messages. `same:` is not
    # durable's business: correlation.py joins the patterns by key.
    tests: list[dict] = [{"t": pattern.event}]
    if pattern.where is not None:
        tests.append(_condition(pattern.where))
    return _and(tests)


def compile_rule(rule: Rule) -> dict:
    """The durable-rules definition of a rule of one pattern or `any:` ("run" names the action
    by the rule key); `all:` rules are compiled in parts (compile_correlation)."""
    if rule.mode == "any":
        names = [f"{p.alias}{_ANY_SEPARATOR}{i}" for i, p in enumerate(rule.patterns)]
        return {"any": [{n: _pattern(p)} for n, p in zip(names, rule.patterns)],
                "run": rule.key}
    if rule.mode == "all":
        raise ValueError(f"rule {rule.key!r}: `all:` rules are compiled in parts")
    pattern = rule.patterns[0]
    return {"all": [{pattern.alias: _pattern(pattern)}], "run": rule.key}


def part_key(rule_key: str, part: str) -> str:
    """The durable rule name of one part of a temporal rule ("dossier-overdue#start")."""
    return f"{rule_key}{PART_SEPARATOR}{part}"


def split_part(durable_key: str) -> tuple[str, str | None]:
    """(rule key, part) of a durable rule name; part is None for a plain rule."""
    key, _, part = durable_key.partition(PART_SEPARATOR)
    return key, part or None


def compile_temporal(rule: Rule) -> dict[str, dict]:
    """The single-pattern durable rules that feed a temporal rule's windows (see temporal.py).

    durable-rules only filters here: each part matches one event at once and holds nothing, so
    the windows, counts and deadlines live in the database and survive a restart.
    """
    temporal = rule.temporal
    pattern = rule.patterns[0]
    parts = {START: pattern}
    if temporal.form == "absent":
        parts[STOP] = temporal.stop
    if temporal.form == "sustained":
        held = Condition("all", tuple(x for x in (pattern.where, temporal.hold) if x))
        parts[HOLD] = Pattern(event=pattern.event, alias=pattern.alias, where=held)
    out = {}
    for part, p in parts.items():
        name = part_key(rule.key, part)
        out[name] = {"all": [{p.alias: _pattern(p)}], "run": name}
    return out


def compile_correlation(rule: Rule) -> dict[str, dict]:
    """One single-pattern durable rule per pattern of an `all:` rule, named by its alias.

    durable-rules would join the patterns itself, holding every waiting event in its memory (in
    each worker, 7.7 KB an open dossier, measured) and seeing only what that worker processed.
    It only filters here; the join is rows in the database (engine/rules/correlation.py)."""
    out = {}
    for p in rule.patterns:
        name = part_key(rule.key, p.alias)
        out[name] = {"all": [{p.alias: _pattern(p)}],
                     "run": name}
    return out


def compile_ruleset(ruleset: RuleSet, name: str) -> dict:
    """The durable-rules JSON definition of a rule set: one durable rule per rule or part."""
    if not name or "$" in name or "/" in name:
        # durable treats names ending in $state/$flow specially; "/" separates rule rulesets.
        raise ValueError(f"ruleset name must be non-empty without '$' or '/': {name!r}")
    out: dict[str, dict] = {}
    for rule in ruleset.rules:
        if rule.temporal is not None:
            out.update(compile_temporal(rule))
        elif rule.mode == "all":
            out.update(compile_correlation(rule))
        else:
            out[rule.key] = compile_rule(rule)
    return out


def event_types(rule_definition: Mapping[str, Any]) -> frozenset[str] | None:
    """Event types a compiled rule listens to; None if some pattern has no plain type test."""
    types: set[str] = set()
    for kind in ("all", "any"):
        for entry in rule_definition.get(kind, ()):
            for test in entry.values():
                first = test.get("$and", [test])[0] if isinstance(test, Mapping) else None
                found = first.get("t") if isinstance(first, Mapping) else None
                if not isinstance(found, str):
                    return None
                types.add(found)
    return frozenset(types)


def copy_definition(definition: Mapping[str, Any]) -> dict:
    """A deep copy (durable-rules deletes "run" from the definitions it is given)."""
    return copy.deepcopy(dict(definition))
