"""Finding violations and incidents: by kind, status, severity, scenario, subject and period,
newest or oldest first, a page at a time (keyset: after the last id shown), within what the
person may read."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.auth.models import User
from engine.lists import keyset, narrowed
from engine.processes import scope
from engine.violations.models import Violation

PAGE = 50
KINDS, STATUSES = ("violation", "incident"), ("open", "closed")
SEVERITIES = ("low", "medium", "high", "critical")


class SearchError(ValueError):
    """A filter that is not one of its choices; names the field."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Filters:
    """What to look for; empty is "any"."""

    kind: str = ""
    status: str = ""
    severity: str = ""
    scenario: str = ""
    subject: str = ""
    since: date | None = None
    until: date | None = None
    oldest_first: bool = False


def _query(user: User, f: Filters):
    for field, value, choices in (("kind", f.kind, KINDS), ("status", f.status, STATUSES),
                                  ("severity", f.severity, SEVERITIES)):
        if value and value not in choices:
            raise SearchError(field, f"one of {', '.join(choices)}")
    return narrowed(scope.violations(user, select(Violation)),
                    equal=((Violation.kind, f.kind), (Violation.status, f.status),
                           (Violation.severity, f.severity), (Violation.scenario_key, f.scenario)),
                    contains=(Violation.subject, f.subject),
                    period=(Violation.opened_at, f.since, f.until))


def search(session: Session, user: User, filters: Filters, after: int | None = None,
           limit: int = PAGE) -> tuple[list[Violation], int | None, int]:
    """(a page of violations, the `after` of the next page or None, how many match)."""
    return keyset(session, _query(user, filters), Violation.id, after, limit,
                  newest_first=not filters.oldest_first)
