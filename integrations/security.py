"""Information security — alerts from network and endpoint monitoring.

The format is **Wazuh's alert JSON**, the one its manager writes to `alerts.json` and hands to
integrations, chosen because the province's security operations centre runs Wazuh (open source)
and other tools can be shipped through it. Wazuh (an integration block in `ossec.conf` calling a
small script, or Filebeat/Logstash with an HTTP output) posts each alert, one JSON object, or a
list of them, to `POST /integrations/security/alerts`:

    {"timestamp": "2026-11-27T08:15:02.123+0700", "id": "1732669502.4471203",
     "rule": {"id": "5763", "level": 10, "description": "sshd: brute force trying to get access",
              "groups": ["syslog", "sshd", "authentication_failures"]},
     "agent": {"id": "014", "name": "mc-web-01", "ip": "10.20.4.11",
               "labels": {"unit": "trung-tam-phvhcc"}},
     "data": {"srcip": "203.0.113.45"}, "full_log": "…"}

Mapped to `security.alert`: alert_id = `id` (the same alert sent again is a duplicate),
rule_id = `rule.id`, description = `rule.description`, level = `rule.level` (0–15), severity
from the level (SEVERITY below), category from `rule.groups` (CATEGORIES below), host =
`agent.name`, indicator = `data.srcip`, else `data.url`, else the first hash found (HASH_PATHS),
unit = the agent's label `unit` (`<label key="unit">` in the agent's `ossec.conf`), if any.
The event's time is `timestamp`, which Wazuh writes with a `+0700`-style offset. `full_log` is
not kept: the event carries what scenarios decide on; the log stays in Wazuh.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint

from engine.api import json_body, require_source, services
from engine.org import service as org
from integrations import intake
from integrations import native as feed

bp = Blueprint("security", __name__, url_prefix="/integrations/security")

SOURCE = "/integrations/security/wazuh"
# Wazuh's rule levels (0–15) as severities: the highest level each severity reaches.
SEVERITY = ((6, "low"), (9, "medium"), (12, "high"), (15, "critical"))
# Rule groups → category; the first category with a group in the alert wins, most specific first.
CATEGORIES = (
    ("targeted-attack", {"apt", "targeted"}),
    ("malware", {"malware", "rootcheck", "virustotal"}),
    ("intrusion", {"attack", "ids", "web", "authentication_failures"}),
    ("policy", {"policy", "sca"}),
)
# Where Wazuh puts file hashes: its VirusTotal integration, File Integrity Monitoring, decoders.
HASH_PATHS = (("data", "sha256"), ("data", "sha1"), ("data", "md5"),
              ("data", "virustotal", "source", "sha1"), ("data", "virustotal", "source", "md5"),
              ("syscheck", "sha256_after"), ("syscheck", "sha1_after"), ("syscheck", "md5_after"))
INDICATOR_PATHS = (("data", "srcip"), ("data", "url"), *HASH_PATHS)


def severity(level: int) -> str:
    """The severity of a Wazuh rule level (0–15)."""
    return next(name for top, name in SEVERITY if level <= top)


def category(groups: list[str]) -> str:
    """The category of an alert from its rule's groups; `other` when none is known."""
    present = {g.lower() for g in groups}
    return next((name for name, known in CATEGORIES if present & known), "other")


def _at(alert: dict, path: tuple[str, ...]) -> Any:
    value: Any = alert
    for step in path:
        value = value.get(step) if isinstance(value, dict) else None
    return value


def _part(alert: dict, name: str, problems: feed.Problems, read) -> tuple | None:
    """Read the object `name` with `read(obj, own problems)`; its problems named `name.field`."""
    value = alert.get(name)
    if not isinstance(value, dict):
        problems.append((name, "is required: an object"))
        return None
    own: feed.Problems = []
    out = read(value, own)
    problems.extend((f"{name}.{f}", m) for f, m in own)
    return out


def _rule(rule: dict, problems: feed.Problems) -> tuple:
    rule_id = feed.text_field(rule, "id", problems)
    description = feed.text_field(rule, "description", problems)
    level = rule.get("level")
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 15:
        problems.append(("level", f"is required: a whole number 0–15, not {level!r}"))
    groups = rule.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        problems.append(("groups", "must be a list of group names"))
    return rule_id, description, level, groups


def _agent(agent: dict, problems: feed.Problems, resolve_unit) -> tuple:
    host = feed.text_field(agent, "name", problems, required=False)
    if feed.blank(agent.get("name")):
        problems.append(("name", "is required: the affected host"))
    label = _at(agent, ("labels", "unit"))
    unit = None
    if label is not None:
        unit = resolve_unit(label.strip()) if isinstance(label, str) and label.strip() else None
        if unit is None:
            problems.append(("labels.unit", f"unknown organisation unit {label!r}"))
    return host, unit


def alert_event(alert: Any, resolve_unit) -> tuple[list[dict], feed.Problems, str | None]:
    """One Wazuh alert's security.alert event, or its problems; and its id if known.

    `resolve_unit(key)` gives today's key of an organisation unit, or None.
    """
    problems = feed.not_an_object(alert)
    if problems:
        return [], problems, None
    alert_id = feed.text_field(alert, "id", problems)
    moment = feed.moment_field(alert, "timestamp", problems)
    rule = _part(alert, "rule", problems, _rule)
    agent = _part(alert, "agent", problems, lambda a, own: _agent(a, own, resolve_unit))
    if problems:
        return [], problems, alert_id
    (rule_id, description, level, groups), (host, unit) = rule, agent
    data = {"alert_id": alert_id, "rule_id": rule_id, "description": description,
            "level": level, "severity": severity(level), "category": category(groups),
            "host": host}
    indicator = next((v.strip() for v in (_at(alert, p) for p in INDICATOR_PATHS)
                      if isinstance(v, str) and v.strip()), None)
    if indicator:
        data["indicator"] = indicator
    if unit:
        data["unit"] = unit
    return [intake.cloud_event("security.alert", alert_id, SOURCE, data, subject=host,
                               time=moment)], [], alert_id


@bp.post("/alerts")
@require_source
def alerts():
    """Store Wazuh alerts (one alert object or a list) as security.alert events."""
    items, single = feed.json_items(json_body(), "Wazuh alert")
    batch = feed.Batch(renames={"alert_id": "id", "rule_id": "rule.id", "host": "agent.name",
                           "unit": "agent.labels.unit"})
    with services().db.read() as s:
        cache: dict[str, str | None] = {}

        def resolve(key: str) -> str | None:
            if key not in cache:
                unit = org.resolve(s, key.strip())
                cache[key] = unit.key if unit is not None else None
            return cache[key]

        for index, item in enumerate(items):
            events, problems, alert_id = alert_event(item, resolve)
            batch.take(index, events, problems, alert_id)
    return feed.deliver(batch, single)
