"""The commander's pages: the board (suggestions, playbooks, runs and their orders), the start
form of a playbook (also from a suggestion), a suggestion's dismissal."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from designer import display
from designer.command import bp, commander_required
from designer.command.forms import DismissForm, MessageForm, StartRunForm, WarningDraftForm
from designer.i18n import both
from engine.org import service as org
from engine.playbooks import service as playbooks
from engine.playbooks.models import Suggestion
from engine.playbooks.service import PlaybookError, StartForm
from engine.processes.models import ProcessInstance
from engine.warnings import service as public_warnings
from engine.warnings.models import PUBLISHED
from engine.warnings.service import WarningForm


def _ioc():
    return current_app.extensions["ioc"]


def _actor() -> str:
    return f"user:{current_user.username}"


@bp.get("")
@commander_required
def board():
    """Bảng chỉ huy / the commander's board: what waits for a decision, what runs."""
    ioc = _ioc()
    with ioc.db.read() as s:
        runs = playbooks.runs(s, ioc.sla)
        return render_template(
            "command/board.html", suggestions=playbooks.suggestions(s),
            books=playbooks.playbooks(s), runs=runs, dismiss_form=DismissForm(),
            warnings=public_warnings.of_runs(s, [r.instance.id for r in runs]),
            now=ioc.clock.now())


def _areas(session) -> list[SelectChoice]:
    """Today's wards and communes by name, as a form's choices."""
    today = org.local_time(_ioc().clock.now()).date()
    return [SelectChoice(u.key, org.display_name(u))
            for u in playbooks.area_units(session, today)]


def _start_form(session, key: str) -> tuple[StartRunForm, object]:
    """The start form of playbook `key` with its levels and today's wards and communes."""
    try:
        version, book = playbooks.playbook(session, key)
    except PlaybookError:
        abort(404)
    form = StartRunForm()
    form.level.choices = [SelectChoice(lv.level, f"{lv.vi} / {lv.en}") for lv in book.levels]
    form.wards.choices = _areas(session)
    if not book.whole_area:
        del form.whole_area
    if not book.area:
        del form.wards
    return form, version


def _refused(form, exc: PlaybookError) -> None:
    """Show each of the service's refusals on the field it names."""
    for error in exc.errors or [{"field": "", "message": exc.message}]:
        field = getattr(form, error["field"], None)
        if field is not None:
            field.errors = list(field.errors) + [error["message"]]
        else:
            form.form_errors.append(error["message"])


def _start(key: str, suggestion: Suggestion | None):
    ioc = _ioc()
    with ioc.db.session() as s:
        form, version = _start_form(s, key)
        if request.method == "GET" and suggestion is not None and getattr(form, "wards", None):
            # The ward the detection named, if it is one of today's (a person still decides).
            named = suggestion.data.get("ward")
            form.wards.data = [named] if named in {c.value for c in form.wards.choices} else []
        if form.validate_on_submit():
            # A playbook without an area, or without the whole area, has no such field.
            wards, whole = getattr(form, "wards", None), getattr(form, "whole_area", None)
            answers = StartForm(level=form.level.data,
                                wards=list(wards.data or []) if wards else [],
                                whole_area=bool(whole and whole.data),
                                notes=form.notes.data or "")
            try:
                if suggestion is None:
                    instance = playbooks.start(s, ioc.runtime, key, answers, actor=_actor(),
                                               now=ioc.clock.now())
                else:
                    instance = playbooks.start_suggested(s, ioc.runtime, suggestion.id, answers,
                                                         actor=_actor(), now=ioc.clock.now())
            except PlaybookError as exc:
                s.rollback()
                if exc.status == 409:
                    flash(exc.message, "error")
                    return redirect(url_for("command.board"))
                _refused(form, exc)
            else:
                flash(both("Started: %(subject)s", subject=instance.subject), "ok")
                return redirect(url_for("web.instance", instance_id=instance.id))
        return render_template("command/start.html", form=form, version=version,
                               suggestion=suggestion), 422 if form.errors else 200


@bp.route("/playbooks/<key>/start", methods=["GET", "POST"])
@commander_required
def start(key: str):
    """Kích hoạt / start a playbook with its start form."""
    return _start(key, None)


@bp.route("/suggestions/<int:suggestion_id>/start", methods=["GET", "POST"])
@commander_required
def start_suggested(suggestion_id: int):
    """Kích hoạt theo đề xuất / start the playbook a detection suggested."""
    with _ioc().db.read() as s:
        suggestion = s.get(Suggestion, suggestion_id)
    if suggestion is None:
        abort(404)
    return _start(suggestion.scenario_key, suggestion)


