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

from designer.i18n import both
from engine.auth.permissions import ROLE_NAMES, ROLES
from engine.auth.service import NAME

ROLE_CHOICES = [SelectChoice(role, f"{ROLE_NAMES[role][0]} / {ROLE_NAMES[role][1]}")
                for role in ROLES]
STRIP = [lambda v: v.strip() if isinstance(v, str) else v]
NAME_RULE = both("lower-case letters, digits, '.', '_' or '-'")
AT_LEAST_8 = both("At least 8 characters")


class PersonForm(FlaskForm):
    """Một người dùng / a person: name, role, unit, e-mail (the username only when created)."""

    username = StringField(both("Username"), filters=STRIP, validators=[
        InputRequired(both("The username is required")), Length(max=100),
        Regexp(NAME, message=NAME_RULE)])
    full_name = StringField(both("Full name"), filters=STRIP, validators=[Length(max=200)])
    role = SelectField(both("Role"), choices=ROLE_CHOICES,
                       validators=[InputRequired(both("Choose a role"))])
    department = SelectField(both("Unit"), validators=[Optional()])
    email = StringField(both("E-mail"), filters=STRIP, validators=[Optional(), Length(max=200)])
    password = PasswordField(both("First password"), validators=[
        Optional(), Length(min=8, max=200, message=AT_LEAST_8)])


class PasswordForm(FlaskForm):
    """Đặt lại mật khẩu / a new password, typed twice."""

    password = PasswordField(both("New password"), validators=[
        InputRequired(both("The password is required")),
        Length(min=8, max=200, message=AT_LEAST_8)])
    confirm = PasswordField(both("Repeat the password"), validators=[
        EqualTo("password", message=both("The two entries differ"))])


class SourceForm(FlaskForm):
    """Một hệ thống nguồn / a source: what it may send, how it is guarded, whether it is on."""

    name = StringField(both("Source name"), filters=STRIP, validators=[
        InputRequired(both("The name is required")), Length(max=100),
        Regexp(NAME, message=NAME_RULE)])
    allowed_types = SelectMultipleField(both("Event types it may send (none chosen: all)"),
                                        validators=[Optional()])
    rate_limit = IntegerField(both("Requests a minute at most (empty: no limit)"), validators=[
        Optional(), NumberRange(min=1, message=both("At least 1"))])
    hmac_secret = PasswordField(both("New HMAC secret (empty: keep)"), validators=[
        Optional(), Length(min=16, max=200, message=both("At least 16 characters"))])
    drop_secret = BooleanField(both("Stop requiring an HMAC signature"))
    disabled = BooleanField(both("Refuse its events for now"))
