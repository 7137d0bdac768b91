"""The command pages' forms: a playbook's start form and a dismissal's reason."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, SelectMultipleField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from designer.i18n import both
from engine.playbooks.service import MAX_NOTES, MAX_REASON


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
