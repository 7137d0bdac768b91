"""The scenarios API: loaded versions and their history, retiring, and the designer's drafts."""
from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.api import ApiProblem, bp, json_body, require_user, services
from engine.scenarios import drafts, service
from engine.scenarios.models import ScenarioDraft, ScenarioVersion
from engine.scenarios.problems import Problem, ScenarioInvalid


@bp.get("/scenarios")
@require_user("scenarios.read")
def list_scenarios():
    """Every loaded version, published and retired."""
    with services().db.read() as s:
        versions = s.scalars(select(ScenarioVersion).order_by(ScenarioVersion.key,
                                                              ScenarioVersion.version))
        return jsonify([service.to_dict(v) for v in versions])


# -- helpers -----------------------------------------------------------------------------------


def _actor() -> str:
    return f"user:{g.user.username}"


def _problem_dict(p: Problem) -> dict:
    return {"file": p.file, "line": p.line, "path": p.path, "message": p.message}


def _invalid(exc: ScenarioInvalid) -> ApiProblem:
    return ApiProblem(422, "Invalid Scenario", "Kịch bản còn lỗi, xem errors / the scenario "
                      "has problems: see errors",
                      [_problem_dict(p) for p in exc.problems])


def _draft_problem(exc: drafts.DraftError) -> ApiProblem:
    status, title = (409, "Conflict") if isinstance(exc, drafts.DraftConflict) \
        else (422, "Invalid Draft")
    return ApiProblem(status, title, exc.message, [{"field": exc.field, "message": exc.message}])


def _version(s: Session, key: str, number: int) -> ScenarioVersion:
    version = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == key,
                                                      ScenarioVersion.version == number)).first()
    if version is None:
        raise ApiProblem(404, "Not Found", f"version {number} of {key} not found")
    return version


def _draft(s: Session, draft_id: int) -> ScenarioDraft:
    draft = drafts.get(s, draft_id)
    if draft is None:
        raise ApiProblem(404, "Not Found", f"draft {draft_id} not found")
    return draft


def _check_if_match(draft: ScenarioDraft) -> None:
    """Honour `If-Match: <revision>`: 412 when the draft was saved since that revision."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        message = ("If-Match phải là số phiên bản sửa của bản nháp / If-Match must be the "
                   "draft's revision number")
        raise ApiProblem(400, "Bad Request", message, [{"field": "If-Match", "message": message}])
    if int(value) != draft.revision:
        raise ApiProblem(412, "Precondition Failed", f"Bản nháp đã được lưu lại (lần "
                         f"{draft.revision}, không phải {value}): hãy tải lại / the draft is at "
                         f"revision {draft.revision}, not {value}: reload it",
                         revision=draft.revision)


def _draft_response(draft: ScenarioDraft, status: int = 200, **extra):
    body = {**drafts.to_dict(draft), "files": dict(sorted(draft.files.items())), **extra}
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["ETag"] = f'"{draft.revision}"'
    return resp


def _write(action):
    """Run `action(session)` in a write session, turning the drafts' errors into problems."""
    try:
        with services().db.session() as s:
            return action(s)
    except drafts.DraftError as exc:
        raise _draft_problem(exc) from None
    except ScenarioInvalid as exc:
        raise _invalid(exc) from None
    except StaleDataError:
        raise ApiProblem(409, "Conflict", "Bản nháp vừa được người khác lưu: hãy tải lại và "
                         "sửa lại / the draft was saved by someone else meanwhile: reload it "
                         "and apply your change again") from None


# -- versions ----------------------------------------------------------------------------------


@bp.get("/scenarios/<key>/versions")
@require_user("scenarios.read")
def scenario_history(key: str):
    """The key's versions and the audit records about it and its drafts, newest first."""
    with services().db.read() as s:
        entries = drafts.history(s, key)
    if not entries:
        raise ApiProblem(404, "Not Found", f"no scenario {key}")
    return jsonify(entries)


@bp.get("/scenarios/<key>/versions/<int:number>")
@require_user("scenarios.read")
def get_version(key: str, number: int):
    """One version with its files."""
    with services().db.read() as s:
        version = _version(s, key, number)
        return jsonify({**service.to_dict(version), "files": version.files})


@bp.post("/scenarios/<key>/versions/<int:number>/retire")
@require_user("scenarios.design")
def retire_version(key: str, number: int):
    """Retire a published version by hand."""
    def action(s):
        version = _version(s, key, number)
        drafts.retire(s, version, actor=_actor())
        return service.to_dict(version)
    return jsonify(_write(action))


# -- drafts ------------------------------------------------------------------------------------


@bp.get("/scenarios/drafts")
@require_user("scenarios.read")
def list_drafts():
    """Every open draft, by key."""
    with services().db.read() as s:
        return jsonify([drafts.to_dict(d) for d in drafts.list_drafts(s)])


