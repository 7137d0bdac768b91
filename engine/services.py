"""The engine assembled from settings: database, clock, calendar, runtime, pipeline, scheduler."""
from __future__ import annotations

import hashlib

from engine.audit.publisher import Publisher
from engine.auth.models import User
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Settings
from engine.db import Database, is_transient
from engine.events.vocabulary import Vocabulary
from engine.expressions import isolation
from engine.notify.delivery import Outbox
from engine.org import handover
from engine.pipeline import Pipeline
from engine.processes.service import ProcessRuntime
from engine.rules.temporal import TemporalRules
from engine.runner import EmbeddedRunner
from engine.sla.service import SlaEngine
from engine.tasks import service as tasks
from engine.timers.models import AUDIT, BPMN, ORG, RULE, SLA
from engine.timers.scheduler import Scheduler
from engine.worktime.calendar import WorkingCalendar, load_calendar


class Services:
    """Everything a request, a CLI command or a worker needs, built once per process."""

    def __init__(self, settings: Settings, db: Database | None = None,
                 vocabulary: Vocabulary | None = None, clock: Clock = SYSTEM_CLOCK,
                 calendar: WorkingCalendar | None = None):
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.vocabulary = vocabulary or Vocabulary.load()
        self.clock = clock
        self.calendar = calendar or load_calendar(settings.calendar_dir)
        isolation.configure(settings.sandbox_processes, settings.sandbox_memory_mb)
        self.runtime = ProcessRuntime(settings.script_timeout_s, clock, self.calendar)
        self.sla = SlaEngine(self.calendar, clock, settings.smtp_enabled)
        self.runtime.observers.append(self.sla)
        self.pipeline = Pipeline(self.db, self.vocabulary, self.runtime,
                                 TemporalRules(self.calendar, clock), clock,
                                 settings.event_max_attempts, settings.event_retry_base_s,
                                 settings.event_retry_factor, settings.smtp_enabled)
        self.publisher = Publisher(settings, clock)
        self.scheduler = Scheduler(self.db, clock, {
            BPMN: self.pipeline.fire_process_timer,
            SLA: self.sla.fire,
            RULE: self.pipeline.fire_rule_timer,
            ORG: handover.fire,
            AUDIT: self.publisher.fire,
        })
        self.outbox = Outbox(self.db, clock, settings)
        self.runner: EmbeddedRunner | None = None
        self.redis = self.relay = None
        if settings.redis_url:  # Redis mode: workers process events (worker/)
            from worker.queue import connect, job_queue
            from worker.relay import Relay

            self.redis = connect(settings.redis_url)
            self.relay = Relay(self.db, job_queue(self.redis, settings.queue_name), clock)

    def start_runner(self) -> None:
        """Process events and fire timers in a background thread (embedded mode)."""
        if self.runner is None:
            self.schedule_checkpoints()
            self.runner = EmbeddedRunner(self.pipeline, self.scheduler, self.outbox)
            self.runner.start()

    def schedule_checkpoints(self) -> None:
        """Sign the audit log's checkpoints on the engine's timer from now on (idempotent)."""
        with self.db.session() as s:
            self.publisher.ensure_scheduled(s)

    def export_case(self, instance_id: int, *, actor: str) -> bytes:
        """Xuất hồ sơ: the evidence bundle of one case, its export audited."""
        from engine.audit import checkpoints
        from engine.audit import service as audit
        from engine.cases import bundle

        key = checkpoints.signing_key(self.settings.audit_key_path)
        with self.db.session() as s:
            data = bundle.build(s, self.runtime, self.publisher, key, instance_id, actor=actor,
                                now=self.clock.now().isoformat())
            audit.record(s, "case.exported", actor=actor, subject_type="instance",
                         subject_id=instance_id,
                         details={"sha256": hashlib.sha256(data).hexdigest(),
                                  "bytes": len(data)})
        return data

    def wake(self, partitions: set[int] | None = None) -> None:
        """New events are waiting (in these partitions): wake the embedded runner, or in Redis
        mode enqueue their partitions (all ready ones when not given)."""
        if self.runner is not None:
            self.runner.wake()
        elif self.relay is not None:
            if partitions is None:
                self.relay.scan()
            else:
                self.relay.kick(partitions)

    def run_pending(self) -> tuple[int, int]:
        """Process pending events and fire due timers until nothing is left: (events, timers)."""
        events = timers = 0
        while True:  # a timer's effect may make more work pending, and the other way round
            done, fired = self.pipeline.drain(), self.scheduler.run_due()
            if not done and not fired:
                return events, timers
            events, timers = events + done, timers + fired

    def complete_task(self, user: User, task_id: int, answers: object) -> tasks.Completion:
        """Complete a task in its own transaction, retrying if its instance moved meanwhile."""
        for attempt in range(3):
            try:
                with self.db.session() as s:
                    done = tasks.complete(s, self.runtime, user, task_id, answers)
                self.wake()  # the step may have armed a timer due sooner than the runner's nap
                return done
            except Exception as exc:
                # Its instance moved meanwhile, or PostgreSQL broke a deadlock on this side.
                if attempt == 2 or not is_transient(exc):
                    raise
        raise AssertionError("unreachable")
