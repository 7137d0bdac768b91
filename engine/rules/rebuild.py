"""Fill `rule_states` with the open correlations of an engine that kept them in memory.

Before migration 0010, `all:` rules were joined in each worker's durable-rules memory, rebuilt
on start by replaying the last days of processed events; nothing of them was in the database.
`ioc rules rebuild` does that replay once, into rows: the processed events of the published
`all:` rules' types, in id order, through the same matcher and CorrelationRules the pipeline
uses, with their matches discarded (they were acted on when they happened). A rule that already
has rows is left alone, so running it twice changes nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.events.models import PROCESSED, Event
from engine.rules.compiler import split_part
from engine.rules.message import to_message
from engine.rules.models import RuleState

CHUNK = 1000  # events a transaction: the rows of a chunk are written at its end


def rebuild(pipeline, since: datetime) -> dict[str, int]:
    """Replay processed events received since `since` into the correlation rows of the
    published `all:` rules that have none; {"<scenario>@<version>/<rule>": events read}."""
    with pipeline.db.session() as session:
        pipeline.refresh_rules(session)
        taken = set(session.execute(select(RuleState.scenario_version_id, RuleState.rule_key)
                                    .distinct()).all())
    wanted = {(live.name, live.version_id, rule.key): rule for live in pipeline.live.values()
              for rule in live.rules.rules
              if rule.join is not None and (live.version_id, rule.key) not in taken}
    counts = {f"{name}/{key}": 0 for name, _, key in wanted}
    types = {p.event for rule in wanted.values() for p in rule.patterns}
    if not types:
        return counts
    last = 0
    while True:
        with pipeline.db.session() as session:
            chunk = list(session.scalars(select(Event).where(
                Event.status == PROCESSED, Event.type.in_(types), Event.received_at >= since,
                Event.id > last).order_by(Event.id).limit(CHUNK)))
            for event in chunk:
                _replay(session, pipeline, wanted, counts, event)
            pipeline.states.write(session)
        pipeline.states.discard()
        if len(chunk) < CHUNK:
            return counts
        last = chunk[-1].id


def _replay(session, pipeline, wanted, counts, event: Event) -> None:
    message = to_message(event.id, event.type, event.ce_source, event.subject, event.data)
    parts: dict[str, set[tuple[str, str]]] = {}  # ruleset name → {(rule key, alias)}
    for (name, version_id, key), rule in wanted.items():
        if event.type not in {p.event for p in rule.patterns}:
            continue
        if name not in parts:  # one post a ruleset: it answers for all its rules
            parts[name] = {split_part(m.rule_key) for m in pipeline.matcher.post(name, message)}
        aliases = {alias for rule_key, alias in parts[name] if rule_key == key and alias}
        if aliases:
            pipeline.correlations.observe(session, version_id, rule, aliases, message,
                                          event.time or event.received_at)
            counts[f"{name}/{key}"] += 1
