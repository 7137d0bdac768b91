"""WTForms forms of the designer's own pages: new scenario, import, file editor, dry run."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from designer.display import SEVERITY_NAMES
from designer.i18n import both
from engine.scenarios.service import KEY, SEVERITIES


class NewScenarioForm(FlaskForm):
    """Kịch bản mới / a new scenario: its key, names, owner department and severity."""

    key = StringField(both("Key (e.g. ngap-nuoc)"), validators=[
        InputRequired(both("Key is required")), Length(max=100),
        Regexp(KEY, message=both("lower-case words joined by '-'"))])
    name_vi = StringField(both("Name (Vietnamese)"),
                          validators=[InputRequired(both("Name is required")), Length(max=300)])
    name_en = StringField(both("Name (English)"),
                          validators=[InputRequired(both("Name is required")), Length(max=300)])
    owner = SelectField(both("Owner department"),
                        validators=[InputRequired(both("Choose a department"))])
    severity = SelectField(both("Severity"), default="medium",
                           choices=[SelectChoice(s, SEVERITY_NAMES[s]) for s in SEVERITIES])
    description_vi = TextAreaField(both("Description (vi)"), validators=[Length(max=2000)])
    description_en = TextAreaField(both("Description (en)"), validators=[Length(max=2000)])


class ImportForm(FlaskForm):
    """Nhập kịch bản từ tệp zip / import a scenario folder as a zip."""

    archive = FileField(both("Zip file"), validators=[FileRequired(both("Choose a zip file"))])


class DiagramForm(FlaskForm):
    """Thay sơ đồ bằng tệp BPMN / replace the draft's diagram with a .bpmn file drawn in
    another modeller (Camunda Modeler, Signavio, Bizagi, …)."""

    diagram = FileField(both("BPMN file"), validators=[
        FileRequired(both("Choose a .bpmn file")),
        FileAllowed(["bpmn", "xml"], both("Only .bpmn or .xml files"))])


class FileForm(FlaskForm):
    """The text of one file of a draft (scenario.yaml, sla.yaml, …)."""

    text = TextAreaField(both("Content"), validators=[Length(max=1_000_000)])


class ActionForm(FlaskForm):
    """An empty form: it only carries the CSRF token of a button (publish, discard, retire)."""


STREAMS = [SelectChoice("manual", both("Hand-written list")),
           SelectChoice("simulator", both("Simulator")),
           SelectChoice("recorded", both("A recorded period"))]


class DryRunForm(FlaskForm):
    """Chạy thử / dry run: which sample stream, and how long to let time pass afterwards."""

    stream = RadioField(both("Sample stream"), choices=STREAMS, default="manual")
    events = TextAreaField(both("Events (a JSON array)"), validators=[Length(max=1_000_000)])
    start = DateTimeLocalField(both("From (Vietnam time)"), format="%Y-%m-%dT%H:%M",
                               validators=[Optional()])
    until = DateTimeLocalField(both("Until (recorded)"), format="%Y-%m-%dT%H:%M",
                               validators=[Optional()])
    hours = DecimalField(both("Simulated hours"), default=8, places=1,
                         validators=[Optional(), NumberRange(0.1, 72)])
    seed = IntegerField(both("Seed"), default=1, validators=[Optional(), NumberRange(0, 10**9)])
    settle_days = DecimalField(both("Then let days pass (deadlines, SLA levels)"), default=0,
                               places=1, validators=[Optional(), NumberRange(0, 30)])
