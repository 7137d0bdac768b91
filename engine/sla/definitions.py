"""The scenario's SLA file (sla.yaml): what each SLA measures, its target and its escalation chain.

    slas:
      - key: apology
        name: {vi: "Gửi thư xin lỗi, hẹn lại ngày trả", en: "Apology letter with a new date"}
        measures: task                 # task | instance
        task: issue_apology            # the user task measured (measures: task), or a list
        until: completed               # task: completed (default) | claimed (acknowledged)
        target: {working_days: 1}      # or wall time: 4h, 30m
        pause_while: [wait_citizen]    # BPMN elements where the instance waits with the clock stopped
        levels:
          - {at: 50%, notify: assignee}
          - {at: 100%, escalate: head}             # the head of the task's department
          - {at: 200%, escalate: van-phong-ubnd}   # a department: its heads see the task
          - at: 300%
            reassign: van-phong-ubnd
            text:                      # optional: the message; placeholders in PLACEHOLDERS
              vi: "{name} – {subject}: đã dùng {used} / {target}, hạn {due}"
              en: "{name} – {subject}: {used} of {target} used, due {due}"

An instance SLA starts when the instance starts (or when `start_at` completes) and stops when it
ends (or when `stop_at` completes). docs/sla.md is the guide; every problem is reported with its
file and line.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import load_yaml
from engine.worktime.span import Span, SpanError, parse_span

SLA_FILE = "sla.yaml"  # the default name; a manifest may name another with `sla:`
MEASURES = ("task", "instance")
UNTIL = ("completed", "claimed")
ACTIONS = ("notify", "escalate", "reassign")
# Who `notify`/`escalate` may name besides a department key.
ROLES_OF_ITEM = ("assignee", "department", "head")
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
SLA_KEYS = ("key", "name", "measures", "task", "until", "target", "start_at", "stop_at",
            "pause_while", "levels")
# What a level's `text:` may say; sla/service.py fills them in when the level fires.
PLACEHOLDERS = ("name", "subject", "percent", "used", "target", "due")
TEXT_LANGUAGES = ("vi", "en")


@dataclass(frozen=True)
class Level:
    """At `percent` of the target, do `action` ("notify" | "escalate" | "reassign") to `to`."""

    percent: float
    action: str
    to: str  # "assignee" | "department" | "head" | a department key
    # The message by language ({vi: ..., en: ...}) with PLACEHOLDERS; None: the default text.
    text: Mapping[str, str] | None = None

    @property
    def breach(self) -> bool:
        """True from 100 % on: the target is missed."""
        return self.percent >= 100


@dataclass(frozen=True)
class SlaDefinition:
    """One SLA of a scenario."""

    key: str
    name: Mapping[str, str]
    measures: str
    target: Span
    levels: tuple[Level, ...] = ()
    task: str | tuple[str, ...] | None = None  # one user task, or several measured alike
    until: str = "completed"
    start_at: str | None = None
    stop_at: str | None = None
    pause_while: frozenset[str] = field(default_factory=frozenset)

    def measures_task(self, bpmn_id: str) -> bool:
        """Whether this SLA measures the user task `bpmn_id` (measures: task)."""
        return bpmn_id == self.task if isinstance(self.task, str) else bpmn_id in (self.task or ())


def parse_slas(text: str, filename: str, elements: Mapping[str, str] | None = None,
               departments: set[str] | None = None) -> tuple[SlaDefinition, ...]:
    """Parse sla.yaml; with the process's elements (id → tag) and departments, check names too."""
    data, loc = load_yaml(text, filename)
    problems: list[Problem] = []

    def bad(path: tuple, message: str) -> None:
        problems.append(loc.problem(message, path))

    if not isinstance(data, Mapping) or not isinstance(data.get("slas"), list):
        raise ScenarioInvalid([Problem(filename, "the file needs `slas:` with a list of SLAs", 1)])
    for key in data:
        if key != "slas":
            bad((key,), f"unknown key '{key}'; the file has only `slas:`")
    out: list[SlaDefinition] = []
    seen: set[str] = set()
    for i, item in enumerate(data["slas"]):
        path = ("slas", i)
        if not isinstance(item, Mapping):
            bad(path, "an SLA is a mapping (key:, measures:, target:, levels:)")
            continue
        sla = _one(item, path, bad, elements, departments)
        if sla is not None:
            if sla.key in seen:
                bad(path + ("key",), f"SLA key '{sla.key}' is used twice")
                continue
            seen.add(sla.key)
            out.append(sla)
    if problems:
        raise ScenarioInvalid(sorted(problems, key=lambda p: p.line or 0))
    return tuple(out)


