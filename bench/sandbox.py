"""Benchmark: what running scenario code in child processes costs (engine/expressions/isolation).

    python bench/sandbox.py [--runs 5000]

Ordinary expressions and scripts, as the shipped scenarios write them, evaluated in this process
(the evaluator alone, `sandbox.evaluate_here`) and through the pool of child processes (what the
engine does): per-call latency p50 / p99. Then the first call (a child started), and how long the
freezing payloads of the security review hold the caller before they are stopped.
"""
from __future__ import annotations

import argparse
import statistics
import time

from engine.clock import SYSTEM_CLOCK
from engine.expressions import ExpressionError, evaluate, execute, isolation, sandbox
from engine.worktime.calendar import default_calendar
from engine.worktime.functions import scenario_functions

try:  # run as `python -m bench.sandbox` from the project root
    from bench.load import machine
except ModuleNotFoundError:  # run as `python bench/sandbox.py`
    from load import machine

DATA = {"severity": "high", "category": "environment", "ward": "phuong-di-an", "finding":
        "confirmed", "aqi": 162, "hours_late": 9.5, "readings": [151, 162, 170, 158]}
CASES = [
    ("gateway condition", "eval", 'finding == "confirmed" and severity in ("high", "critical")'),
    ("arithmetic over a list", "eval", "max(readings) > 150 and sum(readings) / len(readings)"),
    ("working-time function", "eval", "add_working_hours(now(), 8)"),
    ("script task", "exec", 'outcome = "escalated" if hours_late > 8 else "ok"\nlevel = aqi // 50'),
]
FREEZERS = ["('a'*999998+'b') in ['a'*999999]*200000", "len(str(['a'*999999]*1000000))",
            "'%*d' % (2000000000, 1)"]


def percentiles(samples: list[float]) -> str:
    """p50 / p99 in microseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e6:7.0f} µs, p99 {p99 * 1e6:7.0f} µs"


def timed(run, runs: int) -> list[float]:
    """Seconds of each of `runs` calls."""
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    args = parser.parse_args()
    print(f"machine: {machine(None)}")
    names = {**scenario_functions(default_calendar(), SYSTEM_CLOCK), **DATA}
    began = time.perf_counter()
    evaluate("1", {})
    print(f"first call (a child process started): {(time.perf_counter() - began) * 1000:.0f} ms")
    for label, mode, src in CASES:
        if mode == "eval":
            here = timed(lambda: sandbox.evaluate_here(src, names), args.runs)
            child = timed(lambda: evaluate(src, names), args.runs)
        else:
            here = timed(lambda: sandbox.run_script_here(src, dict(DATA), 1.0, names), args.runs)
            child = timed(lambda: isolation.run_script(src, dict(DATA), 1.0, names), args.runs)
        print(f"{label:24} in process {percentiles(here)} | in a child {percentiles(child)}")
    for src in FREEZERS:
        began = time.perf_counter()
        try:
            execute(f"x = {src}", {}, timeout_s=1.0)
            outcome = "ran"
        except ExpressionError as exc:
            outcome = exc.message
        print(f"stopped after {time.perf_counter() - began:5.2f} s ({outcome}): {src}")


if __name__ == "__main__":
    main()
