"""The process editor's side panels: one WTForms form per kind of BPMN element, and the route that
shows a panel or applies it to the diagram's XML (engine.scenarios.bpmn_edit writes the XML)."""
from __future__ import annotations

import re

from flask import current_app, jsonify, render_template, request
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, ValidationError
from wtforms.widgets import DateTimeLocalInput, NumberInput

from designer.i18n import both, pboth
from designer.scenarios import bp, design_required
from engine.org import service as org
from engine.processes.spiff import TIMER_KINDS
from engine.scenarios import bpmn_js
from engine.scenarios.bpmn_checks import FORM_TYPES
from engine.scenarios.bpmn_edit import (
    MAX_NAME,
    MAX_TEXT,
    TIMER_MODES,
    EditError,
    apply_properties,
    element_kind,
    read_properties,
)
from engine.scenarios.service import MAX_FILE_BYTES

# Names and labels are translated once, at import: the catalogue does not change while running.
TITLES = {
    "lane": both("Lane: the department"),
    "user_task": both("User task"),
    "script_task": both("Script task"),
    "task": pboth("bpmn", "Task"),  # named like the user task, not like an officer's task
    "start_event": both("Start event"),
    "end_event": both("End event"),
    "timer_event": both("Timer event"),
    "message_event": both("Message event"),
    "catch_event": both("Catch event"),
    "exclusive_gateway": both("Exclusive gateway"),
    "gateway": both("Gateway"),
    "sequence_flow": both("Sequence flow"),
    "participant": both("Participant"),
    "other": both("Element"),
}
TYPE_NAMES = {"string": both("Text"), "long": both("Whole number"),
              "boolean": both("Yes or no"), "date": both("Date"),
              "enum": both("Choice list")}
MODE_NAMES = {
    "wall": both("Wall-clock duration (hours, minutes)"),
    "working_hours": both("Working hours"),
    "working_days": both("Working days"),
    "date": both("At a fixed date and time (Vietnam time)"),
    "cycle": both("Repeating: times, every … hours/minutes"),
    "expression": both("Expression"),
}
KIND_NAMES = {"timeDate": both("A moment"),
              "timeDuration": both("A duration"),
              "timeCycle": both("A cycle")}
MAX_ROWS = 100
CHOOSE = ("", "— {} —".format(both("choose")))
REQUIRED = both("Required")


def _ioc():
    return current_app.extensions["ioc"]


def _most(n: int) -> Length:
    return Length(max=n, message=both("At most %(count)s characters", count=n))


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def _select(label: str, pairs=(), **kwargs) -> SelectField:
    return SelectField(label, choices=_choices(pairs), **kwargs,
                       invalid_choice_message=both("Not a valid choice"))


def _text(label: str, most: int, **kwargs) -> StringField:
    # "" rather than None when the browser leaves a field out.
    return StringField(label, validators=[_most(most)], default="", **kwargs)


def _area(label: str, rows: int) -> TextAreaField:
    return TextAreaField(label, validators=[_most(MAX_TEXT)], default="", render_kw={"rows": rows})


def _number(label: str, **attrs) -> StringField:
    # Numbers are checked by bpmn_edit, with the bilingual messages WTForms does not have.
    return _text(label, 20, widget=NumberInput(**attrs))


class PanelForm(FlaskForm):
    """A panel: starts from the element's values, hands over what to write (bpmn_edit keys)."""

    name = _text(both("Name"), MAX_NAME)

    @staticmethod
    def initial(current: dict) -> dict:
        """The form's data for the element's current values."""
        return dict(current)

    def prepare(self, current: dict) -> None:
        """Choices and fields that depend on the element (and on the organisation, vocabulary)."""

    def props(self) -> dict:
        """The values for bpmn_edit.apply_properties."""
        return {key: field.data for key, field in self._fields.items() if key != "csrf_token"}

    def field_for(self, key: str | None):
        """The form field an EditError names (None: the error is about the whole panel)."""
        return self._fields.get(key) if key else None


class NameForm(PanelForm):
    """Tên / the name of an element the engine reads nothing else from."""


class LaneForm(PanelForm):
    """Làn / a lane names the department its tasks go to: a unit, or an expression."""

    name = None
    department = _select(both("Department"))
    expression = _text(both("Or an expression on the case data, e.g. unit"), MAX_TEXT)

    @staticmethod
    def initial(current: dict) -> dict:
        """A lane named "=expr" shows the expression, any other its department."""
        value = current.get("department", "")
        if value.startswith("="):
            return {"department": "", "expression": value[1:]}
        return {"department": value, "expression": ""}

    def prepare(self, current: dict) -> None:
        """The organisation's units, in Vietnamese order of their names."""
        with _ioc().db.read() as s:
            units = [(u.key, f"{org.display_name(u)} — {u.key}") for u in org.units(s)]
        self.department.choices = _choices([CHOOSE] + sorted(
            units, key=lambda c: org.vi_sort_key(c[1])))

    def validate_expression(self, field) -> None:
        """Exactly one of a department and an expression."""
        if bool(field.data.strip()) == bool(self.department.data):
            raise ValidationError(both("Choose a department or enter an expression (not both)"))

    def props(self) -> dict:
        """The lane's name: the department key, or "=" and the expression."""
        expression = self.expression.data.strip()
        return {"department": f"={expression}" if expression else self.department.data}

    def field_for(self, key: str | None):
        """An error on the lane's name is the expression's when there is one."""
        if key == "department" and self.expression.data.strip():
            return self.expression
        return super().field_for(key)


