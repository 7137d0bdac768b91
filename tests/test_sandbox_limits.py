"""The sandbox's limits hold for single operations, not only between bytecodes (issue 18).

One C-level operation used to run unbounded while holding the GIL in the server: a membership
test over a list of megabyte strings froze it for tens of seconds, `str()` of a huge list grew it
to gigabytes, a format width allocated 2 GB. Scenario code now runs in child processes
(engine/expressions/isolation.py) with a memory limit, and the parent stops waiting (and kills the
child) at the deadline. Each payload of the security review is run here, in a real served app too.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.expressions import ExpressionError, budget, evaluate, execute, isolation
from engine.expressions.sandbox import MAX_SOURCE
from tests.conftest import load_scenarios
from tests.scenario_files import write_scenario
from tests.test_incidents import BROKEN_START

MEMBERSHIP = "x = ('a'*999998+'b') in ['a'*999999]*200000"
FREEZERS = {
    "membership over megabyte strings": MEMBERSHIP,
    "str of a huge list": "n = len(str(['a'*999999]*1000000))",
    "printf width": "s = '%*d' % (2000000000, 1)",
    "printf literal width": "s = '%2000000000d' % 1",
    "f-string width": "s = f'{1:>{2000000000}}'",
    "a loop": "while True:\n    pass",
}


def rss_mb() -> float:
    """This process's resident memory."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize("script", FREEZERS.values(), ids=FREEZERS.keys())
def test_one_operation_is_stopped_and_leaves_nothing_behind(script):
    before = rss_mb()
    data = {"keep": 1}
    with pytest.raises(ExpressionError) as refused:
        execute(script, data, timeout_s=1.0)
    assert "timed out" in refused.value.message or "memory" in refused.value.message
    assert data == {"keep": 1}  # a refused script changes nothing
    assert rss_mb() - before < 64  # what the code allocated stayed in the child
    assert evaluate("x + 1", {"x": 1}) == 2  # the pool goes on with a fresh child


def test_a_result_too_large_to_bring_back_is_refused():
    with pytest.raises(ExpressionError, match="too large"):
        evaluate("'a' * 999999 + 'b' * 999999 + 'c' * 999999 + 'd' * 999999 + 'e' * 999999 + "
                 "'f' * 999999 + 'g' * 999999 + 'h' * 999999 + 'i' * 999999", {})


def test_functions_stay_in_the_server_and_are_called_back():
    seen = []

    def now() -> str:
        seen.append(os.getpid())
        return "2026-03-02T09:00:00+07:00"

    assert evaluate("now()[:10] + '/' + str(x)", {"now": now, "x": 3}) == "2026-03-02/3"
    assert seen == [os.getpid()]
    data = {"n": 1}
    execute("n = n + 1", data)
    assert data == {"n": 2}
    with pytest.raises(ExpressionError, match="ValueError: no"):
        evaluate("fail()", {"fail": lambda: (_ for _ in ()).throw(ValueError("no"))})


def test_a_childs_answer_can_build_plain_values_only():
    """Even code that escaped the evaluator in the child cannot make the server run anything."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        isolation._loads(pickle.dumps(("ok", Evil())))
    value = isolation._loads(pickle.dumps(("ok", {"a": {1, 2}, "b": range(3)})))
    assert value == ("ok", {"a": {1, 2}, "b": range(3)})


def test_a_child_killed_from_outside_is_replaced():
    pool = isolation.pool()
    assert evaluate("1", {}) == 1
    for worker in list(pool._idle):
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(5)
    assert evaluate("2", {}) == 2


def test_a_forked_process_starts_its_own_pool():
    assert evaluate("1", {}) == 1
    parent = isolation.pool()
    pid = os.fork()
    if pid == 0:  # the child: the parent's children and pipes are not its own
        code = 0 if isolation.pool() is not parent and evaluate("40 + 2", {}) == 42 else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert evaluate("3", {}) == 3  # the parent's pool still works


def test_a_budget_bounds_every_evaluation_of_a_run():
    outcomes = []
    with budget(1.5, "this dry run"):
        for _ in range(4):
            try:
                execute("while True:\n    pass", {}, timeout_s=1.0)
            except ExpressionError as exc:
                outcomes.append(exc.message)
    assert "timed out" in outcomes[0]
    assert outcomes[-1] == "this dry run used up its 1.5 s for scenario code"
    assert evaluate("1", {}) == 1  # outside the block, no budget


def test_an_expression_too_long_or_too_deep_is_refused_before_it_runs():
    with pytest.raises(ExpressionError, match="too long"):
        evaluate("1" + "+1" * MAX_SOURCE, {})
    with pytest.raises(ExpressionError, match="too many nested parentheses"):
        evaluate("(" * 5000 + "1" + ")" * 5000, {})
    with pytest.raises(ExpressionError, match="nested too deeply"):
        evaluate("-" * 20000 + "1", {})


# -- the server --------------------------------------------------------------------------------

def test_the_server_answers_while_a_live_event_runs_a_freezing_script(server, loaded, source,
                                                                      tmp_path):
    """A scenario whose script freezes for tens of seconds in one C operation: the served app
    (embedded runner and web in one process, as `ioc serve`) keeps answering /healthz within
    1 s while the event is processed, and the instance fails with a timeout."""
    from engine.events.models import Event
    from engine.processes.models import ProcessInstance

    write_scenario(tmp_path / "v1", "freeze", "hotline.ticket.created",
                   BROKEN_START.replace("{script}", MEMBERSHIP),
                   data='{ward: "{event.ward}"}', subject=None)
    load_scenarios(loaded, str(tmp_path / "v1"))
    latencies: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            began = time.monotonic()
            with urllib.request.urlopen(f"{server}/healthz", timeout=60) as answer:
                assert answer.status == 200
            latencies.append(time.monotonic() - began)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before = rss_mb()
    body = json.dumps({"specversion": "1.0", "id": "freeze-1", "source": "/test/1022",
                       "type": "hotline.ticket.created", "data": {
                           "ticket_id": "1022-777", "category": "environment",
                           "ward": "phuong-di-an", "description": "Khói"}}).encode()
    request = urllib.request.Request(f"{server}/api/v1/events", data=body, headers={
        "Authorization": f"Bearer {source[1]}", "Content-Type": "application/cloudevents+json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 201, 202)
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        with loaded.db.read() as s:
            if s.scalar(select(Event.status).where(Event.ce_id == "freeze-1")) == "processed":
                break
        time.sleep(0.1)
    stop.set()
    watcher.join(60)
    with loaded.db.read() as s:
        instance = s.scalars(select(ProcessInstance).where(
            ProcessInstance.scenario_key == "freeze")).one()
    assert instance.status == "error" and "timed out" in instance.error
    assert len(latencies) >= 10, latencies
    assert max(latencies) < 1.0, f"/healthz took up to {max(latencies):.1f} s"
    assert rss_mb() - before < 200


def test_one_child_answer_is_read_whole():
    """The parent reads a child's answer through the size limit, not past it."""
    assert isolation.MAX_MESSAGE >= 2**20
    payload = isolation.dumps(("ok", "x" * 1000), "the result")
    assert isolation._loads(payload) == ("ok", "x" * 1000)
    with pytest.raises(ExpressionError, match="too large"):
        isolation.dumps(("ok", "x" * (isolation.MAX_MESSAGE + 1)), "the result")
