"""Run compiled rule sets on durable-rules and hand back the matches each posted event completed.

    matcher = RuleMatcher()
    matcher.load("dvc-violations@3", compile_ruleset(ruleset, "dvc-violations@3"))
    for match in matcher.post("dvc-violations@3", to_message(42, "dossier.returned", ...)):
        match.rule_key, match.events["event"]

How durable-rules is driven, and why (all read in durable/engine.py and measured, v2.0.28):
- One durable `Host` per loaded name, holding one durable ruleset *per rule*
  ("<name>/<rule key>"). Within one durable ruleset an event is consumed by the first rule that
  fires on it, so two of our rules matching the same event would otherwise fire only once.
  Dropping the Host and deleting its C rulesets is how a retired version stops matching. The
  session state stays allocated (~90 KB per rule that saw events, plus ~8 KB per event still
  waiting; measured): durable's delete_state would free it but corrupts the heap, so it is not
  called. Unloading is rare (a published version retires); a worker restart reclaims it.
- `Host.__init__` starts two timer threads that call `dispatch()` every 0.2 s; dispatch starts
  pending actions on *its* thread, which would race our post and run matches where we cannot
  return them. Our Host disables them: we use no durable timers, and `Host.post` without a
  callback runs every action the post completed before it returns.
- Only session "0" is used: a durable ruleset holds at most 1,024 sessions, so correlation
  happens inside the one session on the `same:` keys.
- durable refuses a message whose integer `id` is already held by the session (an event still
  waiting in an open correlation) with MessageObservedException; it becomes DuplicateMessage.
  It does NOT recognise an id whose earlier message was already consumed: exactly-once posting
  is the caller's job (the event store's processed marker).

Threads: post to one name from one thread at a time (the pipeline serialises per ruleset); a
lock per name makes a mistake slow rather than corrupting, and load/unload are safe at any time.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine
from durable.engine import Host, MessageNotHandledException, MessageObservedException

from engine.rules.compiler import alias_of, event_types
from engine.rules.message import SESSION
from engine.rules.patterns import PatternTest, marked, take_tests


@dataclass(frozen=True)
class Match:
    """A rule completed by a post, with the events (messages) it matched, by alias."""

    rule_key: str
    events: dict[str, dict] = field(default_factory=dict)


class DuplicateMessage(Exception):
    """A message whose id the rule engine already holds (an event posted twice)."""

    def __init__(self, ruleset: str, message_id: Any, matches: list[Match]):
        self.ruleset = ruleset
        self.message_id = message_id
        # Other rules of the set may still have matched this post: never lose them silently.
        self.matches = matches
        super().__init__(
            f"ruleset {ruleset!r}: message id {message_id!r} is already held by the rule "
            f"engine (posted twice?); {len(matches)} match(es) from other rules attached"
        )


class _Host(Host):
    """A durable Host that runs actions only inside post() and collects matches by rule key."""

    def __init__(self) -> None:
        self.collected: list[Match] = []
        super().__init__()

    def _run(self) -> None:
        # Host would start timer threads that run actions outside post(); see module docstring.
        return None

    def get_action(self, action_name: str):
        """Bind every rule's "run" name to a collector of its matches."""

        def collect(c) -> None:
            # c._m is {durable alias: message}; rules with count/cap give c.m, a list of those.
            batches = [c._m] if c._m is not None else [m._d for m in c.m]
            for batch in batches:
                self.collected.append(
                    Match(action_name, {alias_of(a): msg for a, msg in batch.items()})
                )

        return collect


