"""A problem found in a scenario file, named by file, line and path, and the error that carries them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a scenario: where it is and what is wrong."""

    file: str
    message: str
    line: int | None = None
    path: str = ""  # e.g. "rules[0].when.where[1]" or a BPMN element id

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path + ': ' if self.path else ''}{self.message}"


class ScenarioInvalid(Exception):
    """Raised when a scenario has problems; carries all of them, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
