"""The designer's pages: scenarios and drafts, the process editor, files, checks, dry runs,
publishing, versions, diffs, and zip import and export. Views call the scenario services."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import (
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from designer.i18n import N_, both, pboth
from designer.scenarios import (
    bp,
    department_choices,
    design_required,
    draft_or_404,
    manifest_of,
    problem_dicts,
    services,
)
from designer.scenarios.forms import (
    ActionForm,
    DiagramForm,
    DryRunForm,
    FileForm,
    ImportForm,
    NewScenarioForm,
)
from engine import paths
from engine.org import service as org
from engine.scenarios import archive, bpmn_js, drafts, dryrun
from engine.scenarios import diff as scenario_diff
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.scenarios.problems import ScenarioInvalid
from engine.scenarios.service import MAX_FILE_BYTES

ASSETS = paths.designer_assets()
# What the pages load from npm packages; nothing else under node_modules is served.
VENDOR = {"bpmn-js": ASSETS / "bpmn-js" / "dist"}
CAMUNDA_MODDLE = ASSETS / "camunda-bpmn-moddle" / "resources" / "camunda.json"
# What a save answers when the draft changed under it (seen before writing, or at the write).
STALE = N_("Someone else changed this draft: reload the page")


def _actor() -> str:
    return current_user.username


def _process_file(files: dict[str, str]) -> str:
    """The name of the BPMN file the manifest points at (process.bpmn by default)."""
    return manifest_of(files).get("process", "process.bpmn")


def _version_or_404(s, key: str, number: int) -> ScenarioVersion:
    version = s.scalars(select(ScenarioVersion).where(
        ScenarioVersion.key == key, ScenarioVersion.version == number)).first()
    if version is None:
        abort(404)
    return version


def _camunda_moddle() -> dict | None:
    try:
        return json.loads(CAMUNDA_MODDLE.read_text(encoding="utf-8"))
    except OSError:
        return None


@bp.get("/vendor/<package>/<path:filename>")
def vendor(package: str, filename: str):
    """Front-end files installed from npm by the set-up command (bpmn-js)."""
    if package not in VENDOR:
        abort(404)
    return send_from_directory(VENDOR[package], filename, max_age=3600)


# -- scenarios and drafts -------------------------------------------------------------------

@bp.get("/")
@design_required
def index():
    """Kịch bản / every scenario (its published or latest version) and every open draft."""
    with services().db.read() as s:
        versions = list(s.scalars(select(ScenarioVersion).order_by(
            ScenarioVersion.key, ScenarioVersion.version)))
        open_drafts = drafts.list_drafts(s)
    latest: dict[str, ScenarioVersion] = {}
    for v in versions:  # the published version, else the highest
        if v.status == PUBLISHED or latest.get(v.key, v).status != PUBLISHED:
            latest[v.key] = v
    return render_template("scenarios/index.html", scenarios=sorted(latest.values(),
                                                                     key=lambda v: v.key),
                           drafts=open_drafts, import_form=ImportForm(),
                           action_form=ActionForm(),
                           draft_keys={d.key: d.id for d in open_drafts},
                           bases={v.id: v.version for v in versions})


@bp.route("/new", methods=["GET", "POST"])
@design_required
def new():
    """Kịch bản mới / start a new scenario: a draft with an empty process and no rules."""
    form = NewScenarioForm()
    with services().db.read() as s:
        form.owner.choices = department_choices(s)
    if form.validate_on_submit():
        try:
            with services().db.session() as s:
                draft = drafts.create(
                    s, key=form.key.data.strip(), name_vi=form.name_vi.data.strip(),
                    name_en=form.name_en.data.strip(), owner=form.owner.data,
                    severity=form.severity.data,
                    description_vi=(form.description_vi.data or "").strip(),
                    description_en=(form.description_en.data or "").strip(), actor=_actor())
                draft_id = draft.id
        except drafts.DraftError as exc:
            field = getattr(form, exc.field, None) if exc.field else None
            if field is not None:
                field.errors = list(field.errors) + [str(exc)]
            else:
                flash(str(exc), "error")
        else:
            # Said once it is done ("flash"): the audit log's "Draft created" names the action.
            flash(pboth("flash", "Draft created"), "ok")
            return redirect(url_for("designer.edit", draft_id=draft_id))
    status = 422 if form.is_submitted() else 200
    return render_template("scenarios/new.html", form=form), status


@bp.post("/scenarios/<key>/versions/<int:number>/draft")
@design_required
def draft_from_version(key: str, number: int):
    """Sửa thành phiên bản mới / start the next version's draft from a stored version."""
    try:
        with services().db.session() as s:
            draft = drafts.from_version(s, _version_or_404(s, key, number), actor=_actor())
            draft_id = draft.id
    except drafts.DraftError as exc:
        flash(str(exc), "error")
        return redirect(url_for("designer.scenario", key=key))
    return redirect(url_for("designer.edit", draft_id=draft_id))