class FormFieldRow(Form):
    """One field of a user task's form; an empty id drops the row."""

    id = _text(both("Field id"), 100)
    label = _text(both("Label"), MAX_NAME)
    type = _select(both("Type"), [(t, TYPE_NAMES.get(t, t)) for t in FORM_TYPES],
                   default="string")
    required = BooleanField(both("Required"))
    multiline = BooleanField(both("Multi-line"))
    choices = _area(both("Choices, one «id = Label» a line"), 2)


def _choice_lines(choices) -> str:
    return "\n".join(f"{cid} = {label}" for cid, label in choices)


def _parse_choices(text: str) -> list[tuple[str, str]]:
    out = []
    for line in (text or "").splitlines():
        if line.strip():
            cid, _, label = line.partition("=")
            out.append((cid.strip(), label.strip() or cid.strip()))
    return out


class UserTaskForm(PanelForm):
    """Công việc / a user task: its name and the form its department fills in."""

    fields = FieldList(FormField(FormFieldRow), label=both("Form fields"))

    @staticmethod
    def initial(current: dict) -> dict:
        """The existing fields, then two empty rows to add more."""
        rows = [{**f, "choices": _choice_lines(f["choices"])} for f in current["fields"]]
        return {"name": current["name"], "fields": rows + [{}, {}]}

    def validate_fields(self, field) -> None:
        """A bounded number of rows."""
        if len(field.entries) > MAX_ROWS:
            raise ValidationError(both("At most %(count)s fields", count=MAX_ROWS))

    def props(self) -> dict:
        """The rows in order, choices parsed from their lines."""
        rows = [{**row.form.data, "choices": _parse_choices(row.form.choices.data)}
                for row in self.fields.entries]
        return {"name": self.name.data, "fields": rows}

    def field_for(self, key: str | None):
        """"fields-2-id" is the id of the third row shown."""
        match = re.fullmatch(r"fields-(\d+)-(\w+)", key or "")
        if match and int(match[1]) < len(self.fields.entries):
            return self.fields.entries[int(match[1])].form._fields.get(match[2])
        return super().field_for(key)


class ScriptForm(PanelForm):
    """Bước tự động / a script task's script, in the restricted language."""

    script = _area(both("Script (restricted Python)"), 6)


class TimerForm(PanelForm):
    """Hẹn giờ / when a timer fires: a duration, working time, a date, a cycle or an expression."""

    mode = _select(both("How the timer is set"), [(m, MODE_NAMES[m]) for m in TIMER_MODES])
    hours = _number(both("Hours"), min=0)
    minutes = _number(both("Minutes"), min=0, max=59)
    amount = _number(both("Working hours or days; repetitions (empty: forever)"), min=0,
                     step="any")
    date = _text(both("Date and time"), 40, widget=DateTimeLocalInput())
    timer_kind = _select(both("What the expression gives"),
                         [(k, KIND_NAMES[k]) for k in TIMER_KINDS], default="timeDate")
    expression = _area(both("Expression, e.g. add_working_days(received_at, 5)"), 2)
    interrupting = BooleanField(both("Interrupts the task"))
    # Which fields each mode uses, for the page to show only those.
    SHOW_WHEN = {"hours": "wall cycle", "minutes": "wall cycle",
                 "amount": "working_hours working_days cycle", "date": "date",
                 "timer_kind": "expression", "expression": "expression"}

    @staticmethod
    def initial(current: dict) -> dict:
        """The value is the date in "date" mode and the expression in "expression" mode."""
        value = current.get("value", "")
        return {**current, "date": value if current["mode"] == "date" else "",
                "expression": value if current["mode"] == "expression" else ""}

    def prepare(self, current: dict) -> None:
        """Only boundary events interrupt, or not."""
        if current.get("interrupting") is None:
            del self.interrupting

    def props(self) -> dict:
        """The bpmn_edit timer keys; "value" comes from the field of the chosen mode."""
        out = {key: self[key].data for key in ("name", "mode", "hours", "minutes", "amount",
                                               "timer_kind")}
        out["value"] = self.date.data if self.mode.data == "date" else self.expression.data
        if "interrupting" in self:
            out["interrupting"] = self.interrupting.data
        return out

    def field_for(self, key: str | None):
        """The "value" is the date or the expression field, by mode."""
        if key == "value":
            return self.date if self.mode.data == "date" else self.expression
        return super().field_for(key)


