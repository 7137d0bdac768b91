"""The engine assembled from settings: database, vocabulary, process runtime, pipeline, runner."""
from __future__ import annotations

from sqlalchemy.orm.exc import StaleDataError

from engine.auth.models import User
from engine.config import Settings
from engine.db import Database
from engine.events.vocabulary import Vocabulary
from engine.pipeline import Pipeline
from engine.processes.service import ProcessRuntime
from engine.runner import EmbeddedRunner
from engine.tasks import service as tasks


class Services:
    """Everything a request, a CLI command or a worker needs, built once per process."""

    def __init__(self, settings: Settings, db: Database | None = None,
                 vocabulary: Vocabulary | None = None):
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.vocabulary = vocabulary or Vocabulary.load()
        self.runtime = ProcessRuntime(settings.script_timeout_s)
        self.pipeline = Pipeline(self.db, self.vocabulary, self.runtime,
                                 settings.rule_replay_days)
        self.runner: EmbeddedRunner | None = None

    def start_runner(self) -> None:
        """Start processing events in a background thread (embedded mode)."""
        if self.runner is None:
            self.runner = EmbeddedRunner(self.pipeline)
            self.runner.start()

    def wake(self) -> None:
        """Tell the runner that new events are waiting (no-op without a runner)."""
        if self.runner is not None:
            self.runner.wake()

    def complete_task(self, user: User, task_id: int, answers: object):
        """Complete a task in its own transaction, retrying if its instance moved meanwhile."""
        for attempt in range(3):
            try:
                with self.db.session() as s:
                    return tasks.complete(s, self.runtime, user, task_id, answers)
            except StaleDataError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