@bp.post("/import")
@design_required
def import_zip():
    """Nhập tệp zip / import a scenario folder (zip) as a draft, to check and publish."""
    form = ImportForm()
    if not form.validate_on_submit():
        for error in form.archive.errors or [both("Invalid request")]:
            flash(error, "error")
        return redirect(url_for("designer.index"))
    upload = form.archive.data
    try:
        files = archive.from_zip(upload.read(), upload.filename or "upload.zip")
        with services().db.session() as s:
            draft = drafts.import_files(s, files, actor=_actor())
            draft_id = draft.id
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            flash(str(problem), "error")
        return redirect(url_for("designer.index"))
    except drafts.DraftError as exc:
        flash(str(exc), "error")
        return redirect(url_for("designer.index"))
    flash(both("Imported as a draft: check it, then publish"), "ok")
    return redirect(url_for("designer.edit", draft_id=draft_id))


# -- the editor -----------------------------------------------------------------------------

@bp.get("/drafts/<int:draft_id>")
@design_required
def edit(draft_id: int):
    """Bản nháp / the draft's process editor (bpmn-js), side panel, checks and actions."""
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        files = dict(draft.files)
        problems = drafts.problems(s, draft, services().vocabulary)
        base = s.get(ScenarioVersion, draft.base_version_id) if draft.base_version_id else None
    process_name = _process_file(files)
    return render_template(
        "scenarios/editor.html", draft=draft, files=files, manifest=manifest_of(files),
        process_name=process_name, xml=files.get(process_name, ""), base=base,
        problems=problem_dicts(problems), camunda=_camunda_moddle(),
        action_form=ActionForm(), diagram_form=DiagramForm())


@bp.post("/drafts/<int:draft_id>/process")
@design_required
def save_process(draft_id: int):
    """Save the diagram the editor sends (JSON {xml, revision}); answer with the new checks."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("xml"), str):
        return jsonify(error=both("The diagram (xml) is missing")), 400
    try:
        with services().db.session() as s:
            draft = draft_or_404(s, draft_id)
            if "revision" in body and body["revision"] != draft.revision:
                return jsonify(error=both(STALE)), 409
            changed = drafts.save_files(s, draft, {
                _process_file(draft.files): bpmn_js.repair(body["xml"])}, actor=_actor())
            s.flush()
            problems = drafts.problems(s, draft, services().vocabulary)
            revision = draft.revision
    except drafts.DraftError as exc:
        return jsonify(error=str(exc)), 400
    except StaleDataError:
        return jsonify(error=both(STALE)), 409
    return jsonify(saved=bool(changed), revision=revision, problems=problem_dicts(problems))


@bp.post("/drafts/<int:draft_id>/diagram")
@design_required
def upload_diagram(draft_id: int):
    """Thay sơ đồ / replace the draft's process file with a .bpmn drawn in another modeller:
    its encoding read, its namespace prefixes made the designer's; then the editor shows what
    it could not keep, and the checks what the engine cannot run."""
    form = DiagramForm()
    if not form.validate_on_submit():
        for error in form.diagram.errors or [both("Invalid request")]:
            flash(error, "error")
        return redirect(url_for("designer.edit", draft_id=draft_id))
    upload = form.diagram.data
    raw = upload.read(MAX_FILE_BYTES + 1)
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise drafts.DraftError(both("the file is larger than %(count)s bytes",
                                         count=MAX_FILE_BYTES), "diagram")
        text = archive.read_text(raw, "process.bpmn")
        with services().db.session() as s:
            draft = draft_or_404(s, draft_id)
            drafts.save_files(s, draft, {_process_file(draft.files): text}, actor=_actor())
    except archive.NotText as exc:
        flash(f"{upload.filename}:{exc.line}: {exc.vi} / {exc.en}", "error")
        return redirect(url_for("designer.edit", draft_id=draft_id))
    except drafts.DraftError as exc:
        flash(str(exc), "error")
        return redirect(url_for("designer.edit", draft_id=draft_id))
    flash(both("The diagram is now %(name)s: see the checks below", name=upload.filename), "ok")
    return redirect(url_for("designer.edit", draft_id=draft_id))


@bp.get("/drafts/<int:draft_id>/problems.json")
@design_required
def problems_json(draft_id: int):
    """Kiểm tra / the draft's problems, each naming its file, line and element."""
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        problems = drafts.problems(s, draft, services().vocabulary)
    return jsonify(problems=problem_dicts(problems))


