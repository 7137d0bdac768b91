"""What every request's input must be before a view reads it (the app factory installs it).

A view checks the meaning of its input; these are the shapes that would otherwise reach the
database or Python's own limits and end in a 500: text with a NUL character (PostgreSQL refuses
it in any string), JSON strings with a lone surrogate (not encodable as UTF-8), JSON with NaN or
Infinity (not JSON), JSON nested deeper than any event needs (Python's recursion limit), and
path ids beyond a database integer. Each is answered 400 naming the parameter or the JSON path
(404 for an id no row can have).
"""
from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1  # PostgreSQL's integer
MAX_JSON_DEPTH = 64
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored as text (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate: not valid Unicode text"
    return None


def json_problem(value: Any) -> str | None:
    """The first place in parsed JSON that cannot be stored, as 'path: why', or None."""
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"{path}: nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, _NotANumber):
            return f"{path}: {item.name} is not a JSON number"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return f"{path}: {problem}"
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem:
                    return f"{path}: a key {problem}"
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return None


class _NotANumber:
    """Where the JSON text said NaN or Infinity (Python's reader takes them; JSON has none)."""

    def __init__(self, name: str):
        self.name = name


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing what cannot be stored (json_problem), NaN and Infinity."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse a request's JSON; ValueError (Flask's 400) names what is wrong."""
        try:
            value = json.loads(s, parse_constant=_NotANumber, **kwargs)
        except RecursionError:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep") from None
        problem = json_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class IdConverter(IntegerConverter):
    """`<int:…>` in routes: ids a database integer can hold, else the route does not match."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _check_parameters() -> None:
    """Query, path and form parameters must be storable text (before any view runs)."""
    if "\x00" in request.path:
        raise BadRequest("the path contains a NUL character")
    fields = list(request.args.items(multi=True))
    if request.mimetype in FORMS:
        # Keep the raw body first: a source's signature is checked on it after the form is read.
        request.get_data(cache=True)
        fields += list(request.form.items(multi=True))
    for name, value in fields:
        problem = text_problem(name) or text_problem(value)
        if problem:
            raise BadRequest(f"parameter {name.replace(chr(0), '?')!r} {problem}")


def install(app: Flask) -> None:
    """Install the checks on `app`; call before the blueprints are registered."""
    app.json = StrictJSONProvider(app)
    app.url_map.converters["int"] = IdConverter
    app.before_request(_check_parameters)
