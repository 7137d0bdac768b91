"""A playbook's part of its scenario manifest (`kind: playbook` and its `playbook:` section): the
levels a commander chooses from. Its shape is checked by playbook.schema.json, its meaning here."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jsonschema import Draft202012Validator

from engine.scenarios.problems import Problem

PLAYBOOK, RESPONSE = "playbook", "response"
KINDS = (RESPONSE, PLAYBOOK)
SUGGESTION = "suggestion"  # what a playbook's rules open: a card for the commander
# What a run starts with: the start form's answers (engine/playbooks/service.py start).
START_FIELDS = frozenset({"wards", "level", "level_name", "notes", "suggestion_id"})
_VALIDATOR = Draft202012Validator(json.loads(
    (Path(__file__).with_name("playbook.schema.json")).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Level:
    """One level of a playbook (e.g. a natural-disaster risk level)."""

    level: int
    vi: str
    en: str


@dataclass(frozen=True)
class Playbook:
    """What the start form of a playbook offers."""

    levels: tuple[Level, ...]
    whole_area: bool = True
    area: bool = True  # False: the start form asks for no wards (a cyber incident)

    def level(self, value: int) -> Level | None:
        """The level with this number, or None."""
        return next((lv for lv in self.levels if lv.level == value), None)


def is_playbook(manifest: dict) -> bool:
    """Whether a manifest is a playbook's."""
    return isinstance(manifest, dict) and manifest.get("kind") == PLAYBOOK


def of(manifest: dict) -> Playbook | None:
    """The playbook a (checked) manifest describes; None for a response scenario."""
    if not is_playbook(manifest):
        return None
    section = manifest["playbook"]
    area = section.get("area", True)
    return Playbook(tuple(Level(lv["level"], lv["vi"], lv["en"]) for lv in section["levels"]),
                    area and section.get("whole_area", True), area)


def check(manifest: dict, locator, filename: str) -> list[Problem]:
    """The problems of a manifest's kind and playbook section, each with its line."""
    problems: list[Problem] = []
    kind = manifest.get("kind", RESPONSE)
    if kind not in KINDS:
        problems.append(Problem(filename, f"`kind` is one of {', '.join(KINDS)}, not {kind!r}",
                                locator.line(("kind",)), "kind"))
        return problems
    section = manifest.get("playbook")
    if kind == RESPONSE:
        if section is not None:
            problems.append(Problem(filename, "`playbook:` is only for `kind: playbook`",
                                    locator.line(("playbook",)), "playbook"))
        return problems
    if section is None:
        return [Problem(filename, "a playbook needs `playbook:` with its `levels` (e.g. - {level: "
                        "1, vi: Cấp độ 1, en: Level 1})", locator.line(("kind",)), "playbook")]
    for error in sorted(_VALIDATOR.iter_errors(section), key=lambda e: list(e.absolute_path)):
        path = ("playbook", *error.absolute_path)
        problems.append(Problem(filename, error.message, locator.nearest(path),
                                ".".join(str(p) for p in path)))
    if not problems:
        seen: set[int] = set()
        for i, level in enumerate(section["levels"]):
            if level["level"] in seen:
                problems.append(Problem(filename, f"level {level['level']} is listed twice",
                                        locator.line(("playbook", "levels", i)),
                                        f"playbook.levels.{i}"))
            seen.add(level["level"])
    return problems


def rule_problems(manifest: dict, ruleset, filename: str) -> list[Problem]:
    """A playbook is started by a person: its rules only suggest it (`open: suggestion`); a
    response scenario's rules never do."""
    playbook = is_playbook(manifest)
    problems = []
    for rule in ruleset.rules if ruleset else ():
        suggests = rule.then.open == SUGGESTION
        if playbook and not suggests:
            problems.append(Problem(filename, f"rule {rule.key}: a playbook's rules suggest it "
                                    "to the commander: write `open: suggestion` (with a title)",
                                    rule.line, f"rules.{rule.key}.then.open"))
        elif suggests and not playbook:
            problems.append(Problem(filename, f"rule {rule.key}: `open: suggestion` is for "
                                    "playbooks (`kind: playbook` in the manifest)", rule.line,
                                    f"rules.{rule.key}.then.open"))
    return problems