@bp.route("/drafts/<int:draft_id>/files/<name>", methods=["GET", "POST"])
@design_required
def edit_file(draft_id: int, name: str):
    """Tệp / edit one file of the draft as text (manifest, SLAs, DMN tables, notes)."""
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        files = dict(draft.files)
    form = FileForm(data={"text": files.get(name, "")})
    if form.validate_on_submit():
        try:
            with services().db.session() as s:
                draft = draft_or_404(s, draft_id)
                changed = drafts.save_files(s, draft, {name: form.text.data.replace("\r\n", "\n")},
                                            actor=_actor())
        except drafts.DraftError as exc:
            form.text.errors = list(form.text.errors) + [str(exc)]
        else:
            flash(both("Saved: %(name)s", name=name) if changed else
                  both("No change: %(name)s", name=name), "ok")
            return redirect(url_for("designer.edit_file", draft_id=draft_id, name=name))
    with services().db.read() as s:
        problems = [p for p in drafts.problems(s, draft_or_404(s, draft_id), services().vocabulary)
                    if Path(p.file).name == name]
    status = 422 if form.is_submitted() else 200
    return render_template("scenarios/file.html", draft=draft, name=name, form=form,
                           files=sorted(files), problems=problem_dicts(problems)), status


@bp.get("/drafts/<int:draft_id>/publish")
@design_required
def confirm_publish(draft_id: int):
    """Xác nhận xuất bản / what publishing would change, against the version in force, and the
    button that does it (nothing is published without this page)."""
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        files = dict(draft.files)
        problems = drafts.problems(s, draft, services().vocabulary)
        current = s.scalars(select(ScenarioVersion).where(
            ScenarioVersion.key == draft.key, ScenarioVersion.status == PUBLISHED)
            .order_by(ScenarioVersion.version.desc())).first()
        before = dict(current.files) if current else {}
    return render_template("scenarios/publish.html", draft=draft, manifest=manifest_of(files),
                           current=current, problems=problem_dicts(problems),
                           diff=scenario_diff.diff(before, files), action_form=ActionForm())


@bp.post("/drafts/<int:draft_id>/publish")
@design_required
def publish(draft_id: int):
    """Xuất bản / publish the draft as the next version (its rules go live at once)."""
    try:
        with services().db.session() as s:
            version = drafts.publish(s, draft_or_404(s, draft_id), services().vocabulary,
                                     actor=_actor())
            key, number = version.key, version.version
    except ScenarioInvalid as exc:
        flash(both("Not published: %(count)s problem(s) to fix", count=len(exc.problems)),
              "error")
        return redirect(url_for("designer.edit", draft_id=draft_id))
    except (drafts.DraftError, StaleDataError) as exc:
        flash(str(exc) or both("The draft changed meanwhile"), "error")
        return redirect(url_for("designer.edit", draft_id=draft_id))
    services().wake()  # the runner loads the new rules on its next pass
    flash(both("Published version %(number)s", number=number), "ok")
    return redirect(url_for("designer.scenario", key=key))


@bp.post("/drafts/<int:draft_id>/discard")
@design_required
def discard(draft_id: int):
    """Hủy bản nháp / discard the draft (audited; published versions are untouched)."""
    with services().db.session() as s:
        drafts.discard(s, draft_or_404(s, draft_id), actor=_actor())
    flash(pboth("flash", "Draft discarded"), "ok")
    return redirect(url_for("designer.index"))


@bp.get("/drafts/<int:draft_id>/export.zip")
@design_required
def export_draft(draft_id: int):
    """Xuất tệp zip / the draft as a scenario folder in a zip."""
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        key, files = draft.key, dict(draft.files)
    return _zip_response(f"{key}-draft.zip", archive.to_zip(key, files))


def _zip_response(filename: str, data: bytes) -> Response:
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{filename}"'})


# -- dry run --------------------------------------------------------------------------------

@bp.route("/drafts/<int:draft_id>/dry-run", methods=["GET", "POST"])
@design_required
def dry_run(draft_id: int):
    """Chạy thử / run the draft on a sample stream in a sandbox: nothing real is created."""
    ioc = services()
    with ioc.db.read() as s:
        draft = draft_or_404(s, draft_id)
        files = dict(draft.files)
    form = DryRunForm()
    result, problems, input_errors = None, [], []
    if form.validate_on_submit():
        try:
            types = dryrun.event_types(files, ioc.vocabulary)
            events = _sample_events(form, types)
            with ioc.db.read() as s:
                result = dryrun.dry_run(files, events, vocabulary=ioc.vocabulary,
                                        calendar=ioc.calendar, organisation=s,
                                        settle=timedelta(days=float(form.settle_days.data or 0)))
            for instance in result["instances"]:
                instance["marks"] = {**{e: "dry-run-done" for e in instance["path"]},
                                     **{e: "dry-run-waiting" for e in instance["waiting"]}}
        except dryrun.DryRunInputError as exc:
            input_errors = exc.problems
        except ScenarioInvalid as exc:
            problems = problem_dicts(exc.problems)
    status = 422 if form.is_submitted() and result is None else 200
    return render_template("scenarios/dry_run.html", draft=draft, form=form, result=result,
                           problems=problems, input_errors=input_errors,
                           xml=files.get(_process_file(files), ""),
                           camunda=_camunda_moddle(), example=_example_events(files)), status


