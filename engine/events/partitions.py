"""Partitions: events of one key (a dossier, a ticket, a station) are processed in order, by one
worker at a time; different partitions go in parallel (worker/, docs/operations.md).

The key is the event's subject — what the scenarios correlate on — or, without a subject, the
event's own id (such an event has no order to keep). The partition is fixed when the event is
stored, so adding workers never moves a key.
"""
from __future__ import annotations

import zlib

PARTITIONS = 16


def partition_of(subject: str | None, ce_source: str, ce_id: str) -> int:
    """The partition of an event: a stable hash of its key (crc32: the same in every process)."""
    key = subject if subject else f"{ce_source}\0{ce_id}"
    return zlib.crc32(key.encode("utf-8")) % PARTITIONS
