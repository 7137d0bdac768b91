"""WTForms forms of the web app: login, a task's form built from its definition, dead letters."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from designer.display import EVENT_STATE_NAMES, SEVERITY_NAMES, STATUS_NAMES
from designer.i18n import both
from engine.events import dead_letters


class LoginForm(FlaskForm):
    """Đăng nhập / log in."""

    username = StringField(both("Username"), validators=[InputRequired(), Length(max=100)])
    password = PasswordField(both("Password"), validators=[InputRequired(), Length(max=200)])


class ClaimForm(FlaskForm):
    """An empty form: it only carries the CSRF token of the claim button."""


class AssignForm(FlaskForm):
    """Giao cho đồng nghiệp / hand a task to a colleague of its department."""

    to = SelectField(both("Hand to"), validators=[
        DataRequired(both("Choose a colleague"))])


def task_form(definition: dict, formdata=None) -> FlaskForm:
    """A FlaskForm with one field per field of the task's form definition."""
    class TaskForm(FlaskForm):
        pass

    for field in definition.get("fields", []):
        required = [InputRequired(message=both("Required"))] if field["required"] else [Optional()]
        label, ftype = field["label"], field["type"]
        if ftype == "enum":
            choices = [SelectChoice("", "— " + both("choose") + " —")] + [
                SelectChoice(o["id"], o["label"]) for o in field["options"]]
            made = SelectField(label, choices=choices, validators=required,
                               default=field.get("default") or "")
        elif ftype == "boolean":
            made = BooleanField(label, default=str(field.get("default")).lower() == "true")
        elif ftype == "long":
            made = IntegerField(label, validators=required)
        elif ftype == "date":
            made = DateField(label, validators=required)
        elif ftype == "text":
            made = TextAreaField(label, validators=required + [Length(max=10000)])
        else:
            made = StringField(label, validators=required + [Length(max=2000)],
                               default=field.get("default"))
        setattr(TaskForm, field["id"], made)
    return TaskForm(formdata=formdata)


def answers(form: FlaskForm, definition: dict) -> dict:
    """The submitted answers as plain data for the task service (dates as ISO strings)."""
    out = {}
    for field in definition.get("fields", []):
        value = form[field["id"]].data
        if field["type"] == "date" and value is not None:
            value = value.isoformat()
        out[field["id"]] = value
    return out


class ReasonForm(FlaskForm):
    """Nêu lý do / say why: discarding a dead letter, resolving an incident without a retry."""

    reason = StringField(both("Reason"), filters=[lambda v: v.strip() if v else v], validators=[
        DataRequired(both("A reason is required")),
        Length(max=dead_letters.MAX_REASON, message=both(
            "The reason must be at most %(count)s characters", count=dead_letters.MAX_REASON))])


class FindingForm(FlaskForm):
    """Ghi kết luận kiểm tra / an auditor's finding on a case: what, how serious, whose."""

    note = TextAreaField(both("Finding"), filters=[lambda v: v.strip() if v else v],
                         validators=[DataRequired(both("The finding is required")),
                                     Length(max=2000, message=both(
                                         "At most %(count)s characters", count=2000))])
    severity = SelectField(both("Severity"), default="medium", choices=[
        SelectChoice(key, name) for key, name in SEVERITY_NAMES.items()])
    department = SelectField(both("Responsible unit"),
                             validators=[DataRequired(both("Choose a unit"))])


