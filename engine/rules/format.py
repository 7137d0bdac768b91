"""The inspectors' rule file (rules.yaml): its parser, its validator and its templates.

    rules:
      - key: returned-without-reason
        name: {vi: "Trả hồ sơ không nêu lý do", en: "Dossier returned without a reason"}
        when:
          event: dossier.returned            # one pattern; its alias is `event`
          where:
            reason: {empty: true}
        then:
          open: violation                    # violation | incident; omit to only start the process
          severity: medium                   # low | medium | high | critical
          title: {vi: "Hồ sơ {event.dossier_id} bị trả không nêu lý do"}
          subject: "{event.dossier_id}"
          data: {dossier_id: "{event.dossier_id}"}

`when` is one pattern, or `all:` (every pattern, correlated with `same:`) or `any:` (one of
them). docs/rules.md is the guide for inspectors. `parse_rules` reports every problem it finds
(file, line, path, message) in one `ScenarioInvalid`, so an inspector fixes a file in one pass.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.rules.dialect import regex_problem
from engine.rules.message import ENVELOPE_TYPES, TEMPLATE_ENVELOPE_TYPES, field_value
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import Locator, load_yaml
from engine.worktime.span import EXAMPLES as _SPAN_EXAMPLES
from engine.worktime.span import Span, SpanError, parse_span

Vocabulary = Mapping[str, Mapping[str, str]]  # event type → {field → JSON type name}

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "matches", "empty", "exists")
# Temporal forms of a single-pattern `when` (docs/rules.md, section 4); `key` groups by fields.
TEMPORAL_FORMS = ("absent", "count", "sustained", "silence")
WINDOWED_FORMS = ("count", "sustained")  # a window per key, in rule_states
TEMPORAL_KEYS = ("key", "within") + TEMPORAL_FORMS
# What a further event means once the patterns of `all:` came together (docs/rules.md, 2).
REPEATS = ("consume", "every", "once")
# What a further event of a key means, per `repeat:`, as the designer and the dry run say it.
REPEAT_WORDS = {
    "consume": ("Mỗi sự kiện chỉ dùng một lần", "events are used once"),
    "every": ("Mỗi sự kiện sau lại là vi phạm", "each further event matches again"),
    "once": ("Chỉ một lần cho mỗi khóa", "once per key")}
OPEN_KINDS = ("violation", "incident", "suggestion")  # suggestion: playbooks only
SEVERITIES = ("low", "medium", "high", "critical")
LANGUAGES = ("vi", "en")
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")

DEFAULT_ALIAS = "event"
RULE_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ALIAS = re.compile(r"^[a-z][a-z0-9_]*$")
_FIELD = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
DATA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"^\s*([a-z][a-z0-9_]*)\.([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*$")

THEN_KEYS = ("open", "severity", "title", "subject", "data", "notify")
_ORDERED_TYPES = ("string", "number", "integer", None)  # None: a sub-field of an object
_SCALAR_TYPES = ("string", "number", "integer", "boolean", None)


# ---------------------------------------------------------------------------------------------
# The parsed rule set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldTest:
    """One test on one field: `reason: {empty: true}` → FieldTest("reason", "empty", True)."""

    field: str  # as written: "reason", "location.ward", or an envelope name ("source")
    op: str  # one of OPERATORS
    value: Any
    type: str | None = None  # the field's JSON type; None for a sub-field of an object
    envelope: bool = False  # True for `source`/`subject`, which live outside the event's data
    line: int | None = None


@dataclass(frozen=True)
class Condition:
    """Tests combined: "all" must all hold, "any" needs one; items nest."""

    mode: str  # "all" | "any"
    items: tuple["FieldTest | Condition", ...]


@dataclass(frozen=True)
class Correlation:
    """`same: {dossier_id: first.dossier_id}`: this event's field equals an earlier one's."""

    field: str
    other_alias: str
    other_field: str
    envelope: bool = False
    other_envelope: bool = False


@dataclass(frozen=True)
class Pattern:
    """One event the rule waits for, with its tests and its correlations."""

    event: str  # the event type
    alias: str  # the name templates and `same:` use for this event
    where: Condition | None = None
    same: tuple[Correlation, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Temporal:
    """Time on top of the rule's one pattern, per value of `key` (see docs/rules.md, section 4).

    - absent: the pattern, then no `stop` event with the same key `within` (or `by` a field);
    - count: `count` or more pattern events with the same key `within`;
    - sustained: pattern events that all pass `hold`, `readings` in a row or `within` long;
    - silence: no pattern event with the same key for `within` after the last one.
    """

    form: str  # one of TEMPORAL_FORMS
    key: tuple[str, ...]  # fields of the event(s) that group them (dossier_id, station_id…)
    within: Span | None = None
    by: str | None = None  # absent: a date-time field of the first event, the deadline
    count: int | None = None
    stop: Pattern | None = None  # absent: the event that must come
    hold: Condition | None = None  # sustained: the test each reading must pass
    readings: int | None = None  # sustained: this many readings in a row


@dataclass(frozen=True)
class Join:
    """How the patterns of `all:` come together: the key each gives and what repeats mean.

    `same:` ties fields of the patterns into groups of equal values; every pattern has a field in
    every group, so each matching event names one key (the groups' values, in order) and the
    events of one key wait for each other in one row of `rule_states` (engine/rules/correlation).
    - consume: the events of a match are used up; a 3rd request pairs with a 4th;
    - every: once the patterns came together, each further event matches again with the
      earliest of the others (the 3rd request is a violation again, with the 1st);
    - once: one match per key; with `once_per`, again only after that long since the match.
    """

    key: Mapping[str, tuple[tuple[str, ...], ...]]  # alias → its fields in each group
    repeat: str = "consume"
    once_per: Span | None = None


@dataclass(frozen=True)
class SeverityBands:
    """Severity from a number field: the band whose lowest value the number reaches."""

    by: str  # "alias.field"
    bands: tuple[tuple[float, str], ...]  # (lowest value, severity), ascending

    def pick(self, events: Mapping[str, Mapping[str, Any]]) -> str | None:
        """The severity for the match's value (None when the value is missing)."""
        value = render("{" + self.by + "}", events)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        chosen = None
        for low, level in self.bands:
            if value >= low:
                chosen = level
        return chosen


@dataclass(frozen=True)
class Notice:
    """`notify:` item: tell a department (or its people of one role) at once, by template."""

    to: str  # department key
    role: str | None
    text: Mapping[str, str]  # language → template
    line: int | None = None


@dataclass(frozen=True)
class Action:
    """What a match does: open a case (or only start the process) with this data."""

    open: str | None = None  # "violation" | "incident" | None (only start the process)
    # Overrides the manifest's severity when set: a level, or bands of a number field.
    severity: str | SeverityBands | None = None
    title: Mapping[str, str] = field(default_factory=dict)  # language → template
    subject: str | None = None  # template; the key the case is about
    data: Mapping[str, Any] = field(default_factory=dict)  # name → template or literal
    notify: tuple[Notice, ...] = ()

    def render(self, events: Mapping[str, Mapping[str, Any]]) -> dict:
        """Fill the templates from a match's events: open, severity, title, subject, data,
        notify."""
        severity = self.severity.pick(events) if isinstance(self.severity, SeverityBands) \
            else self.severity
        return {
            "open": self.open,
            "severity": severity,
            "title": {lang: _as_text(render(t, events)) for lang, t in self.title.items()},
            "subject": None if self.subject is None else _as_text(render(self.subject, events)),
            "data": render(dict(self.data), events),
            "notify": [{"to": n.to, "role": n.role,
                        "text": {lang: _as_text(render(t, events)) for lang, t in n.text.items()}}
                       for n in self.notify],
        }


@dataclass(frozen=True)
class Rule:
    """One rule of the file: when these events happen, then do this."""

    key: str
    name: Mapping[str, str]  # language → text
    mode: str  # "one" (a single pattern) | "all" | "any"
    patterns: tuple[Pattern, ...]
    then: Action
    description: Mapping[str, str] = field(default_factory=dict)
    line: int | None = None
    temporal: Temporal | None = None
    join: Join | None = None  # for `all:`: the key its patterns share and what repeats mean

    @property
    def aliases(self) -> tuple[str, ...]:
        """The aliases of the rule's patterns, in order, without repeats."""
        return tuple(dict.fromkeys(p.alias for p in self.patterns))

    @property
    def event_types(self) -> frozenset[str]:
        """Event types this rule listens to."""
        stop = self.temporal.stop if self.temporal else None
        return frozenset(p.event for p in self.patterns) | ({stop.event} if stop else set())


@dataclass(frozen=True)
class RuleSet:
    """All rules of one file, in file order."""

    file: str
    rules: tuple[Rule, ...]

    def rule(self, key: str) -> Rule:
        """The rule with this key (KeyError if none)."""
        for rule in self.rules:
            if rule.key == key:
                return rule
        raise KeyError(key)

    @property
    def event_types(self) -> frozenset[str]:
        """Event types any rule of the set listens to."""
        return frozenset().union(*(r.event_types for r in self.rules))

    @property
    def correlated_by_type(self) -> dict[str, tuple[Rule, ...]]:
        """The `all:` rules (their waiting events kept per key), by each pattern's type."""
        out: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            if rule.join is not None:
                for event in dict.fromkeys(p.event for p in rule.patterns):
                    out[event] = out.get(event, ()) + (rule,)
        return out

    @property
    def windowed_by_type(self) -> dict[str, tuple[Rule, ...]]:
        """The rules that keep a window per key (count, sustained), by their event's type."""
        out: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            if rule.temporal is not None and rule.temporal.form in WINDOWED_FORMS:
                event = rule.patterns[0].event
                out[event] = out.get(event, ()) + (rule,)
        return out


# ---------------------------------------------------------------------------------------------
# Templates: "{alias.field}" placeholders; {{ and }} are literal braces
# ---------------------------------------------------------------------------------------------


class TemplateError(ValueError):
    """A template string that is not well formed."""


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> tuple[str | tuple[str, str], ...]:
    """Split a template into literal text and (alias, field) placeholders."""
    parts: list[str | tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            buf.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            buf.append("}")
            i += 2
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise TemplateError("a '{' is never closed; write '{{' for a literal brace")
            inner = text[i + 1 : end]
            m = _PLACEHOLDER.match(inner)
            if not m:
                raise TemplateError(
                    f"'{{{inner}}}' is not a placeholder; write {{alias.field}}, "
                    "e.g. {event.dossier_id}"
                )
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((m.group(1), m.group(2)))
            i = end + 1
        elif ch == "}":
            raise TemplateError("a '}' has no opening '{'; write '}}' for a literal brace")
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append("".join(buf))
    return tuple(parts)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: Any, events: Mapping[str, Mapping[str, Any]]) -> Any:
    """Fill "{alias.field}" placeholders; a template that is one placeholder keeps the raw value."""
    if isinstance(template, str):
        parts = parse_template(template)
        if len(parts) == 1 and isinstance(parts[0], tuple):
            alias, name = parts[0]
            return field_value(events.get(alias), name)
        out: list[str] = []
        for part in parts:
            if isinstance(part, tuple):
                out.append(_as_text(field_value(events.get(part[0]), part[1])))
            else:
                out.append(part)
        return "".join(out)
    if isinstance(template, Mapping):
        return {k: render(v, events) for k, v in template.items()}
    if isinstance(template, (list, tuple)):
        return [render(v, events) for v in template]
    return template


# ---------------------------------------------------------------------------------------------
# The parser/validator
# ---------------------------------------------------------------------------------------------


def _suggest(word: Any, candidates) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [c for c in candidates if isinstance(c, str)], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (_dt.date, _dt.datetime)):
        return f"the date {value}"
    return type(value).__name__


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _fits(value: Any, json_type: str | None, ordered: bool = False) -> bool:
    """Does a YAML value fit a field of this JSON type? (comparisons accept any number)"""
    if isinstance(value, bool):
        return json_type in ("boolean", None) and not ordered
    if isinstance(value, int):
        return json_type in ("number", "integer", None)
    if isinstance(value, float):
        return json_type == "number" or json_type is None or (ordered and json_type == "integer")
    if isinstance(value, str):
        return json_type in ("string", None)
    return False


