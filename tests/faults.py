"""Engine faults on purpose, for the dead-letter tests.

A scenario's own failure is an incident of its instance, never a dead letter (tests/
test_incidents.py); an event becomes a dead letter only when the engine itself fails on it (its
database, a bug). These helpers make the engine fail on chosen events: in this process, or in
the worker processes a test starts (a `sitecustomize` module on their PYTHONPATH).
"""
from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FAULT = "RuntimeError: injected fault: the engine failed on this event"


@contextmanager
def failing_on(pipeline, *keys: str) -> Iterator[None]:
    """Within the block, `pipeline` fails on the events with these CloudEvents ids or
    subjects."""
    original = pipeline._deliver_messages

    def deliver(session, event):
        if event.ce_id in keys or event.subject in keys:
            raise RuntimeError(FAULT.split(": ", 1)[1])
        return original(session, event)

    pipeline._deliver_messages = deliver
    try:
        yield
    finally:
        del pipeline._deliver_messages  # the class's own method again


def failing_processes(folder: Path, *keys: str) -> dict[str, str]:
    """Environment for `ioc` processes that fail on the events with these CloudEvents ids or
    subjects: {"PYTHONPATH": …}."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""\
        # Written by tests/faults.py: engine processes that fail on chosen events.
        from engine.pipeline import Pipeline

        _original = Pipeline._deliver_messages


        def _deliver(self, session, event):
            if event.ce_id in {set(keys)!r} or event.subject in {set(keys)!r}:
                raise RuntimeError({FAULT.split(": ", 1)[1]!r})
            return _original(self, session, event)


        Pipeline._deliver_messages = _deliver
        """), encoding="utf-8")
    return {"PYTHONPATH": str(folder)}
