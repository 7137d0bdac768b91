"""Drafting and publishing public warnings: a commander drafts one from a playbook run (or an
update or cancellation of one already published), approves it, and only then is it published:
its CAP 1.2 XML is made, checked against the schema, kept as sent, and announced to webhook
subscribers. Every step is audited."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.notify import service as notify
from engine.org import service as org
from engine.playbooks import service as playbooks
from engine.processes.models import ProcessInstance
from engine.warnings.cap import SENDER, alert_xml, cap_time
from engine.warnings.models import DRAFT, PUBLISHED, PublicWarning

# The CAP 1.2 values a warning may take (the standard's own lists).
MSG_TYPES = ("Alert", "Update", "Cancel")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
              "Transport", "Infra", "CBRNE", "Other")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
MAX_HEADLINE, MAX_TEXT, MAX_HOURS = 300, 4000, 168


class WarningError(playbooks.PlaybookError):
    """A warning that cannot be drafted or published; `errors` name the fields (a warning
    belongs to a run: what refuses a run refuses its warning too)."""


@dataclass
class WarningForm:
    """What a commander writes: the CAP values, the words in both languages, the area, how long
    it holds."""

    event: str = ""
    headline_vi: str = ""
    headline_en: str = ""
    description_vi: str = ""
    description_en: str = ""
    instruction_vi: str = ""
    instruction_en: str = ""
    category: str = "Met"
    urgency: str = "Expected"
    severity: str = "Severe"
    certainty: str = "Likely"
    wards: list[str] = field(default_factory=list)  # empty: the run's wards
    expires_hours: int = 24
    msg_type: str = "Alert"
    references_id: int | None = None

    @classmethod
    def from_json(cls, body) -> WarningForm:
        """The form from an API body; 400 naming each unknown field or field of the wrong type."""
        if not isinstance(body, dict):
            raise WarningError(400, "the body must be a JSON object",
                               [{"field": "body", "message": "must be a JSON object"}])
        names = cls.__dataclass_fields__
        errors = [{"field": k, "message": f"unknown field (known: {', '.join(names)})"}
                  for k in body if k not in names]
        for name, value in body.items():
            if name not in names:
                continue
            wanted = {"wards": list, "expires_hours": int, "references_id": (int, type(None))}
            kind = wanted.get(name, str)
            if not isinstance(value, kind) or isinstance(value, bool) or (
                    name == "wards" and not all(isinstance(w, str) for w in value)):
                errors.append({"field": name, "message": "has the wrong type"})
        if errors:
            raise WarningError(400, "the warning has fields of the wrong kind", errors)
        return cls(**body)


def _checked(session: Session, instance: ProcessInstance, form: WarningForm, now: datetime,
             ) -> tuple[list[str], PublicWarning | None]:
    errors = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": name, "message": message})

    for name, allowed in (("msg_type", MSG_TYPES), ("category", CATEGORIES),
                          ("urgency", URGENCIES), ("severity", SEVERITIES),
                          ("certainty", CERTAINTIES)):
        if getattr(form, name) not in allowed:
            bad(name, f"one of {', '.join(allowed)}")
    if not form.event.strip() or len(form.event) > 200:
        bad("event", "bắt buộc, tối đa 200 ký tự / required, at most 200 characters")
    for lang in ("vi", "en"):
        if not getattr(form, f"headline_{lang}").strip() or \
                len(getattr(form, f"headline_{lang}")) > MAX_HEADLINE:
            bad(f"headline_{lang}", f"bắt buộc, tối đa {MAX_HEADLINE} ký tự / required, at "
                                    f"most {MAX_HEADLINE} characters")
        for name in ("description", "instruction"):
            if len(getattr(form, f"{name}_{lang}")) > MAX_TEXT:
                bad(f"{name}_{lang}", f"tối đa {MAX_TEXT} ký tự / at most {MAX_TEXT} characters")
    if not 1 <= form.expires_hours <= MAX_HOURS:
        bad("expires_hours", f"từ 1 đến {MAX_HOURS} giờ / 1 to {MAX_HOURS} hours")
    areas = {u.key for u in playbooks.area_units(session, org.local_time(now).date())}
    wards = list(dict.fromkeys(form.wards)) or list(instance.data.get("wards") or [])
    unknown = [w for w in wards if w not in areas]
    if not wards or unknown:
        bad("wards", "không phải phường, xã hiện hành / not current wards or communes: "
                     + ", ".join(unknown) if unknown else "chọn vùng cảnh báo / choose the area")
    earlier = None
    if form.msg_type == "Alert" and form.references_id is not None:
        bad("references_id", "an Alert references nothing: an Update or Cancel does")
    elif form.msg_type in ("Update", "Cancel"):
        earlier = session.get(PublicWarning, form.references_id) if form.references_id else None
        if earlier is None or earlier.instance_id != instance.id or earlier.status != PUBLISHED:
            bad("references_id", "một cảnh báo đã phát của lần kích hoạt này / a published "
                                 "warning of this run")
    if errors:
        raise WarningError(422, "the warning is not complete", errors)
    return wards, earlier


def draft(session: Session, instance_id: int, form: WarningForm, *, actor: str,
          now: datetime) -> PublicWarning:
    """Draft a public warning of a playbook run (nothing is published yet)."""
    instance = playbooks.run(session, instance_id)
    wards, earlier = _checked(session, instance, form, now)
    warning = PublicWarning(
        instance_id=instance.id, msg_type=form.msg_type,
        references_id=earlier.id if earlier else None, category=form.category,
        event=form.event.strip(), urgency=form.urgency, severity=form.severity,
        certainty=form.certainty, headline_vi=form.headline_vi.strip(),
        headline_en=form.headline_en.strip(), description_vi=form.description_vi.strip(),
        description_en=form.description_en.strip(), instruction_vi=form.instruction_vi.strip(),
        instruction_en=form.instruction_en.strip(), wards=wards,
        expires=now + timedelta(hours=form.expires_hours), status=DRAFT, drafted_by=actor,
        drafted_at=now)
    session.add(warning)
    session.flush()
    audit.record(session, "warning.drafted", actor=actor, subject_type="warning",
                 subject_id=warning.id, instance_id=instance.id,
                 details={"msg_type": warning.msg_type, "title": warning.headline_vi,
                          "wards": wards})
    return warning


def publish(session: Session, warning_id: int, *, actor: str, now: datetime,
            email: bool) -> PublicWarning:
    """Approve a draft and publish it (once): its CAP XML, kept as sent, on the feed and to
    webhook subscribers."""
    warning = session.get(PublicWarning, warning_id, with_for_update=True)
    if warning is None:
        raise WarningError(404, f"không có cảnh báo #{warning_id} / no warning #{warning_id}")
    if warning.status != DRAFT:
        raise WarningError(409, f"cảnh báo #{warning_id} đã phát / warning #{warning_id} was "
                                f"already published by {warning.approved_by}")
    earlier = session.get(PublicWarning, warning.references_id) if warning.references_id else None
    identifier = f"{SENDER}-{warning.id}"
    references = f"{SENDER},{earlier.identifier},{cap_time(earlier.sent)}" if earlier else None
    names = {u.key: org.display_name(u) for u in org.units(
        session, org.local_time(now).date(), kinds=playbooks.AREA_KINDS)}
    warning.xml = alert_xml(warning, identifier=identifier, sent=now, references=references,
                            ward_names=names)
    warning.identifier, warning.sent, warning.approved_by = identifier, now, actor
    warning.status = PUBLISHED
    audit.record(session, "warning.published", actor=actor, subject_type="warning",
                 subject_id=warning.id, instance_id=warning.instance_id,
                 details={"identifier": identifier, "msg_type": warning.msg_type,
                          "references": references, "wards": warning.wards})
    notify.send(session, kind="warning.published", actor=actor, department_key="ioc",
                channel="webhook", subject=f"{warning.msg_type}: {warning.headline_vi}",
                text=f"{warning.headline_vi}\n{warning.headline_en}\n{identifier}",
                instance_id=warning.instance_id, email=email)
    return warning


def published(session: Session, limit: int = 50) -> list[PublicWarning]:
    """The published warnings, newest first."""
    return list(session.scalars(select(PublicWarning).where(PublicWarning.status == PUBLISHED)
                                .order_by(PublicWarning.sent.desc(), PublicWarning.id.desc())
                                .limit(limit)))


def of_runs(session: Session, instance_ids: list[int]) -> dict[int, list[PublicWarning]]:
    """The warnings of these runs, drafts and published, by run."""
    found: dict[int, list[PublicWarning]] = {i: [] for i in instance_ids}
    if instance_ids:
        for warning in session.scalars(select(PublicWarning).where(
                PublicWarning.instance_id.in_(instance_ids)).order_by(PublicWarning.id)):
            found[warning.instance_id].append(warning)
    return found


def to_dict(warning: PublicWarning) -> dict:
    """A warning as the API shows it."""
    return {"id": warning.id, "instance_id": warning.instance_id, "status": warning.status,
            "msg_type": warning.msg_type, "references_id": warning.references_id,
            "identifier": warning.identifier, "category": warning.category,
            "event": warning.event, "urgency": warning.urgency, "severity": warning.severity,
            "certainty": warning.certainty,
            "headline": {"vi": warning.headline_vi, "en": warning.headline_en},
            "wards": warning.wards, "expires": warning.expires.isoformat(),
            "drafted_by": warning.drafted_by, "approved_by": warning.approved_by,
            "sent": warning.sent.isoformat() if warning.sent else None}
