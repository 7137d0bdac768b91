"""Prometheus metrics: counts read from the database at scrape time, pass timings in-process.

The database counts are right whatever process did the work (the embedded runner today, Redis
workers later): each scrape runs a few aggregated queries (GROUP BY over indexed columns) in one
read transaction. The two histograms time this process's pipeline and scheduler passes that
did something; `timed` is the hook they are recorded through.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PIPELINE_PASS = Histogram("ioc_pipeline_pass_seconds",
                          "Duration of a pipeline pass (Pipeline.run_once) that handled events",
                          buckets=_BUCKETS, registry=None)
SCHEDULER_PASS = Histogram("ioc_scheduler_pass_seconds",
                           "Duration of a scheduler pass (Scheduler.run_once) that fired timers",
                           buckets=_BUCKETS, registry=None)


def timed(histogram: Histogram) -> Callable:
    """Decorate a pass returning how much it did: its duration is observed when that is > 0."""
    def decorate(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            done = fn(*args, **kwargs)
            if done:
                histogram.observe(time.perf_counter() - start)
            return done
        return wrapper
    return decorate


class DatabaseCollector(Collector):
    """Reads the engine's counts from the database at each scrape."""

    def __init__(self, db):
        self.db = db

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("ioc_metrics_database_up",
                               "1 if the last scrape could read the database, else 0")
        try:
            families = self._read()
        except Exception:  # noqa: BLE001 - a scrape must answer; /readyz names the failure
            log.exception("metrics: could not read the database")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list:
        from sqlalchemy import func, or_, select

        from engine.events.models import FAILED as EVENT_FAILED
        from engine.events.models import PENDING as EVENT_PENDING
        from engine.events.models import Event, Source
        from engine.notify.models import Notification
        from engine.processes.models import ProcessInstance
        from engine.scenarios.models import ScenarioVersion
        from engine.sla.models import BREACHED, SlaClock
        from engine.tasks.models import ACTIVE, Task
        from engine.timers.models import FAILED as TIMER_FAILED
        from engine.timers.models import Timer, is_pending
        from engine.violations.models import RuleMatch

        events = CounterMetricFamily(
            "ioc_events_total", "Events received per source: accepted, duplicate or refused",
            labels=["source", "outcome"])
        pending = GaugeMetricFamily("ioc_events_pending", "Stored events not processed yet")
        failed = GaugeMetricFamily("ioc_events_failed",
                                   "Dead letters: events whose attempts are used up")
        matches = CounterMetricFamily("ioc_rule_matches_total", "Rule matches per scenario",
                                      labels=["scenario"])
        instances = GaugeMetricFamily("ioc_instances_total",
                                      "Process instances per scenario and status",
                                      labels=["scenario", "status"])
        tasks = GaugeMetricFamily("ioc_tasks_open", "Open or claimed tasks per department",
                                  labels=["department"])
        breached = CounterMetricFamily("ioc_sla_breached_total",
                                       "SLA clocks that reached their target, per scenario",
                                       labels=["scenario"])
        timers_pending = GaugeMetricFamily("ioc_timers_pending", "Timers waiting to fire")
        timers_failed = GaugeMetricFamily("ioc_timers_failed", "Timers whose effect failed")
        notifications = GaugeMetricFamily("ioc_notifications",
                                          "Notifications per channel and delivery status",
                                          labels=["channel", "status"])
        with self.db.read() as s:
            for name, accepted, duplicate, refused in s.execute(select(
                    Source.name, Source.accepted_count, Source.duplicate_count,
                    Source.refused_count)):
                events.add_metric([name, "accepted"], accepted or 0)
                events.add_metric([name, "duplicate"], duplicate or 0)
                events.add_metric([name, "refused"], refused or 0)
            by_status = dict(s.execute(select(Event.status, func.count()).where(
                Event.status.in_((EVENT_PENDING, EVENT_FAILED))).group_by(Event.status)).all())
            pending.add_metric([], by_status.get(EVENT_PENDING, 0))
            failed.add_metric([], by_status.get(EVENT_FAILED, 0))
            for key, n in s.execute(select(ScenarioVersion.key, func.count(RuleMatch.id))
                                    .join(RuleMatch, RuleMatch.scenario_version_id ==
                                          ScenarioVersion.id)
                                    .group_by(ScenarioVersion.key)):
                matches.add_metric([key], n)
            for key, status, n in s.execute(select(
                    ProcessInstance.scenario_key, ProcessInstance.status, func.count())
                    .group_by(ProcessInstance.scenario_key, ProcessInstance.status)):
                instances.add_metric([key, status], n)
            for department, n in s.execute(select(Task.department_key, func.count())
                                           .where(Task.status.in_(ACTIVE))
                                           .group_by(Task.department_key)):
                tasks.add_metric([department], n)
            for key, n in s.execute(select(SlaClock.scenario_key, func.count()).where(or_(
                    SlaClock.status == BREACHED, SlaClock.breached_at.is_not(None)))
                    .group_by(SlaClock.scenario_key)):
                breached.add_metric([key], n)
            # Pending through the partial index; failed ones are few (a scan of the rest is not
            # needed: status is compared once per row of a small table or an index).
            timers_pending.add_metric([], s.scalar(select(func.count()).select_from(Timer)
                                                   .where(is_pending())) or 0)
            timers_failed.add_metric([], s.scalar(select(func.count()).select_from(Timer)
                                                  .where(Timer.status == TIMER_FAILED)) or 0)
            for channel, status, n in s.execute(select(
                    Notification.channel, Notification.status, func.count())
                    .group_by(Notification.channel, Notification.status)):
                notifications.add_metric([channel, status], n)
        return [events, pending, failed, matches, instances, tasks, breached, timers_pending,
                timers_failed, notifications]


