"""Scenario drafts: the files an inspector edits in the designer until they publish or discard
them; retiring a published version by hand; the history of a scenario key.

A draft is one per key. It starts empty (`create`, from a template) or from a version
(`from_version`, with the next version number), is saved file by file, checked with the same
checks as `ioc scenarios load`, and published as the next version. Every step is audited with
subject "<key>@draft" (drafts) or "<key>@<version>" (versions).
"""
from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.db import utcnow
from engine.events.vocabulary import Vocabulary
from engine.org import service as org
from engine.scenarios import namespaces, service
from engine.scenarios.models import PUBLISHED, RETIRED, ScenarioDraft, ScenarioVersion
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import load_yaml

RULES_FILE, PROCESS_FILE = "rules.yaml", "process.bpmn"
MAX_FILES = 50
NAME_MAX = 300  # the length of ScenarioVersion.name_vi / name_en
_VERSION_VALUE = re.compile(r"""(["']?version["']?\s*:\s*)\d+\b""")


class DraftError(Exception):
    """A draft request that cannot be carried out; `field` names what is wrong (or None)."""

    def __init__(self, message: str, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


class DraftConflict(DraftError):
    """The key already has a draft or versions: the request clashes with what exists."""


def _error(field: str | None, vi: str, en: str, kind: type[DraftError] = DraftError):
    return kind(f"{vi} / {en}", field)


def _actor(actor: str) -> str:
    return actor[:100]  # the width of the *_by columns


def _subject(key: str) -> str:
    return f"{key}@draft"


# -- templates ---------------------------------------------------------------------------------

_MANIFEST_HEADER = """\
# Tệp khai báo kịch bản / scenario manifest — see docs/scenarios.md.
# Quy tắc phát hiện ở rules.yaml, quy trình xử lý ở process.bpmn /
# detection rules are in rules.yaml, the response process in process.bpmn.
"""

_RULES_TEMPLATE = """\
# Quy tắc phát hiện / detection rules — see docs/rules.md.
# Thêm quy tắc vào danh sách / add rules to the list: rules: [ - key: ..., when: ..., then: ... ]
rules: []
"""

# One pool (the scenario), one lane (the owner department) with a start event, and the diagram
# (BPMN DI) of all three, so that bpmn-js opens it ready to draw on.
_BPMN_TEMPLATE = """\
<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
                  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
                  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="{pid}_defs" targetNamespace="https://ioc.binhduong.gov.vn/scenarios">
  <bpmn:collaboration id="collab">
    <bpmn:participant id="participant" name={participant} processRef="{pid}"/>
  </bpmn:collaboration>
  <bpmn:process id="{pid}" name={process_name} isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="{lane}" name={owner}>
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Bắt đầu / Start"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram">
    <bpmndi:BPMNPlane id="plane" bpmnElement="collab">
      <bpmndi:BPMNShape id="participant_di" bpmnElement="participant" isHorizontal="true">
        <dc:Bounds x="120" y="60" width="600" height="200"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="{lane}_di" bpmnElement="{lane}" isHorizontal="true">
        <dc:Bounds x="150" y="60" width="570" height="200"/>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="192" y="142" width="36" height="36"/>
      </bpmndi:BPMNShape>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def _manifest(key: str, name_vi: str, name_en: str, owner: str, severity: str,
              description_vi: str, description_en: str) -> str:
    data = {"key": key, "version": 1, "name": {"vi": name_vi, "en": name_en}, "owner": owner,
            "severity": severity}
    if description_vi or description_en:
        data["description"] = {"vi": description_vi, "en": description_en}
    return _MANIFEST_HEADER + yaml.safe_dump(data, allow_unicode=True, sort_keys=False,
                                             width=100)


def _process(key: str, name_vi: str, name_en: str, owner: str) -> str:
    # A process id is an XML name: it may not start with a digit, as a key may.
    return _BPMN_TEMPLATE.format(pid="process_" + key.replace("-", "_"),
                                 lane="lane_" + owner.replace("-", "_"),
                                 participant=quoteattr(f"{name_vi} / {name_en}"),
                                 process_name=quoteattr(name_vi), owner=quoteattr(owner))


# -- starting a draft --------------------------------------------------------------------------


def _text(value: object, field: str, vi: str, en: str, required: bool = True) -> str:
    """A stripped text field; `vi` and `en` name it in a sentence ("tên tiếng Việt")."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _error(field, f"{vi[0].upper()}{vi[1:]} phải là chuỗi ký tự", f"{en} must be text")
    value = value.strip()
    if required and not value:
        raise _error(field, f"Thiếu {vi}", f"{en} is required")
    if len(value) > NAME_MAX:
        raise _error(field, f"{vi[0].upper()}{vi[1:]} dài quá {NAME_MAX} ký tự",
                     f"{en} is longer than {NAME_MAX} characters")
    return value


def _refuse_existing(session: Session, key: str) -> None:
    if for_key(session, key) is not None:
        raise _error("key", f"Kịch bản {key} đã có bản nháp: hãy sửa hoặc hủy bản nháp đó",
                     f"{key} already has a draft: edit or discard it", DraftConflict)


def _store(session: Session, draft: ScenarioDraft, details: dict, actor: str) -> ScenarioDraft:
    try:
        with session.begin_nested():  # a concurrent draft of the same key loses here, cleanly
            session.add(draft)
            session.flush()
    except IntegrityError:
        raise _error("key", f"Kịch bản {draft.key} vừa có bản nháp khác",
                     f"{draft.key} got another draft meanwhile", DraftConflict) from None
    audit.record(session, "scenario.draft.created", actor=actor, subject_type="scenario",
                 subject_id=_subject(draft.key), details=details)
    return draft


def create(session: Session, *, key: str, name_vi: str, name_en: str, owner: str, severity: str,
           description_vi: str = "", description_en: str = "", actor: str) -> ScenarioDraft:
    """Start a new scenario from the template: manifest, empty rules, a one-lane process."""
    if not isinstance(key, str) or not service.KEY.match(key) or len(key) > 100:
        raise _error("key", "Mã kịch bản gồm chữ thường, chữ số nối bằng '-', tối đa 100 ký tự",
                     "The key must be lower-case words joined by '-' (at most 100 characters), "
                     "e.g. dossier-overdue")
    name_vi = _text(name_vi, "name.vi", "tên tiếng Việt", "The Vietnamese name")
    name_en = _text(name_en, "name.en", "tên tiếng Anh", "The English name")
    description_vi = _text(description_vi, "description.vi", "mô tả tiếng Việt",
                           "The Vietnamese description", required=False)
    description_en = _text(description_en, "description.en", "mô tả tiếng Anh",
                           "The English description", required=False)
    if not isinstance(owner, str) or owner not in org.known_keys(session):
        raise _error("owner", "Đơn vị chủ trì không có trong danh mục tổ chức",
                     "The owner must be a department key of the organisation")
    if severity not in service.SEVERITIES:
        raise _error("severity", f"Mức độ phải là một trong {', '.join(service.SEVERITIES)}",
                     f"Severity must be one of {', '.join(service.SEVERITIES)}")
    _refuse_existing(session, key)
    if session.scalars(select(ScenarioVersion.id).where(ScenarioVersion.key == key)).first():
        raise _error("key", f"Kịch bản {key} đã có phiên bản: hãy tạo bản nháp từ phiên bản đó",
                     f"{key} already has versions: start a draft from one of them instead",
                     DraftConflict)
    files = {service.MANIFEST: _manifest(key, name_vi, name_en, owner, severity,
                                         description_vi, description_en),
             RULES_FILE: _RULES_TEMPLATE,
             PROCESS_FILE: _process(key, name_vi, name_en, owner)}
    actor_ = _actor(actor)
    draft = ScenarioDraft(key=key, files=files, created_by=actor_, updated_by=actor_)
    return _store(session, draft, {"version": 1, "files": sorted(files)}, actor)


def _set_version(manifest: str, number: int) -> str:
    """The manifest with its `version:` value replaced in place, so comments stay."""
    _, locator = load_yaml(manifest, service.MANIFEST)
    line = locator.line(("version",))
    lines = manifest.splitlines(keepends=True)
    if line is not None:
        changed, count = _VERSION_VALUE.subn(rf"\g<1>{number}", lines[line - 1], count=1)
        if count:
            lines[line - 1] = changed
            return "".join(lines)
    raise _error("version", "Không tìm thấy dòng version trong scenario.yaml",
                 "scenario.yaml has no version line to raise")


def _highest(session: Session, key: str) -> int:
    return session.scalar(select(func.max(ScenarioVersion.version))
                          .where(ScenarioVersion.key == key)) or 0


def from_version(session: Session, version: ScenarioVersion, *, actor: str) -> ScenarioDraft:
    """Start a draft from a version's files, numbered after the key's highest version."""
    _refuse_existing(session, version.key)
    number = _highest(session, version.key) + 1
    files = dict(version.files)
    files[service.MANIFEST] = _set_version(files[service.MANIFEST], number)
    actor_ = _actor(actor)
    draft = ScenarioDraft(key=version.key, base_version_id=version.id, files=files,
                          created_by=actor_, updated_by=actor_)
    return _store(session, draft, {"version": number, "base_version": version.version}, actor)


def import_files(session: Session, files: dict[str, str], *, actor: str) -> ScenarioDraft:
    """Start a draft from a scenario folder's files (a zip import), keyed by its manifest."""
    if not isinstance(files, dict) or service.MANIFEST not in files:
        raise _error("files", "Thiếu tệp scenario.yaml", "scenario.yaml is missing")
    manifest, _ = load_yaml(files[service.MANIFEST], service.MANIFEST)  # ScenarioInvalid: line
    key = manifest.get("key") if isinstance(manifest, dict) else None
    if not isinstance(key, str) or not service.KEY.match(key) or len(key) > 100:
        raise _error("key", "scenario.yaml thiếu mã kịch bản hợp lệ (key)",
                     "scenario.yaml has no valid key")
    if len(files) > MAX_FILES:
        raise _error("files", f"Bản nháp có tối đa {MAX_FILES} tệp",
                     f"a draft holds at most {MAX_FILES} files")
    draft = ScenarioDraft(key=key, files={}, created_by=_actor(actor), updated_by=_actor(actor))
    for name, text in files.items():
        _check_text(draft, check_name(name), text)
    _refuse_existing(session, key)
    files, renamed = _normalised(files)
    draft.files = files
    # The version it most likely continues: the published one, else the highest.
    draft.base_version_id = session.scalars(
        select(ScenarioVersion.id).where(ScenarioVersion.key == key)
        .order_by((ScenarioVersion.status == PUBLISHED).desc(), ScenarioVersion.version.desc())
    ).first()
    return _store(session, draft, {"imported": True, "files": sorted(files),
                                   **({"namespaces": renamed} if renamed else {})}, actor)


# -- reading -----------------------------------------------------------------------------------


def get(session: Session, draft_id: int) -> ScenarioDraft | None:
    """The draft with this id, or None."""
    return session.get(ScenarioDraft, draft_id)


def for_key(session: Session, key: str) -> ScenarioDraft | None:
    """The open draft of a scenario key, or None."""
    return session.scalars(select(ScenarioDraft).where(ScenarioDraft.key == key)).first()


def list_drafts(session: Session) -> list[ScenarioDraft]:
    """Every open draft, by key."""
    return list(session.scalars(select(ScenarioDraft).order_by(ScenarioDraft.key)))


# -- editing -----------------------------------------------------------------------------------


def check_name(name: object) -> str:
    """A draft file name: plain (no folders), with a scenario source suffix; DraftError if not."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or ".." in name \
            or name.startswith(".") or len(name) > 100 or not name.isprintable():
        raise _error("name", f"Tên tệp không hợp lệ: {name!r}",
                     f"{name!r} is not a plain file name")
    if not name.endswith(service.SOURCE_SUFFIXES):
        suffixes = ", ".join(service.SOURCE_SUFFIXES)
        raise _error("name", f"Tệp {name} phải có đuôi {suffixes}",
                     f"{name} must end with one of {suffixes}")
    return name


def _check_text(draft: ScenarioDraft, name: str, text: object) -> None:
    if not isinstance(text, str):
        raise _error(name, f"Nội dung tệp {name} phải là văn bản", f"{name} must be text")
    if "\x00" in text:  # no scenario file has one, and PostgreSQL cannot store it
        line = text[:text.index("\x00")].count("\n") + 1
        raise _error(name, f"Tệp {name} có ký tự NUL (dòng {line})",
                     f"{name} contains a NUL character (line {line})")
    if len(text.encode("utf-8")) > service.MAX_FILE_BYTES:
        raise _error(name, f"Tệp {name} lớn hơn {service.MAX_FILE_BYTES} byte",
                     f"{name} is larger than {service.MAX_FILE_BYTES} bytes")
    if name == service.MANIFEST:
        try:
            manifest, _ = load_yaml(text, name)
        except ScenarioInvalid:
            return  # not YAML yet: `problems` reports it with its line
        if isinstance(manifest, dict) and "key" in manifest and manifest["key"] != draft.key:
            raise _error("key", f"Không được đổi mã kịch bản trong bản nháp (phải là {draft.key})",
                         f"The key of a draft cannot change (it is {draft.key})")


def save_files(session: Session, draft: ScenarioDraft, files: dict[str, str], *,
               actor: str) -> list[str]:
    """Add or replace files; return the names whose text really changed (those are audited)."""
    if not isinstance(files, dict):
        raise _error("files", "Các tệp phải là ánh xạ tên → nội dung",
                     "files must map names to text")
    for name, text in files.items():
        _check_text(draft, check_name(name), text)
    files, renamed = _normalised(files)
    changed = sorted(name for name, text in files.items() if draft.files.get(name) != text)
    if not changed:
        return []
    merged = {**draft.files, **{name: files[name] for name in changed}}
    if len(merged) > MAX_FILES:
        raise _error("files", f"Bản nháp có tối đa {MAX_FILES} tệp",
                     f"a draft holds at most {MAX_FILES} files")
    draft.files = merged  # a new dict: the JSON column notices replacement, not mutation
    draft.updated_at, draft.updated_by = utcnow(), _actor(actor)
    session.flush()  # a concurrent save raises StaleDataError here, before the audit
    audit.record(session, "scenario.draft.saved", actor=actor, subject_type="scenario",
                 subject_id=_subject(draft.key),
                 details={"files": changed, **({"namespaces": renamed} if renamed else {})})
    return changed


def _normalised(files: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The files with each BPMN file's namespace prefixes normalised (namespaces.py), and the
    prefixes renamed per file (the designer's editor could not save the others)."""
    out, renamed = dict(files), {}
    for name, text in files.items():
        if name.endswith(".bpmn"):
            out[name], changes = namespaces.normalise(text)
            if changes:
                renamed[name] = changes
    return out, renamed


def delete_file(session: Session, draft: ScenarioDraft, name: str, *, actor: str) -> None:
    """Remove one file from the draft (never the manifest)."""
    check_name(name)
    if name == service.MANIFEST:
        raise _error("name", "Không thể xóa scenario.yaml", "scenario.yaml cannot be deleted")
    if name not in draft.files:
        raise _error("name", f"Bản nháp không có tệp {name}", f"the draft has no file {name}")
    draft.files = {n: text for n, text in draft.files.items() if n != name}
    draft.updated_at, draft.updated_by = utcnow(), _actor(actor)
    session.flush()
    audit.record(session, "scenario.draft.file_deleted", actor=actor, subject_type="scenario",
                 subject_id=_subject(draft.key), details={"file": name})


# -- checking and publishing -------------------------------------------------------------------


def _checked(session: Session, draft: ScenarioDraft, vocabulary: Vocabulary) -> service.Scenario:
    """The draft checked as a scenario that can be published now; ScenarioInvalid if not."""
    scenario = service.check(draft.files, vocabulary, org.known_keys(session))
    _, locator = load_yaml(draft.files[service.MANIFEST], service.MANIFEST)
    out = []
    if scenario.key != draft.key:  # only a file saved around save_files could do this
        out.append(Problem(service.MANIFEST, f"key must stay {draft.key}",
                           locator.line(("key",)), "key"))
    highest = _highest(session, draft.key)
    if scenario.manifest["version"] <= highest:
        out.append(Problem(service.MANIFEST, f"version {highest} of {draft.key} is already "
                           f"loaded: this draft needs version {highest + 1} or more",
                           locator.line(("version",)), "version"))
    if out:
        raise ScenarioInvalid(out)
    return scenario


def problems(session: Session, draft: ScenarioDraft, vocabulary: Vocabulary) -> list[Problem]:
    """Everything that stops the draft from publishing now ([] when it would publish)."""
    try:
        _checked(session, draft, vocabulary)
    except ScenarioInvalid as exc:
        return exc.problems
    return []


def publish(session: Session, draft: ScenarioDraft, vocabulary: Vocabulary, *,
            actor: str) -> ScenarioVersion:
    """Publish the draft as the key's next version (the published one retires); the draft goes."""
    scenario = _checked(session, draft, vocabulary)
    version, _ = service.publish(session, scenario, actor=actor)
    base = draft.base_version.version if draft.base_version else None
    session.delete(draft)
    session.flush()
    audit.record(session, "scenario.draft.published", actor=actor, subject_type="scenario",
                 subject_id=_subject(draft.key),
                 details={"version": version.version, "base_version": base})
    return version


def discard(session: Session, draft: ScenarioDraft, *, actor: str) -> None:
    """Throw the draft away."""
    session.delete(draft)
    session.flush()
    audit.record(session, "scenario.draft.discarded", actor=actor, subject_type="scenario",
                 subject_id=_subject(draft.key), details={"files": sorted(draft.files)})


def retire(session: Session, version: ScenarioVersion, *, actor: str) -> None:
    """Retire a published version by hand: its rules stop matching, its instances run on."""
    session.refresh(version, with_for_update=True)  # two retirements at once: one wins
    if version.status != PUBLISHED:
        raise _error("status", f"Phiên bản {version.version} của {version.key} không ở trạng "
                     "thái đã xuất bản", f"version {version.version} of {version.key} is not "
                     f"published (it is {version.status})", DraftConflict)
    version.status = RETIRED
    audit.record(session, "scenario.retired", actor=actor, subject_type="scenario",
                 subject_id=f"{version.key}@{version.version}", details={"by_hand": True})
    session.flush()


# -- history -----------------------------------------------------------------------------------


def history(session: Session, key: str) -> list[dict]:
    """The key's versions and the audit records about it and its drafts, newest first."""
    entries = [(v.loaded_at, 0, {"kind": "version", "at": v.loaded_at.isoformat(),
                                 "version": v.version, "status": v.status,
                                 "loaded_at": v.loaded_at.isoformat(), "loaded_by": v.loaded_by,
                                 "content_hash": v.content_hash})
               for v in session.scalars(select(ScenarioVersion)
                                        .where(ScenarioVersion.key == key))]
    # Keys are [a-z0-9-], so "<key>@%" matches this key's subjects only (no LIKE wildcards).
    records = session.scalars(select(AuditRecord).where(
        AuditRecord.subject_type == "scenario", AuditRecord.subject_id.like(f"{key}@%")))
    entries += [(r.at, r.seq, {"kind": "audit", "at": r.at.isoformat(), "action": r.action,
                               "actor": r.actor, "subject": r.subject_id, "details": r.details})
                for r in records]
    entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
    return [entry for _, _, entry in entries]


def to_dict(draft: ScenarioDraft) -> dict:
    """A draft as the API shows it (without the files' text)."""
    return {"id": draft.id, "key": draft.key,
            "base_version": draft.base_version.version if draft.base_version else None,
            "file_names": sorted(draft.files), "created_at": draft.created_at.isoformat(),
            "created_by": draft.created_by, "updated_at": draft.updated_at.isoformat(),
            "updated_by": draft.updated_by, "revision": draft.revision}
