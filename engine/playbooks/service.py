"""Running playbooks: a commander starts one with its start form (area, level, notes); a detection
suggests one (a card on the commander's board) that a person starts or dismisses with a reason.
Every decision is audited; a run is a process instance of the playbook's scenario."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.auth.models import User
from engine.notify import service as notify
from engine.org import service as org
from engine.playbooks import definitions
from engine.playbooks.models import DISMISSED, OPEN, STARTED, Suggestion
from engine.processes.models import ProcessInstance
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.tasks.models import Task

AREA_KINDS = ("ward", "commune")  # what an area is made of since July 2025 (no districts)
MAX_NOTES, MAX_REASON = 2000, 1000


class PlaybookError(Exception):
    """A playbook action that cannot be done; `status` is the HTTP status that fits, `errors`
    name the fields ({"field", "message"}), messages in Vietnamese and English."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        self.status, self.message, self.errors = status, message, errors or []
        super().__init__(message)


@dataclass
class StartForm:
    """What a commander fills in to start a playbook."""

    level: int | None = None
    wards: list[str] = field(default_factory=list)
    whole_area: bool = False
    notes: str = ""

    @classmethod
    def from_json(cls, body) -> StartForm:
        """The form from an API body; 400 naming each field of the wrong type."""
        if not isinstance(body, dict):
            raise PlaybookError(400, "the body must be a JSON object",
                                [{"field": "body", "message": "must be a JSON object"}])
        errors = [{"field": name, "message": f"unknown field (known: {', '.join(FIELDS)})"}
                  for name in body if name not in FIELDS]
        level, wards = body.get("level"), body.get("wards", [])
        whole, notes = body.get("whole_area", False), body.get("notes", "")
        if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
            errors.append({"field": "level", "message": "must be a whole number"})
        if not isinstance(wards, list) or not all(isinstance(w, str) for w in wards):
            errors.append({"field": "wards", "message": "must be a list of ward or commune keys"})
        if not isinstance(whole, bool):
            errors.append({"field": "whole_area", "message": "must be true or false"})
        if not isinstance(notes, str):
            errors.append({"field": "notes", "message": "must be text"})
        if errors:
            raise PlaybookError(400, "the start form has fields of the wrong kind", errors)
        return cls(level, list(wards), whole, notes)


FIELDS = ("level", "wards", "whole_area", "notes")


def playbooks(session: Session) -> list[ScenarioVersion]:
    """The published playbooks, by name."""
    versions = session.scalars(select(ScenarioVersion).where(ScenarioVersion.status == PUBLISHED))
    return sorted((v for v in versions if definitions.is_playbook(v.manifest)),
                  key=lambda v: org.vi_sort_key(v.name_vi))


def playbook(session: Session, key: str) -> tuple[ScenarioVersion, definitions.Playbook]:
    """The published version of playbook `key` and its definition; 404 if there is none."""
    version = session.scalars(select(ScenarioVersion).where(
        ScenarioVersion.key == key, ScenarioVersion.status == PUBLISHED)).first()
    if version is None or not definitions.is_playbook(version.manifest):
        raise PlaybookError(404, f"không có kịch bản ứng phó {key!r} / no published playbook "
                            f"{key!r}")
    return version, definitions.of(version.manifest)


def run(session: Session, instance_id: int) -> ProcessInstance:
    """A run of a published playbook by its instance id; 404 if there is none."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None or instance.scenario_key not in {v.key for v in playbooks(session)}:
        raise PlaybookError(404, f"không có lần kích hoạt #{instance_id} / no playbook run "
                                 f"#{instance_id}")
    return instance


def area_units(session: Session, on: date):
    """The wards and communes a run may cover, valid on `on`."""
    return org.units(session, on, kinds=AREA_KINDS)


def _named(session: Session, key: str, on: date) -> str:
    """A key that is not a current area, with what replaced it since (a former district)."""
    now = org.resolve(session, key, on)
    return f"{key} (→ {now.key})" if now is not None and now.key != key else key


def _checked(session: Session, book: definitions.Playbook, form: StartForm,
             on: date) -> tuple[list[str], definitions.Level]:
    """The run's wards and level, or a 422 naming every field that is wrong."""
    errors = []
    level = book.level(form.level) if form.level is not None else None
    if level is None:
        known = ", ".join(str(lv.level) for lv in book.levels)
        errors.append({"field": "level", "message": f"chọn một cấp độ ({known}) / choose one of "
                                                    f"the playbook's levels ({known})"})
    areas = {u.key for u in area_units(session, on)}
    if not book.area:
        if form.wards or form.whole_area:
            errors.append({"field": "wards", "message": "kịch bản này không có vùng / this "
                                                        "playbook has no area: leave it empty"})
        wards = []
    elif form.whole_area:
        if not book.whole_area:
            errors.append({"field": "whole_area", "message": "kịch bản này không áp dụng toàn "
                           "địa bàn / this playbook does not run on the whole area: choose wards"})
        wards = sorted(areas)
    else:
        wards = list(dict.fromkeys(form.wards))  # in the order given, once each
        if not wards:
            errors.append({"field": "wards", "message": "chọn ít nhất một phường, xã (hoặc toàn "
                           "địa bàn) / choose at least one ward or commune (or the whole area)"})
        unknown = [_named(session, w, on) for w in wards if w not in areas]
        if unknown:
            errors.append({"field": "wards", "message": f"không phải phường, xã hiện hành / not "
                           f"a current ward or commune: {', '.join(unknown)}"})
    if len(form.notes) > MAX_NOTES:
        errors.append({"field": "notes", "message": f"tối đa {MAX_NOTES} ký tự / at most "
                                                    f"{MAX_NOTES} characters"})
    if errors:
        raise PlaybookError(422, "the start form is not complete", errors)
    return wards, level


