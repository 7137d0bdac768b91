"""Delivering the outbox: pending notifications go out through their channels, with retries.

(Being written: the channels — e-mail over SMTP, signed webhooks — come with the integrations
work; until then in-app notifications are delivered when stored and nothing else is pending.)
"""
from __future__ import annotations

from engine.clock import Clock
from engine.db import Database


class Outbox:
    """Sends what is due in the outbox; one pass at a time."""

    def __init__(self, db: Database, clock: Clock):
        self.db, self.clock = db, clock

    def run_once(self, limit: int = 50) -> int:
        """Deliver up to `limit` due notifications; return how many were handled."""
        return 0