class QueueCollector(Collector):
    """Redis mode: the job queue's depth and every worker's job durations (kept in Redis)."""

    def __init__(self, connection, queue_name: str):
        self.connection, self.queue_name = connection, queue_name

    def collect(self) -> Iterator:
        from prometheus_client.core import HistogramMetricFamily
        from redis.exceptions import RedisError

        from engine.ops import jobstats as stats

        up = GaugeMetricFamily("ioc_metrics_redis_up",
                               "1 if the last scrape could read Redis, else 0")
        try:
            depth = self.connection.llen(f"rq:queue:{self.queue_name}")
            buckets, total, _ = stats.read(self.connection, self.queue_name)
        except RedisError:
            log.warning("metrics: could not read Redis", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queued = GaugeMetricFamily("ioc_queue_jobs", "Partition jobs waiting on the rq queue",
                                   labels=["queue"])
        queued.add_metric([self.queue_name], depth)
        yield queued
        jobs = HistogramMetricFamily("ioc_job_seconds",
                                     "Duration of the workers' partition jobs",
                                     labels=["queue"])
        jobs.add_metric([self.queue_name], buckets, total)
        yield jobs


class CalendarCollector(Collector):
    """How far the working-time calendar's official holidays reach (alert months ahead)."""

    def __init__(self, calendar, clock):
        self.calendar, self.clock = calendar, clock

    def collect(self) -> Iterator:
        now = self.clock.now()
        last = GaugeMetricFamily("ioc_calendar_last_official_year",
                                 "The last year whose holidays come from an official file")
        last.add_metric([], self.calendar.last_official_year or 0)
        yield last
        warning = GaugeMetricFamily(
            "ioc_calendar_warning", "1 when the official holidays end within the warning "
            "months or deadlines already use computed (provisional) years, else 0")
        warning.add_metric([], 1 if self.calendar.coverage_warning(now) else 0)
        yield warning


def registry_for(db, redis=None, queue_name: str = "ioc", calendar=None,
                 clock=None) -> CollectorRegistry:
    """A registry with the database counts of `db`, the queue (Redis mode), the calendar's
    reach and this process's pass timings."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db))
    if calendar is not None:
        registry.register(CalendarCollector(calendar, clock))
    if redis is not None:
        registry.register(QueueCollector(redis, queue_name))
    registry.register(PIPELINE_PASS)
    registry.register(SCHEDULER_PASS)
    return registry


def install(app) -> None:
    """Give `app` its metrics registry (read by GET /metrics)."""
    ioc = app.extensions["ioc"]
    app.extensions["ioc.metrics"] = registry_for(ioc.db, ioc.redis, ioc.settings.queue_name,
                                                 ioc.calendar, ioc.clock)


def exposition(app) -> tuple[bytes, str]:
    """The Prometheus text exposition of `app`'s registry, and its content type."""
    return generate_latest(app.extensions["ioc.metrics"]), CONTENT_TYPE_LATEST
