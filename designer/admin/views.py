"""The administration pages: people and source systems. Views map forms onto the account
services (engine/auth/service.py), which validate and audit; a refusal is shown on its field."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from designer.admin import bp, manage_required
from designer.admin.forms import PasswordForm, PersonForm, SourceForm
from designer.i18n import both
from designer.scenarios import department_choices
from designer.scenarios.forms import ActionForm
from engine.audit import service as audit
from engine.auth import service as auth
from engine.auth.models import User
from engine.auth.permissions import ROLES
from engine.events.models import Source
from engine.org import service as org

# The service's field names, as the forms call them.
FORM_FIELDS = {"department": "department", "rate_limit_per_minute": "rate_limit",
               "allowed_types": "allowed_types", "hmac_secret": "hmac_secret"}


def _ioc():
    return current_app.extensions["ioc"]


def _actor() -> str:
    return f"user:{current_user.username}"


def _refused(form, exc: auth.AuthError) -> None:
    """Show the service's refusal on the field it names (or above the form)."""
    field = getattr(form, FORM_FIELDS.get(exc.field, exc.field), None)
    if field is not None:
        field.errors = list(field.errors) + [exc.message]
    else:
        form.form_errors.append(exc.message)


def _units(session) -> list[SelectChoice]:
    """The units in force by name ("" first: none)."""
    return [SelectChoice("", "— " + both("no unit") + " —")] + department_choices(session)


# -- people --------------------------------------------------------------------------------------

@bp.get("/users")
@manage_required("users.manage")
def users():
    """Người dùng / people: find by name, role, unit and state."""
    text = request.args.get("q", "").strip()[:100]
    role = request.args.get("role", "")
    unit = request.args.get("department", "")
    state = request.args.get("state", "")
    if role and role not in ROLES or state not in ("", "active", "inactive"):
        abort(400)
    with _ioc().db.read() as s:
        found = auth.users(s, text=text, role=role, department_key=unit,
                           active={"": None, "active": True, "inactive": False}[state])
        units = _units(s)
    return render_template("admin/users.html", users=found, units=units, q=text, role=role,
                           department=unit, state=state)


@bp.route("/users/new", methods=["GET", "POST"])
@manage_required("users.manage")
def new_user():
    """Thêm người dùng / add a person with a role, a unit and a first password."""
    form = PersonForm()
    with _ioc().db.read() as s:
        form.department.choices = _units(s)
        known = org.known_keys(s)
    if form.validate_on_submit():
        try:
            with _ioc().db.session() as s:
                user, _ = auth.create_user(
                    s, form.username.data, form.role.data, form.department.data or None,
                    full_name=form.full_name.data or "", password=form.password.data or None,
                    email=form.email.data or None, departments=known, actor=_actor())
                user_id = user.id
            flash(both("%(name)s added.", name=form.username.data), "ok")
            return redirect(url_for("admin.user", user_id=user_id))
        except auth.AuthError as exc:
            _refused(form, exc)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/new_user.html", form=form), status