class _Parser:
    def __init__(self, filename: str, locator: Locator, vocabulary: Vocabulary):
        self.file = filename
        self.loc = locator
        self.vocab = vocabulary
        self.problems: list[Problem] = []

    # -- helpers ------------------------------------------------------------------------------

    def error(self, path: tuple, message: str) -> None:
        self.problems.append(self.loc.problem(message, path))

    def mapping(
        self,
        value: Any,
        path: tuple,
        what: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...] = (),
    ) -> dict | None:
        """Check a mapping's keys: unknown (with a suggestion), temporal, missing."""
        if not isinstance(value, Mapping):
            self.error(path, f"{what} must be a mapping (key: value lines), not {_describe(value)}")
            return None
        for key in value:
            if key in allowed:
                continue
            if key in TEMPORAL_KEYS and what in ("`when`", "a pattern"):
                self.error(
                    path + (key,),
                    f"'{key}' is temporal; temporal rules watch one pattern (`event:` directly "
                    "under `when`), not a pattern of `all:` / `any:`",
                )
            else:
                self.error(
                    path + (key,),
                    f"unknown key '{key}' in {what}{_suggest(key, allowed)}; "
                    f"allowed: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                self.error(path, f"{what} needs '{key}'")
        return dict(value)

    def text(self, value: Any, path: tuple, what: str, template: bool, aliases=None) -> dict:
        """A text in one or more languages: "..." or {vi: "...", en: "..."}."""
        if isinstance(value, str):
            texts = {"vi": value}
            paths = {"vi": path}
        elif isinstance(value, Mapping):
            checked = self.mapping(value, path, what, LANGUAGES)
            if checked is None:
                return {}
            if not checked:
                self.error(path, f"{what} needs at least one language (vi or en)")
            texts, paths = {}, {}
            for lang, text in checked.items():
                if lang not in LANGUAGES:
                    continue
                if not isinstance(text, str):
                    self.error(path + (lang,), f"{what} must be text, not {_describe(text)}")
                    continue
                texts[lang] = text
                paths[lang] = path + (lang,)
        else:
            self.error(path, f"{what} must be text or {{vi: ..., en: ...}}, not {_describe(value)}")
            return {}
        if template:
            for lang, text in texts.items():
                self.template(text, paths[lang], aliases)
        return texts

    def template(self, value: Any, path: tuple, aliases: Mapping[str, tuple] | None) -> None:
        """Check the placeholders of a template (recursing through data mappings and lists)."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                self.template(v, path + (k,), aliases)
            return
        if isinstance(value, list):
            for i, v in enumerate(value):
                self.template(v, path + (i,), aliases)
            return
        if isinstance(value, (_dt.date, _dt.datetime)):
            self.error(path, "dates and times must be written in quotes")
            return
        if not isinstance(value, str):
            return
        try:
            parts = parse_template(value)
        except TemplateError as exc:
            self.error(path, str(exc))
            return
        for part in parts:
            if not isinstance(part, tuple) or aliases is None:
                continue  # aliases is None when `when` is too broken to know them
            alias, name = part
            if alias not in aliases:
                self.error(
                    path,
                    f"unknown alias '{alias}' in {{{alias}.{name}}}{_suggest(alias, aliases)}; "
                    f"this rule's aliases: {', '.join(aliases)}",
                )
                continue
            event_types = [t for t in aliases[alias] if t in self.vocab]
            if not event_types:
                continue  # the unknown event type is already reported
            if not any(self.field_type(t, name, templates=True) for t in event_types):
                known = sorted(
                    set(TEMPLATE_ENVELOPE_TYPES).union(*(self.vocab[t] for t in event_types))
                )
                self.error(
                    path,
                    f"'{alias}' ({' / '.join(event_types)}) has no field '{name}'"
                    f"{_suggest(name, known)}",
                )

    def field_type(
        self, event_type: str, name: str, templates: bool = False
    ) -> tuple[str | None, bool] | None:
        """(JSON type, is_envelope) of a field of an event type, or None when unknown."""
        fields = self.vocab.get(event_type, {})
        head, _, rest = name.partition(".")
        if head in fields:  # a data field shadows an envelope name
            json_type = fields[head]
            if rest:
                return (None, False) if json_type == "object" else None
            return json_type, False
        envelope = TEMPLATE_ENVELOPE_TYPES if templates else ENVELOPE_TYPES
        if name in envelope:
            return envelope[name], True
        return None

    def unknown_field(self, path: tuple, event_type: str, name: str) -> None:
        fields = self.vocab.get(event_type, {})
        head, _, rest = name.partition(".")
        if rest and head in fields:
            self.error(
                path, f"'{head}' is {_a(fields[head])} field of {event_type}; it has no sub-fields"
            )
            return
        candidates = list(fields) + list(ENVELOPE_TYPES)
        self.error(
            path,
            f"event type {event_type} has no field '{name}'{_suggest(name, candidates)}; "
            f"its fields: {', '.join(candidates)}",
        )

    # -- the file -----------------------------------------------------------------------------

    def ruleset(self, data: Any) -> RuleSet:
        if data is None:
            self.error((), "the file is empty; it needs `rules:` with a list of rules")
            return RuleSet(self.file, ())
        top = self.mapping(data, (), "the rules file", ("rules",), ("rules",))
        if top is None or "rules" not in top:
            return RuleSet(self.file, ())
        items = top["rules"]
        if items is None:
            items = []
        if not isinstance(items, list):
            self.error(("rules",), f"`rules` must be a list of rules (- key: ...), not "
                       f"{_describe(items)}")
            return RuleSet(self.file, ())
        rules: list[Rule] = []
        first_seen: dict[str, int] = {}
        for index, item in enumerate(items):
            path = ("rules", index)
            rule = self.rule(item, path)
            key = item.get("key") if isinstance(item, Mapping) else None
            if isinstance(key, str):
                if key in first_seen:
                    self.error(
                        path + ("key",),
                        f"rule key '{key}' is already used by rules[{first_seen[key]}] "
                        f"(line {self.loc.key_line(('rules', first_seen[key], 'key'))}); "
                        "rule keys must be unique in the file",
                    )
                else:
                    first_seen[key] = index
            if rule is not None:
                rules.append(rule)
        return RuleSet(self.file, tuple(rules))

    def rule(self, item: Any, path: tuple) -> Rule | None:
        checked = self.mapping(
            item, path, "a rule", ("key", "name", "description", "when", "then"),
            ("key", "when", "then"),
        )
        if checked is None:
            return None
        ok = True
        key = checked.get("key")
        if "key" in checked:
            if not isinstance(key, str) or not RULE_KEY.match(key):
                self.error(
                    path + ("key",),
                    f"a rule key uses only a-z, 0-9 and '-' (e.g. second-supplement-request), "
                    f"not {_describe(key)}",
                )
                ok = False
        name = self.text(checked["name"], path + ("name",), "name", False) if "name" in checked \
            else {}
        description = (
            self.text(checked["description"], path + ("description",), "description", False)
            if "description" in checked else {}
        )
        mode, patterns, temporal, join = ("one", (), None, None)
        if "when" in checked:
            parsed = self.when(checked["when"], path + ("when",))
            if parsed is None:
                ok = False
            else:
                mode, patterns, temporal, join = parsed
        aliases = _raw_aliases(checked.get("when"))
        then = self.then(checked["then"], path + ("then",), aliases) if "then" in checked else None
        if then is None or not ok or not patterns or "key" not in checked:
            return None
        return Rule(
            key=key, name=name, mode=mode, patterns=patterns, then=then,
            description=description, line=self.loc.line(path), temporal=temporal, join=join,
        )

    # -- when ---------------------------------------------------------------------------------

    def when(self, value: Any, path: tuple) \
            -> tuple[str, tuple[Pattern, ...], Temporal | None, Join | None] | None:
        if not isinstance(value, Mapping):
            self.error(path, f"`when` must be a mapping (event: ... or all: / any:), not "
                       f"{_describe(value)}")
            return None
        lists = [k for k in ("all", "any") if k in value]
        if not lists:
            if "event" not in value:
                self.error(path, "`when` needs `event:` (one pattern) or `all:` / `any:` "
                           "(several patterns)")
                return None
            if not any(k in TEMPORAL_KEYS for k in value):
                pattern = self.pattern(value, path, "one", 0, {})
                return ("one", (pattern,), None, None) if pattern else None
            plain = {k: v for k, v in value.items() if k not in TEMPORAL_KEYS}
            pattern = self.pattern(plain, path, "one", 0, {})
            temporal = self.temporal(value, path, pattern)
            return ("one", (pattern,), temporal, None) if pattern and temporal else None
        ok = True
        for key in value:
            if key in ("all", "any"):
                continue
            if key == "repeat":
                if "all" not in value:
                    self.error(path + (key,), "`repeat` says what a further event means once the "
                               "patterns of `all:` came together; `any:` matches each event "
                               "on its own")
                    ok = False
                continue
            if key in TEMPORAL_KEYS:
                self.error(path + (key,), f"'{key}' is temporal; temporal rules watch one "
                           f"pattern (`event:`), not `{lists[0]}:`")
            elif key in ("event", "where", "as", "same"):
                self.error(path + (key,), f"'{key}' belongs inside one of the patterns of "
                           f"`{lists[0]}:`, not next to it")
            else:
                self.error(path + (key,), f"unknown key '{key}' in `when`"
                           f"{_suggest(key, ('all', 'any'))}")
            ok = False
        if len(lists) == 2:
            self.error(path, "`when` takes either `all:` or `any:`, not both")
            return None
        mode = lists[0]
        items = value[mode]
        if not isinstance(items, list) or not items:
            self.error(path + (mode,), f"`{mode}` must be a list of patterns (- event: ...)")
            return None
        patterns: list[Pattern] = []
        defined: dict[str, str] = {}  # alias → event type, in order
        later = {
            item.get("as"): i for i, item in enumerate(items)
            if isinstance(item, Mapping) and isinstance(item.get("as"), str)
        }
        for index, item in enumerate(items):
            pattern = self.pattern(item, path + (mode, index), mode, index, defined, later)
            if pattern is None:
                ok = False
                # Still define its alias, so later patterns don't get a second, false problem.
                alias = item.get("as") if isinstance(item, Mapping) else None
                if isinstance(alias, str):
                    defined.setdefault(alias, item.get("event"))
                continue
            patterns.append(pattern)
            defined.setdefault(pattern.alias, pattern.event)
        if not ok:
            return None
        if mode == "any":
            return mode, tuple(patterns), None, None
        join = self.join(value.get("repeat", REPEATS[0]), path, items, tuple(patterns))
        return (mode, tuple(patterns), None, join) if join else None

    def join(self, repeat: Any, path: tuple, items: list, patterns: tuple[Pattern, ...]) \
            -> Join | None:
        """The key the patterns of `all:` share (from their `same:`) and what repeats mean."""
        ok = True
        once_per = None
        if isinstance(repeat, Mapping) and set(repeat) == {"once_per"}:
            once_per = self.span(repeat["once_per"], path + ("repeat", "once_per"))
            ok = once_per is not None and once_per.field is None
            if once_per is not None and once_per.field is not None:
                self.error(path + ("repeat", "once_per"), "`once_per` is a fixed length of time, "
                           "not a field of an event")
            repeat = "once"
        elif repeat not in REPEATS:
            self.error(path + ("repeat",), f"`repeat` is one of {', '.join(REPEATS)} or "
                       f"{{once_per: <length of time>}} ({_SPAN_EXAMPLES}), not "
                       f"{_describe(repeat)}{_suggest(str(repeat), REPEATS)}")
            ok = False
        # Groups of fields that `same:` says are equal, in the order they are first named.
        group_of: dict[tuple[str, str], int] = {}
        groups: list[set[tuple[str, str]]] = []
        for pattern in patterns:
            for c in pattern.same:
                a, b = (c.other_alias, c.other_field), (pattern.alias, c.field)
                found = sorted({group_of[n] for n in (a, b) if n in group_of})
                if not found:
                    groups.append({a, b})
                    target = len(groups) - 1
                else:
                    target = found[0]
                    for other in found[1:]:  # two groups tied together become one
                        groups[target] |= groups[other]
                        groups[other] = set()
                    groups[target] |= {a, b}
                for node in groups[target]:
                    group_of[node] = target
        order = [i for i, g in enumerate(groups) if g]
        key: dict[str, tuple[tuple[str, ...], ...]] = {}
        for index, pattern in enumerate(patterns):
            fields = []
            for g in order:
                mine = tuple(dict.fromkeys(f for a, f in _in_order(groups[g], patterns)
                                           if a == pattern.alias))
                if not mine:
                    named = ", ".join(f"{a}.{f}" for a, f in _in_order(groups[g], patterns))
                    self.error(path + ("all", index, "same"),
                               f"the patterns of `all:` wait for each other by one key, and "
                               f"'{pattern.alias}' does not say which of its fields equals "
                               f"{named}; add it to its `same:`")
                    ok = False
                fields.append(mine)
            key[pattern.alias] = tuple(fields)
        return Join(key, repeat, once_per) if ok else None

    def pattern(
        self,
        value: Any,
        path: tuple,
        mode: str,
        index: int,
        defined: Mapping[str, str],
        later: Mapping[str, int] | None = None,
    ) -> Pattern | None:
        allowed = ("event", "as", "where", "same")
        what = "`when`" if mode == "one" else "a pattern"
        checked = self.mapping(value, path, what, allowed, ("event",))
        if checked is None:
            return None
        ok = not any(k not in allowed for k in checked)
        event_type = checked.get("event")
        known_type = False
        if "event" in checked:
            if not isinstance(event_type, str):
                self.error(path + ("event",), f"`event` must be an event type name, not "
                           f"{_describe(event_type)}")
                ok = False
            elif event_type not in self.vocab:
                self.error(
                    path + ("event",),
                    f"unknown event type '{event_type}'{_suggest(event_type, self.vocab)}",
                )
                ok = False
            else:
                known_type = True
        alias = DEFAULT_ALIAS
        if "as" in checked:
            alias = checked["as"]
            if not isinstance(alias, str) or not _ALIAS.match(alias) or "__" in alias:
                self.error(
                    path + ("as",),
                    f"an alias is a short name in a-z, 0-9 and '_' starting with a letter "
                    f"(e.g. first), not {_describe(alias)}",
                )
                ok = False
                alias = DEFAULT_ALIAS
            elif mode == "all" and alias in defined:
                self.error(path + ("as",), f"alias '{alias}' is already used by an earlier "
                           "pattern; each pattern of `all:` needs its own alias")
                ok = False
        elif mode == "all":
            self.error(path, "each pattern of `all:` needs a name (`as:`) so that `same:`, the "
                       "title and the data can refer to it")
            ok = False
        where = None
        if "where" in checked:
            if known_type:
                where = self.where(checked["where"], path + ("where",), event_type)
                ok = ok and where is not None
            elif not isinstance(checked["where"], Mapping):
                self.error(path + ("where",), "`where` must be a mapping of field tests")
                ok = False
        same: tuple[Correlation, ...] = ()
        if "same" in checked:
            if mode != "all":
                self.error(path + ("same",), "`same:` correlates events, so it only works in a "
                           "pattern of `all:` after the first")
                ok = False
            elif index == 0:
                self.error(path + ("same",), "`same:` refers to earlier patterns; the first "
                           "pattern of `all:` has none")
                ok = False
            else:
                parsed = self.same(checked["same"], path + ("same",), event_type if known_type
                                   else None, defined, later or {}, index)
                ok = ok and parsed is not None
                same = parsed or ()
        if not ok:
            return None
        return Pattern(event=event_type, alias=alias, where=where, same=same,
                       line=self.loc.line(path))

    # -- temporal -----------------------------------------------------------------------------

    def temporal(self, value: Mapping, path: tuple, pattern: Pattern | None) -> Temporal | None:
        """The temporal part of a single-pattern `when` (key, within and one form)."""
        forms = [f for f in TEMPORAL_FORMS if f in value]
        if len(forms) != 1:
            self.error(path, "a temporal rule takes exactly one of " + ", ".join(TEMPORAL_FORMS)
                       + (f", not {' and '.join(forms)}" if forms else
                          "; `key`/`within` alone say nothing about time"))
            return None
        form = forms[0]
        event_type = pattern.event if pattern else None
        key = self.key_fields(value.get("key"), path + ("key",), event_type, "key" in value)
        ok = key is not None and pattern is not None
        within = None
        if "within" in value:
            if form in ("count",):
                within = self.span(value["within"], path + ("within",), event_type)
                ok = ok and within is not None
            else:
                where = {"absent": "inside `absent:`", "sustained": "inside `sustained:` "
                         "(as `for:`)", "silence": "as the value of `silence:`"}[form]
                self.error(path + ("within",), f"for `{form}` the length of time goes {where}")
                ok = False
        if form == "count":
            count = value["count"]
            if isinstance(count, bool) or not isinstance(count, int) or count < 2:
                self.error(path + ("count",), f"`count` is a whole number of events, 2 or more, "
                           f"not {_describe(count)}")
                ok = False
            if "within" not in value:
                self.error(path, f"`count` needs `within:` ({_SPAN_EXAMPLES})")
                ok = False
            return Temporal("count", key, within=within, count=count) if ok else None
        if form == "silence":
            within = self.span(value["silence"], path + ("silence",), event_type)
            ok = ok and within is not None
            return Temporal("silence", key, within=within) if ok else None
        if form == "absent":
            return self.absent(value["absent"], path + ("absent",), key, event_type, ok)
        return self.sustained(value["sustained"], path + ("sustained",), key, event_type, ok)

    def absent(self, value: Any, path: tuple, key, event_type: str | None, ok: bool) \
            -> Temporal | None:
        checked = self.mapping(value, path, "`absent`", ("event", "where", "within", "by"),
                               ("event",))
        if checked is None:
            return None
        ok = ok and not any(k not in ("event", "where", "within", "by") for k in checked)
        if "event" not in checked:
            return None  # already reported: `absent` needs 'event'
        stop = self.pattern({k: checked[k] for k in ("event", "where") if k in checked}, path,
                            "one", 0, {})
        ok = ok and stop is not None
        if stop is not None and stop.event in self.vocab and key:
            for name in key:
                if self.field_type(stop.event, name) is None:
                    self.error(path + ("event",), f"key field '{name}' is not a field of "
                               f"{stop.event}, the awaited event; choose key fields both "
                               "events have")
                    ok = False
        within, by = None, None
        if ("within" in checked) == ("by" in checked):
            self.error(path, "`absent` needs either `within:` (a length of time) or `by:` (a "
                       "date-time field of the first event holding the deadline)")
            ok = False
        elif "within" in checked:
            within = self.span(checked["within"], path + ("within",), event_type)
            ok = ok and within is not None
        else:
            by = checked["by"]
            found = self.field_type(event_type, by) if isinstance(by, str) and event_type \
                else None
            if isinstance(by, str) and event_type and found is None:
                self.unknown_field(path + ("by",), event_type, by)
                ok = False
            elif not isinstance(by, str) or (found and found[0] not in ("string", None)):
                # Date-times travel as RFC 3339 text; a number or a flag cannot be a deadline.
                what = _describe(by) if not isinstance(by, str) else \
                    f"'{by}', {_a(found[0])} field"
                self.error(path + ("by",), f"`by` names a date-time field of the first "
                           f"event (e.g. due_at), not {what}")
                ok = False
        return Temporal("absent", key, within=within, by=by, stop=stop) if ok else None

    def sustained(self, value: Any, path: tuple, key, event_type: str | None, ok: bool) \
            -> Temporal | None:
        checked = self.mapping(value, path, "`sustained`", ("while", "for", "readings"),
                               ("while",))
        if checked is None:
            return None
        ok = ok and not any(k not in ("while", "for", "readings") for k in checked)
        hold = None
        if "while" in checked and event_type:
            hold = self.where(checked["while"], path + ("while",), event_type)
            ok = ok and hold is not None
        within = None
        if "for" in checked:
            within = self.span(checked["for"], path + ("for",), event_type)
            ok = ok and within is not None
        readings = checked.get("readings")
        if "readings" in checked and (isinstance(readings, bool) or not isinstance(readings, int)
                                      or readings < 2):
            self.error(path + ("readings",), f"`readings` is a whole number, 2 or more, not "
                       f"{_describe(readings)}")
            ok = False
        if "for" not in checked and "readings" not in checked:
            self.error(path, "`sustained` needs `for:` (how long) or `readings:` (how many in "
                       "a row), or both (whichever comes first)")
            ok = False
        return Temporal("sustained", key, within=within, hold=hold, readings=readings) \
            if ok else None

    def key_fields(self, value: Any, path: tuple, event_type: str | None, given: bool) \
            -> tuple[str, ...] | None:
        """`key: station_id` or `key: [dossier_id, step]`: the fields that group events."""
        if not given:
            self.error(path[:-1], "a temporal rule needs `key:`, the field(s) that say which "
                       "events belong together (e.g. key: dossier_id)")
            return None
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or \
                not all(isinstance(n, str) and _FIELD.match(n) for n in names):
            self.error(path, f"`key` is a field name or a list of them, not {_describe(value)}")
            return None
        ok = True
        for name in names:
            if event_type and self.field_type(event_type, name) is None:
                self.unknown_field(path, event_type, name)
                ok = False
        return tuple(names) if ok else None

    def span(self, value: Any, path: tuple, event_type: str | None = None) -> Span | None:
        """A length of time (see engine/worktime/span.py); "=field" reads the event's field."""
        try:
            span = parse_span(value)
        except SpanError as exc:
            self.error(path, str(exc))
            return None
        if span.field is not None and event_type is not None:
            found = self.field_type(event_type, span.field)
            if found is None:
                self.unknown_field(path, event_type, span.field)
                return None
            if found[0] not in ("number", "integer"):
                self.error(path, f"'{span.field}' is {_a(found[0] or 'object')}, not a number "
                           "of hours or days")
                return None
        return span

    def same(
        self, value: Any, path: tuple, event_type: str | None, defined: Mapping[str, str],
        later: Mapping[str, int], index: int,
    ) -> tuple[Correlation, ...] | None:
        if not isinstance(value, Mapping) or not value:
            self.error(path, "`same` must be a mapping like {dossier_id: first.dossier_id}")
            return None
        out: list[Correlation] = []
        ok = True
        for name, ref in value.items():
            here = path + (name,)
            mine = None
            if event_type is not None:
                mine = self.field_type(event_type, str(name))
                if mine is None:
                    self.unknown_field(here, event_type, str(name))
                    ok = False
            m = _PLACEHOLDER.match(ref) if isinstance(ref, str) else None
            if m is None:
                self.error(here, f"write the other event's field as alias.field (e.g. "
                           f"first.{name}), not {_describe(ref)}")
                ok = False
                continue
            other_alias, other_field = m.group(1), m.group(2)
            if other_alias not in defined:
                if other_alias in later and later[other_alias] >= index:
                    self.error(here, f"alias '{other_alias}' is used before it is defined; "
                               "`same:` can only refer to earlier patterns")
                else:
                    self.error(here, f"unknown alias '{other_alias}'"
                               f"{_suggest(other_alias, defined)}; earlier patterns: "
                               f"{', '.join(defined) or 'none'}")
                ok = False
                continue
            other_type = defined[other_alias]
            if other_type not in self.vocab:
                continue  # its unknown event type is already reported
            theirs = self.field_type(other_type, other_field)
            if theirs is None:
                self.unknown_field(here, other_type, other_field)
                ok = False
                continue
            if mine is not None and mine[0] and theirs[0] and mine[0] != theirs[0] and \
                    {mine[0], theirs[0]} != {"number", "integer"}:
                self.error(here, f"'{name}' is {_a(mine[0])} but {other_alias}.{other_field} is "
                           f"{_a(theirs[0])}; they can never be equal")
                ok = False
                continue
            out.append(Correlation(
                field=str(name), other_alias=other_alias, other_field=other_field,
                envelope=bool(mine and mine[1]), other_envelope=theirs[1],
            ))
        return tuple(out) if ok else None

    # -- where --------------------------------------------------------------------------------

    def where(self, value: Any, path: tuple, event_type: str, mode: str = "all") \
            -> Condition | None:
        if not isinstance(value, Mapping):
            self.error(path, f"`where` must be a mapping of field tests (field: value), not "
                       f"{_describe(value)}")
            return None
        if not value:
            self.error(path, "`where` is empty; remove it or add a field test")
            return None
        items: list[FieldTest | Condition] = []
        ok = True
        for name, test in value.items():
            here = path + (name,)
            if name in ("all", "any"):
                if not isinstance(test, list) or not test:
                    self.error(here, f"`{name}` must be a list of field tests (- field: value)")
                    ok = False
                    continue
                group: list[FieldTest | Condition] = []
                for i, sub in enumerate(test):
                    parsed = self.where(sub, here + (i,), event_type)
                    if parsed is None:
                        ok = False
                    else:
                        group.extend(parsed.items if len(parsed.items) == 1 else (parsed,))
                if ok:
                    items.append(Condition(name, tuple(group)))
                continue
            if not isinstance(name, str) or not _FIELD.match(name):
                self.error(here, f"{_describe(name)} is not a field name")
                ok = False
                continue
            found = self.field_type(event_type, name)
            if found is None:
                self.unknown_field(here, event_type, name)
                ok = False
                continue
            tests = self.field_tests(name, test, here, found)
            if tests is None:
                ok = False
            else:
                items.extend(tests)
        return Condition(mode, tuple(items)) if ok else None

    def field_tests(
        self, name: str, test: Any, path: tuple, found: tuple[str | None, bool]
    ) -> list[FieldTest] | None:
        json_type, envelope = found
        line = self.loc.key_line(path)
        if test is None:
            self.error(path, f"no test given for '{name}'; write `{name}: {{empty: true}}` to "
                       "require it to be missing or blank")
            return None
        if isinstance(test, list):
            self.error(path, f"a list is not a test; write `{name}: {{in: [...]}}` to accept any "
                       "of several values")
            return None
        if not isinstance(test, Mapping):
            if self.check_value(test, json_type, name, "eq", path):
                return [FieldTest(name, "eq", test, json_type, envelope, line)]
            return None
        if not test:
            self.error(path, f"no test given for '{name}'; tests: {', '.join(OPERATORS)}")
            return None
        out: list[FieldTest] = []
        ok = True
        for op, arg in test.items():
            here = path + (op,)
            if op not in OPERATORS:
                self.error(here, f"unknown test '{op}'{_suggest(op, OPERATORS)}; tests: "
                           f"{', '.join(OPERATORS)}")
                ok = False
                continue
            if self.check_op(name, op, arg, json_type, here):
                out.append(FieldTest(name, op, list(arg) if isinstance(arg, list) else arg,
                                     json_type, envelope, self.loc.key_line(here)))
            else:
                ok = False
        return out if ok else None

    def check_op(self, name: str, op: str, arg: Any, json_type: str | None, path: tuple) -> bool:
        kind = json_type or "sub-field"
        if op in ("empty", "exists"):
            if not isinstance(arg, bool):
                self.error(path, f"`{op}` takes true or false, not {_describe(arg)}")
                return False
            return True
        if json_type in ("object", "array"):
            self.error(path, f"'{name}' is {_a(json_type)} field; only `exists` and `empty` can "
                       "test it (or test one of its sub-fields, e.g. location.ward)")
            return False
        if op in ("gt", "gte", "lt", "lte") and json_type not in _ORDERED_TYPES:
            self.error(path, f"`{op}` cannot be used on the {kind} field '{name}'; use "
                       "eq: true or eq: false")
            return False
        if op == "matches":
            if json_type not in ("string", None):
                self.error(path, f"`matches` tests text, and '{name}' is {_a(kind)} field")
                return False
            if not isinstance(arg, str):
                self.error(path, f"`matches` needs a pattern in quotes, not {_describe(arg)}")
                return False
            why = regex_problem(arg)
            if why:
                self.error(path, why)
                return False
            return True
        if op in ("in", "not_in"):
            if not isinstance(arg, list) or not arg:
                self.error(path, f"`{op}` needs a list of values, e.g. [a, b]")
                return False
            return all([self.check_value(v, json_type, name, op, path + (i,))
                        for i, v in enumerate(arg)])
        return self.check_value(arg, json_type, name, op, path)

    def check_value(self, value: Any, json_type: str | None, name: str, op: str,
                    path: tuple) -> bool:
        if isinstance(value, (_dt.date, _dt.datetime)):
            self.error(path, "dates and times must be written in quotes, e.g. \"2025-07-01\"")
            return False
        if value is None:
            self.error(path, f"`{op}` needs a value; to test for a missing value use "
                       "`empty: true` or `exists: false`")
            return False
        if json_type in ("object", "array"):
            self.error(path, f"'{name}' is {_a(json_type)} field; only `exists` and `empty` can "
                       "test it (or test one of its sub-fields, e.g. location.ward)")
            return False
        if isinstance(value, (Mapping, list)):
            self.error(path, f"`{op}` needs a single value, not {_describe(value)}")
            return False
        if not _fits(value, json_type, ordered=op in ("gt", "gte", "lt", "lte")):
            hint = ""
            if json_type == "string" and isinstance(value, (int, float, bool)):
                hint = f'; write it in quotes: "{_as_text(value)}"'
            self.error(path, f"'{name}' is {_a(json_type)} field, so `{op}` needs {_a(json_type)}, "
                       f"not {_describe(value)}{hint}")
            return False
        return True

    # -- then ---------------------------------------------------------------------------------

    def then(self, value: Any, path: tuple, aliases: Mapping[str, tuple] | None) \
            -> Action | None:
        if value is None:
            value = {}  # `then:` left empty: only start the process, with no data
        checked = self.mapping(value, path, "`then`", THEN_KEYS)
        if checked is None:
            return None
        ok = not any(k not in THEN_KEYS for k in checked)
        open_kind = checked.get("open")
        if open_kind is not None and open_kind not in OPEN_KINDS:
            self.error(path + ("open",), f"`open` is one of {', '.join(OPEN_KINDS)}, not "
                       f"{_describe(open_kind)}{_suggest(open_kind, OPEN_KINDS)}")
            ok = False
        if "open" in checked and open_kind is None:
            self.error(path + ("open",), "`open` is empty; write violation or incident, or "
                       "remove it to only start the process")
            ok = False
        severity = checked.get("severity")
        if isinstance(severity, Mapping):
            severity = self.severity_bands(severity, path + ("severity",), aliases)
            ok = ok and severity is not None
        elif "severity" in checked and severity not in SEVERITIES:
            self.error(path + ("severity",), f"`severity` is one of {', '.join(SEVERITIES)} "
                       f"(or bands of a number: {{by: event.aqi, bands: {{0: low, 151: high}}}}),"
                       f" not {_describe(severity)}{_suggest(severity, SEVERITIES)}")
            ok = False
        notices: list[Notice] = []
        if "notify" in checked:
            items = checked["notify"]
            single = isinstance(items, Mapping)
            items = [items] if single else items
            if not isinstance(items, list) or not items:
                self.error(path + ("notify",), "`notify` is a list like - {to: so-khoa-hoc-"
                           "cong-nghe, text: ...}")
                ok = False
                items = []
            for i, item in enumerate(items):
                where = path + ("notify",) if single else path + ("notify", i)
                notice = self.notice(item, where, aliases)
                ok = ok and notice is not None
                if notice is not None:
                    notices.append(notice)
        title: dict[str, str] = {}
        if "title" in checked:
            before = len(self.problems)
            title = self.text(checked["title"], path + ("title",), "title", True, aliases)
            ok = ok and len(self.problems) == before
        elif open_kind in OPEN_KINDS:
            self.error(path, f"`then` opens {_a(open_kind)}, so it needs a `title`")
            ok = False
        subject = checked.get("subject")
        if subject is not None:
            if not isinstance(subject, str):
                self.error(path + ("subject",), f"`subject` must be text (a template like "
                           f"\"{{event.dossier_id}}\"), not {_describe(subject)}")
                ok = False
            else:
                before = len(self.problems)
                self.template(subject, path + ("subject",), aliases)
                ok = ok and len(self.problems) == before
        data = checked.get("data") or {}
        if not isinstance(data, Mapping):
            self.error(path + ("data",), f"`data` must be a mapping (name: value), not "
                       f"{_describe(data)}")
            ok = False
            data = {}
        before = len(self.problems)
        for name, template in data.items():
            if not isinstance(name, str) or not DATA_NAME.match(name):
                self.error(path + ("data", name), f"{_describe(name)} is not a data name; use "
                           "letters, digits and '_' (e.g. dossier_id)")
                continue
            self.template(template, path + ("data", name), aliases)
        ok = ok and len(self.problems) == before
        if not ok:
            return None
        return Action(open=open_kind, severity=severity, title=title, subject=subject,
                      data=dict(data), notify=tuple(notices))

    def severity_bands(self, value: Mapping, path: tuple, aliases) -> SeverityBands | None:
        """`severity: {by: event.aqi, bands: {0: low, 101: medium, 151: high, 201: critical}}`."""
        checked = self.mapping(value, path, "`severity`", ("by", "bands"), ("by", "bands"))
        if checked is None or set(checked) != {"by", "bands"}:
            return None
        by = checked["by"]
        before = len(self.problems)
        m = _PLACEHOLDER.match(by) if isinstance(by, str) else None
        if m is None:
            self.error(path + ("by",), f"`by` is a number field written alias.field (e.g. "
                       f"event.aqi), not {_describe(by)}")
        else:
            before_by = len(self.problems)
            self.template("{" + by.strip() + "}", path + ("by",), aliases)
            types = [t for t in (aliases or {}).get(m.group(1), ()) if t in self.vocab]
            found = [self.field_type(t, m.group(2)) for t in types]
            kinds = {f[0] for f in found if f}
            if len(self.problems) == before_by and kinds and \
                    not kinds & {"number", "integer", None}:
                self.error(path + ("by",), f"`by` must be a number field; '{m.group(2)}' is "
                           f"{_a(sorted(kinds)[0])} field")
        bands = checked["bands"]
        pairs: list[tuple[float, str]] = []
        if not isinstance(bands, Mapping) or not bands:
            self.error(path + ("bands",), "`bands` maps the lowest value of each band to a "
                       "severity: {0: low, 151: high}")
        else:
            for low, level in bands.items():
                if isinstance(low, bool) or not isinstance(low, (int, float)) or \
                        level not in SEVERITIES:
                    self.error(path + ("bands", low), f"a band is <lowest value>: <"
                               f"{'|'.join(SEVERITIES)}>, not {low!r}: {level!r}")
                    continue
                pairs.append((float(low), level))
        if len(self.problems) != before:
            return None
        return SeverityBands(by.strip(), tuple(sorted(pairs)))

    def notice(self, value: Any, path: tuple, aliases) -> Notice | None:
        """One `notify` item: {to: <department key>, role: department_head, text: ...}."""
        checked = self.mapping(value, path, "a notification", ("to", "role", "text"),
                               ("to", "text"))
        if checked is None or not {"to", "text"} <= set(checked):
            return None
        before = len(self.problems)
        to = checked["to"]
        if not isinstance(to, str) or not RULE_KEY.match(to):
            self.error(path + ("to",), f"`to` is a department key, not {_describe(to)}")
        role = checked.get("role")
        if role is not None and not (isinstance(role, str) and _ALIAS.match(role)):
            self.error(path + ("role",), f"`role` is a role name such as department_head, not "
                       f"{_describe(role)}")
        text = self.text(checked["text"], path + ("text",), "text", True, aliases)
        if len(self.problems) != before or not text:
            return None
        return Notice(to=to, role=role, text=text, line=self.loc.line(path))


def _in_order(group: set[tuple[str, str]], patterns: tuple[Pattern, ...]) \
        -> list[tuple[str, str]]:
    """A group's (alias, field) pairs in pattern order, then by field name."""
    rank = {p.alias: i for i, p in enumerate(patterns)}
    return sorted(group, key=lambda n: (rank.get(n[0], len(rank)), n[1]))


def _raw_aliases(when: Any) -> dict[str, tuple] | None:
    """Aliases → event types as written in `when`, even when parts of it are invalid."""
    if not isinstance(when, Mapping):
        return None
    for mode in ("all", "any"):
        if mode in when:
            if not isinstance(when[mode], list):
                return None
            aliases: dict[str, tuple] = {}
            for item in when[mode]:
                if not isinstance(item, Mapping):
                    continue
                alias = item.get("as", DEFAULT_ALIAS)
                if isinstance(alias, str):
                    aliases[alias] = aliases.get(alias, ()) + (item.get("event"),)
            return aliases
    alias = when.get("as", DEFAULT_ALIAS)
    return {alias: (when.get("event"),)} if isinstance(alias, str) else None


def parse_rules(
    text_or_path: str | os.PathLike, filename: str, vocabulary: Vocabulary
) -> RuleSet:
    """Parse and validate a rules file; raise ScenarioInvalid listing every problem found."""
    data, locator = load_yaml(text_or_path, filename)
    bad_types = [
        (event, name, t) for event, fields in vocabulary.items() for name, t in fields.items()
        if t not in JSON_TYPES
    ]
    if bad_types:
        raise ValueError(f"vocabulary uses unknown JSON types: {bad_types}")
    parser = _Parser(filename, locator, vocabulary)
    ruleset = parser.ruleset(data)
    if parser.problems:
        # In reading order; problems on the same line keep the order they were found in.
        raise ScenarioInvalid(sorted(parser.problems, key=lambda p: p.line or 0))
    return ruleset