def _local_to_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=org.TIMEZONE).astimezone(timezone.utc)


def _sample_events(form: DryRunForm, types: set[str]) -> list[dict]:
    now = services().clock.now()
    if form.stream.data == "simulator":
        start = _local_to_utc(form.start.data) or now
        return dryrun.simulated(types, start, float(form.hours.data or 8),
                                seed=form.seed.data or 1)
    if form.stream.data == "recorded":
        until = _local_to_utc(form.until.data) or now
        since = _local_to_utc(form.start.data) or until - timedelta(days=1)
        with services().db.read() as s:
            return dryrun.recorded(s, types, since, until)
    with services().db.read() as s:  # units named in the events are checked like ingestion does
        return dryrun.parse_manual(form.events.data or "", services().vocabulary, s)


def _example_events(files: dict[str, str]) -> str:
    """A starting point for the hand-written list: one event of each type the draft listens to."""
    try:
        types = sorted(dryrun.event_types(files, services().vocabulary))
    except ScenarioInvalid:
        types = []
    fields = services().vocabulary.field_types()
    items = [{"type": t, "data": {f: "" for f in sorted(fields.get(t, {}))}} for t in types[:3]]
    return json.dumps(items, ensure_ascii=False, indent=2)


# -- versions -------------------------------------------------------------------------------

@bp.get("/scenarios/<key>")
@design_required
def scenario(key: str):
    """Phiên bản / a scenario's versions, its open draft and its audited history."""
    with services().db.read() as s:
        versions = list(s.scalars(select(ScenarioVersion).where(ScenarioVersion.key == key)
                                  .order_by(ScenarioVersion.version.desc())))
        draft = drafts.for_key(s, key)
        if not versions and draft is None:
            abort(404)
        history = drafts.history(s, key)
    return render_template("scenarios/scenario.html", key=key, versions=versions, draft=draft,
                           history=history, action_form=ActionForm())


@bp.get("/scenarios/<key>/versions/<int:number>")
@design_required
def version(key: str, number: int):
    """Một phiên bản / one stored version: its diagram (read only) and its files."""
    with services().db.read() as s:
        row = _version_or_404(s, key, number)
        files = dict(row.files)
    return render_template("scenarios/version.html", version=row, files=files,
                           xml=files.get(_process_file(files), ""), camunda=_camunda_moddle(),
                           action_form=ActionForm())


@bp.get("/scenarios/<key>/versions/<int:number>/export.zip")
@design_required
def export_version(key: str, number: int):
    """Xuất tệp zip / a stored version as the folder `ioc scenarios load` reads."""
    with services().db.read() as s:
        files = dict(_version_or_404(s, key, number).files)
    return _zip_response(f"{key}-v{number}.zip", archive.to_zip(key, files))


@bp.post("/scenarios/<key>/versions/<int:number>/retire")
@design_required
def retire(key: str, number: int):
    """Ngừng áp dụng / retire a published version: its rules stop; running cases go on."""
    try:
        with services().db.session() as s:
            drafts.retire(s, _version_or_404(s, key, number), actor=_actor())
    except drafts.DraftError as exc:
        flash(str(exc), "error")
    else:
        flash(both("Version %(number)s retired", number=number), "ok")
    return redirect(url_for("designer.scenario", key=key))


@bp.get("/scenarios/<key>/diff")
@design_required
def diff(key: str):
    """So sánh / what changed between two versions (or a version and the draft)."""
    with services().db.read() as s:
        sides = [_side(s, key, request.args.get(name, "")) for name in ("a", "b")]
    (label_a, files_a), (label_b, files_b) = sides
    return render_template("scenarios/diff.html", key=key, a=label_a, b=label_b,
                           diff=scenario_diff.diff(files_a, files_b))


def _side(s, key: str, which: str) -> tuple[str, dict[str, str]]:
    """`draft` or a version number → (label, files); 404 for anything else."""
    if which == "draft":
        draft = drafts.for_key(s, key)
        if draft is None:
            abort(404)
        return both("draft"), dict(draft.files)
    if not which.isdigit():
        abort(404)
    return f"v{which}", dict(_version_or_404(s, key, int(which)).files)
