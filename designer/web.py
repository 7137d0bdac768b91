"""The web app's pages: login, the department inbox, a task, an instance's history, violations."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from designer import display
from designer.forms import (
    AccessSearchForm,
    AssignForm,
    CaseSearchForm,
    ClaimForm,
    EventSearchForm,
    FindingForm,
    InboxForm,
    LoginForm,
    ReasonForm,
    SlaFilterForm,
    ViolationSearchForm,
    answers,
    task_form,
)
from designer.i18n import N_, both, pair
from designer.scenarios import department_choices
from designer.scenarios.forms import ActionForm
from engine.audit import access, checkpoints
from engine.audit import service as audit
from engine.auth import logins
from engine.auth.models import User
from engine.auth.permissions import ROLE_NAMES, allowed
from engine.cases import bundle, findings, search
from engine.cases import service as cases
from engine.events import dead_letters
from engine.events import search as event_search
from engine.events import service as events
from engine.events.dead_letters import DeadLetterError
from engine.events.models import Source
from engine.incidents import service as incidents
from engine.incidents.service import IncidentError
from engine.notify import service as notify
from engine.org import service as org
from engine.processes import scope, waiting
from engine.processes.models import ProcessInstance
from engine.scenarios.models import PUBLISHED, ScenarioVersion
from engine.tasks import inbox as inbox_service
from engine.tasks import service as tasks
from engine.tasks.models import ACTIVE, Task
from engine.tasks.service import TaskError
from engine.violations import search as violation_search
from engine.violations.models import Violation

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/designer")


# What Flask-Login flashes when a page needs a logged-in person.
LOGIN_NEEDED = both("Please log in.")


def _ioc():
    return current_app.extensions["ioc"]


@bp.app_context_processor
def _globals():
    def unit_name(key):
        # Once per key and request: history and case pages name the same units many times.
        known = g.setdefault("unit_names", {})
        if key not in known:
            with _ioc().db.read() as s:
                unit = org.resolve(s, key) if key else None
                known[key] = org.display_name(unit) if unit else (key or "—")
        return known[key]
    def calendar_warning():
        # Those who can act on it: administrators add the year's file, inspectors plan with it.
        if not getattr(current_user, "is_authenticated", False) or \
                current_user.role not in ("admin", "inspector"):
            return None
        return _ioc().calendar.coverage_warning(_ioc().clock.now())
    def context_lines(context, names=None):
        # The vocabulary's field labels, read once per app (not at every call: setdefault
        # would build them each time).
        labels = current_app.extensions.get("ioc.field_labels")
        if labels is None:
            labels = current_app.extensions["ioc.field_labels"] = display.field_labels(
                _ioc().vocabulary)
        return display.context_lines({**(context or {}), **(names or {})}, labels, unit_name)
    return {"unit_name": unit_name, "role_names": ROLE_NAMES, "allowed": allowed,
            "calendar_warning": calendar_warning, "context_lines": context_lines,
            "process_hidden": display.PROCESS_HIDDEN, "answer_text": display.answer_text,
            "event_name": lambda name: display.event_name(_ioc().vocabulary, name),
            "severity_name": lambda key: display.SEVERITY_NAMES.get(key, key),
            "sla_status": lambda key: display.SLA_STATUS_NAMES.get(key, key),
            "event_state": lambda key: display.EVENT_STATE_NAMES.get(key, key)}


# What a person is told on an error page: (title, what to do), shown in both languages.
ERRORS = {
    400: (N_("Bad request"), N_("The page could not read this request; check what was filled in.")),
    403: (N_("You may not open this page"),
          N_("Your role does not allow it; ask an administrator if you need it.")),
    404: (N_("Not found"), N_("This page or case does not exist, or is not one of your unit's.")),
    405: (N_("Method not allowed"), N_("Open the page from the menu and try again.")),
    413: (N_("Too large"), N_("Send a smaller file.")),
    429: (N_("Too many requests"), N_("Wait a moment and try again.")),
    500: (N_("Internal error"),
          N_("The error was logged for the technical team; try again later.")),
}


def error_page(code: int):
    """An error as a page of the app: its layout, both languages, a way back."""
    title, text = ERRORS.get(code, ERRORS[400] if code < 500 else ERRORS[500])
    back = local_path(request.referrer and urlsplit(request.referrer)._replace(
        scheme="", netloc="").geturl())
    return render_template("error.html", code=code, title=title, text=text, back=back), code


@bp.app_template_filter("readable")
def _readable(value) -> str:
    """Data as JSON a person can read: Vietnamese letters as they are (Jinja escapes the HTML)."""
    return json.dumps(value, ensure_ascii=False, default=str)


bp.add_app_template_filter(display.status_name, "status")


for _name in ("action_name", "details_lines", "actor_name", "number", "percent"):
    bp.add_app_template_filter(getattr(display, _name), _name)


bp.add_app_template_filter(display.local_text, "local")


# An SLA's remaining time, in working days and hours or in wall hours and minutes.
WORKING_DAYS_HOURS = N_("%(days)s d %(hours)s h of working time")
WORKING_DAYS = N_("%(days)s d of working time")
WORKING_HOURS = N_("%(hours)s h of working time")
WALL_TIME = N_("%(hours)s h %(minutes)s min")


@bp.app_template_filter("time_left")
def _time_left(item: dict) -> str:
    """An SLA item's remaining (or overdue) time: working hours/days, or wall hours/minutes."""
    seconds = item["remaining_seconds"]
    late, seconds = seconds < 0, abs(seconds)
    if item["basis"] == "working":
        day = _ioc().calendar.day_length.total_seconds()
        days, rest = divmod(round(seconds), round(day))
        span = WORKING_DAYS_HOURS if days and rest else WORKING_DAYS if days else WORKING_HOURS
        # 0,5 in Vietnamese, 0.5 in English.
        values = {"days": days, "hours": (display.number(rest / 3600),
                                          display.number(rest / 3600, locale="en"))}
    else:
        hours, minutes = divmod(seconds / 60, 60)
        span, values = WALL_TIME, {"hours": int(hours), "minutes": int(minutes)}
    message = N_("%(time)s late") if late else N_("%(time)s left")
    return both(message, time=pair(span, **values))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Đăng nhập / log in with username and password."""
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("login.html", form=form), (401 if form.is_submitted() else 200)
    result = logins.attempt(_ioc().db, form.username.data, form.password.data,
                            request.remote_addr, _ioc().clock.now())
    if result.user is not None:
        login_user(result.user)
        return redirect(local_path(request.args.get("next")) or url_for("web.inbox"))
    if result.reason == "throttled":
        minutes = -(-result.retry_after_s // 60)
        flash(both("Too many failed logins; please try again in %(minutes)s min",
                   minutes=minutes), "error")
        page = render_template("login.html", form=form)
        return page, 429, {"Retry-After": str(result.retry_after_s)}
    flash(both("Wrong username or password"), "error")
    return render_template("login.html", form=form), 401


def local_path(target: str | None) -> str | None:
    """`target` when it is a path on this site (the `next` of a login), else None."""
    if not target:
        return None
    # Browsers drop tabs and newlines from URLs and read "\" as "/": "/\t/evil.example" and
    # "/\\evil.example" both lead to //evil.example, another site. Judge what the browser sees.
    seen = re.sub(r"[\x00-\x1f\x7f]", "", target).replace("\\", "/")
    if not seen.startswith("/") or seen.startswith("//"):
        return None
    parts = urlsplit(seen)
    return seen if not parts.scheme and not parts.netloc else None


@bp.post("/logout")
@login_required
def logout():
    """Đăng xuất / log out: every session of the user ends, a copied cookie included."""
    logins.logout(_ioc().db, current_user, request.remote_addr)
    logout_user()
    session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
def home():
    """The inbox is the home page."""
    return redirect(url_for("web.inbox"))


@bp.get("/inbox")
@login_required
def inbox():
    """The tasks a person may see, filtered and sorted (the most urgent first), a page at a
    time; the filters stay in the URL, so a view can be shared."""
    if not allowed(current_user.role, "tasks.read"):
        return redirect(url_for("web.violations"))
    form = InboxForm(request.args)
    every_unit = allowed(current_user.role, "tasks.any_department")
    with _ioc().db.read() as s:
        form.department.choices = _unit_filter(s, every_unit)
        form.scenario.choices = _scenario_choices(s)
        rows, following, total = [], None, 0
        valid = form.validate()
        if valid:
            filters = inbox_service.Filters(
                state=form.state.data or "", mine=bool(form.mine.data),
                department=form.department.data or "", scenario=form.scenario.data or "",
                subject=form.subject.data or "", sort=form.sort.data or "urgent")
            try:
                rows, following, total = inbox_service.page(
                    s, current_user, filters, form.cursor.data or "")
            except TaskError as exc:
                valid = False
                form.form_errors.append(exc.message)
        instances = {i.id: i for i in s.scalars(select(ProcessInstance).where(
            ProcessInstance.id.in_({t.instance_id for t in rows})))}
        names = dict(s.execute(select(ScenarioVersion.id, ScenarioVersion.name_vi)).all())
        slas = _ioc().sla.for_tasks(s, [t for t in rows if t.status in ACTIVE])
        holders = {u.id: u for u in s.scalars(select(User).where(
            User.id.in_({t.assignee_id for t in rows if t.assignee_id})))}
        notices = notify.for_user(s, current_user, limit=10)
    args = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_template("inbox.html", form=form, tasks=rows, total=total,
                           instances=instances, scenario_names=names, claim_form=ClaimForm(),
                           slas=slas, holders=holders, notices=notices,
                           every_unit=every_unit,
                           next_url=url_for("web.inbox", **args, cursor=following)
                           if following else None), 200 if valid else 400


def _task_or_404(s, task_id: int) -> Task:
    try:
        return tasks.get_for(s, current_user, task_id)
    except TaskError:
        abort(404)


def _assign_form(s, row: Task) -> AssignForm | None:
    """The hand-over form, for the task's holder and its department's head; None for others."""
    if row.status not in ACTIVE or not tasks.may_hand_over(current_user, row):
        return None
    form = AssignForm()
    form.to.choices = [SelectChoice("", "— " + both("choose") + " —")] + [
        SelectChoice(u.username, f"{u.full_name or u.username} ({u.username})")
        for u in tasks.colleagues(s, row) if u.id != row.assignee_id]
    return form


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task(task_id: int):
    """A task: its context, and its form to complete it."""
    with _ioc().db.read() as s:
        row = _task_or_404(s, task_id)
        instance = s.get(ProcessInstance, row.instance_id)
        sla = _ioc().sla.for_tasks(s, [row]).get(row.id) if row.status in ACTIVE else None
        holder = s.get(User, row.assignee_id) if row.assignee_id else None
        assign_form = _assign_form(s, row)
        version = s.get(ScenarioVersion, instance.scenario_version_id) if instance else None
        violation = s.scalars(select(Violation).where(
            Violation.instance_id == row.instance_id)).first()
        may_read_case = scope.may_read_instance(s, current_user, row.instance_id)
    form = task_form(row.form, formdata=request.form if request.method == "POST" else None)
    if request.method == "POST" and form.validate():
        try:
            done = _ioc().complete_task(current_user, task_id, answers(form, row.form))
        except TaskError as exc:
            for err in exc.errors:
                if err["field"] in form:
                    form[err["field"]].errors.append(err["message"])
            flash(exc.message, "error")
        else:
            flash(done.message(), "ok" if done.incident is None else "warn")
            return redirect(url_for("web.inbox"))
    status = 422 if request.method == "POST" else 200
    return render_template("task.html", task=row, instance=instance, form=form,
                           claim_form=ClaimForm(), sla=sla, holder=holder,
                           assign_form=assign_form,
                           scenario_name=version.name_vi if version else "",
                           may_read_case=may_read_case,
                           # The violation's title says what the rule key only codes.
                           names={"violation_type": f"{violation.title_vi} / "
                                                    f"{violation.title_en}"} if violation else {},
                           may_release=row.status == "claimed" and (
                               row.assignee_id == current_user.id or assign_form is not None),
                           may_work=row.status in ACTIVE and allowed(
                               current_user.role, "tasks.complete") and (
                               row.assignee_id in (None, current_user.id))), status


def _task_action(task_id: int, run, done: str):
    """One button on a task (CSRF-checked): `run(session)` moves it; `done` (with the task's
    name) or the refusal is flashed on the task's page."""
    if not ClaimForm().validate_on_submit():
        abort(400)
    try:
        with _ioc().db.session() as s:
            row = run(s)
        flash(f"{done}: {row.name}", "ok")
    except TaskError as exc:
        flash(exc.message, "error")
    return redirect(url_for("web.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int):
    """Nhận xử lý / claim a task."""
    return _task_action(task_id, lambda s: tasks.claim(s, current_user, task_id,
                                                       _ioc().runtime),
                        both("Claimed"))


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int):
    """Trả lại / give a claimed task back to the department."""
    return _task_action(task_id, lambda s: tasks.release(s, current_user, task_id),
                        both("Released to the department"))


@bp.post("/tasks/<int:task_id>/assign")
@login_required
def assign(task_id: int):
    """Giao cho đồng nghiệp / hand the task to a colleague of its department."""
    with _ioc().db.read() as s:
        row = _task_or_404(s, task_id)
        form = _assign_form(s, row)
    if form is None:
        abort(403)
    if not form.validate_on_submit():
        flash(both("Choose a colleague"), "error")
        return redirect(url_for("web.task", task_id=task_id))
    return _task_action(task_id, lambda s: tasks.assign(s, current_user, task_id, form.to.data,
                                                        _ioc().runtime),
                        both("Handed to %(name)s", name=form.to.data))


def _instance_or_404(s, instance_id: int) -> ProcessInstance:
    """The instance, if the person may read it (403 for the role, 404 outside their scope)."""
    if not scope.may_open_cases(current_user):
        abort(403)
    inst = s.get(ProcessInstance, instance_id)
    if inst is None or not scope.may_read_instance(s, current_user, instance_id):
        abort(404)
    return inst


@bp.get("/instances/<int:instance_id>")
@login_required
def instance(instance_id: int):
    """An instance: status, data, tasks, and its audit history in order."""
    with _ioc().db.session() as s:
        inst = _instance_or_404(s, instance_id)
        rows = list(s.scalars(select(Task).where(Task.instance_id == instance_id)
                              .order_by(Task.id)))
        history = audit.history(s, instance_id)
        failures = incidents.open_for_instance(s, instance_id)
        version = s.get(ScenarioVersion, inst.scenario_version_id)
        waits = waiting.waiting_for(s, _ioc().runtime, inst)
        audit.viewed(s, current_user.username, instance_id, "web")
    return render_template("instance.html", instance=inst, tasks=rows, history=history,
                           incidents=failures, scenario_name=version.name_vi if version else "",
                           waits=waits)


def _case_filters() -> tuple[CaseSearchForm, search.Filters | None]:
    form = CaseSearchForm(request.args)
    if not form.validate():
        return form, None
    return form, search.Filters(**{name: (form[name].data or None) for name in (
        "since", "until", "department", "ward", "scenario", "version", "officer", "status",
        "kind", "outcome")})


@bp.get("/cases")
@login_required
def cases_page():
    """Tìm hồ sơ / search cases by period, unit, ward, scenario, officer, status, outcome."""
    if not allowed(current_user.role, "instances.read"):
        abort(403)
    form, filters = _case_filters()
    rows, after, total = [], None, 0
    with _ioc().db.read() as s:
        if filters is not None:
            rows, after, total = search.search(s, current_user, filters, form.before.data)
        names = dict(s.execute(select(ScenarioVersion.key, ScenarioVersion.name_vi)).all())
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template("cases.html", form=form, rows=rows, total=total, args=args,
                           scenario_names=names,
                           next_url=url_for("web.cases_page", **args, before=after)
                           if after else None), 200 if filters is not None else 400


@bp.get("/cases.csv")
@login_required
def cases_csv():
    """The found cases as CSV (every page), with the same filters."""
    if not allowed(current_user.role, "instances.read"):
        abort(403)
    form, filters = _case_filters()
    if filters is None:
        abort(400)
    with _ioc().db.read() as s:
        text = search.to_csv(s, current_user, filters)
    return Response("\ufeff" + text, mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="ho-so.csv"'})


def _case_or_404(s, instance_id: int) -> dict:
    _instance_or_404(s, instance_id)
    return cases.case_file(s, _ioc().runtime, instance_id)


@bp.get("/cases/<int:instance_id>")
@login_required
def case_page(instance_id: int):
    """Hồ sơ vụ việc / a case file: the events, the rule, the painted path on the diagram of the
    version that ran, tasks with their answers, SLAs, notifications, incidents, the timeline."""
    form = FindingForm()
    with _ioc().db.session() as s:
        case = _case_or_404(s, instance_id)
        audit.viewed(s, current_user.username, instance_id, "case file")
        if allowed(current_user.role, "audit.findings"):
            form.department.choices = department_choices(s)
    return _case_html(case, form)


def _case_html(case: dict, finding_form: FindingForm, status: int = 200):
    """The case file page; `finding_form` has its unit choices."""
    marks = {element: "dry-run-done" for element in case["path"]["elements"]}
    marks.update({element: "dry-run-waiting" for element in case["path"]["waiting"]})
    with _ioc().db.read() as s:
        waits = waiting.waiting_for(s, _ioc().runtime,
                                    s.get(ProcessInstance, case["instance"]["id"]))
        # The forms the answers were given on: their labels and options name the answers.
        task_forms = dict(s.execute(select(Task.id, Task.form).where(
            Task.instance_id == case["instance"]["id"])).all())
    return render_template("case.html", case=case, timeline=cases.timeline(case), marks=marks,
                           waits=waits, task_forms=task_forms,
                           form=ActionForm(), finding_form=finding_form,
                           may_find=allowed(current_user.role, "audit.findings"),
                           may_export=allowed(current_user.role, "audit.read")), status


@bp.post("/cases/<int:instance_id>/findings")
@login_required
def case_finding(instance_id: int):
    """Ghi kết luận / record a finding on the case: it goes to the responsible unit as a task."""
    if not allowed(current_user.role, "audit.findings"):
        abort(403)
    form = FindingForm()
    with _ioc().db.read() as s:
        _instance_or_404(s, instance_id)
        form.department.choices = department_choices(s)
    if not form.validate_on_submit():
        return _refused_finding(instance_id, form)
    try:
        finding = findings.record(_ioc().db, _ioc().vocabulary, _ioc().clock, instance_id,
                                  note=form.note.data, severity=form.severity.data,
                                  department=form.department.data,
                                  auditor=f"user:{current_user.username}")
    except findings.FindingRefused as exc:
        flash(both("The finding was refused") + f": {exc}", "error")
        return _refused_finding(instance_id, form)
    _ioc().wake()
    flash(both("Finding %(finding)s recorded; the unit gets a task to answer it",
               finding=finding), "ok")
    return redirect(url_for("web.case_page", instance_id=instance_id))


def _refused_finding(instance_id: int, form: FindingForm):
    """The case file again (422), with the finding's form and its errors."""
    with _ioc().db.read() as s:
        case = cases.case_file(s, _ioc().runtime, instance_id)
    return _case_html(case, form, 422)


@bp.post("/cases/<int:instance_id>/export")
@login_required
def case_export(instance_id: int):
    """Xuất hồ sơ / the case's evidence bundle (zip), for auditors."""
    if not allowed(current_user.role, "audit.read"):
        abort(403)
    if not ActionForm().validate_on_submit():
        abort(400)
    with _ioc().db.read() as s:
        _instance_or_404(s, instance_id)
    try:
        data = _ioc().export_case(instance_id, actor=f"user:{current_user.username}")
    except bundle.BundleError as exc:
        flash(str(exc), "error")
        return redirect(url_for("web.case_page", instance_id=instance_id))
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="ho-so-{instance_id}.zip"'})


@bp.get("/sla")
@login_required
def sla_board():
    """Bảng theo dõi thời hạn / the SLA board: per department and scenario, and open items, over
    a period (default the last 30 days), for a unit and a scenario; kept in the URL."""
    if not allowed(current_user.role, "sla.read"):
        abort(403)
    ioc = _ioc()
    form = SlaFilterForm(request.args)
    every_unit = allowed(current_user.role, "sla.any_department")
    with ioc.db.read() as s:
        form.department.choices = _unit_filter(s, every_unit)
        form.scenario.choices = _scenario_choices(s)
        valid = form.validate()
        until = org.day_start(form.until.data + timedelta(days=1)) if valid and \
            form.until.data else ioc.clock.now()
        since = org.day_start(form.since.data) if valid and form.since.data else \
            until - timedelta(days=30)
        if since >= until:
            form.since.errors = [*form.since.errors, both("must be before the end")]
            valid = False
        report = {"departments": [], "scenarios": [], "items": []}
        if valid:
            report = ioc.sla.report(s, since=since, until=until,
                                    department=(form.department.data or None) if every_unit
                                    else current_user.department_key,
                                    scenario=form.scenario.data or None)
        names = dict(s.execute(select(ScenarioVersion.key, ScenarioVersion.name_vi)).all())
    return render_template("sla.html", report=report, scenario_names=names, form=form,
                           every_unit=every_unit, since=since,
                           until=until - timedelta(seconds=1)), 200 if valid else 400


@bp.get("/sources")
@login_required
def sources():
    """Hệ thống nguồn / source systems: last event, counts and last errors (administrators)."""
    if not allowed(current_user.role, "sources.read"):
        abort(403)
    with _ioc().db.read() as s:
        rows = [events.source_to_dict(src)
                for src in s.scalars(select(Source).order_by(Source.name))]
    return render_template("sources.html", sources=rows)


def _unit_filter(s, every_unit: bool) -> list[SelectChoice]:
    """A unit filter's choices: "all", then every unit for roles over every unit."""
    return [SelectChoice("", both("all"))] + (department_choices(s) if every_unit else [])


def _scenario_choices(s) -> list[SelectChoice]:
    """Every published scenario by its name, for a filter ("" first: any)."""
    rows = s.execute(select(ScenarioVersion.key, ScenarioVersion.name_vi)
                     .where(ScenarioVersion.status == PUBLISHED)
                     .order_by(ScenarioVersion.name_vi)).all()
    return [SelectChoice("", both("all"))] + [SelectChoice(key, name) for key, name in rows]


@bp.get("/violations")
@login_required
def violations():
    """Vi phạm và sự cố / violations and incidents: filtered, newest first, a page at a time."""
    if not allowed(current_user.role, "violations.read"):
        abort(403)
    form = ViolationSearchForm(request.args)
    rows, after, total = [], None, 0
    with _ioc().db.read() as s:
        form.scenario.choices = _scenario_choices(s)
        valid = form.validate()
        if valid:
            filters = violation_search.Filters(
                kind=form.kind.data or "", status=form.status.data or "",
                severity=form.severity.data or "", scenario=form.scenario.data or "",
                subject=form.subject.data or "", since=form.since.data, until=form.until.data,
                oldest_first=form.order.data == "oldest")
            rows, after, total = violation_search.search(s, current_user, filters,
                                                         form.after.data)
        names = dict(s.execute(select(ScenarioVersion.key, ScenarioVersion.name_vi)).all())
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    return render_template("violations.html", form=form, violations=rows, total=total,
                           scenario_names=names,
                           next_url=url_for("web.violations", **args, after=after)
                           if after else None), 200 if valid else 400


def _audit_page(result=None):
    if not allowed(current_user.role, "audit.read"):
        abort(403)
    settings = _ioc().settings
    try:
        key = checkpoints.signing_key(settings.audit_key_path)
        public = key.public_key()
        listed, problem = checkpoints.kept(settings.checkpoint_path), ""
    except checkpoints.CheckpointError as exc:
        key, public, listed, problem = None, None, [], str(exc)
    rows = []
    for path, checkpoint in reversed(listed):
        try:
            checkpoints.check(checkpoint, public)
            valid = ""
        except checkpoints.CheckpointError as exc:
            valid = str(exc)
        rows.append({"file": path.name, "checkpoint": checkpoint, "refused": valid,
                     "at": datetime.fromisoformat(checkpoint.time)})
    return render_template("audit.html", rows=rows, problem=problem, result=result,
                           public_pem=checkpoints.public_pem(key) if key else "",
                           key_id=checkpoints.key_id(public) if public else "",
                           folder=settings.checkpoint_path, form=ActionForm())


@bp.get("/audit")
@login_required
def audit_page():
    """Nhật ký kiểm toán / the audit log: signed checkpoints, the public key, verification."""
    return _audit_page()


@bp.post("/audit/verify")
@login_required
def audit_verify():
    """Kiểm tra / recompute the log and prove it against every published checkpoint."""
    if not allowed(current_user.role, "audit.read"):
        abort(403)
    if not ActionForm().validate_on_submit():
        abort(400)
    result, _, _ = audit.verify_published(_ioc().settings, _ioc().db)
    return _audit_page(result)


@bp.get("/audit/access")
@login_required
def audit_access():
    """Nhật ký truy cập / who logged in or failed to, whose access changed, who read which case
    file: filtered by kind, person and period, newest first, a page at a time."""
    if not allowed(current_user.role, "audit.read"):
        abort(403)
    form = AccessSearchForm(request.args)
    rows, after, total = [], None, 0
    valid = form.validate()
    if valid:
        filters = access.Filters(kind=form.kind.data or None, person=form.person.data or None,
                                 since=form.since.data, until=form.until.data)
        with _ioc().db.read() as s:
            rows, after, total = access.search(s, filters, form.before.data)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template("audit_access.html", form=form, rows=rows, total=total,
                           next_url=url_for("web.audit_access", **args, before=after)
                           if after else None), 200 if valid else 400


def _may_handle_dead_letters() -> None:
    if not allowed(current_user.role, "events.dead_letters"):
        abort(403)


def _event_page(template: str, endpoint: str, fixed_status: str = "", **context):
    """A page of stored events found by the filters in the URL (the events page, and the dead
    letters with their state fixed to failed)."""
    form = EventSearchForm(request.args)
    ioc = _ioc()
    form.type.choices = [SelectChoice("", both("any"))] + [
        SelectChoice(name, f"{display.event_name(ioc.vocabulary, name)} ({name})")
        for name in sorted(ioc.vocabulary.types)]
    rows, before, total = [], None, 0
    with ioc.db.read() as s:
        sources = list(s.scalars(select(Source).order_by(Source.name)))
        form.source.choices = [SelectChoice("", both("any"))] + [
            SelectChoice(str(src.id), src.name) for src in sources]
        valid = form.validate()
        if valid:
            rows, before, total = event_search.search(s, event_search.Filters(
                status=fixed_status or form.status.data or "", type=form.type.data or "",
                source_id=int(form.source.data) if form.source.data else None,
                subject=form.subject.data or "", since=form.since.data, until=form.until.data),
                form.before.data)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(template, form=form, events=[events.to_dict(e) for e in rows],
                           attempts={e.id: e.attempts for e in rows}, total=total,
                           next_url=url_for(endpoint, **args, before=before) if before else None,
                           **context), 200 if valid else 400


@bp.get("/events")
@login_required
def events_page():
    """Sự kiện / the events received from every source, filtered, newest first, a page at a
    time (inspectors, auditors, administrators)."""
    if not allowed(current_user.role, "events.read"):
        abort(403)
    return _event_page("events.html", "web.events_page")


def _dead_letters_page(discard_form: ReasonForm | None = None, failed_id: int | None = None,
                       status: int = 200):
    page, code = _event_page("dead_letters.html", "web.dead_letters_page", fixed_status="failed",
                             discard_form=discard_form or ReasonForm(), failed_id=failed_id)
    return page, code if code != 200 else status


@bp.get("/dead-letters")
@login_required
def dead_letters_page():
    """Sự kiện lỗi / dead letters: failed events, each to retry or discard (administrators)."""
    _may_handle_dead_letters()
    return _dead_letters_page()


@bp.post("/dead-letters/<int:event_id>/retry")
@login_required
def retry_dead_letter(event_id: int):
    """Xử lý lại / put a dead letter back in the queue."""
    _may_handle_dead_letters()
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with _ioc().db.session() as s:
            dead_letters.retry(s, event_id, actor=f"user:{current_user.username}")
    except DeadLetterError as exc:
        flash(exc.message, "error")
    else:
        _ioc().wake()  # after the commit, so the runner sees it pending
        flash(both("Event %(id)s will be processed again", id=event_id), "ok")
    return redirect(url_for("web.dead_letters_page"))


@bp.post("/dead-letters/<int:event_id>/discard")
@login_required
def discard_dead_letter(event_id: int):
    """Bỏ qua / discard a dead letter with a reason."""
    _may_handle_dead_letters()
    form = ReasonForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        return _dead_letters_page(form, event_id, 422)
    try:
        with _ioc().db.session() as s:
            dead_letters.discard(s, event_id, actor=f"user:{current_user.username}",
                                 reason=form.reason.data)
    except DeadLetterError as exc:
        flash(exc.message, "error")
    else:
        flash(both("Event %(id)s discarded", id=event_id), "ok")
    return redirect(url_for("web.dead_letters_page"))


# -- process incidents ----------------------------------------------------------------------------

def _may_handle_incidents() -> None:
    if not allowed(current_user.role, "incidents.manage"):
        abort(403)


def _incidents_page(resolve_form: ReasonForm | None = None, failed_id: int | None = None,
                    status: int = 200):
    with _ioc().db.read() as s:
        rows = incidents.list_incidents(s, limit=200)
    return render_template("incidents.html", incidents=rows, failed_id=failed_id,
                           resolve_form=resolve_form or ReasonForm()), status


@bp.get("/process-incidents")
@login_required
def incidents_page():
    """Lỗi quy trình / process incidents: failed steps, each to retry or resolve."""
    _may_handle_incidents()
    return _incidents_page()


@bp.post("/process-incidents/<int:incident_id>/retry")
@login_required
def retry_incident(incident_id: int):
    """Chạy lại / run a failed step again (once the scenario is fixed)."""
    _may_handle_incidents()
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with _ioc().db.session() as s:
            result = incidents.retry(s, _ioc().runtime, incident_id,
                                     actor=f"user:{current_user.username}")
            error = result.incident.error
    except IncidentError as exc:
        flash(exc.message, "error")
    else:
        _ioc().wake()
        if result.resolved:
            flash(both("Retried: the process goes on") + f" (#{incident_id})", "ok")
        else:
            flash(both("Failed again") + f" (#{incident_id}): {error}", "error")
    return redirect(url_for("web.incidents_page"))


@bp.post("/process-incidents/<int:incident_id>/resolve")
@login_required
def resolve_incident(incident_id: int):
    """Đóng có lý do / settle an incident without a retry, saying why."""
    _may_handle_incidents()
    form = ReasonForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        return _incidents_page(form, incident_id, 422)
    try:
        with _ioc().db.session() as s:
            incidents.resolve(s, incident_id, actor=f"user:{current_user.username}",
                              note=form.reason.data)
    except IncidentError as exc:
        flash(exc.message, "error")
    else:
        flash(both("Incident #%(id)s resolved", id=incident_id), "ok")
    return redirect(url_for("web.incidents_page"))
