"""Correlation rules (`all:` patterns tied by `same:`): which events wait for which, per key.

durable-rules tests each event against each pattern on its own (compile_ruleset makes a part per
pattern, without `same:`). Which events of a key are waiting, and which of them a new event
completes, is kept here as one row of `rule_states` per (scenario version, rule, key), read,
locked and written in the batch's transaction (engine/rules/state.py). So 1, 2 or N workers,
events with or without a subject, a restart between two events, a pair a year apart: every
deployment gives the same matches, nothing is replayed on start, and a worker holds no memory
per open dossier.

A row's state: {"waiting": [[moment, event id, [aliases it fits], [its other keys]], ...]}
(sorted by moment, then id) and, for `repeat: once`, {"done": moment of the match}. A match
gives each alias the earliest event that fits it, so "first" and "second" follow the events'
own times whatever order the workers saw them in. What a further event means is the rule's
`repeat` (format.Join): consume, every, once (docs/rules.md, section 2).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.events.models import Event
from engine.rules.format import Join, Rule
from engine.rules.message import field_value, to_message
from engine.rules.state import RuleStates, StateKey, key_text
from engine.rules.temporal import Detection
from engine.worktime.calendar import WorkingCalendar

log = logging.getLogger(__name__)

# Events one key keeps waiting for their partners; beyond it a new one is not kept (and logged):
# a pattern whose partner never comes must not grow a row without end.
MAX_WAITING = 1000


@dataclass(frozen=True)
class Arrival:
    """An event as a correlation sees it: when it happened, its id, the aliases it fits."""

    at: str  # ISO moment: the event's own time (or when it was received)
    id: int
    aliases: tuple[str, ...]
    elsewhere: tuple[str, ...] = ()  # other keys it waits under (its aliases give other keys)

    def entry(self) -> list:
        """As stored in a row's waiting list."""
        return [self.at, self.id, list(self.aliases), list(self.elsewhere)]

    @classmethod
    def of(cls, entry: list) -> "Arrival":
        """Read back a stored waiting entry."""
        return cls(entry[0], int(entry[1]), tuple(entry[2]), tuple(entry[3]))


def keys_of(rule: Rule, aliases: set[str], message: dict) -> dict[str, tuple[str, ...]]:
    """The keys an event gives as each alias it fits: {key text: aliases}, in pattern order.

    An alias whose key fields are missing (or disagree, when `same:` ties two of its own fields)
    cannot wait: like durable-rules, nothing equals a missing value."""
    out: dict[str, tuple[str, ...]] = {}
    for pattern in rule.patterns:
        if pattern.alias not in aliases:
            continue
        values = []
        for fields in rule.join.key[pattern.alias]:
            found = [field_value(message, name) for name in fields]
            if found[0] is None or any(v != found[0] for v in found[1:]):
                break
            values.append(found[0])
        else:
            key = key_text(values)
            out[key] = out.get(key, ()) + (pattern.alias,)
    return out


def advance(join: Join, order: tuple[str, ...], state: dict, new: Arrival,
            calendar: WorkingCalendar) -> tuple[dict, dict[str, Arrival] | None]:
    """One key's state after `new` came: (new state, the match it completed by alias, or None).

    `order` is the rule's aliases in pattern order. Pure: the same state and event always give
    the same answer, which the dry run and the tests rely on."""
    if join.repeat == "once" and "done" in state:
        done = datetime.fromisoformat(state["done"])
        if join.once_per is None or datetime.fromisoformat(new.at) < join.once_per.after(
                done, calendar):
            return state, None  # matched already: further events of the key mean nothing
        state = {}  # the quiet time is over: the key starts afresh
    waiting = [Arrival.of(e) for e in state.get("waiting", [])]
    if any(w.id == new.id for w in waiting):
        return state, None  # already waiting: an event handled twice changes nothing
    pool = sorted(waiting + [new], key=lambda a: (a.at, a.id))
    match = _assign(order, pool, new)
    if match is None:
        if join.repeat == "every":
            pool = _earliest_each(order, pool)
        elif len(waiting) >= MAX_WAITING:
            log.warning("a correlation key already keeps %d waiting events; event %s is not "
                        "kept", MAX_WAITING, new.id)
            return state, None
        return {"waiting": [a.entry() for a in pool]}, None
    used = {a.id for a in match.values()}
    if join.repeat == "consume":
        left = [a for a in pool if a.id not in used]
        return ({"waiting": [a.entry() for a in left]} if left else {}), match
    if join.repeat == "every":
        return {"waiting": [a.entry() for a in _earliest_each(order, pool)]}, match
    return {"done": max(a.at for a in match.values())}, match