@dataclass
class _Loaded:
    host: _Host
    rulesets: dict[str, str]  # durable ruleset name → rule key, in definition order
    by_type: dict[str, list[str]]  # event type → durable ruleset names listening to it
    untyped: list[str]  # durable rulesets whose event types could not be read: post always
    tests: list[PatternTest] = field(default_factory=list)  # `matches:`, marked before posts
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class RuleMatcher:
    """Loaded rule sets by name; post() returns the matches each message completed."""

    def __init__(self) -> None:
        self._loaded: dict[str, _Loaded] = {}
        self._registry = threading.Lock()

    def names(self) -> list[str]:
        """Names of the loaded rule sets, sorted."""
        with self._registry:
            return sorted(self._loaded)

    def load(self, name: str, definition: Mapping[str, Any]) -> None:
        """Load a compiled definition under `name` (ValueError if the name is taken)."""
        if not name or "$" in name or "/" in name:
            raise ValueError(f"ruleset name must be non-empty without '$' or '/': {name!r}")
        # `matches:` is RE2's business, not durable's (see patterns.py): its tests read marks.
        # take_tests builds a new definition, so durable-rules (which deletes "run" from what it
        # is given) never touches the caller's.
        definition, tests = take_tests(definition)
        host = _Host()
        rulesets: dict[str, str] = {}
        by_type: dict[str, list[str]] = {}
        untyped: list[str] = []
        try:
            for rule_key, rule in definition.items():
                if not isinstance(rule, Mapping) or rule.get("run") != rule_key:
                    raise ValueError(f"rule {rule_key!r}: expected a compiled rule whose "
                                     "\"run\" is its own key")
                durable_name = f"{name}/{rule_key}"
                types = event_types(rule)
                try:
                    host.set_rulesets({durable_name: {rule_key: rule}})
                except Exception as exc:  # durable raises a bare Exception with an error code
                    raise ValueError(f"rule {rule_key!r} rejected by durable-rules: {exc}") \
                        from exc
                rulesets[durable_name] = rule_key
                if types is None:
                    untyped.append(durable_name)
                for t in types or ():
                    by_type.setdefault(t, []).append(durable_name)
        except BaseException:
            _free(host)
            raise
        loaded = _Loaded(host, rulesets, by_type, untyped, tests)
        with self._registry:
            if name in self._loaded:
                _free(host)
                raise ValueError(f"ruleset {name!r} is already loaded; unload it first")
            self._loaded[name] = loaded

    def unload(self, name: str) -> bool:
        """Stop matching `name` and delete its durable rulesets; False if it was not loaded."""
        with self._registry:
            loaded = self._loaded.pop(name, None)
        if loaded is None:
            return False
        with loaded.lock:
            loaded.closed = True
            _free(loaded.host)
        return True

    def post(self, name: str, message: Mapping[str, Any]) -> list[Match]:
        """Post one message (see to_message); return the matches it completed, in rule order."""
        msg_id = message.get("id")
        if isinstance(msg_id, bool) or not isinstance(msg_id, int):
            raise TypeError(f"message id must be a unique integer (the event's primary key), "
                            f"got {msg_id!r}")
        if message.get("sid", SESSION) != SESSION:
            raise ValueError(f"messages use the single session {SESSION!r}, not a session per key")
        with self._registry:
            loaded = self._loaded.get(name)
        if loaded is None:
            raise KeyError(f"ruleset {name!r} is not loaded")
        targets = loaded.by_type.get(message.get("t"), [])
        if loaded.untyped:
            targets = [n for n in loaded.rulesets if n in targets or n in loaded.untyped]
        matches: list[Match] = []
        duplicate = False
        if loaded.tests:
            message = marked(message, loaded.tests)
        with loaded.lock:
            if loaded.closed:
                raise KeyError(f"ruleset {name!r} is not loaded")
            for durable_name in targets:
                loaded.host.collected = []
                try:
                    loaded.host.post(durable_name, dict(message, sid=SESSION))
                except MessageNotHandledException:
                    pass  # no pattern of this rule accepts the event
                except MessageObservedException:
                    duplicate = True
                matches.extend(loaded.host.collected)
            loaded.host.collected = []
        if duplicate:
            raise DuplicateMessage(name, msg_id, matches)
        return matches


def _free(host: _Host) -> None:
    # Host cannot delete a ruleset, so the C side is deleted here. durable keeps the session's
    # state (~90 KB per rule that saw events, plus ~8 KB per event still waiting, measured), but
    # its delete_state corrupts the heap (crashes under MALLOC_PERTURB_), so that is left.
    for ruleset in list(host._ruleset_list):
        durable_rules_engine.delete_ruleset(ruleset._handle)
    host._ruleset_list.clear()
    host._ruleset_directory.clear()
