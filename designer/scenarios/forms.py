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
from engine.scenarios.service import KEY, SEVERITIES


class NewScenarioForm(FlaskForm):
    """Kịch bản mới / a new scenario: its key, names, owner department and severity."""

    key = StringField("Mã kịch bản / Key (vd. ngap-nuoc)", validators=[
        InputRequired("Thiếu mã / Key is required"), Length(max=100),
        Regexp(KEY, message="Chữ thường, số, nối bằng '-' / lower-case words joined by '-'")])
    name_vi = StringField("Tên (tiếng Việt) / Name (Vietnamese)",
                          validators=[InputRequired("Thiếu tên / Name is required"),
                                      Length(max=300)])
    name_en = StringField("Tên (tiếng Anh) / Name (English)",
                          validators=[InputRequired("Thiếu tên / Name is required"),
                                      Length(max=300)])
    owner = SelectField("Đơn vị chủ trì / Owner department",
                        validators=[InputRequired("Chọn đơn vị / Choose a department")])
    severity = SelectField("Mức độ / Severity", default="medium",
                           choices=[SelectChoice(s, SEVERITY_NAMES[s]) for s in SEVERITIES])
    description_vi = TextAreaField("Mô tả / Description (vi)", validators=[Length(max=2000)])
    description_en = TextAreaField("Mô tả / Description (en)", validators=[Length(max=2000)])


class ImportForm(FlaskForm):
    """Nhập kịch bản từ tệp zip / import a scenario folder as a zip."""

    archive = FileField("Tệp zip / Zip file", validators=[FileRequired(
        "Chọn tệp zip / Choose a zip file")])


class DiagramForm(FlaskForm):
    """Thay sơ đồ bằng tệp BPMN / replace the draft's diagram with a .bpmn file drawn in
    another modeller (Camunda Modeler, Signavio, Bizagi, …)."""

    diagram = FileField("Tệp BPMN / BPMN file", validators=[
        FileRequired("Chọn tệp .bpmn / Choose a .bpmn file"),
        FileAllowed(["bpmn", "xml"], "Chỉ nhận tệp .bpmn hoặc .xml / Only .bpmn or .xml files")])


class FileForm(FlaskForm):
    """The text of one file of a draft (scenario.yaml, sla.yaml, …)."""

    text = TextAreaField("Nội dung / Content", validators=[Length(max=1_000_000)])


class ActionForm(FlaskForm):
    """An empty form: it only carries the CSRF token of a button (publish, discard, retire)."""


STREAMS = [SelectChoice("manual", "Danh sách tự nhập (JSON) / Hand-written list"),
           SelectChoice("simulator", "Bộ mô phỏng / Simulator"),
           SelectChoice("recorded", "Sự kiện đã ghi nhận / A recorded period")]


class DryRunForm(FlaskForm):
    """Chạy thử / dry run: which sample stream, and how long to let time pass afterwards."""

    stream = RadioField("Luồng sự kiện mẫu / Sample stream", choices=STREAMS, default="manual")
    events = TextAreaField("Sự kiện (mảng JSON) / Events (a JSON array)",
                           validators=[Length(max=1_000_000)])
    start = DateTimeLocalField("Từ lúc (giờ Việt Nam) / From (Vietnam time)",
                               format="%Y-%m-%dT%H:%M", validators=[Optional()])
    until = DateTimeLocalField("Đến lúc / Until (recorded)", format="%Y-%m-%dT%H:%M",
                               validators=[Optional()])
    hours = DecimalField("Số giờ mô phỏng / Simulated hours", default=8, places=1,
                         validators=[Optional(), NumberRange(0.1, 72)])
    seed = IntegerField("Hạt giống / Seed", default=1, validators=[Optional(),
                                                                   NumberRange(0, 10**9)])
    settle_days = DecimalField("Sau đó cho thời gian trôi thêm (ngày) / Then let days pass "
                               "(deadlines, SLA levels)", default=0, places=1,
                               validators=[Optional(), NumberRange(0, 30)])