def _field(body: dict, *path: str, required: bool = True) -> object:
    """A value in the JSON body by path; 422 naming the field when a level is not an object."""
    value: object = body
    for depth, name in enumerate(path):
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            field = ".".join(path[:depth]) or "body"
            message = f"{field} phải là đối tượng JSON / {field} must be a JSON object"
            raise ApiProblem(422, "Invalid Draft", message, [{"field": field, "message": message}])
        value = value.get(name)
    return value


def _start(s: Session, body: dict) -> ScenarioDraft:
    if "from" in body:
        key, number = _field(body, "from", "key"), _field(body, "from", "version")
        if not isinstance(key, str) or not isinstance(number, int) or isinstance(number, bool):
            message = ("from cần key (chuỗi) và version (số nguyên) / from needs a key (text) "
                       "and a version (whole number)")
            raise ApiProblem(422, "Invalid Draft", message, [{"field": "from", "message": message}])
        version = s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == key,
                                                          ScenarioVersion.version == number)
                            ).first()
        if version is None:
            message = f"Không có phiên bản {number} của {key} / version {number} of {key} not found"
            raise ApiProblem(422, "Invalid Draft", message, [{"field": "from", "message": message}])
        return drafts.from_version(s, version, actor=_actor())
    return drafts.create(
        s, key=_field(body, "key"), name_vi=_field(body, "name", "vi"),
        name_en=_field(body, "name", "en"), owner=_field(body, "owner"),
        severity=_field(body, "severity"),
        description_vi=_field(body, "description", "vi", required=False) or "",
        description_en=_field(body, "description", "en", required=False) or "",
        actor=_actor())


@bp.post("/scenarios/drafts")
@require_user("scenarios.design")
def start_draft():
    """Start a draft: a new scenario {key, name, owner, severity} or {from: {key, version}}."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiProblem(400, "Bad Request", "Nội dung phải là đối tượng JSON / the body must "
                         "be a JSON object")
    return _write(lambda s: _draft_response(_start(s, body), 201))


@bp.get("/scenarios/drafts/<int:draft_id>")
@require_user("scenarios.read")
def get_draft(draft_id: int):
    """One draft with its files."""
    with services().db.read() as s:
        return _draft_response(_draft(s, draft_id))


@bp.delete("/scenarios/drafts/<int:draft_id>")
@require_user("scenarios.design")
def discard_draft(draft_id: int):
    """Discard a draft."""
    def action(s):
        draft = _draft(s, draft_id)
        _check_if_match(draft)
        drafts.discard(s, draft, actor=_actor())
    _write(action)
    return "", 204


@bp.put("/scenarios/drafts/<int:draft_id>/files/<name>")
@require_user("scenarios.design")
def save_file(draft_id: int, name: str):
    """Add or replace one file of a draft; the body is its UTF-8 text."""
    try:
        text = request.get_data().decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"Tệp {name} không phải văn bản UTF-8 / {name} is not UTF-8 text ({exc.reason})"
        raise ApiProblem(400, "Bad Request", message,
                         [{"field": name, "message": message}]) from None

    def action(s):
        draft = _draft(s, draft_id)
        _check_if_match(draft)
        changed = drafts.save_files(s, draft, {name: text}, actor=_actor())
        return _draft_response(draft, changed=changed)
    return _write(action)


@bp.delete("/scenarios/drafts/<int:draft_id>/files/<name>")
@require_user("scenarios.design")
def delete_file(draft_id: int, name: str):
    """Remove one file of a draft (not the manifest)."""
    def action(s):
        draft = _draft(s, draft_id)
        _check_if_match(draft)
        drafts.delete_file(s, draft, name, actor=_actor())
        return _draft_response(draft)
    return _write(action)


@bp.get("/scenarios/drafts/<int:draft_id>/problems")
@require_user("scenarios.read")
def draft_problems(draft_id: int):
    """Everything that stops the draft from publishing ([] when it would publish)."""
    with services().db.read() as s:
        found = drafts.problems(s, _draft(s, draft_id), services().vocabulary)
    return jsonify({"problems": [_problem_dict(p) for p in found]})


@bp.post("/scenarios/drafts/<int:draft_id>/publish")
@require_user("scenarios.design")
def publish_draft(draft_id: int):
    """Publish the draft as the key's next version: 201 with it, or 422 listing every problem."""
    def action(s):
        draft = _draft(s, draft_id)
        _check_if_match(draft)
        version = drafts.publish(s, draft, services().vocabulary, actor=_actor())
        return service.to_dict(version)
    body = _write(action)
    services().wake()  # the runner picks the new rules up on its next pass
    return jsonify(body), 201
