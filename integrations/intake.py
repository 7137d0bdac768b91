"""What every adapter shares: build CloudEvents, then store and answer like /api/v1/events.

Adapters authenticate with `engine.api.require_source` (token, optional HMAC signature, rate
limit), raise `engine.api.ApiProblem` for bad input (answered as problem+json), and hand their
events to `store`/`answer`; input that cannot even become events goes to `refuse`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.events.receiving import answer, refuse, store

__all__ = ["answer", "cloud_event", "refuse", "store"]


def cloud_event(type_: str, id_: str, source: str, data: dict, *, subject: str | None = None,
                time: datetime | str | None = None) -> dict:
    """A structured CloudEvent (specversion 1.0) for the event store."""
    event: dict[str, Any] = {"specversion": "1.0", "id": id_, "source": source, "type": type_,
                             "datacontenttype": "application/json", "data": data}
    if subject:
        event["subject"] = subject
    if time is not None:
        event["time"] = time.isoformat() if isinstance(time, datetime) else time
    return event
