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

from designer.display import SEVERITY_NAMES
from engine.events import dead_letters


class LoginForm(FlaskForm):
    """Đăng nhập / log in."""

    username = StringField("Tên đăng nhập / Username", validators=[InputRequired(), Length(max=100)])
    password = PasswordField("Mật khẩu / Password", validators=[InputRequired(), Length(max=200)])


class ClaimForm(FlaskForm):
    """An empty form: it only carries the CSRF token of the claim button."""


class AssignForm(FlaskForm):
    """Giao cho đồng nghiệp / hand a task to a colleague of its department."""

    to = SelectField("Giao cho / Hand to", validators=[
        DataRequired("Chọn người nhận / Choose a colleague")])


def task_form(definition: dict, formdata=None) -> FlaskForm:
    """A FlaskForm with one field per field of the task's form definition."""
    class TaskForm(FlaskForm):
        pass

    for field in definition.get("fields", []):
        required = [InputRequired(message="Bắt buộc / Required")] if field["required"] else [Optional()]
        label, ftype = field["label"], field["type"]
        if ftype == "enum":
            choices = [SelectChoice("", "— chọn / choose —")] + [
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

    reason = StringField("Lý do / Reason", filters=[lambda v: v.strip() if v else v], validators=[
        DataRequired("Thiếu lý do / A reason is required"),
        Length(max=dead_letters.MAX_REASON, message=(
            f"Lý do dài tối đa {dead_letters.MAX_REASON} ký tự / The reason must be at most "
            f"{dead_letters.MAX_REASON} characters"))])


class FindingForm(FlaskForm):
    """Ghi kết luận kiểm tra / an auditor's finding on a case: what, how serious, whose."""

    note = TextAreaField("Nội dung kết luận / Finding", filters=[lambda v: v.strip() if v else v],
                         validators=[DataRequired("Thiếu nội dung / The finding is required"),
                                     Length(max=2000, message="Tối đa 2000 ký tự / At most 2000 "
                                                              "characters")])
    severity = SelectField("Mức độ / Severity", default="medium", choices=[
        SelectChoice("low", "Thấp / low"), SelectChoice("medium", "Trung bình / medium"),
        SelectChoice("high", "Cao / high"), SelectChoice("critical", "Nghiêm trọng / critical")])
    department = SelectField("Đơn vị chịu trách nhiệm / Responsible unit",
                             validators=[DataRequired("Chọn đơn vị / Choose a unit")])


class CaseSearchForm(FlaskForm):
    """Tìm hồ sơ / case search: every filter optional, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    since = DateField("Từ ngày / From", validators=[Optional()])
    until = DateField("Đến ngày / Until", validators=[Optional()])
    department = StringField("Đơn vị / Unit", validators=[Optional(), Length(max=100)])
    ward = StringField("Phường, xã / Ward", validators=[Optional(), Length(max=100)])
    scenario = StringField("Kịch bản / Scenario", validators=[Optional(), Length(max=100)])
    version = IntegerField("Phiên bản / Version", validators=[Optional(), NumberRange(min=1)])
    officer = StringField("Cán bộ / Officer", validators=[Optional(), Length(max=100)])
    status = SelectField("Trạng thái / Status", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("running", "đang chạy / running"),
        SelectChoice("completed", "đã xong / completed"),
        SelectChoice("cancelled", "đã hủy / cancelled"), SelectChoice("error", "lỗi / error")])
    kind = SelectField("Loại / Kind", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("violation", "vi phạm / violation"),
        SelectChoice("incident", "sự cố / incident"), SelectChoice("none", "khác / other")])
    outcome = StringField("Kết quả / Outcome", validators=[Optional(), Length(max=100)])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])


class AccessSearchForm(FlaskForm):
    """Nhật ký truy cập / the access log's filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    kind = SelectField("Loại / Kind", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("logins", "đăng nhập, đăng xuất / logins"),
        SelectChoice("failed_logins", "đăng nhập không thành công / failed logins"),
        SelectChoice("permissions", "tài khoản, phân quyền / accounts and permissions"),
        SelectChoice("sources", "hệ thống nguồn / sources"),
        SelectChoice("case_views", "xem, xuất hồ sơ / case files read or exported")])
    person = StringField("Người dùng / Person (username)", validators=[Optional(),
                                                                      Length(max=100)])
    since = DateField("Từ ngày / From", validators=[Optional()])
    until = DateField("Đến ngày / Until", validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])


