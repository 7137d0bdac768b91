"""Read a YAML scenario file into plain Python values and remember the line of every value.

Inspectors write the files by hand, so every problem we report must name a line. PyYAML's
`safe_load` forgets where values came from; here the document is composed into nodes first
(which keep their marks), constructed with the safe constructor, and the node tree is walked to
record one line per path, e.g. ("rules", 0, "when", "where", "reason").

Text in, values out: `load_yaml(text_or_path, filename)`. A `str` is always YAML text; a
`pathlib.Path` (any `os.PathLike`) is read as UTF-8. Syntax errors and duplicate mapping keys
raise `ScenarioInvalid`; anything about the meaning of the values is the caller's business.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import yaml

from engine.scenarios.problems import Problem, ScenarioInvalid

Path = tuple  # a path of mapping keys (str) and sequence indexes (int)

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")  # "location.ward" reads as written


def format_path(path: Path) -> str:
    """Format a path tuple as "rules[0].when.where.reason" (odd keys quoted: data["a b"])."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{str(part)!r}]".replace("'", '"'))
    return "".join(out)


@dataclass
class Locator:
    """Lines (1-based) of the values and keys found in one YAML document."""

    file: str
    _value_lines: dict[Path, int] = field(default_factory=dict)
    _key_lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """Line where the value at `path` starts, or None when there is no such value."""
        return self._value_lines.get(tuple(path))

    def key_line(self, path: Path) -> int | None:
        """Line of the mapping key that holds `path`; for sequence items, the item's line."""
        path = tuple(path)
        return self._key_lines.get(path, self._value_lines.get(path))

    def nearest(self, path: Path) -> int | None:
        """Line of `path`, or of its closest ancestor that exists (for missing keys)."""
        path = tuple(path)
        while True:
            found = self.key_line(path)
            if found is not None or not path:
                return found
            path = path[:-1]

    def problem(self, message: str, path: Path) -> Problem:
        """A Problem at `path`, with the line of its key (or closest ancestor)."""
        return Problem(self.file, message, self.nearest(path), format_path(path))


def _read(text_or_path: str | os.PathLike, filename: str) -> str:
    if isinstance(text_or_path, os.PathLike):
        try:
            with open(text_or_path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise ScenarioInvalid([Problem(filename, f"cannot read the file: {exc.strerror}")])
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ScenarioInvalid(
                [Problem(filename, "the file is not UTF-8 text; save it as UTF-8", line)]
            )
    if isinstance(text_or_path, str):
        return text_or_path
    raise TypeError(f"expected YAML text (str) or a path, got {type(text_or_path).__name__}")


def _syntax_problem(exc: yaml.YAMLError, filename: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    return Problem(filename, message, line)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 1_000_000  # aliases can make a tiny file expand enormously; refuse, don't hang


class _Walker:
    """Visits the node tree once for duplicate keys and once (after construction) for lines."""

    def __init__(self, loader: yaml.SafeLoader, locator: Locator):
        self.loader = loader
        self.locator = locator
        self.problems: list[Problem] = []
        self.count = 0

    def key(self, node: yaml.Node) -> Any:
        if node.tag == _MERGE_TAG:
            return "<<"
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.loader.construct_object(node, deep=True)
            except yaml.YAMLError:
                return node.value  # an odd tag; construct_document reports it properly
        return f"<{node.id} at line {node.start_mark.line + 1}>"

    def _children(self, node: yaml.Node, path: Path, stack: set[int]):
        self.count += 1
        if self.count > _MAX_NODES:
            raise ScenarioInvalid(
                [Problem(self.locator.file, "the document is too large (too many aliases?)")]
            )
        if id(node) in stack:
            return  # a recursive alias (&a [*a]); its first visit already covers it
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                yield key_node, value_node, path + (self.key(key_node),)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                yield None, item, path + (index,)

    def duplicates(self, node: yaml.Node, path: Path = (), stack: frozenset = frozenset()) -> None:
        """Report keys repeated in one mapping (PyYAML would silently keep the last)."""
        seen: dict[Any, int] = {}
        inner = stack | {id(node)}
        for key_node, value_node, child in self._children(node, path, set(stack)):
            if key_node is not None and key_node.tag != _MERGE_TAG:
                line = key_node.start_mark.line + 1
                if child[-1] in seen:
                    self.problems.append(
                        Problem(
                            self.locator.file,
                            f"duplicate key {child[-1]!r} (first at line {seen[child[-1]]}); "
                            "a key may appear only once in a mapping",
                            line,
                            format_path(child),
                        )
                    )
                seen.setdefault(child[-1], line)
            self.duplicates(value_node, child, inner)

    def lines(self, node: yaml.Node, path: Path = (), stack: frozenset = frozenset()) -> None:
        """Record the line of every value and key; merged (<<) entries come first, own last."""
        self.locator._value_lines[path] = node.start_mark.line + 1
        inner = stack | {id(node)}
        for key_node, value_node, child in self._children(node, path, set(stack)):
            if key_node is not None:
                self.locator._key_lines[child] = key_node.start_mark.line + 1
            self.lines(value_node, child, inner)


def load_yaml(text_or_path: str | os.PathLike, filename: str) -> tuple[Any, Locator]:
    """Parse YAML (safe subset) into plain values and a Locator of their lines."""
    text = _read(text_or_path, filename)
    locator = Locator(filename)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML refuses (NUL, other controls)
        line = text[:exc.position].count("\n") + 1 if isinstance(text, str) else None
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else exc.character
        raise ScenarioInvalid([Problem(filename, f"YAML: ký tự không được phép / character "
                                       f"{char} is not allowed in YAML", line)]) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise ScenarioInvalid([_syntax_problem(exc, filename)]) from None
        if node is None:
            return None, locator
        walker = _Walker(loader, locator)
        walker.duplicates(node)
        if walker.problems:
            raise ScenarioInvalid(sorted(walker.problems, key=lambda p: p.line or 0))
        try:
            # Constructing flattens merge keys (<<) in place, so lines are walked afterwards.
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise ScenarioInvalid([_syntax_problem(exc, filename)]) from None
        walker.count = 0
        walker.lines(node)
        return data, locator
    finally:
        loader.dispose()


def as_date(value: Any) -> date:
    """A date as YAML gives it (unquoted, or ISO text); ValueError saying what is wrong."""
    if isinstance(value, datetime):
        raise ValueError(f"{value} has a time; expected a date (YYYY-MM-DD)")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