def start(session: Session, runtime, key: str, form: StartForm, *, actor: str, now: datetime,
          suggestion: Suggestion | None = None) -> ProcessInstance:
    """Start a run of playbook `key` with this start form: a process instance whose orders go to
    the chosen wards and the playbook's units; audited as `playbook.started`."""
    version, book = playbook(session, key)
    wards, level = _checked(session, book, form, org.local_time(now).date())
    data = {"wards": wards, "level": level.level, "level_name": f"{level.vi} / {level.en}",
            "notes": form.notes.strip()}
    if suggestion is not None:
        data["suggestion_id"] = suggestion.id
    subject = f"{version.name_vi} – {level.vi}"
    instance = runtime.start(session, version, data, actor=actor, subject=subject[:300],
                             details={"playbook": key, "level": level.level,
                                      "wards": wards, "whole_area": form.whole_area})
    audit.record(session, "playbook.started", actor=actor, subject_type="instance",
                 subject_id=instance.id, instance_id=instance.id,
                 details={"playbook": key, "level": level.level, "wards": wards,
                          **({"suggestion": suggestion.id} if suggestion else {})})
    return instance


def suggest(session: Session, version: ScenarioVersion, *, rule_key: str, match_id: int,
            filled: dict, event_ids: list[int], actor: str, now: datetime,
            email: bool) -> Suggestion:
    """A detection proposes playbook `version` to the commanders: a card on their board (and a
    notification each), never a run: a person decides."""
    title = filled["title"]
    suggestion = Suggestion(
        scenario_version_id=version.id, scenario_key=version.key, rule_key=rule_key,
        match_id=match_id, title_vi=(title.get("vi") or version.name_vi)[:500],
        title_en=(title.get("en") or version.name_en)[:500],
        subject=(filled["subject"] or None), data=dict(filled["data"]), event_ids=event_ids,
        status=OPEN, suggested_at=now)
    session.add(suggestion)
    session.flush()
    audit.record(session, "playbook.suggested", actor=actor, subject_type="suggestion",
                 subject_id=suggestion.id, details={"playbook": version.key,
                                                    "title": suggestion.title_vi,
                                                    "event_ids": event_ids})
    for user_id in session.scalars(select(User.id).where(User.role == "commander",
                                                         User.active.is_(True))):
        notify.send(session, kind="playbook.suggested", actor=actor, user_id=user_id,
                    subject=f"Đề xuất kịch bản ứng phó: {suggestion.title_vi}",
                    text=f"{suggestion.title_vi}\n{suggestion.title_en}", email=email)
    return suggestion


def _open_suggestion(session: Session, suggestion_id: int) -> Suggestion:
    suggestion = session.get(Suggestion, suggestion_id, with_for_update=True)
    if suggestion is None:
        raise PlaybookError(404, f"không có đề xuất #{suggestion_id} / no suggestion "
                            f"#{suggestion_id}")
    if suggestion.status != OPEN:
        raise PlaybookError(409, f"đề xuất #{suggestion_id} đã được quyết định "
                            f"({suggestion.status}) / suggestion #{suggestion_id} was already "
                            f"decided: {suggestion.status} by {suggestion.decided_by}")
    return suggestion


def start_suggested(session: Session, runtime, suggestion_id: int, form: StartForm, *,
                    actor: str, now: datetime) -> ProcessInstance:
    """Start the playbook a suggestion proposed (once: a second decision is refused)."""
    suggestion = _open_suggestion(session, suggestion_id)
    instance = start(session, runtime, suggestion.scenario_key, form, actor=actor, now=now,
                     suggestion=suggestion)
    suggestion.status, suggestion.decided_at, suggestion.decided_by = STARTED, now, actor
    suggestion.instance_id = instance.id
    return instance


