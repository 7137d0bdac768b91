"""Redis mode (IOC_REDIS_URL set): rq workers drain the event store's partitions, a scheduler
fires timers, delivers the outbox and relays what Redis has not taken yet.

- `queue.py`: the rq queue and how partitions are put on it (each in at most one job, waiting
  or running; a job serves up to eight);
- `jobs.py`: the job, `drain_partitions`: its partitions' pending events, each under its lock,
  batch after batch while they have some ready, taking over the jobs waiting behind it;
- `relay.py`: the transactional outbox relay: pending events in the database → jobs;
- `scheduler.py`: the loop of `ioc scheduler` (timers, SLA levels, notifications, relay);
- job durations go to Redis (engine/ops/jobstats.py), so /metrics of any web process shows them.

The event store is the truth: a job only says "look at partition p". Redis down, a job lost or a
worker killed loses nothing: the events stay pending and the relay enqueues their partition again.
"""
