"""The HTTP API answers bad input with 4xx, never 5xx: its OpenAPI document describes every route
of /api/v1, /integrations and /open311, and schemathesis fuzzes each operation of that document
against a served app (valid and invalid values, NUL characters, huge numbers, odd media types),
on SQLite and on PostgreSQL. The review's 500s are also sent one by one (test_bad_input.py)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.app import create_app
from integrations import MACHINE_PREFIXES

EXAMPLES = 20  # per operation and phase, beside the coverage phase's boundary values


@pytest.fixture
def tokens(loaded, people, source) -> dict[str, str]:
    """The administrator's token (every user operation) and a source's (events in)."""
    return {"user": people["admin"][1], "source": source[1]}


def test_no_operation_answers_5xx(server, tokens, tmp_path):
    """schemathesis's own runner (its coverage phase sends boundary and invalid values: NUL
    characters, numbers past any integer, wrong types and media types; then random ones), once
    with a source's token for what sources send and once with the administrator's for the rest;
    only a 5xx fails it."""
    sent = r"^/(integrations|open311)/|^/api/v1/events$"
    runs = [("source", ["--include-path-regex", sent, "--include-method", "POST"]),
            ("source", ["--include-path-regex", "^/open311/", "--include-method", "GET"]),
            ("user", ["--exclude-path-regex", r"^/(integrations|open311)/"])]
    found = []
    for who, selection in runs:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "run", f"{server}/api/v1/openapi.json",
             "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
             "--max-examples", str(EXAMPLES), "--generation-deterministic", "--workers", "1",
             "--suppress-health-check", "all",
             "-H", f"Authorization: Bearer {tokens[who]}", "--no-color", *selection],
            capture_output=True, text=True, timeout=1200, cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
        if done.returncode:
            found.append(done.stdout[-6000:] + done.stderr[-2000:])
    assert found == [], "\n\n".join(found)


def _template(rule: str) -> str:
    """A Flask rule as an OpenAPI path: <int:task_id> → {task_id}."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_route_of_the_machine_interfaces_is_described(ioc):
    app = create_app(services=ioc)
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    described = {(method.upper(), path) for path, item in document["paths"].items()
                 for method in item}
    routes = {(method, _template(rule.rule)) for rule in app.url_map.iter_rules()
              if rule.rule.startswith(MACHINE_PREFIXES)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - described == set()
    assert described - routes == set()

