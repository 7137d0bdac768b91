"""How the pages show the engine's data to people: audit actions and their details by name,
units by name, numbers, percentages and moments in Vietnamese format (engine.formats, Babel), a
task's or case's data as labelled lines; Vietnamese first, English beside (the words from the
message catalogue, designer/i18n.py)."""
from __future__ import annotations

from designer.i18n import N_, both, pboth
from engine.auth.permissions import ROLE_NAMES
from engine.formats import moment, number, percent  # noqa: F401 - the pages' number filters

ACTION_NAMES = {
    "instance.started": N_("Process started"),
    "instance.ended": N_("Process ended"),
    "instance.restarted": N_("Process restarted"),
    "rule.matched": N_("Rule matched"),
    "task.created": N_("Task assigned to the unit"),
    "task.claimed": N_("Task claimed"),
    "task.released": N_("Task released"),
    "task.assigned": N_("Task handed to an officer"),
    "task.completed": N_("Task completed"),
    "task.cancelled": N_("Task withdrawn"),
    "task.escalated": N_("Task escalated"),
    "task.reassigned": N_("Task moved to another unit"),
    "task.handed_over": N_("Task handed over after a merger"),
    "task.answer_kept": N_("Answer kept for a retry"),
    "gateway.decided": N_("Branch taken"),
    "message.correlated": N_("Message received"),
    "message.late": N_("Message arrived late"),
    "timer.fired": N_("Timer fired"),
    "timer.failed": N_("Timer failed"),
    "script.ran": N_("Script step ran"),
    "end_event.reached": N_("End reached"),
    "incident.opened": N_("Process incident"),
    "incident.failed_again": N_("Retry failed again"),
    "sla.started": N_("SLA clock started"),
    "sla.paused": N_("SLA clock paused"),
    "sla.resumed": N_("SLA clock resumed"),
    "sla.stopped": N_("SLA clock stopped"),
    "sla.level_reached": N_("SLA level reached"),
    "sla.handed_over": N_("SLA handed over"),
    "notification.queued": N_("Notification queued"),
    "notification.sent": N_("Notification sent"),
    "notification.failed": N_("Notification failed"),
    "violation.closed": N_("Violation closed"),
    "scenario.draft.created": N_("Draft created"),
    "scenario.draft.saved": N_("Draft saved"),
    "scenario.draft.file_deleted": N_("File deleted"),
    "scenario.draft.published": N_("Draft published"),
    "scenario.draft.discarded": N_("Draft discarded"),
    "scenario.published": N_("Published"),
    "scenario.retired": N_("Retired"),
    "auth.login": N_("Logged in"),
    "auth.login_failed": N_("Failed login"),
    "auth.logout": N_("Logged out"),
    "user.created": N_("Account created"),
    "user.role_changed": N_("Role or unit changed"),
    "user.updated": N_("Details changed"),
    "user.activated": N_("Account activated"),
    "user.deactivated": N_("Account deactivated"),
    "user.password_changed": N_("Password changed"),
    "user.token_issued": N_("API token issued"),
    "user.token_revoked": N_("API token revoked"),
    "user.handed_over": N_("Handed over after a merger"),
    "source.created": N_("Source registered"),
    "source.changed": N_("Source changed"),
    "source.token_rotated": N_("Source token rotated"),
    "case.viewed": N_("Case file viewed"),
    "case.exported": N_("Case exported"),
}

# Why a login failed, as the access log says it.
LOGIN_REASONS = {
    "unknown_user": N_("unknown username"),
    "inactive": N_("account deactivated"),
    "no_password": N_("no password set"),
    "wrong_password": N_("wrong password"),
    "throttled": N_("too many attempts: throttled"),
}


def action_name(action: str) -> str:
    """'Vietnamese / English' for an audit action; the action itself when it has no name."""
    return both(ACTION_NAMES[action]) if action in ACTION_NAMES else action


# States of instances, tasks, notifications and incidents.
STATUS_NAMES = {"running": pboth("case", "running"), "completed": pboth("case", "completed"),
                "cancelled": pboth("case", "cancelled"), "error": pboth("case", "error"),
                "open": pboth("task", "open"), "claimed": pboth("task", "claimed"),
                "pending": pboth("notification", "pending"),
                "sent": pboth("notification", "sent"),
                "failed": pboth("notification", "failed"),
                "resolved": pboth("incident", "resolved")}


def status_name(value: str) -> str:
    """A state in Vietnamese and English."""
    return STATUS_NAMES.get(value, value)


