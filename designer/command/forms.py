"""The command pages' forms: a playbook's start form and a dismissal's reason."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from designer.i18n import both
from engine.playbooks.service import MAX_MESSAGE, MAX_NOTES, MAX_REASON
from engine.warnings.service import (
    CATEGORIES,
    CERTAINTIES,
    MAX_HEADLINE,
    MAX_HOURS,
    MAX_TEXT,
    SEVERITIES,
    URGENCIES,
)


def _codes(values) -> list[SelectChoice]:
    """CAP's own codes as the choices (the standard's words, as every CAP tool shows them)."""
    return [SelectChoice(v, v) for v in values]


def _optional_int(value):
    return int(value) if value not in (None, "", "None") else None


class CheckboxList(SelectMultipleField):
    """A multiple choice shown as checkboxes (usable on a phone, unlike a multi-select)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class StartRunForm(FlaskForm):
    """Kích hoạt kịch bản ứng phó / start a playbook: level, area, notes."""

    level = SelectField(both("Level"), coerce=int, validators=[Optional()])
    whole_area = BooleanField(both("The whole area"))
    # The service checks the choice (current wards and communes only) and names what is wrong.
    wards = CheckboxList(both("Wards and communes"), validate_choice=False)
    notes = TextAreaField(both("Notes for the forces"),
                          validators=[Length(max=MAX_NOTES, message=both(
                              "At most %(count)s characters", count=MAX_NOTES))])


class DismissForm(FlaskForm):
    """Bỏ qua đề xuất / dismiss a suggestion, saying why."""

    reason = TextAreaField(both("Why it is dismissed"), validators=[
        DataRequired(message=both("Say why")),
        Length(max=MAX_REASON, message=both("At most %(count)s characters", count=MAX_REASON))])


class WarningDraftForm(FlaskForm):
    """Soạn cảnh báo công khai / draft a public warning (CAP 1.2) of a run."""

    msg_type = SelectField(both("Kind of message"), choices=[
        SelectChoice("Alert", both("New warning")),
        SelectChoice("Update", both("Update of a warning")),
        SelectChoice("Cancel", both("Cancellation of a warning"))])
    references_id = SelectField(both("The warning it changes"), coerce=_optional_int,
                                validate_choice=False)
    event = StringField(both("Event"), validators=[DataRequired(message=both("Required")),
                                                   Length(max=200)])
    category = SelectField(both("Category"), choices=_codes(CATEGORIES))
    urgency = SelectField(both("Urgency"), choices=_codes(URGENCIES))
    severity = SelectField(both("Severity"), choices=_codes(SEVERITIES))
    certainty = SelectField(both("Certainty"), choices=_codes(CERTAINTIES))
    headline_vi = StringField(both("Headline in Vietnamese"), validators=[
        DataRequired(message=both("Required")), Length(max=MAX_HEADLINE)])
    headline_en = StringField(both("Headline in English"), validators=[
        DataRequired(message=both("Required")), Length(max=MAX_HEADLINE)])
    description_vi = TextAreaField(both("What is happening, in Vietnamese"),
                                   validators=[Length(max=MAX_TEXT)])
    description_en = TextAreaField(both("What is happening, in English"),
                                   validators=[Length(max=MAX_TEXT)])
    instruction_vi = TextAreaField(both("What people should do, in Vietnamese"),
                                   validators=[Length(max=MAX_TEXT)])
    instruction_en = TextAreaField(both("What people should do, in English"),
                                   validators=[Length(max=MAX_TEXT)])
    wards = CheckboxList(both("Wards and communes"), validate_choice=False)
    expires_hours = IntegerField(both("Holds for (hours)"), default=24,
                                 validators=[NumberRange(min=1, max=MAX_HOURS)])


class MessageForm(FlaskForm):
    """Chỉ đạo tới mọi đơn vị / a message to every unit with an order in a run."""

    text = TextAreaField(both("Message to every unit of the run"), validators=[
        DataRequired(message=both("Required")),
        Length(max=MAX_MESSAGE, message=both("At most %(count)s characters",
                                             count=MAX_MESSAGE))])
