"""A small event vocabulary for the rule tests (event type → field → JSON type), and helpers."""
from __future__ import annotations

import textwrap

import pytest

from engine.rules.format import parse_rules
from engine.scenarios.problems import ScenarioInvalid

DOSSIER = {"dossier_id": "string", "procedure": "string", "unit": "string", "officer": "string"}
VOCABULARY = {
    "dossier.supplement_requested": DOSSIER,
    "dossier.returned": {
        **DOSSIER, "reason": "string", "days_late": "integer", "fee": "number", "urgent": "boolean",
    },
    "hotline.ticket.created": {
        "ticket_id": "string", "category": "string", "ward": "string", "description": "string",
        "location": "object",
    },
}


def rule_with(when: str, then: str = "{}") -> str:
    """One rule `r`: `when` starts on line 4, `then` follows it."""
    return "rules:\n  - key: r\n    when:\n" + textwrap.indent(textwrap.dedent(when), "      ") \
        + f"    then: {then}\n"


def problems_of(text: str, vocabulary=VOCABULARY) -> list[tuple[int | None, str, str]]:
    """(line, path, message) of every problem a rules file has."""
    with pytest.raises(ScenarioInvalid) as info:
        parse_rules(text, "rules.yaml", vocabulary)
    assert all(p.file == "rules.yaml" for p in info.value.problems)
    return [(p.line, p.path, p.message) for p in info.value.problems]


def one_problem(text: str, vocabulary=VOCABULARY) -> tuple[int | None, str, str]:
    """The only problem of a rules file."""
    found = problems_of(text, vocabulary)
    assert len(found) == 1, found
    return found[0]