EVENT_STATE_NAMES = {"pending": pboth("event", "pending"),
                     "processed": pboth("event", "processed"),
                     "failed": pboth("event", "failed"), "discarded": pboth("event", "discarded")}
SLA_STATUS_NAMES = {"running": pboth("sla", "running"), "paused": pboth("sla", "paused"),
                    "met": pboth("sla", "met"), "breached": pboth("sla", "breached")}
SEVERITY_NAMES = {"low": both("Low"), "medium": both("Medium"), "high": both("High"),
                  "critical": both("Critical")}

# The fields of audit records, as the history tables label them (a case's data is labelled from
# the event vocabulary instead: context_lines).
FIELD_NAMES = {
    "role": both("Role"), "department": both("Unit"), "department_key": both("Unit"),
    "full_name": both("Full name"), "email": both("E-mail"),
    "api_token": both("API token"), "replaced": both("Replaced an earlier one"),
    "fields": both("Changed"), "address": both("Address"), "reason": both("Reason"),
    "via": both("Via"), "allowed_types": both("Event types"),
    "rate_limit_per_minute": both("Per-minute limit"),
    "disabled": both("Disabled"), "signed": both("HMAC signature"),
    "scenario": both("Scenario"), "version": both("Version"), "name": both("Name"),
    "task": both("Step"), "message": both("Message"), "event_id": both("Event"),
    "event_ids": both("Events"), "timers": both("Timers"), "due_at": both("Due"),
    "taken": both("Branch followed"), "answers": both("Answers"),
    "status": both("Status"), "outcome": both("Outcome"), "sla": both("SLA"),
    "elapsed_s": both("Used"), "from": both("From"), "to": both("To"),
    "level": both("Level"), "title": both("Title"), "severity": both("Severity"),
    "rule": both("Rule"), "kind": both("Kind"), "channel": both("Channel"),
    "error": both("Error"), "element": both("Failed step"),
    "resolution": both("Resolution"), "incident": both("Incident"),
}
# Shown elsewhere on the page: the subject of an account page, a case's data (its own box).
ACCOUNT_HIDDEN = ("username", "name")
PROCESS_HIDDEN = ("data", "user_id", "ref", "gateway", "event")
_MOMENTS = ("due_at",)