def _user_or_404(s, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _person_form(s, user: User | None = None, formdata=None) -> PersonForm:
    """The edit form of a person (no username or password: those have their own actions)."""
    form = PersonForm(formdata=formdata, obj=user, department=user.department_key if user
                      else None)
    del form.username, form.password
    form.department.choices = _units(s)
    return form


def _user_page(user_id: int, *, form: PersonForm | None = None,
               password_form: PasswordForm | None = None, token: str | None = None,
               status: int = 200):
    with _ioc().db.read() as s:
        user = _user_or_404(s, user_id)
        form = form or _person_form(s, user)
        history = audit.about(s, "user", user_id, limit=50)
        return render_template("admin/user.html", user=user, form=form,
                               password_form=password_form or PasswordForm(),
                               action=ActionForm(), token=token, history=history), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@manage_required("users.manage")
def user(user_id: int):
    """Một người dùng / a person: change name, role, unit, e-mail; their access history."""
    if request.method == "GET":
        return _user_page(user_id)
    with _ioc().db.read() as s:
        _user_or_404(s, user_id)
        form = _person_form(s, formdata=request.form)
        known = org.known_keys(s)
    if form.validate_on_submit():
        try:
            with _ioc().db.session() as s:
                changes = auth.change_user(
                    s, user_id, role=form.role.data, department_key=form.department.data or None,
                    full_name=form.full_name.data or "", email=form.email.data or None,
                    departments=known, actor=_actor())
            flash(both("Changes saved.") if changes else both("Nothing to change."), "ok")
            return redirect(url_for("admin.user", user_id=user_id))
        except auth.AuthError as exc:
            _refused(form, exc)
    return _user_page(user_id, form=form, status=400)


def _action(run, user_id: int, done: str):
    """Run one button's account action (CSRF-checked); its refusal is flashed."""
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        with _ioc().db.session() as s:
            _user_or_404(s, user_id)
            run(s)
        flash(done, "ok")
    except auth.AuthError as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/deactivate")
@manage_required("users.manage")
def deactivate_user(user_id: int):
    """Khóa tài khoản / deactivate: their sessions end at once."""
    return _action(lambda s: auth.set_active(s, user_id, False, actor=_actor()), user_id,
                   both("Account deactivated."))


@bp.post("/users/<int:user_id>/activate")
@manage_required("users.manage")
def activate_user(user_id: int):
    """Mở lại tài khoản / let them log in again."""
    return _action(lambda s: auth.set_active(s, user_id, True, actor=_actor()), user_id,
                   both("Account activated."))


@bp.post("/users/<int:user_id>/token/revoke")
@manage_required("users.manage")
def revoke_token(user_id: int):
    """Thu hồi khóa API / revoke the personal API token."""
    return _action(lambda s: auth.revoke_user_token(s, user_id, actor=_actor()), user_id,
                   both("API token revoked."))


@bp.post("/users/<int:user_id>/token")
@manage_required("users.manage")
def issue_token(user_id: int):
    """Cấp khóa API / a new personal API token, shown on this page only, this once."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with _ioc().db.session() as s:
        _user_or_404(s, user_id)
        token = auth.issue_user_token(s, user_id, actor=_actor())
    # Rendered, not redirected: a flashed token would travel in the session cookie.
    return _user_page(user_id, token=token)


@bp.post("/users/<int:user_id>/password")
@manage_required("users.manage")
def reset_password(user_id: int):
    """Đặt lại mật khẩu / a new password; their sessions end."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _user_page(user_id, password_form=form, status=400)
    return _action(lambda s: auth.set_password(s, user_id, form.password.data, actor=_actor()),
                   user_id, both("New password set."))


# -- sources -------------------------------------------------------------------------------------

def _source_form(source: Source | None = None) -> SourceForm:
    """The source form: the request's data when one was posted, else `source`'s settings."""
    form = SourceForm(obj=source, rate_limit=source.rate_limit_per_minute if source else None)
    form.allowed_types.choices = [SelectChoice(name, name)
                                  for name in sorted(_ioc().vocabulary.types)]
    return form


def _source_or_404(s, source_id: int) -> Source:
    source = s.get(Source, source_id)
    if source is None:
        abort(404)
    return source


@bp.route("/sources/new", methods=["GET", "POST"])
@manage_required("sources.manage")
def new_source():
    """Thêm hệ thống nguồn / register a source; its API token is shown this once."""
    form = _source_form()
    del form.drop_secret, form.disabled
    if form.validate_on_submit():
        try:
            with _ioc().db.session() as s:
                source, token = auth.create_source(
                    s, form.name.data, form.allowed_types.data or [], actor=_actor(),
                    hmac_secret=form.hmac_secret.data or None,
                    rate_limit_per_minute=form.rate_limit.data,
                    known_types=set(_ioc().vocabulary.types))
                source_id = source.id
            return _source_page(source_id, token=token)
        except auth.AuthError as exc:
            _refused(form, exc)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/new_source.html", form=form), status


def _source_page(source_id: int, *, form: SourceForm | None = None, token: str | None = None,
                 status: int = 200):
    with _ioc().db.read() as s:
        source = _source_or_404(s, source_id)
        form = form or _source_form(source=source)
        history = audit.about(s, "source", source_id, limit=50)
        return render_template("admin/source.html", source=source, form=form, token=token,
                               action=ActionForm(), history=history), status


@bp.route("/sources/<int:source_id>", methods=["GET", "POST"])
@manage_required("sources.manage")
def source(source_id: int):
    """Một hệ thống nguồn / a source: event types, rate limit, HMAC secret, on or off."""
    if request.method == "GET":
        return _source_page(source_id)
    form = _source_form()
    del form.name
    if form.validate_on_submit():
        secret = None if form.drop_secret.data else (form.hmac_secret.data or auth.KEEP)
        try:
            with _ioc().db.session() as s:
                _source_or_404(s, source_id)
                changes = auth.change_source(
                    s, source_id, allowed_types=form.allowed_types.data or [],
                    rate_limit_per_minute=form.rate_limit.data, disabled=form.disabled.data,
                    hmac_secret=secret, known_types=set(_ioc().vocabulary.types),
                    actor=_actor())
            flash(both("Changes saved.") if changes else both("Nothing to change."), "ok")
            return redirect(url_for("admin.source", source_id=source_id))
        except auth.AuthError as exc:
            _refused(form, exc)
    return _source_page(source_id, form=form, status=400)


@bp.post("/sources/<int:source_id>/token")
@manage_required("sources.manage")
def rotate_source_token(source_id: int):
    """Đổi khóa API / a new token for the source (shown this once); the old one stops."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with _ioc().db.session() as s:
        _source_or_404(s, source_id)
        token = auth.rotate_source_token(s, source_id, actor=_actor())
    return _source_page(source_id, token=token)