def _assign(order: tuple[str, ...], pool: list[Arrival], new: Arrival) \
        -> dict[str, Arrival] | None:
    """Each alias its own event, the earliest that fits, with `new` among them; or None."""
    # The earliest len(order) events of an alias are enough: other aliases take at most
    # len(order) - 1 of them. `new` is kept in reach, as it must be used.
    fits = {alias: [a for a in pool if alias in a.aliases] for alias in order}
    fits = {alias: [a for i, a in enumerate(found) if i < len(order) or a.id == new.id]
            for alias, found in fits.items()}
    chosen: dict[str, Arrival] = {}

    def place(index: int) -> bool:
        if index == len(order):
            return any(a.id == new.id for a in chosen.values())
        taken = {a.id for a in chosen.values()}
        for candidate in fits[order[index]]:
            if candidate.id in taken:
                continue
            chosen[order[index]] = candidate
            if place(index + 1):
                return True
            del chosen[order[index]]
        return False

    return dict(chosen) if place(0) else None


def _earliest_each(order: tuple[str, ...], pool: list[Arrival]) -> list[Arrival]:
    """Only the earliest event of each alias: what `repeat: every` pairs further events with."""
    kept = {next(a for a in pool if alias in a.aliases).id
            for alias in order if any(alias in a.aliases for a in pool)}
    return [a for a in pool if a.id in kept]


class CorrelationRules:
    """Applies what durable-rules matched of `all:` rules to the waiting events of their keys."""

    def __init__(self, states: RuleStates, calendar: WorkingCalendar):
        self.states, self.calendar = states, calendar

    @staticmethod
    def keys_wanted(version_id: int, rules: tuple[Rule, ...], message: dict) \
            -> Iterator[StateKey]:
        """The keys an event may change (read and locked before its batch)."""
        for rule in rules:
            aliases = {p.alias for p in rule.patterns if p.event == message["t"]}
            for key in keys_of(rule, aliases, message):
                yield version_id, rule.key, key

    def observe(self, session: Session, version_id: int, rule: Rule, aliases: set[str],
                message: dict, moment: datetime) -> Detection | None:
        """An event fitting `aliases` of `rule` came at `moment`: the match it completes."""
        keys = keys_of(rule, aliases, message)
        order = rule.aliases
        waited: list[StateKey] = []  # keys it was left waiting under, before a match took it
        for key, fitting in keys.items():
            ref = (version_id, rule.key, key)
            new = Arrival(moment.isoformat(), int(message["id"]), fitting,
                          tuple(k for k in keys if k != key))
            state, match = advance(rule.join, order, self.states.get(session, ref), new,
                                   self.calendar)
            self.states.put(ref, state)
            if match is None:
                waited.append(ref)
                continue
            if rule.join.repeat != "every":
                # Used: no longer waiting anywhere, here or under another key.
                self._forget(session, version_id, rule, match, waited)
            return self._detection(session, rule, key, match, message)
        return None

    def _forget(self, session: Session, version_id: int, rule: Rule,
                match: dict[str, Arrival], waited: list[StateKey]) -> None:
        refs = set(waited) | {(version_id, rule.key, k) for a in match.values()
                              for k in a.elsewhere}
        used = {a.id for a in match.values()}
        for ref in sorted(refs):
            state = self.states.get(session, ref)
            left = [e for e in state.get("waiting", []) if int(e[1]) not in used]
            if len(left) != len(state.get("waiting", [])):
                self.states.put(ref, {**state, "waiting": left} if left else
                                {k: v for k, v in state.items() if k != "waiting"})

    def _detection(self, session: Session, rule: Rule, key: str, match: dict[str, Arrival],
                   message: dict) -> Detection:
        others = {a.id for a in match.values()} - {int(message["id"])}
        found = {e.id: to_message(e.id, e.type, e.ce_source, e.subject, e.data)
                 for e in session.scalars(select(Event).where(Event.id.in_(others)))} \
            if others else {}
        found[int(message["id"])] = message
        events = {alias: found[a.id] for alias, a in match.items()}
        return Detection(rule.key, events, sorted(found),
                         {"form": "all", "key": key, "repeat": rule.join.repeat})
