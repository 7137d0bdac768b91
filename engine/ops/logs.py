"""Log lines as text or JSON, each carrying the event and instance being handled.

`log_context(event_id=…, instance_id=…)` sets ids for the current thread (a contextvar), the
pipeline around each event and the process runtime around each step of an instance; the handler
installed by `configure` adds them to every record emitted meanwhile, whatever the logger.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ioc_context)s: %(message)s"
CONTEXT_FIELDS = ("event_id", "instance_id")

_context: ContextVar[dict] = ContextVar("ioc_log_context", default={})


@contextmanager
def log_context(**fields) -> Iterator[None]:
    """Add `fields` (None values ignored) to every log record emitted inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> dict:
    """The fields of the current log context."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the log context onto each record: as attributes (JSON) and as a text suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get()
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "ioc_context"):
            record.ioc_context = "".join(f" {k}={v}" for k, v in fields.items())
        return True


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    # Extra record attributes (event_id, instance_id, `extra=`) become fields; the text-only
    # suffix and Python 3.12's taskName do not.
    reserved = [*RESERVED_ATTRS, "taskName", "ioc_context"]
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"},
                         reserved_attrs=reserved, json_ensure_ascii=False)


def make_handler(fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `fmt` ("text" or "json") with the context."""
    if fmt not in FORMATS:
        raise ValueError(f"log format is one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler._ioc_ops = True  # type: ignore[attr-defined]  # found again by configure()
    return handler


def configure(fmt: str = "text", level: int | str = logging.WARNING,
              stream: IO[str] | None = None, *, force: bool = False) -> logging.Handler | None:
    """Log to stderr in `fmt` at `level` on the root logger, replacing a handler set here before.

    Like logging.basicConfig, it leaves alone a root logger that already has handlers set up by
    someone else (a test runner, an embedding application) unless `force` is given; it then
    returns None.
    """
    handler = make_handler(fmt, stream)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_ioc_ops", False)]
    if len(ours) != len(root.handlers) and not force:
        return None
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