def _one(item: Mapping, path: tuple, bad, elements: Mapping[str, str] | None,
         departments: set[str] | None) -> SlaDefinition | None:
    ok = True
    for key in item:
        if key not in SLA_KEYS:
            bad(path + (key,), f"unknown key '{key}'; allowed: {', '.join(SLA_KEYS)}")
            ok = False
    for key in ("key", "measures", "target", "levels"):
        if key not in item:
            bad(path, f"an SLA needs `{key}`")
            ok = False
    key = item.get("key")
    if "key" in item and not (isinstance(key, str) and _KEY.match(key)):
        bad(path + ("key",), "an SLA key uses a-z, 0-9 and '-' (e.g. resolution)")
        ok = False
    name = item.get("name") or {}
    if isinstance(name, str):
        name = {"vi": name}
    if not isinstance(name, Mapping):
        bad(path + ("name",), "name is text or {vi: ..., en: ...}")
        ok, name = False, {}
    measures = item.get("measures")
    if "measures" in item and measures not in MEASURES:
        bad(path + ("measures",), f"`measures` is one of {', '.join(MEASURES)}")
        ok = False
    task = item.get("task")
    if measures == "task":
        users = sorted(k for k, v in (elements or {}).items() if v == "userTask")
        if "task" not in item:
            bad(path, "`measures: task` needs `task:`, the user task measured"
                + (f" (one of: {', '.join(users)})" if users else ""))
            ok = False
        else:
            # Several tasks measured alike (a playbook's orders) are listed: [order_a, order_b].
            named = task if isinstance(task, list) and task else [task]
            for measured in named:
                if not isinstance(measured, str) or (elements is not None
                                                     and elements.get(measured) != "userTask"):
                    bad(path + ("task",), f"`task` names a user task of the process "
                        f"({', '.join(users)}), not {measured!r}")
                    ok = False
            task = tuple(named) if isinstance(task, list) else task
    elif "task" in item:
        bad(path + ("task",), "`task` is only for `measures: task`")
        ok = False
    until = item.get("until", "completed")
    if "until" in item and measures != "task":
        bad(path + ("until",), f"`until` ({', '.join(UNTIL)}) is only for `measures: task`")
        ok = False
    elif until not in UNTIL:
        bad(path + ("until",), f"`until` is {' or '.join(UNTIL)}, not {until!r}")
        ok = False
    for name_key in ("start_at", "stop_at"):
        if name_key in item:
            if measures != "instance":
                bad(path + (name_key,), f"`{name_key}` is only for `measures: instance`")
                ok = False
            elif elements is not None and item[name_key] not in elements:
                bad(path + (name_key,), f"{item[name_key]!r} is not an element of the process")
                ok = False
    pause = item.get("pause_while", [])
    if isinstance(pause, str):
        pause = [pause]
    known = elements if elements is not None else {p: "" for p in pause
                                                   if isinstance(pause, list) and isinstance(p, str)}
    if not isinstance(pause, list) or any(p not in known for p in pause):
        unknown = [p for p in pause if p not in known] if isinstance(pause, list) else pause
        names = ", ".join(map(str, unknown)) if isinstance(unknown, list) else repr(unknown)
        bad(path + ("pause_while",), f"`pause_while` lists elements of the process where the "
            f"clock stops; unknown: {names}")
        ok = False
    target = None
    if "target" in item:
        try:
            target = parse_span(item["target"])
            if target.field is not None:
                raise SpanError("an SLA target is a fixed length of time")
        except SpanError as exc:
            bad(path + ("target",), str(exc))
            ok = False
    levels = _levels(item["levels"], path + ("levels",), bad, departments) \
        if "levels" in item else None
    if levels is None:
        ok = False
    if not ok:
        return None
    return SlaDefinition(key=key, name=dict(name), measures=measures, target=target,
                         levels=levels, task=task if measures == "task" else None, until=until,
                         start_at=item.get("start_at"), stop_at=item.get("stop_at"),
                         pause_while=frozenset(pause))