def _value(field: str, value, unit_name) -> str:
    """One value as people read it: names for roles, units and severities, có/không for yes/no,
    Vietnamese numbers, local times."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return both("yes") if value else both("no")
    if isinstance(value, (int, float)):
        if field == "elapsed_s":
            return number(value / 3600) + " " + both("h")
        return f"#{value}" if field in ("event_id", "incident") else number(value, 2)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_value(key, item, unit_name)}" for key, item in value.items())
    if isinstance(value, list):
        if field in ("event_ids",):
            return ", ".join(f"#{item}" for item in value)
        if field == "fields":
            return ", ".join(FIELD_NAMES.get(name, name) for name in value)
        return ", ".join(_value(field, item, unit_name) for item in value)
    if field == "role" and value in ROLE_NAMES:
        return " / ".join(ROLE_NAMES[value])
    if field in ("department", "department_key", "from", "to"):
        return unit_name(value)  # a unit's name; a username is shown as it is
    if field == "severity" and value in SEVERITY_NAMES:
        return SEVERITY_NAMES[value]
    if field == "reason" and value in LOGIN_REASONS:
        return both(LOGIN_REASONS[value])
    if field in _MOMENTS:
        return local_text(value)
    return str(value)


def local_text(value, style: str = "minute") -> str:
    """A stored (UTC) moment, a datetime or ISO text, on the province's clocks, in a style of
    engine.formats.PATTERNS (the `local` filter); "" for none."""
    return moment(value, style)


def _is_change(field: str, value) -> bool:
    """Whether a detail is a change recorded as [before, after]."""
    if not isinstance(value, list) or len(value) != 2 or field in ("fields", "event_ids",
                                                                    "taken", "timers"):
        return False
    # allowed_types is a list of types when a source is created, a pair of lists when changed.
    return field != "allowed_types" or all(isinstance(v, list) for v in value)


def details_lines(details: dict, unit_name, hidden=ACCOUNT_HIDDEN) -> list[tuple[str, str]]:
    """A record's details as (label, text) lines; a change [before, after] as "before → after";
    the fields in `hidden` left out."""
    lines = []
    for field, value in details.items():
        if field in hidden or field == "task" and details.get("name"):
            continue
        text = (f"{_value(field, value[0], unit_name)} → {_value(field, value[1], unit_name)}"
                if _is_change(field, value) else _value(field, value, unit_name))
        lines.append((FIELD_NAMES.get(field, field), text))
    return lines


def answer_text(field: dict, value) -> str:
    """A task form's answer as people read it: an option's label, có/không, a local date."""
    if value is None or value == "":
        return "—"
    if field.get("type") == "enum":
        return next((o["label"] for o in field.get("options", []) if o["id"] == value),
                    str(value))
    if isinstance(value, bool):
        return both("yes") if value else both("no")
    if field.get("type") == "date" and isinstance(value, str):
        return moment(value, "date")
    if isinstance(value, (int, float)):
        return number(value, 2)
    return str(value)


def event_name(vocabulary, type_name: str) -> str:
    """An event type as its vocabulary describes it ("Trả kết quả / result returned…")."""
    found = vocabulary.get(type_name)
    return found.description if found is not None and found.description else type_name


def field_labels(vocabulary) -> dict[str, list[tuple[str, str, str | None]]]:
    """Every event field of the vocabulary: name → its (label, type, ref) in the types that
    have it, one entry per meaning ("unit" is a processing unit in dossiers, a measurement unit
    in readings)."""
    labels: dict[str, list[tuple[str, str, str | None]]] = {}
    for event_type in vocabulary.types.values():
        for name, spec in event_type.fields.items():
            entry = (spec.description, spec.type, spec.ref)
            known = labels.setdefault(name, [])
            if spec.description and all(ref != spec.ref for _, _, ref in known):
                known.append(entry)
    return labels


def _meaning(key: str, value, labels: dict, unit_name) -> tuple[str, str, str | None]:
    """The label, type and ref of a data field: the organisation unit's meaning when the value
    names a unit, another one when it does not."""
    if key in CASE_FIELDS:
        return CASE_FIELDS[key]
    found = labels.get(key) or [(key.replace("_", " ").capitalize(), "", None)]
    is_unit = isinstance(value, str) and unit_name(value) != value
    return next((entry for entry in found if (entry[2] == "org-unit") == is_unit), found[0])


# A case's own data the scenarios add (not event fields), and what is internal to the engine.
CASE_FIELDS = {
    "violation_type": (both("Violation type"), "string", None),
    "violation_id": (both("Violation"), "integer", None),
    "first_reason": (both("First reason"), "string", None),
    "second_reason": (both("Second reason"), "string", None),
    "ward": (both("Ward"), "string", "org-unit"),
    "severity": (both("Severity"), "string", None),
}
CASE_HIDDEN = {"rule_window", "event_ids"}


def context_lines(context: dict, labels: dict, unit_name) -> list[tuple[str, str]]:
    """A task's or case's data as (label, text) lines: labelled from the event vocabulary, units
    by name, moments local, numbers Vietnamese; the engine's own bookkeeping left out."""
    lines = []
    for key, value in (context or {}).items():
        if key in CASE_HIDDEN or key.startswith("_"):
            continue
        label, kind, ref = _meaning(key, value, labels, unit_name)
        if ref == "org-unit" and isinstance(value, str):
            text = unit_name(value)
        elif kind == "datetime" and isinstance(value, str):
            text = local_text(value)
        elif key == "violation_id" and isinstance(value, int):
            text = f"#{value}"
        else:
            text = _value(key, value, unit_name)
        lines.append((label, text))
    return lines
def actor_name(actor: str) -> str:
    """Who did it, as people read it: a username, the command line, or nobody logged in."""
    kind, _, name = actor.partition(":")
    if kind == "user" and name:
        return name
    if kind == "rule" and name:  # rule:<scenario>/<rule>
        return both("rule") + " " + name.rpartition("/")[2]  # a name reads the same in both
    if kind == "source" and name:
        return both("source") + " " + name
    return both(ACTORS[actor]) if actor in ACTORS else actor


# Who acts when no person does.
ACTORS = {"cli": N_("command line"), "anonymous": N_("not logged in"), "engine": N_("the engine"),
          "scheduler": N_("the scheduler"), "sla": N_("SLA tracking"),
          "org": N_("organisation change"), "demo": N_("the demo")}


# The states of a playbook's orders (engine/playbooks/service.py order_state).
ORDER_STATE_NAMES = {"sent": pboth("order", "sent"), "acknowledged": pboth("order", "acknowledged"),
                     "done": pboth("order", "done"), "overdue": pboth("order", "overdue"),
                     "withdrawn": pboth("order", "withdrawn")}


def elapsed(start, end) -> str:
    """How long from `start` to `end` in hours and minutes ("1 giờ 5 phút / 1 h 5 min")."""
    minutes = max(0, int((end - start).total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    if hours:
        return both("%(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
    return both("%(minutes)s min", minutes=minutes)