class CaseSearchForm(FlaskForm):
    """Tìm hồ sơ / case search: every filter optional, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    since = DateField(both("Since"), validators=[Optional()])
    until = DateField(both("Until"), validators=[Optional()])
    department = StringField(both("Unit"), validators=[Optional(), Length(max=100)])
    ward = StringField(both("Ward"), validators=[Optional(), Length(max=100)])
    scenario = StringField(both("Scenario"), validators=[Optional(), Length(max=100)])
    version = IntegerField(both("Version"), validators=[Optional(), NumberRange(min=1)])
    officer = StringField(both("Officer"), validators=[Optional(), Length(max=100)])
    # The states in the words the list itself shows them in (display.STATUS_NAMES).
    status = SelectField(both("Status"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any"))] + [
        SelectChoice(key, STATUS_NAMES[key]) for key in ("running", "completed", "cancelled",
                                                         "error")])
    kind = SelectField(both("Kind"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any")), SelectChoice("violation", both("violation")),
        SelectChoice("incident", both("incident")), SelectChoice("none", both("other"))])
    outcome = StringField(both("Outcome"), validators=[Optional(), Length(max=100)])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])


class AccessSearchForm(FlaskForm):
    """Nhật ký truy cập / the access log's filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    kind = SelectField(both("Kind"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any")), SelectChoice("logins", both("logins")),
        SelectChoice("failed_logins", both("failed logins")),
        SelectChoice("permissions", both("accounts and permissions")),
        SelectChoice("sources", both("sources")),
        SelectChoice("case_views", both("case files read or exported"))])
    person = StringField(both("Person (username)"), validators=[Optional(),
                                                                      Length(max=100)])
    since = DateField(both("Since"), validators=[Optional()])
    until = DateField(both("Until"), validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])


class InboxForm(FlaskForm):
    """Lọc hộp công việc / the inbox's filters and order, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    # Named as the inbox's status column names them (display.STATUS_NAMES).
    state = SelectField(both("State"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("to do"))] + [
        SelectChoice(key, STATUS_NAMES[key]) for key in ("open", "claimed", "completed")])
    mine = BooleanField(both("My tasks"))
    department = SelectField(both("Unit"), validators=[Optional()], default="")
    scenario = SelectField(both("Scenario"), validators=[Optional()], default="")
    subject = StringField(both("Subject (case or slip number…)"), validators=[
        Optional(), Length(max=100)])
    sort = SelectField(both("Order"), validators=[Optional()], default="urgent", choices=[
        SelectChoice("urgent", both("most urgent first")),
        SelectChoice("newest", both("newest first")),
        SelectChoice("oldest", both("oldest first"))])
    cursor = StringField(validators=[Optional(), Length(max=80)])


class ViolationSearchForm(FlaskForm):
    """Lọc vi phạm, sự cố / the violations list's filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    kind = SelectField(both("Kind"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any")), SelectChoice("violation", both("violation")),
        SelectChoice("incident", both("incident"))])
    status = SelectField(both("Status"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any")), SelectChoice("open", both("Open")),
        SelectChoice("closed", both("Closed"))])
    severity = SelectField(both("Severity"), validators=[Optional()], default="",
                           choices=[SelectChoice("", both("any"))] + [
                               SelectChoice(key, name) for key, name in SEVERITY_NAMES.items()])
    scenario = SelectField(both("Scenario"), validators=[Optional()], default="")
    subject = StringField(both("Subject"), validators=[Optional(), Length(max=100)])
    since = DateField(both("Since"), validators=[Optional()])
    until = DateField(both("Until"), validators=[Optional()])
    order = SelectField(both("Order"), validators=[Optional()], default="newest", choices=[
        SelectChoice("newest", both("newest first")),
        SelectChoice("oldest", both("oldest first"))])
    after = IntegerField(validators=[Optional(), NumberRange(min=1)])


class SlaFilterForm(FlaskForm):
    """Lọc bảng thời hạn / the SLA board's period, unit and scenario (GET, no CSRF)."""

    class Meta:
        csrf = False

    since = DateField(both("Since"), validators=[Optional()])
    until = DateField(both("Until"), validators=[Optional()])
    department = SelectField(both("Unit"), validators=[Optional()], default="")
    scenario = SelectField(both("Scenario"), validators=[Optional()], default="")


class EventSearchForm(FlaskForm):
    """Lọc sự kiện / the events' (and dead letters') filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    status = SelectField(both("State"), validators=[Optional()], default="", choices=[
        SelectChoice("", both("any"))] + [
        SelectChoice(key, name) for key, name in EVENT_STATE_NAMES.items()])
    type = SelectField(both("Event type"), validators=[Optional()], default="")
    source = SelectField(both("Source"), validators=[Optional()], default="")
    subject = StringField(both("Subject"), validators=[Optional(), Length(max=100)])
    since = DateField(both("Received from"), validators=[Optional()])
    until = DateField(both("Until"), validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])