class MessageForm(PanelForm):
    """Chờ sự kiện / which event the message event waits for, and the field it correlates on."""

    event_type = _select(both("Event type"),
                         validators=[InputRequired(both("Choose an event type"))])
    correlate_on = _select(both("Correlate on the field"),
                           validators=[InputRequired(both("Choose a field"))])
    # Nothing else of the event reaches the instance's data (engine/processes/message_fields).
    takes = SelectMultipleField(both("Fields taken into the instance's data"),
                                validate_choice=False)

    def prepare(self, current: dict) -> None:
        """Every event type of the vocabulary; the fields of all of them."""
        self.event_fields = _ioc().vocabulary.field_types()
        self.event_type.choices = _choices([CHOOSE] + [(t, t) for t in sorted(self.event_fields)])
        names = sorted({f for fields in self.event_fields.values() for f in fields})
        self.correlate_on.choices = _choices([CHOOSE] + [(f, f) for f in names])
        self.takes.choices = [(f, f) for f in names]

    def validate_takes(self, field) -> None:
        """Each field taken must be one of the chosen event type's."""
        fields = self.event_fields.get(self.event_type.data)
        wrong = [f for f in field.data or [] if fields is not None and f not in fields]
        if wrong:
            raise ValidationError(both("%(event)s has no field %(fields)s",
                                       event=self.event_type.data, fields=", ".join(wrong)))

    def validate_correlate_on(self, field) -> None:
        """The field must be one of the chosen event type's."""
        fields = self.event_fields.get(self.event_type.data)
        if fields is not None and field.data and field.data not in fields:
            raise ValidationError(both("%(event)s has no field %(field)s; its fields: %(fields)s",
                                       event=self.event_type.data, field=field.data,
                                       fields=", ".join(sorted(fields))))


class FlowForm(PanelForm):
    """Luồng / a sequence flow: its condition, or being its gateway's default."""

    condition = _area(both('Condition, e.g. finding == "confirmed"'), 2)
    is_default = BooleanField(both("Default flow (when no condition holds)"))

    def prepare(self, current: dict) -> None:
        """Only a flow leaving a gateway can be its default."""
        if not current.get("from_gateway"):
            del self.is_default

    def props(self) -> dict:
        """Name, condition and (from a gateway) whether it is the default."""
        out = {"name": self.name.data, "condition": self.condition.data}
        if "is_default" in self:
            out["is_default"] = self.is_default.data
        return out


class GatewayForm(PanelForm):
    """Cổng rẽ nhánh / an exclusive gateway's default flow."""

    default = _select(both("Default flow"))

    def prepare(self, current: dict) -> None:
        """The gateway's outgoing flows."""
        self.default.choices = _choices([("", "— {} —".format(both("none")))] + current["outgoing"])

    def props(self) -> dict:
        """Name and the default flow's id ("" for none)."""
        return {"name": self.name.data, "default": self.default.data}


class CatchEventForm(PanelForm):
    """Sự kiện chờ / a catch event without a definition yet: a timer or a message?"""

    definition = _select(both("Waits for"), [CHOOSE, ("timer", both("A timer")),
                                              ("message", both("An event (message)"))],
                         validators=[InputRequired(both("Choose one"))])


PANELS: dict[str, type[PanelForm]] = {
    "lane": LaneForm, "user_task": UserTaskForm, "script_task": ScriptForm,
    "timer_event": TimerForm, "message_event": MessageForm, "catch_event": CatchEventForm,
    "sequence_flow": FlowForm, "exclusive_gateway": GatewayForm,
}


def _refuse(message: str):
    return jsonify(error=message), 400


@bp.post("/panel")
@design_required
def panel():
    """Bảng thuộc tính / an element's side panel: show it, or apply it to the diagram's XML."""
    # The diagram comes from bpmn-js: undo what it writes differently (engine/scenarios/bpmn_js.py).
    xml = bpmn_js.repair(request.form.get("xml", "")).encode("utf-8")
    element_id = request.form.get("element_id", "")
    action = request.form.get("action", "show")
    if action not in ("show", "apply"):
        return _refuse(both("action must be show or apply"))
    if len(xml) > MAX_FILE_BYTES:
        return _refuse(both("The diagram is larger than %(count)s bytes", count=MAX_FILE_BYTES))
    try:
        kind = element_kind(xml, element_id)
        current = read_properties(xml, element_id)
    except EditError as exc:
        return _refuse(exc.message)
    form_class = PANELS.get(kind, NameForm)
    if action == "show":
        form = form_class(formdata=None, data=form_class.initial(current))
    else:
        form = form_class(formdata=request.form)
    form.prepare(current)
    problems: list[str] = []
    if action == "apply" and form.validate():
        try:
            new = apply_properties(xml, element_id, form.props())
        except EditError as exc:
            field = form.field_for(exc.field)
            if field is None:
                problems.append(exc.message)
            else:
                field.errors = [*field.errors, exc.message]
        else:
            return jsonify(element_id=element_id, kind=kind, xml=new.decode("utf-8"),
                           message=both("Updated"))
    html = render_template("scenarios/panel.html", form=form, kind=kind, problems=problems,
                           show_when=getattr(form, "SHOW_WHEN", {}))
    return jsonify(element_id=element_id, kind=kind, title=TITLES[kind], html=html)
