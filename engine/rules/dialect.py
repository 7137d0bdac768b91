"""The regex dialect of durable-rules' `$mt` test (v2.0.28), as measured on this machine.

What durable-rules' own regex engine does (none of it is documented):
- It matches the WHOLE value; `^` and `$` are ordinary characters, so they never anchor.
- It has no escapes: a backslash is an ordinary character; `\\d`, `\\s`, `\\w`, `\\.` never mean
  what they mean elsewhere. Literal specials go in a class: `[.]`, `[*]`, `[(]`, `[|]`, `[$]`.
- It sees a value's JSON-escaped text: a tab is the two characters `\\t`, a quote `\\"`, a
  backslash `\\\\`. Patterns are JSON-escaped the same way, so a quote in a pattern still works.
- Supported and checked against Python's re.fullmatch on many strings: literals (Unicode too),
  `.`, `[...]`, ASCII ranges, `* + ?`, `{n}`, `{n,m}`, `(...)`, `|`. Numbers are matched
  through their text ("5").
- `[^...]` is unreliable: `.*[^ ].*` silently fails on " a" and "x y", so it is refused (and
  `empty:` does not use regexes at all: see message.py).
- It refuses some patterns when the ruleset is created (error 501: too many states, e.g.
  `.{0,200}`; 507: a `[^x]` next to an explicit `x` at the same point, e.g. `a*[^a]`;
  508: empty), and it CRASHES the process (segfault, double free) on a character class with
  more than about 4,096 characters, e.g. `[à-ỹ]`. So ranges are limited to ASCII here, class
  sizes are capped, and every pattern is test-compiled by durable-rules before it is accepted.
"""
from __future__ import annotations

import json
import re
import threading

import durable_rules_engine

MAX_CLASS_CHARS = 256  # far below the ~4,096 that crash the C core, far above any real use

_probe_lock = threading.Lock()
_probe_count = 0


def _class_problem(pattern: str) -> str | None:
    """Check every [...] class: ASCII-only ranges, a bounded number of characters."""
    total = 0
    i = 0
    while i < len(pattern):
        if pattern[i] != "[":
            i += 1
            continue
        i += 1
        if i < len(pattern) and pattern[i] == "^":
            i += 1
        if i < len(pattern) and pattern[i] == "]":
            return "a character class cannot start with ']'"
        while i < len(pattern) and pattern[i] != "]":
            if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
                low, high = pattern[i], pattern[i + 2]
                if ord(low) > 0x7F or ord(high) > 0x7F:
                    return (
                        f"the range {low}-{high} is not supported: ranges only work between "
                        "ASCII characters (a-z, A-Z, 0-9); list other letters one by one, "
                        "e.g. [aàáảãạ]"
                    )
                total += ord(high) - ord(low) + 1
                i += 3
            else:
                total += 1
                i += 1
        if total > MAX_CLASS_CHARS:
            return f"character classes list too many characters (more than {MAX_CLASS_CHARS})"
        i += 1
    return None


def _durable_error(pattern: str) -> int | None:
    """Error code durable-rules gives when creating a ruleset with this pattern, or None."""
    global _probe_count
    definition = {"r": {"all": [{"m": {"$mt": {"v": pattern}}}]}}
    with _probe_lock:
        _probe_count += 1
        name = f"regex-probe-{_probe_count}"
    try:
        handle = durable_rules_engine.create_ruleset(name, json.dumps(definition,
                                                                      ensure_ascii=False))
    except durable_rules_engine.error as exc:
        found = re.search(r"error code: (\d+)", str(exc))
        return int(found.group(1)) if found else -1
    durable_rules_engine.delete_ruleset(handle)
    return None


_DURABLE_ERRORS = {
    501: "the pattern is too complex for the rule engine (e.g. a long {n,m} repeat); simplify it",
    507: "the rule engine cannot combine [^x] with an explicit x at the same point "
         "(e.g. a*[^a]); rewrite it, e.g. with .*",
    508: "the pattern can match nothing but the empty text; use `empty: true` for that",
}


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used in `matches:` (an inspector-facing message), or None."""
    if pattern == "":
        return "the pattern is empty; to test for a missing or blank value use `empty: true`"
    if "\\" in pattern:
        return (
            "backslashes are not supported in `matches` (the rule engine has no escapes): "
            "write [.] for a literal dot, [0-9] for a digit, [ ] for a space"
        )
    in_class = False
    for i, ch in enumerate(pattern):
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern.startswith("[^", i):
                return (
                    "[^...] (any character except ...) is not reliable in the rule engine; "
                    "list what is allowed instead, e.g. [a-z0-9]"
                )
        elif ch in "^$":
            return (
                f"'{ch}' is not supported: `matches` always tests the whole value; "
                "use .* to allow text before or after"
            )
        elif ch == "(" and pattern.startswith("(?", i):
            return "(?...) groups and flags are not supported"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid pattern: {exc.msg}"
    # Only now may durable see it: the class checks keep patterns that crash it away.
    why = _class_problem(pattern)
    if why:
        return why
    code = _durable_error(pattern)
    if code is not None:
        return _DURABLE_ERRORS.get(code, f"the rule engine refuses this pattern (error {code})")
    return None