@bp.post("/suggestions/<int:suggestion_id>/dismiss")
@commander_required
def dismiss(suggestion_id: int):
    """Bỏ qua / dismiss a suggestion, with the reason."""
    form = DismissForm()
    if not _filled(form, both("A dismissal needs its reason.")):
        return redirect(url_for("command.board"))
    return _act(lambda s, ioc: playbooks.dismiss(s, suggestion_id, form.reason.data,
                                                 actor=_actor(), now=ioc.clock.now()),
                lambda _: both("Suggestion dismissed."), url_for("command.board"))


def _filled(form, needed: str) -> bool:
    """Whether a board form is filled in; if not, flash what it needs (its fields' errors)."""
    if form.validate_on_submit():
        return True
    flash(needed + " " + "; ".join(e for errors in form.errors.values() for e in errors),
          "error")
    return False


def _act(run, done, back: str):
    """Run one action of the board (`run(session, services)`) and go `back`: flash `done(what it
    gave)`, or the refusal (a missing thing is a 404)."""
    ioc = _ioc()  # the app's CSRFProtect has checked the form's token
    with ioc.db.session() as s:
        try:
            result = run(s, ioc)
        except PlaybookError as exc:  # a warning's refusals too
            s.rollback()
            if exc.status == 404:
                abort(404)
            flash(exc.message, "error")
            return redirect(back)
        flash(done(result), "ok")
    return redirect(back)


@bp.context_processor
def _names():
    return {"order_state": lambda key: display.ORDER_STATE_NAMES.get(key, key),
            "elapsed": display.elapsed}


# -- public warnings of a run ---------------------------------------------------------------------

def _warning_form(session, instance_id: int) -> WarningDraftForm:
    """The draft form of a run's warning: its published warnings to change, today's areas, the
    run's wards checked."""
    form = WarningDraftForm()
    published = [w for w in public_warnings.of_runs(session, [instance_id])[instance_id]
                 if w.status == PUBLISHED]
    form.references_id.choices = [SelectChoice("", "—")] + [
        SelectChoice(w.id, f"{w.msg_type} #{w.id}: {w.headline_vi}") for w in published]
    form.wards.choices = _areas(session)
    return form


@bp.route("/runs/<int:instance_id>/warnings/new", methods=["GET", "POST"])
@commander_required
def new_warning(instance_id: int):
    """Soạn cảnh báo công khai / draft a public warning of a run (published once approved)."""
    ioc = _ioc()
    with ioc.db.session() as s:
        instance = s.get(ProcessInstance, instance_id)
        if instance is None:
            abort(404)
        form = _warning_form(s, instance_id)
        if request.method == "GET":
            form.wards.data = list(instance.data.get("wards") or [])
        if form.validate_on_submit():
            answers = WarningForm(
                msg_type=form.msg_type.data, references_id=form.references_id.data,
                event=form.event.data or "", category=form.category.data,
                urgency=form.urgency.data, severity=form.severity.data,
                certainty=form.certainty.data, headline_vi=form.headline_vi.data or "",
                headline_en=form.headline_en.data or "",
                description_vi=form.description_vi.data or "",
                description_en=form.description_en.data or "",
                instruction_vi=form.instruction_vi.data or "",
                instruction_en=form.instruction_en.data or "",
                wards=list(form.wards.data or []), expires_hours=form.expires_hours.data or 0)
            try:
                warning = public_warnings.draft(s, instance_id, answers, actor=_actor(),
                                         now=ioc.clock.now())
            except PlaybookError as exc:
                s.rollback()
                _refused(form, exc)
            else:
                flash(both("Warning #%(id)s drafted: it is published once approved.",
                           id=warning.id), "ok")
                return redirect(url_for("command.board") + f"#run-{instance_id}")
        return render_template("command/warning.html", form=form, instance=instance), \
            422 if form.errors else 200


@bp.post("/warnings/<int:warning_id>/publish")
@commander_required
def publish_warning(warning_id: int):
    """Phê duyệt và phát / approve a drafted warning and publish it."""
    return _act(lambda s, ioc: public_warnings.publish(s, warning_id, actor=_actor(),
                                                       now=ioc.clock.now(),
                                                       email=ioc.settings.smtp_enabled),
                lambda warning: both("Published: %(identifier)s",
                                     identifier=warning.identifier), url_for("command.board"))


@bp.post("/runs/<int:instance_id>/message")
@commander_required
def message(instance_id: int):
    """Gửi chỉ đạo / send a message to every unit with an order in the run."""
    back = url_for("command.board") + f"#run-{instance_id}"
    form = MessageForm()
    if not _filled(form, both("A message needs its text.")):
        return redirect(back)
    return _act(lambda s, ioc: playbooks.message_everyone(s, instance_id, form.text.data,
                                                          actor=_actor(),
                                                          email=ioc.settings.smtp_enabled),
                lambda units: both("Sent to %(count)s units.", count=len(units)), back)
