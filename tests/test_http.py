"""Over real HTTP: the server as `ioc serve` runs it, and `ioc events send` with the README's files."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from waitress import create_server

from engine.app import create_app
from engine.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "events"


@pytest.fixture
def server(loaded):
    """The app with its embedded pipeline thread, served by waitress on a free local port."""
    app = create_app(services=loaded, start_runner=True)
    srv = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    loaded.runner.stop()
    thread.join(5)


def _wait_for(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_events_send_and_the_embedded_runner(server, loaded, source):
    from engine.tasks.models import Task
    from engine.violations.models import Violation

    runner = CliRunner()
    args = ["events", "send", "--url", server, "--token", source[1]]
    ok = runner.invoke(main, args + [str(EXAMPLES / "repeated-supplement-request.json")])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["accepted"] == 3
    runner.invoke(main, args + [str(EXAMPLES / "returned-without-reason.json")])
    runner.invoke(main, args + [str(EXAMPLES / "hotline-ticket.json")])

    def settled():
        with loaded.db.read() as s:
            return s.query(Violation).count() == 2 and s.query(Task).count() == 3
    assert _wait_for(settled), "the runner did not process the events"

    resolved = runner.invoke(main, args + ["-"],
                             input=(EXAMPLES / "hotline-resolved.json").read_text())
    assert resolved.exit_code == 0, resolved.output

    def ticket_closed():
        with loaded.db.read() as s:
            return s.query(Task).filter_by(bpmn_id="answer_ticket").one().status == "cancelled"
    assert _wait_for(ticket_closed)

    bad = runner.invoke(main, args + ["-"], input='{"specversion": "1.0"}')
    assert bad.exit_code == 1
    assert "is required" in bad.output


def test_events_send_without_a_token_or_server(tmp_path):
    runner = CliRunner()
    no_token = runner.invoke(main, ["events", "send", str(EXAMPLES / "hotline-ticket.json")],
                             env={"IOC_SOURCE_TOKEN": ""})
    assert no_token.exit_code != 0 and "token" in no_token.output
    down = runner.invoke(main, ["events", "send", "--url", "http://127.0.0.1:9", "--token", "x",
                                str(EXAMPLES / "hotline-ticket.json")])
    assert down.exit_code != 0 and "cannot reach" in down.output