class InboxForm(FlaskForm):
    """Lọc hộp công việc / the inbox's filters and order, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    state = SelectField("Trạng thái / State", validators=[Optional()], default="", choices=[
        SelectChoice("", "cần xử lý / to do"), SelectChoice("open", "chờ nhận / open"),
        SelectChoice("claimed", "đang xử lý / claimed"),
        SelectChoice("completed", "đã hoàn thành / completed")])
    mine = BooleanField("Việc của tôi / My tasks")
    department = SelectField("Đơn vị / Unit", validators=[Optional()], default="")
    scenario = SelectField("Kịch bản / Scenario", validators=[Optional()], default="")
    subject = StringField("Đối tượng (mã hồ sơ, phiếu…) / Subject", validators=[
        Optional(), Length(max=100)])
    sort = SelectField("Sắp xếp / Order", validators=[Optional()], default="urgent", choices=[
        SelectChoice("urgent", "gấp nhất trước / most urgent first"),
        SelectChoice("newest", "mới nhất trước / newest first"),
        SelectChoice("oldest", "cũ nhất trước / oldest first")])
    cursor = StringField(validators=[Optional(), Length(max=80)])


class ViolationSearchForm(FlaskForm):
    """Lọc vi phạm, sự cố / the violations list's filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    kind = SelectField("Loại / Kind", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("violation", "vi phạm / violation"),
        SelectChoice("incident", "sự cố / incident")])
    status = SelectField("Trạng thái / Status", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("open", "đang mở / open"),
        SelectChoice("closed", "đã đóng / closed")])
    severity = SelectField("Mức độ / Severity", validators=[Optional()], default="",
                           choices=[SelectChoice("", "tất cả / any")] + [
                               SelectChoice(key, name) for key, name in SEVERITY_NAMES.items()])
    scenario = SelectField("Kịch bản / Scenario", validators=[Optional()], default="")
    subject = StringField("Đối tượng / Subject", validators=[Optional(), Length(max=100)])
    since = DateField("Từ ngày / From", validators=[Optional()])
    until = DateField("Đến ngày / Until", validators=[Optional()])
    order = SelectField("Sắp xếp / Order", validators=[Optional()], default="newest", choices=[
        SelectChoice("newest", "mới nhất trước / newest first"),
        SelectChoice("oldest", "cũ nhất trước / oldest first")])
    after = IntegerField(validators=[Optional(), NumberRange(min=1)])


class SlaFilterForm(FlaskForm):
    """Lọc bảng thời hạn / the SLA board's period, unit and scenario (GET, no CSRF)."""

    class Meta:
        csrf = False

    since = DateField("Từ ngày / From", validators=[Optional()])
    until = DateField("Đến ngày / Until", validators=[Optional()])
    department = SelectField("Đơn vị / Unit", validators=[Optional()], default="")
    scenario = SelectField("Kịch bản / Scenario", validators=[Optional()], default="")


class EventSearchForm(FlaskForm):
    """Lọc sự kiện / the events' (and dead letters') filters, kept in the URL (GET, no CSRF)."""

    class Meta:
        csrf = False

    status = SelectField("Trạng thái / State", validators=[Optional()], default="", choices=[
        SelectChoice("", "tất cả / any"), SelectChoice("pending", "chờ xử lý / pending"),
        SelectChoice("processed", "đã xử lý / processed"),
        SelectChoice("failed", "lỗi / failed"), SelectChoice("discarded", "đã bỏ qua / discarded")])
    type = SelectField("Loại sự kiện / Event type", validators=[Optional()], default="")
    source = SelectField("Nguồn / Source", validators=[Optional()], default="")
    subject = StringField("Đối tượng / Subject", validators=[Optional(), Length(max=100)])
    since = DateField("Nhận từ ngày / Received from", validators=[Optional()])
    until = DateField("Đến ngày / Until", validators=[Optional()])
    before = IntegerField(validators=[Optional(), NumberRange(min=1)])
