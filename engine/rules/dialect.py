"""The regex dialect of durable-rules' `$mt` test (v2.0.28), as measured on this machine: the
language inspectors write `matches:` in. Matching itself runs in RE2 (patterns.py), because
durable-rules silently misses alternations followed by more text; the limits below keep every
pattern one that both engines read alike.

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
- Its regex compiler recurses per quantified atom: 127 optional atoms in a row (`"a?" * 127`,
  `(ab)?` × 127, `ạ?` × 127; 254 characters) overflow the stack and SEGFAULT the process, where
  126 pass. Patterns are an inspector's text, so no pattern reaches the C core unchecked: here
  its length, its repeats and how deep they nest are bounded far below that, and the test compile
  runs in a child process with limits, whose crash is a refusal, not the server's death.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys

MAX_CLASS_CHARS = 256  # far below the ~4,096 that crash the C core, far above any real use
# Far below the 127 quantified atoms that crash the C core, far above any real pattern (the
# shipped rules use at most 4); a pattern longer than a line is a mistake or an attack.
MAX_PATTERN_CHARS = 200
MAX_QUANTIFIERS = 24
MAX_REPEAT = 50  # {n,m}: m at most this (larger ones make too many states: error 501)
MAX_NESTING = 3  # repeated groups inside repeated groups (an IP address needs 2)
PROBE_TIMEOUT_S = 10
PROBE_MEMORY_BYTES = 512 * 1024 * 1024


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


def _quantifier_problem(pattern: str) -> str | None:
    """Bound what makes the C core's regex compiler recurse: the number of repeats, how deep
    repeated groups nest, and the size of {n,m} repeats (read outside character classes)."""
    count = 0
    # For each open group: the deepest nesting of repeats inside it so far.
    inside: list[int] = [0]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            i = pattern.find("]", i + 2) + 1 or len(pattern)
            continue
        if ch == "(":
            inside.append(0)
        elif ch == ")" and len(inside) > 1:
            depth = inside.pop()
            if pattern[i + 1:i + 2] and pattern[i + 1] in "*+?{":
                depth += 1  # the group itself is repeated
                if depth > MAX_NESTING:
                    return (f"repeats nest {depth} deep (a repeated group inside a repeated "
                            f"group …); at most {MAX_NESTING}: simplify the pattern")
            inside[-1] = max(inside[-1], depth)
        elif ch in "*+?{":
            count += 1
            inside[-1] = max(inside[-1], 1)
            if ch == "{":
                close = pattern.find("}", i)
                bounds = [b for b in pattern[i + 1:close].split(",") if b.strip()]
                if any(b.strip().isdigit() and int(b) > MAX_REPEAT for b in bounds):
                    return f"a {{n,m}} repeat can be at most {MAX_REPEAT}"
                i = close
        i += 1
    if count > MAX_QUANTIFIERS:
        return (f"the pattern has {count} repeats (*, +, ?, {{…}}); at most {MAX_QUANTIFIERS} "
                "are allowed: simplify it, e.g. with .*")
    return None


# Run in a child process: what durable-rules says when creating a ruleset with a pattern. The
# pattern comes on standard input; the answer is the error code, "ok", or nothing (a crash).
_PROBE = """
import json, re, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import durable_rules_engine
pattern = sys.stdin.read()
definition = {"r": {"all": [{"m": {"$mt": {"v": pattern}}}]}}
try:
    handle = durable_rules_engine.create_ruleset("regex-probe", json.dumps(definition,
                                                                          ensure_ascii=False))
except durable_rules_engine.error as exc:
    found = re.search(r"error code: (\\d+)", str(exc))
    print(found.group(1) if found else "-1")
else:
    durable_rules_engine.delete_ruleset(handle)
    print("ok")
"""
CRASHED = -2  # the probe's process died: the C core cannot take this pattern


@functools.lru_cache(maxsize=4096)
def _durable_error(pattern: str) -> int | None:
    """Error code durable-rules gives when creating a ruleset with this pattern, None when it
    takes it, CRASHED when trying killed the (child) process."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, str(PROBE_MEMORY_BYTES)],
                              input=pattern, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, encoding="utf-8")
    except subprocess.TimeoutExpired:
        return CRASHED
    answer = done.stdout.strip()
    if done.returncode != 0 or not answer:
        return CRASHED
    return None if answer == "ok" else int(answer)


_DURABLE_ERRORS = {
    CRASHED: "the rule engine cannot take this pattern (trying it stopped its process); "
             "simplify it",
    501: "the pattern is too complex for the rule engine (e.g. a long {n,m} repeat); simplify it",
    507: "the rule engine cannot combine [^x] with an explicit x at the same point "
         "(e.g. a*[^a]); rewrite it, e.g. with .*",
    508: "the pattern can match nothing but the empty text; use `empty: true` for that",
}


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used in `matches:` (an inspector-facing message), or None."""
    if pattern == "":
        return "the pattern is empty; to test for a missing or blank value use `empty: true`"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS}"
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
    # Only now may durable see it, and only in a child process: the class and repeat checks
    # keep the patterns known to crash it away.
    why = _class_problem(pattern) or _quantifier_problem(pattern)
    if why:
        return why
    code = _durable_error(pattern)
    if code is not None:
        return _DURABLE_ERRORS.get(code, f"the rule engine refuses this pattern (error {code})")
    return None

