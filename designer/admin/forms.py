"""WTForms forms of the administration pages: a person, a password, a source."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import EqualTo, InputRequired, Length, NumberRange, Optional, Regexp

from engine.auth.permissions import ROLE_NAMES, ROLES
from engine.auth.service import NAME

ROLE_CHOICES = [SelectChoice(role, f"{ROLE_NAMES[role][0]} / {ROLE_NAMES[role][1]}")
                for role in ROLES]
STRIP = [lambda v: v.strip() if isinstance(v, str) else v]


class PersonForm(FlaskForm):
    """Một người dùng / a person: name, role, unit, e-mail (the username only when created)."""

    username = StringField("Tên đăng nhập / Username", filters=STRIP, validators=[
        InputRequired("Thiếu tên đăng nhập / The username is required"), Length(max=100),
        Regexp(NAME, message="Chữ thường, số, '.', '_' hoặc '-' / lower-case letters, digits, "
                             "'.', '_' or '-'")])
    full_name = StringField("Họ và tên / Full name", filters=STRIP,
                            validators=[Length(max=200)])
    role = SelectField("Vai trò / Role", choices=ROLE_CHOICES,
                       validators=[InputRequired("Chọn vai trò / Choose a role")])
    department = SelectField("Đơn vị / Unit", validators=[Optional()])
    email = StringField("Thư điện tử / E-mail", filters=STRIP,
                        validators=[Optional(), Length(max=200)])
    password = PasswordField("Mật khẩu ban đầu / First password", validators=[
        Optional(), Length(min=8, max=200, message="Ít nhất 8 ký tự / At least 8 characters")])


class PasswordForm(FlaskForm):
    """Đặt lại mật khẩu / a new password, typed twice."""

    password = PasswordField("Mật khẩu mới / New password", validators=[
        InputRequired("Thiếu mật khẩu / The password is required"),
        Length(min=8, max=200, message="Ít nhất 8 ký tự / At least 8 characters")])
    confirm = PasswordField("Nhập lại / Repeat", validators=[
        EqualTo("password", message="Hai lần nhập không khớp / The two entries differ")])


class SourceForm(FlaskForm):
    """Một hệ thống nguồn / a source: what it may send, how it is guarded, whether it is on."""

    name = StringField("Tên nguồn / Name", filters=STRIP, validators=[
        InputRequired("Thiếu tên / The name is required"), Length(max=100),
        Regexp(NAME, message="Chữ thường, số, '.', '_' hoặc '-' / lower-case letters, digits, "
                             "'.', '_' or '-'")])
    allowed_types = SelectMultipleField("Loại sự kiện được gửi (để trống: tất cả) / Event "
                                        "types it may send (none chosen: all)",
                                        validators=[Optional()])
    rate_limit = IntegerField("Giới hạn yêu cầu mỗi phút (để trống: không giới hạn) / Requests "
                              "a minute at most (empty: no limit)", validators=[
                                  Optional(), NumberRange(min=1, message="Ít nhất 1 / At least 1")])
    hmac_secret = PasswordField("Khóa HMAC mới (để trống: giữ nguyên) / New HMAC secret (empty: "
                                "keep)", validators=[Optional(), Length(
                                    min=16, max=200, message="Ít nhất 16 ký tự / At least 16 "
                                                             "characters")])
    drop_secret = BooleanField("Bỏ yêu cầu chữ ký HMAC / Stop requiring an HMAC signature")
    disabled = BooleanField("Tạm dừng nhận sự kiện / Refuse its events for now")
