"""Over real HTTP: the server as `ioc serve` runs it, and `ioc events send` with the README's files."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "events"


def _wait_for(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _send_args(server, server_clock, source) -> list[str]:
    """`ioc events send` to the served app, relative times filled in at the app's own now."""
    return ["events", "send", "--url", server, "--token", source[1],
            "--now", server_clock.now().isoformat()]


def test_events_send_and_the_embedded_runner(server, server_clock, loaded, source):
    from engine.tasks.models import Task
    from engine.violations.models import Violation

    runner = CliRunner()
    args = _send_args(server, server_clock, source)
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


def test_the_time_examples_through_the_served_app(server, server_clock, loaded, source):
    """The README's time walkthrough: deadlines already passed fire in the runner's next pass."""
    from engine.notify.models import Notification
    from engine.violations.models import Violation

    runner = CliRunner()
    args = _send_args(server, server_clock, source)
    for name in ("dossier-overdue", "step-held", "air-quality", "hot-topic"):
        sent = runner.invoke(main, args + [str(EXAMPLES / f"{name}.json")])
        assert sent.exit_code == 0, sent.output
    # (The station's silence is counted from when its readings arrive, so it is an hour away.)
    expected = {"not-returned-by-deadline", "step-held-too-long", "pm25-sustained",
                "keyword-spreading"}

    def opened():
        with loaded.db.read() as s:
            return {v.rule_key for v in s.query(Violation)} == expected
    assert _wait_for(opened, timeout=20), "the runner did not fire the rules' timers"
    with loaded.db.read() as s:
        pm25 = s.query(Violation).filter_by(rule_key="pm25-sustained").one()
        assert pm25.severity == "high"  # AQI 162: the "bad" band
        assert s.query(Notification).filter_by(kind="rule.notify").one().department_key == \
            "so-khoa-hoc-cong-nghe"