def _levels(value: Any, path: tuple, bad, departments: set[str] | None) \
        -> tuple[Level, ...] | None:
    if not isinstance(value, list) or not value:
        bad(path, "`levels` is a list like - {at: 100%, escalate: head}")
        return None
    out: list[Level] = []
    ok = True
    for i, item in enumerate(value):
        here = path + (i,)
        if not isinstance(item, Mapping) or "at" not in item:
            bad(here, "a level is {at: <percent>, <notify|escalate|reassign>: <who>}")
            ok = False
            continue
        m = _PERCENT.match(str(item["at"])) if isinstance(item["at"], (str, int, float)) else None
        if m is None or isinstance(item["at"], bool):
            hint = f"; write it with a % sign: {item['at']}%" if isinstance(item["at"], (int, float)) \
                and not isinstance(item["at"], bool) else ""
            bad(here + ("at",), f"`at` is a percent of the target, like 75%, not {item['at']!r}"
                f"{hint}")
            ok = False
            continue
        percent = float(m.group(1))
        actions = [a for a in item if a not in ("at", "text")]
        if len(actions) != 1 or actions[0] not in ACTIONS:
            found = " and ".join(map(str, actions)) if actions else "nothing"
            bad(here, f"a level does exactly one of {', '.join(ACTIONS)}; this one has {found}")
            ok = False
            continue
        action, to = actions[0], item[actions[0]]
        allowed = (set() if action == "reassign" else set(ROLES_OF_ITEM)) | (departments or set())
        if not isinstance(to, str) or (departments is not None and to not in allowed) or \
                (action == "reassign" and to in ROLES_OF_ITEM):
            hint = "a department key" if action == "reassign" else \
                "assignee, department, head or a department key"
            bad(here + (action,), f"`{action}` goes to {hint}, not {to!r}")
            ok = False
            continue
        if out and percent <= out[-1].percent:
            bad(here + ("at",), "levels must go up: each `at` above the one before")
            ok = False
            continue
        text = None
        if "text" in item:
            text = _text(item["text"], here + ("text",), bad)
            if text is None:
                ok = False
                continue
        out.append(Level(percent, action, to, text))
    return tuple(out) if ok else None


def _text(value: Any, path: tuple, bad) -> dict[str, str] | None:
    """A level's message: text, or {vi: ..., en: ...}; every placeholder must be known."""
    if isinstance(value, str):
        value = {"vi": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("vi"), str):
        bad(path, "`text` is {vi: \"...\", en: \"...\"} (vi is required), with placeholders "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        return None
    ok = True
    for lang, template in value.items():
        if lang not in TEXT_LANGUAGES:
            bad(path + (lang,), f"unknown language '{lang}'; `text` has {' and '.join(TEXT_LANGUAGES)}")
            ok = False
        elif not isinstance(template, str) or not template.strip():
            bad(path + (lang,), f"`text.{lang}` is a non-empty text")
            ok = False
        elif (problem := template_problem(template)) is not None:
            bad(path + (lang,), problem)
            ok = False
    return {k: v for k, v in value.items()} if ok else None


def template_problem(template: str) -> str | None:
    """What is wrong with a level text's placeholders, or None if it renders."""
    allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return "a '{' or '}' without its pair; write {{ and }} for the characters themselves"
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            # Also refuses {name.attr} and {0}: only the plain names are filled in.
            return f"unknown placeholder {{{name}}}; known: {allowed}"
        if spec or conversion:
            return f"write the placeholder plainly, as {{{name}}} (no ':' or '!')"
    return None


def render_text(template: str, values: Mapping[str, str]) -> str:
    """Fill a checked level text's placeholders."""
    return template.format_map({p: values.get(p, "") for p in PLACEHOLDERS})