def dismiss(session: Session, suggestion_id: int, reason: str, *, actor: str,
            now: datetime) -> Suggestion:
    """Dismiss a suggestion, saying why (audited as `playbook.dismissed`)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise PlaybookError(422, "a dismissal needs its reason", [{
            "field": "reason", "message": f"ghi lý do (tối đa {MAX_REASON} ký tự) / say why "
                                          f"(at most {MAX_REASON} characters)"}])
    suggestion = _open_suggestion(session, suggestion_id)
    suggestion.status, suggestion.decided_at, suggestion.decided_by = DISMISSED, now, actor
    suggestion.reason = reason
    audit.record(session, "playbook.dismissed", actor=actor, subject_type="suggestion",
                 subject_id=suggestion.id, details={"playbook": suggestion.scenario_key,
                                                    "reason": reason})
    return suggestion


def suggestions(session: Session, status: str | None = OPEN, limit: int = 100) -> list[Suggestion]:
    """Suggestions, newest first (only the open ones by default)."""
    query = select(Suggestion).order_by(Suggestion.suggested_at.desc(), Suggestion.id.desc())
    if status is not None:
        query = query.where(Suggestion.status == status)
    return list(session.scalars(query.limit(limit)))


def to_dict(suggestion: Suggestion) -> dict:
    """A suggestion as the API shows it."""
    return {"id": suggestion.id, "playbook": suggestion.scenario_key, "rule": suggestion.rule_key,
            "title": {"vi": suggestion.title_vi, "en": suggestion.title_en},
            "subject": suggestion.subject, "data": suggestion.data,
            "event_ids": suggestion.event_ids, "status": suggestion.status,
            "suggested_at": suggestion.suggested_at.isoformat(),
            "decided_at": suggestion.decided_at.isoformat() if suggestion.decided_at else None,
            "decided_by": suggestion.decided_by, "reason": suggestion.reason,
            "instance_id": suggestion.instance_id}


# -- the commander's board -----------------------------------------------------------------------

SENT, ACKNOWLEDGED, DONE, OVERDUE, WITHDRAWN = "sent", "acknowledged", "done", "overdue", \
    "withdrawn"


@dataclass
class Order:
    """One order of a run as the board shows it: the task, its state and its urgent SLA."""

    task: Task
    state: str
    sla: dict | None = None


@dataclass
class Run:
    """One run of a playbook with its orders, in the order they were given."""

    instance: ProcessInstance
    orders: list[Order]

    @property
    def open_orders(self) -> int:
        """How many orders are still to be reported on."""
        return sum(o.state in (SENT, ACKNOWLEDGED, OVERDUE) for o in self.orders)


def order_state(task: Task, sla: dict | None) -> str:
    """sent (nobody took it yet), acknowledged (an officer holds it), done (reported),
    overdue (an SLA of it is past due), withdrawn (the run moved on without it)."""
    if task.status == "completed":
        return DONE
    if task.status == "cancelled":
        return WITHDRAWN
    if sla is not None and sla.get("breached"):
        return OVERDUE
    return ACKNOWLEDGED if task.status == "claimed" else SENT


def runs(session: Session, sla_service, limit: int = 50) -> list[Run]:
    """The playbooks' runs, running ones first, newest first, each with its orders."""
    keys = [v.key for v in playbooks(session)]
    instances = list(session.scalars(
        select(ProcessInstance).where(ProcessInstance.scenario_key.in_(keys))
        .order_by((ProcessInstance.status == "running").desc(), ProcessInstance.id.desc())
        .limit(limit))) if keys else []
    tasks = list(session.scalars(select(Task).where(
        Task.instance_id.in_([i.id for i in instances])).order_by(Task.id))) if instances else []
    clocks = sla_service.for_tasks(session, [t for t in tasks if t.status in ("open",
                                                                             "claimed")])
    by_instance: dict[int, list[Order]] = {i.id: [] for i in instances}
    for task in tasks:
        by_instance[task.instance_id].append(
            Order(task, order_state(task, clocks.get(task.id)), clocks.get(task.id)))
    return [Run(i, by_instance[i.id]) for i in instances]


MAX_MESSAGE = 2000


def message_everyone(session: Session, instance_id: int, text: str, *, actor: str,
                     email: bool) -> list[str]:
    """Send the commander's message to every unit with an order in a run (in-app, and e-mail and
    webhooks where configured); the units told, audited as `playbook.message_sent`."""
    instance = run(session, instance_id)
    text = (text or "").strip()
    if not text or len(text) > MAX_MESSAGE:
        raise PlaybookError(422, "a message needs its text", [{
            "field": "text", "message": f"nhập nội dung (tối đa {MAX_MESSAGE} ký tự) / write "
                                        f"the message (at most {MAX_MESSAGE} characters)"}])
    units = sorted(set(session.scalars(select(Task.department_key).where(
        Task.instance_id == instance_id))))
    for unit in units:
        notify.send(session, kind="playbook.message", actor=actor, department_key=unit,
                    subject=f"Chỉ đạo: {instance.subject}", text=text, instance_id=instance_id,
                    email=email)
    audit.record(session, "playbook.message_sent", actor=actor, subject_type="instance",
                 subject_id=instance_id, instance_id=instance_id,
                 details={"units": units, "text": text})
    return units
