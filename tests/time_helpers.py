"""A hand-driven clock around the engine: send events at the clock's time, move time, look."""
from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from engine.auth import service as auth
from engine.clock import ManualClock
from engine.config import Settings
from engine.events import service as events
from engine.notify.models import Notification
from engine.services import Services
from engine.sla.models import SlaClock
from engine.tasks.models import Task
from engine.violations.models import Violation

VN = timezone(timedelta(hours=7))
_ids = itertools.count(1)


def local(text: str) -> datetime:
    """'2026-03-02 09:00' in Asia/Ho_Chi_Minh, as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=VN)


class Drive:
    """The engine on a ManualClock: events at the clock's time, time moved by hand."""

    def __init__(self, db, vocabulary, start: datetime, source_id: int,
                 settings: Settings | None = None):
        self.db, self.vocabulary, self.source_id = db, vocabulary, source_id
        self.settings = replace(settings or Settings(), database_url=db.url)
        self.clock = ManualClock(start)
        self.ioc = self.restart()

    def restart(self) -> Services:
        """A new engine process on the same database (rule state, timers and clocks from it)."""
        self.ioc = Services(self.settings, db=self.db, vocabulary=self.vocabulary,
                            clock=self.clock)
        return self.ioc

    def send(self, type_: str, data: dict, subject: str | None = None) -> None:
        """Store one event stamped with the clock's now, and process what is pending."""
        event = {"specversion": "1.0", "id": f"time-{next(_ids)}", "source": "/test/time",
                 "type": type_, "time": self.clock.now().isoformat(), "data": data}
        if subject:
            event["subject"] = subject
        result = events.ingest(self.db, self.source_id, [event], self.vocabulary, self.clock)
        assert not result.refused, result.refused
        self.ioc.run_pending()

    def at(self, moment: datetime) -> None:
        """Move the clock to `moment` and run everything that became due."""
        self.clock.set(moment)
        self.ioc.run_pending()

    def advance(self, **kwargs: float) -> None:
        """Move the clock forward and run everything that became due."""
        self.clock.advance(**kwargs)
        self.ioc.run_pending()

    def violations(self) -> list[Violation]:
        with self.db.read() as s:
            return list(s.scalars(select(Violation).order_by(Violation.id)))

    def tasks(self, bpmn_id: str | None = None) -> list[Task]:
        with self.db.read() as s:
            query = select(Task).order_by(Task.id)
            if bpmn_id:
                query = query.where(Task.bpmn_id == bpmn_id)
            return list(s.scalars(query))

    def notifications(self, kind: str | None = None) -> list[Notification]:
        with self.db.read() as s:
            query = select(Notification).order_by(Notification.id)
            if kind:
                query = query.where(Notification.kind == kind)
            return list(s.scalars(query))

    def clocks(self, sla_key: str | None = None) -> list[SlaClock]:
        with self.db.read() as s:
            query = select(SlaClock).order_by(SlaClock.id)
            if sla_key:
                query = query.where(SlaClock.sla_key == sla_key)
            return list(s.scalars(query))

    def user(self, username: str, role: str, department: str):
        """Create a user (password "password-123", API token in `user.token`); return it."""
        with self.db.session() as s:
            user, token = auth.create_user(s, username, role, department,
                                           password="password-123", with_token=True)
        user.token = token
        return user

    def ioc_client(self):
        """A test client of the web app and API on this engine (its clock)."""
        from engine.app import create_app

        return create_app(services=self.ioc).test_client()

    def complete(self, user, task_id: int, answers: dict) -> None:
        """Complete a task as `user` and run what follows."""
        self.ioc.complete_task(user, task_id, answers)
        self.ioc.run_pending()

    def claim(self, user, task_id: int) -> None:
        """Claim a task as `user`."""
        from engine.tasks import service as tasks

        with self.db.session() as s:
            tasks.claim(s, user, task_id, self.ioc.runtime)
