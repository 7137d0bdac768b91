"""The rule builder: one detection rule of rules.yaml as a form an inspector fills in.

- `RuleForm` holds one rule: event type and conditions, a temporal pattern (docs/rules.md §6)
  or further events correlated with it (`all:` with `same:`, and what a repeat means),
  severity, what it opens, title, subject, data for the process, notifications.
- `rule_to_formdata` / `form_to_rule` convert between a rule (as YAML loads it) and the form;
  `unsupported` says why a rule has no form (then the designer offers the YAML editor).
- `upsert_rule` / `remove_rule` change one rule in the file's text and leave the rest of it,
  comments included, as it was: PyYAML keeps no comments, so the text is cut at node marks.

What the form makes is checked by engine.rules.format.parse_rules, the parser that loads
scenarios, and each problem it finds is shown on the form field it concerns.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from designer.display import SEVERITY_NAMES
from designer.i18n import N_, both, pair, pboth, vi
from engine.auth.permissions import ROLE_NAMES, ROLES
from engine.events.vocabulary import Vocabulary, parse_datetime
from engine.rules.dialect import regex_problem
from engine.rules.format import (
    DATA_NAME,
    DEFAULT_ALIAS,
    LANGUAGES,
    OPEN_KINDS,
    REPEAT_WORDS,
    REPEATS,
    RULE_KEY,
    SEVERITIES,
    TEMPORAL_FORMS,
    THEN_KEYS,
    TemplateError,
    parse_rules,
    parse_template,
)
from engine.rules.message import ENVELOPE_TYPES, TEMPLATE_ENVELOPE_TYPES
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.service import MAX_FILE_BYTES
from engine.scenarios.yamlsource import format_path, load_yaml
from engine.worktime.span import WORKING_UNITS, SpanError, parse_span

# ---------------------------------------------------------------------------------------------
# Words whose values differ by language
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Choices
# ---------------------------------------------------------------------------------------------

# Names shown whole are translated here, at import (the catalogue does not change while the app
# runs); names whose two languages go into different places of a sentence stay message ids.
OPS = (("eq", both("equals")), ("ne", both("is not")), ("gt", both("greater than")),
       ("gte", both("at least")), ("lt", both("less than")),
       ("lte", both("at most")), ("in", both("one of (a, b)")),
       ("not_in", both("none of (a, b)")), ("matches", both("matches the pattern")),
       ("empty", both("is blank")), ("filled", both("is not blank")),
       ("exists", both("is present")), ("missing", both("is missing")))
# Tests that take no value: the form's test → the file's test and its true/false.
FLAG_OPS = {"empty": ("empty", True), "filled": ("empty", False),
            "exists": ("exists", True), "missing": ("exists", False)}
ORDERED_OPS = ("gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")

KINDS = (("", both("Every matching event")),
         ("count", both("Count within a window")),
         ("absent", both("Absence of an awaited event")),
         ("sustained", both("Sustained threshold")),
         ("silence", both("Silence")))
WALL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
UNITS = (("m", both("minutes")), ("h", both("hours")), ("d", both("days")),
         ("s", both("seconds")), ("working_hours", both("working hours")),
         ("working_days", both("working days")))
DEADLINES = (("within", both("Within a length of time")),
             ("by", both("By a deadline field of the event")))
OPEN_CHOICES = (("", both("Only start the process")),
                ("violation", both("Violation")), ("incident", pboth("case", "Incident")),
                ("suggestion", both("Suggest the playbook to the commander")))
SEVERITY_CHOICES = (("", both("The scenario's default")), *SEVERITY_NAMES.items(),
                    ("bands", both("By bands of a number field")))
KIND_NAMES = {"string": N_("text"), "integer": N_("whole number"), "number": N_("number"),
              "boolean": N_("true/false"), "datetime": N_("date-time"), "object": N_("object"),
              "array": N_("list")}
ENVELOPE_LABELS = {"source": both("sending system"), "subject": both("the event's subject"),
                   "id": both("event number"), "type": both("event type")}
DEFAULT_REPEAT = REPEATS[0]  # written as nothing: files without `repeat:` stay as they are


def _repeat_choice(kind: str) -> tuple[str, str]:
    vietnamese, english = REPEAT_WORDS[kind]  # the engine's words, as the dry run says them
    words = (vietnamese, english[:1].upper() + english[1:])
    if kind == DEFAULT_REPEAT:
        return kind, both(N_("%(words)s (default)"), words=words)
    return kind, " / ".join(words)


REPEAT_CHOICES = (*(_repeat_choice(kind) for kind in REPEATS),
                  ("once_per", both("Once per period")))
# A rule's repeat as the tail of its description in the list of rules.
REPEAT_TAILS = {"every": N_("each further event matches again"), "once": N_("once per key")}
OTHER_SOURCE = ("other", both("Other"))
ROWS = 3  # condition/data/band rows always shown (a script adds more)
MAX_ROWS = 50
MAX_PATTERNS = 10  # events of one `all:` rule the form takes, the first one included


# ---------------------------------------------------------------------------------------------
# Sources (vocabulary families) and the fields of an event type
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A source family of the vocabulary (one file of integrations/vocabulary) and its types."""

    key: str
    name: str
    types: tuple[str, ...]


def sources(vocabulary: Vocabulary) -> list[Source]:
    """The vocabulary's event types by source family, in file order; types of no file last."""
    out, seen = [], set()
    for key, name, types in vocabulary.families:
        mine = tuple(t for t in types if t in vocabulary.types)
        if mine:
            out.append(Source(key, name, mine))
            seen.update(mine)
    rest = tuple(t for t in vocabulary.types if t not in seen)
    return out + ([Source(*OTHER_SOURCE, rest)] if rest else [])


def field_kinds(vocabulary: Vocabulary, event_type: str | None,
                envelope: Mapping[str, str] = ENVELOPE_TYPES) -> dict[str, str]:
    """Fields of an event type → vocabulary type (datetime kept), then the envelope's."""
    etype = vocabulary.get(event_type) if event_type else None
    own = {name: spec.type for name, spec in etype.fields.items()} if etype else {}
    return own | {name: kind for name, kind in envelope.items() if name not in own}


def field_label(vocabulary: Vocabulary, event_type: str | None, name: str) -> str:
    """'dossier_id — Mã hồ sơ / dossier number' for a drop-down."""
    etype = vocabulary.get(event_type) if event_type else None
    spec = etype.fields.get(name) if etype else None
    about = spec.description if spec else ENVELOPE_LABELS.get(name, "")
    return f"{name} — {about}" if about else name


def allowed_ops(kind: str) -> tuple[str, ...]:
    """The form's tests that make sense on a field of this vocabulary type."""
    if kind in ("object", "array"):
        return tuple(FLAG_OPS)
    if kind == "boolean":
        return ("eq", "ne", *LIST_OPS, *FLAG_OPS)
    if kind in ("integer", "number"):
        return tuple(op for op, _ in OPS if op != "matches")
    return tuple(op for op, _ in OPS)


# ---------------------------------------------------------------------------------------------
# Values typed in the form
# ---------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_WALL_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def number(text: str) -> int | float:
    """A number typed in the form (3, -2, 1.5, with a dot); ValueError says what is wrong."""
    text = text.strip()
    if _INTEGER.match(text):
        return int(text)
    if _DECIMAL.match(text):
        return float(text)
    raise ValueError(both("'%(text)s' is not a number (write 1.5, with a dot)", text=text))


def typed_value(text: str, kind: str, ordered: bool = False) -> Any:
    """A value typed in the form, as a field of `kind` needs it; ValueError says what to write."""
    text = text.strip()
    if kind == "integer" and not ordered:
        if not _INTEGER.match(text):
            raise ValueError(both("A whole number is needed, e.g. 3, not '%(text)s'", text=text))
        return int(text)
    if kind in ("integer", "number"):
        return number(text)
    if kind == "boolean":
        # Inspectors may type the Vietnamese words too (đúng, sai).
        if text.lower() in ("true", vi("true").lower()):
            return True
        if text.lower() in ("false", vi("false").lower()):
            return False
        raise ValueError(both("true or false is needed, not '%(text)s'", text=text))
    if kind == "datetime":
        if not _is_date(text):
            raise ValueError(both("A date (2025-07-01) or a date-time with its zone is needed, "
                                  "not '%(text)s'", text=text))
        return text
    if kind in ("object", "array"):
        raise ValueError(both(N_("A field of type %(kind)s can only be tested for blank or "
                                  "present"), kind=pair(KIND_NAMES[kind])))
    return text


def _is_date(text: str) -> bool:
    try:
        _dt.date.fromisoformat(text)
        return True
    except ValueError:
        return parse_datetime(text) is not None


def _text(value: Any) -> str:
    """A value from the file as the form shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_to_span(amount: str, unit: str) -> str | dict:
    """The form's amount and unit as the file writes them: "30m" or {working_days: 5}."""
    amount = amount.strip()
    if unit in WORKING_UNITS and amount.startswith("="):
        value: str | dict = {unit: "=" + amount[1:].strip()}
    elif unit in WORKING_UNITS or unit in WALL_UNITS:
        size = number(amount)
        if size <= 0:
            raise ValueError(both("A length of time must be more than zero"))
        value = {unit: size} if unit in WORKING_UNITS else f"{amount}{unit}"
    else:
        raise ValueError(both("Choose a unit of time"))
    try:
        parse_span(value)
    except SpanError as exc:
        raise ValueError(both("The length of time cannot be read") + f": {exc}") from None
    return value


def span_to_form(value: Any) -> tuple[str, str] | None:
    """A length of time of the file as the form's (amount, unit); None when it has no form."""
    if isinstance(value, str):
        m = _WALL_SPAN.match(value)
        return (m.group(1), m.group(2)) if m else None
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    (unit, amount), = value.items()
    unit = {name: short for short, name in WALL_UNITS.items()}.get(unit, unit)
    if isinstance(amount, str) and amount.startswith("=") and unit in WORKING_UNITS:
        return amount, unit
    if isinstance(amount, (int, float)) and not isinstance(amount, bool) and \
            unit in dict(UNITS):
        return _text(amount), unit
    return None


def template_problem(text: str, kinds: Mapping[str, Mapping[str, str]]) -> str | None:
    """Why a template cannot name these fields (`kinds`: alias → its event's fields), or None.

    Vietnamese, then English."""
    first = next(iter(kinds), DEFAULT_ALIAS)
    try:
        parts = parse_template(text)
    except TemplateError as exc:
        # The parser explains in English; in Vietnamese, how a placeholder is written.
        return both(N_("Bad template: %(why)s"),
                     why=(vi("write {%(alias)s.field_name}", alias=first), str(exc)))
    for part in parts:
        if not isinstance(part, tuple):
            continue
        alias, name = part
        if alias not in kinds:
            names = ", ".join(f"{{{a}.…}}" for a in kinds)
            return both("Only %(names)s can be used here, not '%(alias)s'", names=names,
                        alias=alias)
        fields = kinds[alias]
        head, _, rest = name.partition(".")
        if head not in fields or (rest and fields[head] != "object"):
            if alias == DEFAULT_ALIAS:
                missing = both("The event has no field '%(name)s'", name=name)
            else:
                missing = both("The event '%(alias)s' has no field '%(name)s'", alias=alias,
                               name=name)
            return f"{missing}; fields: {', '.join(fields)}"
    return None


# ---------------------------------------------------------------------------------------------
# The forms
# ---------------------------------------------------------------------------------------------


def _choices(pairs, kinds: Mapping[str, str] | None = None) -> list[SelectChoice]:
    """Drop-down options; `kinds` marks field options with their type, for the page's script."""
    kinds = kinds or {}
    return [SelectChoice(value, label, {"data-kind": kinds[value]} if value in kinds else {})
            for value, label in pairs]


def _max(n: int) -> Length:
    return Length(max=n, message=both("At most %(n)s characters", n=n))


class ConditionForm(Form):
    """One condition row: a field, a test and the value it is compared with."""

    field = SelectField(both("Field"), validate_choice=False)
    op = SelectField(both("Test"), choices=_choices(OPS), default="eq", validate_choice=False)
    value = StringField(both("Value"), validators=[_max(2000)])


class BandForm(Form):
    """One severity band: from this value of the number field, this severity."""

    low = StringField(both("From value"), validators=[_max(30)])
    level = SelectField(both("Severity"), choices=_choices((("", "—"), *SEVERITY_NAMES.items())),
                        validate_choice=False)


class DataForm(Form):
    """One value handed to the process: its name and a template."""

    name = StringField(both("Name"), validators=[_max(100)])
    value = StringField(both("Value"), validators=[_max(2000)])


class NoticeForm(Form):
    """One notification: a department (or its people of one role) and the text they get."""

    to = SelectField(both("Department"), validate_choice=False)
    role = SelectField(both("Role"), validate_choice=False)
    text_vi = StringField(both("Text (Vietnamese)"), validators=[_max(2000)])
    text_en = StringField(both("Text (English)"), validators=[_max(2000)])


def _rows(form_class: type[Form]) -> FieldList:
    return FieldList(FormField(form_class), min_entries=ROWS, max_entries=MAX_ROWS)


class PatternForm(Form):
    """A further event of an `all:` rule: its name, type, fields shared with earlier ones, tests."""

    alias = StringField(both("Name (as:)"), validators=[_max(50)],
                        description=both("e.g. second; templates: {second.dossier_id}"))
    event = SelectField(both("Event type"), validate_choice=False)
    same = StringField(both("Same value as"), validators=[_max(500)],
                       description=both("e.g. dossier_id = first.dossier_id"))
    conditions = _rows(ConditionForm)


class RuleForm(FlaskForm):
    """Quy tắc phát hiện / one detection rule of rules.yaml."""

    key = StringField(both("Rule key"), validators=[_max(100)],
                      description=both("a-z, 0-9, '-' (e.g. tra-ho-so-khong-ly-do)"))
    name_vi = StringField(both("Name (Vietnamese)"), validators=[_max(300)])
    name_en = StringField(both("Name (English)"), validators=[_max(300)])
    description_vi = StringField(both("Description (Vietnamese)"), validators=[_max(2000)])
    description_en = StringField(both("Description (English)"), validators=[_max(2000)])
    source = SelectField(both("Data source"), validate_choice=False)
    event = SelectField(both("Event type"), validate_choice=False)
    conditions = _rows(ConditionForm)
    kind = SelectField(both("Time pattern"), choices=_choices(KINDS), default="",
                       validate_choice=False)
    group_by = StringField(both("Correlation key"), validators=[_max(300)],
                           description=both("e.g. dossier_id or dossier_id, step"))
    count = StringField(both("Number of events (2 or more)"), validators=[_max(10)])
    window = StringField(both("Length of time"), validators=[_max(100)],
                         description=both("e.g. 30, or =allotted_hours for working hours"))
    window_unit = SelectField(both("Unit"), choices=_choices(UNITS), default="m",
                              validate_choice=False)
    awaited_event = SelectField(both("The awaited event"), validate_choice=False)
    awaited = _rows(ConditionForm)
    deadline = SelectField(both("Deadline"), choices=_choices(DEADLINES), default="within",
                           validate_choice=False)
    deadline_field = SelectField(both("Deadline field"), validate_choice=False)
    hold = _rows(ConditionForm)
    alias = StringField(both("Name of the event above (as:)"),
                        validators=[_max(50)], description=both("e.g. first"))
    patterns = FieldList(FormField(PatternForm), min_entries=1, max_entries=MAX_PATTERNS - 1)
    repeat = SelectField(both("Once they matched, a further event"),
                         choices=_choices(REPEAT_CHOICES),
                         default=DEFAULT_REPEAT, validate_choice=False)
    once_per = StringField(both("Length of time"), validators=[_max(100)],
                           description=both("e.g. 30 days"))
    once_per_unit = SelectField(both("Unit"), choices=_choices(UNITS), default="d",
                                validate_choice=False)
    readings = StringField(both("Readings in a row (2 or more)"), validators=[_max(10)])
    open = SelectField(both("Opens"), choices=_choices(OPEN_CHOICES), default="",
                       validate_choice=False)
    severity = SelectField(both("Severity"), choices=_choices(SEVERITY_CHOICES), default="",
                           validate_choice=False)
    severity_by = SelectField(both("Number field"), validate_choice=False)
    bands = _rows(BandForm)
    title_vi = StringField(both("Title (Vietnamese)"), validators=[_max(500)],
                           description=both("e.g. Dossier {event.dossier_id} returned"))
    title_en = StringField(both("Title (English)"), validators=[_max(500)])
    subject = StringField(both("Subject"), validators=[_max(300)],
                          description=both("e.g. {event.dossier_id}"))
    data_rows = _rows(DataForm)
    notices = FieldList(FormField(NoticeForm), min_entries=1, max_entries=MAX_ROWS)
    preview = SubmitField(both("Preview"))
    save = SubmitField(both("Save"))

    def __init__(self, vocabulary: Vocabulary, departments: Sequence | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = vocabulary
        # (key, name) pairs or SelectChoice objects (their first two items are the same); None
        # accepts any key, and the scenario check tells unknown ones.
        self.departments = None if departments is None else [tuple(d)[:2] for d in departments]
        self.rule_errors: list[str] = []  # problems no field of the form owns
        self._paths: dict[tuple, Any] = {}
        for rows in (self.conditions, self.awaited, self.hold, self.bands, self.data_rows,
                     self.notices):
            _pad(rows)
        _pad_patterns(self.patterns)
        self._set_choices()

    @property
    def correlated(self) -> bool:
        """Does the form hold further events (or a choice only they use)? Then they are shown."""
        return bool(_clean(self.alias) or any(not _blank_pattern(p.form) for p in self.patterns)
                    or (self.repeat.data or DEFAULT_REPEAT) != DEFAULT_REPEAT)

    def _set_choices(self) -> None:
        vocab = self.vocabulary
        groups = sources(vocab)
        if not self.source.data and self.event.data:
            self.source.data = next((s.key for s in groups if self.event.data in s.types), "")
        self.source.choices = _choices([("", "— " + both("All") + " —")] +
                                       [(s.key, s.name) for s in groups])
        types = [("", "— " + both("choose") + " —")] + [
            (t, f"{t} — {vocab.types[t].description}") for s in groups for t in s.types]
        self.event.choices = _choices(types)
        self.awaited_event.choices = _choices(types)
        main = field_kinds(vocab, self.event.data)
        tables = [(self.conditions, self.event.data), (self.hold, self.event.data),
                  (self.awaited, self.awaited_event.data)]
        for pattern in self.patterns:
            pattern.form.event.choices = _choices(types)
            tables.append((pattern.form.conditions, pattern.form.event.data))
        for rows, event_type in tables:
            kinds = field_kinds(vocab, event_type)
            for row in rows:
                _offer(row.form.field, kinds, vocab, event_type)
        _offer(self.deadline_field, {n: k for n, k in main.items() if k == "datetime"}, vocab,
               self.event.data)
        _offer(self.severity_by, {n: k for n, k in main.items() if k in ("integer", "number")},
               vocab, self.event.data)
        people = _choices([("", both("Everyone"))] +
                          [(r, " / ".join(ROLE_NAMES[r])) for r in ROLES])
        units = [("", "— " + both("choose") + " —")] + list(self.departments or [])
        for row in self.notices:
            row.form.role.choices = people
            chosen = row.form.to.data
            row.form.to.choices = _choices(units + ([(chosen, chosen)] if chosen and
                                                    chosen not in dict(units) else []))

    def validate(self, extra_validators=None) -> bool:
        """Check every field, then the rule they make with the rules parser."""
        ok = super().validate(extra_validators)
        built = _Builder(self)
        self._paths = built.paths
        for field, message in built.errors:
            _add_error(field, message)
        if not ok or built.errors:
            return False
        # A file of this rule alone: its lines are nobody's, so problems are shown without them.
        return self.check_file(rule_file_text([built.rule]), "rules.yaml", 0, lines=False)

    def check_file(self, text: str, filename: str, index: int, lines: bool = True) -> bool:
        """Parse the rules file this rule (rules[index]) goes into; put its problems here."""
        if not self._paths:
            self._paths = _Builder(self).paths
        try:
            parse_rules(text, filename, self.vocabulary.field_types())
        except ScenarioInvalid as exc:
            self.attach(exc.problems, index, lines)
            return False
        return True

    def attach(self, problems: Sequence[Problem], index: int, lines: bool = True) -> None:
        """Show each problem on the field it concerns, or above the form when none does."""
        fields = {format_path(("rules", index) + path): f for path, f in self._paths.items()}
        for problem in problems:
            field = next((fields[p] for p in _prefixes(problem.path) if p in fields), None)
            if field is None:
                self.rule_errors.append(str(problem) if lines else
                                        f"{problem.path}: {problem.message}")
            else:
                _add_error(field, both("Invalid") + f": {problem.message}")


class RulesFileForm(FlaskForm):
    """The rules file as text (the YAML editor); `base` fingerprints the text it started from."""

    text = TextAreaField(both("The rules file as text"),
                         validators=[_max(MAX_FILE_BYTES)])
    base = HiddenField()


def digest(text: str) -> str:
    """A fingerprint of a file's text, to notice that someone else saved it meanwhile."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _pad(rows: FieldList) -> None:
    """At least ROWS rows and one blank row at the end, for the inspector to fill."""
    last = rows.entries[-1].data if rows.entries else None
    # A row's test (`op`) always has a value; the row is blank when the rest is.
    if last is None or any(v not in (None, "") for k, v in last.items() if k != "op"):
        rows.append_entry()
    while len(rows.entries) < ROWS:
        rows.append_entry()


def _blank_pattern(pattern: PatternForm) -> bool:
    """A further-event slot left empty (the form always offers one)."""
    return not (_clean(pattern.alias) or _clean(pattern.event) or _clean(pattern.same)) and \
        all(not _clean(row.form.field) and not _clean(row.form.value)
            for row in pattern.conditions)


def _pad_patterns(patterns: FieldList) -> None:
    """One empty further-event slot at the end (while there is room), each with its blank rows."""
    if len(patterns.entries) < patterns.max_entries and \
            (not patterns.entries or not _blank_pattern(patterns.entries[-1].form)):
        patterns.append_entry()
    for pattern in patterns:
        _pad(pattern.form.conditions)


def _offer(select: SelectField, kinds: Mapping[str, str], vocabulary: Vocabulary,
           event_type: str | None) -> None:
    """Offer these fields in a drop-down, keeping a value from the file that is not among them."""
    names = list(kinds)
    if select.data and select.data not in kinds:
        names.append(select.data)
    select.choices = _choices([("", "—")] + [(n, field_label(vocabulary, event_type, n))
                                              for n in names], kinds)


def _add_error(field, message: str) -> None:
    field.errors = [*field.errors, message]


def _prefixes(path: str) -> list[str]:
    """'rules[0].when.key' → itself, 'rules[0].when', 'rules[0]', 'rules': longest first."""
    cuts = [i for i, ch in enumerate(path) if ch in ".["]
    return [path] + [path[:i] for i in reversed(cuts)]


# ---------------------------------------------------------------------------------------------
# Rule → form data
# ---------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """A part of a rule the form has no field for: a message id saying which, and its values."""

    def __init__(self, message: str, **values):
        super().__init__(message, values)


def unsupported(rule: Any) -> str | None:
    """Why the builder cannot show this rule (Vietnamese, then English), or None when it can."""
    try:
        _formdata(rule)
    except _Unsupported as exc:
        message, values = exc.args
        return both(N_("The rule builder cannot express %(what)s; edit it in the YAML editor"),
                     what=pair(message, **values))
    return None


def rule_to_formdata(rule: dict) -> dict | None:
    """The form's data for a rule; None when the rule uses something the form cannot express."""
    try:
        return _formdata(rule)
    except _Unsupported:
        return None


def _formdata(rule: Any) -> dict:
    if not isinstance(rule, Mapping) or not isinstance(rule.get("when"), Mapping):
        raise _Unsupported(N_("a malformed rule"))
    extra = set(rule) - {"key", "name", "description", "when", "then"}
    if extra:
        raise _Unsupported(N_("the keys %(keys)s"), keys=sorted(extra))
    out: dict[str, Any] = {"key": _text(rule.get("key", ""))}
    out |= _texts_data("name", rule.get("name"))
    out |= _texts_data("description", rule.get("description"))
    out |= _when_data(rule["when"])
    out |= _then_data(rule.get("then") or {}, out.get("alias") or DEFAULT_ALIAS)
    return out


def _texts_data(prefix: str, value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, str):
        return {f"{prefix}_vi": value}
    if isinstance(value, Mapping) and set(value) <= set(LANGUAGES) and \
            all(isinstance(v, str) for v in value.values()):
        return {f"{prefix}_{lang}": text for lang, text in value.items()}
    raise _Unsupported(N_("this form of '%(key)s'"), key=prefix)


def _when_data(when: Mapping) -> dict:
    if "all" in when and (not isinstance(when["all"], list) or len(when["all"]) > 1 or
                          "repeat" in when):
        return _all_data(when)
    for mode in ("all", "any"):
        if mode not in when:
            continue
        items = when[mode]
        if len(when) != 1 or not isinstance(items, list) or len(items) != 1 or \
                not isinstance(items[0], Mapping):
            raise _Unsupported(N_("one of several patterns (any:)"))
        when = items[0]
    if "same" in when:
        raise _Unsupported(N_("correlated events (same:)"))
    if when.get("as", DEFAULT_ALIAS) != DEFAULT_ALIAS:
        raise _Unsupported(N_("a custom event name (as:)"))
    extra = set(when) - {"event", "where", "as", "key", "within", *TEMPORAL_FORMS}
    if extra:
        raise _Unsupported(N_("the keys %(keys)s in when"), keys=sorted(extra))
    out: dict[str, Any] = {"event": _text(when.get("event", "")),
                           "conditions": _condition_rows(when.get("where"))}
    kind = next((form for form in TEMPORAL_FORMS if form in when), "")
    out["kind"] = kind
    if not kind:
        return out
    key = when.get("key")
    if isinstance(key, list) and key and all(isinstance(k, str) and "," not in k for k in key):
        out["group_by"] = ", ".join(key)
    elif isinstance(key, str):
        out["group_by"] = key
    else:
        raise _Unsupported(N_("this form of `key`"))
    if kind == "count":
        if isinstance(when["count"], bool) or not isinstance(when["count"], int):
            raise _Unsupported(N_("this form of `count`"))
        out["count"] = str(when["count"])
        out |= _window(when.get("within"))
    elif kind == "silence":
        out |= _window(when["silence"])
    elif kind == "absent":
        out |= _absent_data(when["absent"])
    else:
        out |= _sustained_data(when["sustained"])
    return out


def _all_data(when: Mapping) -> dict:
    """Correlated events (`all:`): the first is the form's event, the others its patterns."""
    items = when["all"]
    if set(when) - {"all", "repeat"} or not isinstance(items, list) or \
            not all(isinstance(i, Mapping) for i in items):
        raise _Unsupported(N_("this form of `all:`"))
    if len(items) < 2:
        raise _Unsupported(N_("`repeat` with a single pattern"))
    if len(items) > MAX_PATTERNS:
        raise _Unsupported(N_("more than %(n)s correlated events"), n=MAX_PATTERNS)
    for item in items:
        extra = set(item) - {"event", "as", "where", "same"}
        if extra:
            raise _Unsupported(N_("the keys %(keys)s in a pattern"), keys=sorted(extra))
    first, *others = items
    if "same" in first:
        raise _Unsupported(N_("`same:` on the first event"))
    out: dict[str, Any] = {"event": _text(first.get("event", "")),
                           "alias": _text(first.get("as", "")), "kind": "",
                           "conditions": _condition_rows(first.get("where"))}
    out["patterns"] = [{"alias": _text(item.get("as", "")), "event": _text(item.get("event", "")),
                        "same": _same_text(item.get("same")),
                        "conditions": _condition_rows(item.get("where"))} for item in others]
    return out | _repeat_data(when.get("repeat", DEFAULT_REPEAT))


def _same_text(same: Any) -> str:
    """`same: {dossier_id: first.dossier_id}` as the form writes it:
    dossier_id = first.dossier_id."""
    if same is None:
        return ""
    if not isinstance(same, Mapping) or not all(
            isinstance(v, str) and not re.search(r"[,=]", f"{k}{v}") for k, v in same.items()):
        raise _Unsupported(N_("this form of `same:`"))
    return ", ".join(f"{name} = {other}" for name, other in same.items())


def _repeat_data(value: Any) -> dict:
    if isinstance(value, str) and value in dict(REPEAT_CHOICES) and value != "once_per":
        return {"repeat": value}
    span = span_to_form(value["once_per"]) if isinstance(value, Mapping) and \
        set(value) == {"once_per"} else None
    if span is None or span[0].startswith("="):
        raise _Unsupported("repeat: %(value)s", value=repr(value))  # code: no words to translate
    return {"repeat": "once_per", "once_per": span[0], "once_per_unit": span[1]}


def _window(value: Any) -> dict:
    span = span_to_form(value)
    if span is None:
        raise _Unsupported(N_("the length of time %(value)s"), value=repr(value))
    return {"window": span[0], "window_unit": span[1]}


def _absent_data(absent: Any) -> dict:
    if not isinstance(absent, Mapping) or set(absent) - {"event", "where", "within", "by"}:
        raise _Unsupported(N_("this form of `absent`"))
    out: dict[str, Any] = {"awaited_event": _text(absent.get("event", "")),
                           "awaited": _condition_rows(absent.get("where"))}
    if "by" in absent:
        return out | {"deadline": "by", "deadline_field": _text(absent["by"])}
    return out | {"deadline": "within"} | _window(absent.get("within"))


def _sustained_data(sustained: Any) -> dict:
    if not isinstance(sustained, Mapping) or set(sustained) - {"while", "for", "readings"}:
        raise _Unsupported(N_("this form of `sustained`"))
    out: dict[str, Any] = {"hold": _condition_rows(sustained.get("while"))}
    if "for" in sustained:
        out |= _window(sustained["for"])
    readings = sustained.get("readings")
    if readings is not None:
        if isinstance(readings, bool) or not isinstance(readings, int):
            raise _Unsupported(N_("this form of `readings`"))
        out["readings"] = str(readings)
    return out


def _condition_rows(where: Any) -> list[dict]:
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise _Unsupported(N_("this form of `where`"))
    rows = []
    for name, test in where.items():
        if name in ("all", "any"):
            raise _Unsupported(N_("groups of conditions (any:/all:)"))
        if not isinstance(name, str) or "." in name:
            raise _Unsupported(N_("a condition on the sub-field '%(name)s'"), name=name)
        tests = test if isinstance(test, Mapping) else {"eq": test}
        rows.extend(_condition_row(name, op, arg) for op, arg in tests.items())
    return rows


def _condition_row(name: str, op: Any, arg: Any) -> dict:
    flags = {test: form_op for form_op, test in FLAG_OPS.items()}
    if isinstance(arg, bool) and (op, arg) in flags:
        return {"field": name, "op": flags[(op, arg)], "value": ""}
    scalar = (str, int, float, bool)
    if op in LIST_OPS and isinstance(arg, list) and all(isinstance(v, scalar) for v in arg):
        texts = [_text(v) for v in arg]
        if not any("," in t or t != t.strip() for t in texts):
            return {"field": name, "op": op, "value": ", ".join(texts)}
    elif op in dict(OPS) and op not in FLAG_OPS and isinstance(arg, scalar) and \
            _text(arg) == _text(arg).strip():
        return {"field": name, "op": op, "value": _text(arg)}
    test = f"{name}: {{{op}: {arg!r}}}"
    raise _Unsupported(N_("the test %(test)s"), test=test)


def _then_data(then: Any, alias: str = DEFAULT_ALIAS) -> dict:
    if not isinstance(then, Mapping) or set(then) - set(THEN_KEYS):
        raise _Unsupported(N_("this form of `then`"))
    out: dict[str, Any] = {"open": _text(then.get("open") or "")}
    severity = then.get("severity")
    if isinstance(severity, Mapping):
        by = severity.get("by")
        prefix = alias + "."  # bands read a number field of the form's (first) event
        bands = severity.get("bands")
        if not (isinstance(by, str) and by.startswith(prefix) and "." not in by[len(prefix):]
                and isinstance(bands, Mapping)):
            raise _Unsupported(N_("this form of severity bands"))
        out |= {"severity": "bands", "severity_by": by[len(prefix):],
                "bands": [{"low": _text(low), "level": level} for low, level in bands.items()]}
    elif severity is not None:
        out["severity"] = _text(severity)
    out |= _texts_data("title", then.get("title"))
    if then.get("subject") is not None:
        out["subject"] = _text(then["subject"])
    data = then.get("data") or {}
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise _Unsupported(N_("data values that are not text"))
    out["data_rows"] = [{"name": _text(name), "value": value} for name, value in data.items()]
    notify = then.get("notify") or []
    notify = [notify] if isinstance(notify, Mapping) else notify
    out["notices"] = [_notice_data(item) for item in notify]
    return out


def _notice_data(item: Any) -> dict:
    if not isinstance(item, Mapping) or set(item) - {"to", "role", "text"}:
        raise _Unsupported(N_("this form of notification"))
    texts = _texts_data("text", item.get("text"))
    return {"to": _text(item.get("to", "")), "role": _text(item.get("role") or ""), **texts}


# ---------------------------------------------------------------------------------------------
# Form → rule
# ---------------------------------------------------------------------------------------------


def form_to_rule(form: RuleForm) -> dict:
    """The rule the form describes, as rules.yaml writes it (what could not be read is left out;
    `form.validate()` says what)."""
    return _Builder(form).rule


def _clean(field) -> str:
    return (field.data or "").strip()


class _Builder:
    """Reads a RuleForm into a rule dict, noting errors by field and which field made each path."""

    def __init__(self, form: RuleForm):
        self.form = form
        self.vocab = form.vocabulary
        self.errors: list[tuple[Any, str]] = []
        self.paths: dict[tuple, Any] = {}
        event = _clean(form.event)
        self.event = event if event in self.vocab.types else None
        # Further events of an `all:` rule; without them the rule has one pattern, `event`.
        self.others = [p.form for p in form.patterns if not _blank_pattern(p.form)]
        self.alias = _clean(form.alias) if self.others else DEFAULT_ALIAS
        self.templates = self.template_fields()
        self.rule = self.build()

    def template_fields(self) -> dict[str, dict[str, str]] | None:
        """alias → the fields templates may name; None while an event type is still unknown."""
        events = [(self.alias, _clean(self.form.event))] + \
            [(_clean(p.alias), _clean(p.event)) for p in self.others]
        if any(not alias or event not in self.vocab.types for alias, event in events) or \
                len({alias for alias, _ in events}) < len(events):
            return None  # already reported on the form: which fields are meant is unclear
        return {alias: field_kinds(self.vocab, event, TEMPLATE_ENVELOPE_TYPES)
                for alias, event in events}

    def bad(self, field, message: str) -> None:
        self.errors.append((field, message))

    def at(self, path: tuple, field) -> None:
        self.paths.setdefault(path, field)

    def build(self) -> dict:
        form = self.form
        key = _clean(form.key)
        if not key:
            self.bad(form.key, both("Rule key is required"))
        elif not RULE_KEY.match(key):
            self.bad(form.key, both("A rule key uses only a-z, 0-9 and '-'"))
        rule: dict[str, Any] = {"key": key}
        self.at(("key",), form.key)
        for name in ("name", "description"):
            texts = self.texts(getattr(form, f"{name}_vi"), getattr(form, f"{name}_en"),
                               (name,), template=False)
            if texts:
                rule[name] = texts
        rule["when"] = self.when()
        rule["then"] = self.then()
        return rule

    # -- when ---------------------------------------------------------------------------------

    def when(self) -> dict:
        form = self.form
        self.at(("when",), form.event)
        if self.others:
            return self.correlated()
        if (form.repeat.data or DEFAULT_REPEAT) != DEFAULT_REPEAT:
            self.bad(form.repeat, both("Only for correlated events: choose the default or add "
                                       "an event"))
        self.at(("when", "event"), form.event)
        if self.event is None:
            self.bad(form.event, both("Choose an event type of the vocabulary"))
        when: dict[str, Any] = {"event": _clean(form.event)}
        where = self.conditions(form.conditions, self.event, ("when", "where"))
        if where:
            when["where"] = where
        kind = form.kind.data or ""
        if kind not in dict(KINDS):
            self.bad(form.kind, both("Choose a time pattern"))
            return when
        if not kind:
            return when
        when["key"] = self.group_by()
        if kind == "count":
            self.at(("when", "count"), form.count)
            when["count"] = self.whole(form.count, required=True)
            when["within"] = self.window(("when", "within"), required=True)
        elif kind == "silence":
            when["silence"] = self.window(("when", "silence"), required=True)
        elif kind == "absent":
            when["absent"] = self.absent()
        else:
            when["sustained"] = self.sustained()
        return when

    def correlated(self) -> dict:
        """`all:`: the form's event first, then each further event, and what repeats mean."""
        form = self.form
        if form.kind.data:
            self.bad(form.kind, both("A time pattern watches one event: remove the correlated "
                                     "events or choose 'Every matching event'"))
        self.at(("when", "all"), form.event)
        patterns = [self.pattern(0, form.alias, form.event, form.conditions)]
        patterns += [self.pattern(i, p.alias, p.event, p.conditions, p.same)
                     for i, p in enumerate(self.others, 1)]
        when: dict[str, Any] = {"all": patterns}
        repeat = self.repeat()
        if repeat != DEFAULT_REPEAT:
            when["repeat"] = repeat
        return when

    def pattern(self, index: int, alias_field, event_field, rows: FieldList,
                same_field=None) -> dict:
        """One pattern of `all:` (the first has no `same:`)."""
        path = ("when", "all", index)
        self.at(path, event_field)
        self.at(path + ("event",), event_field)
        self.at(path + ("as",), alias_field)
        event = _clean(event_field)
        if event not in self.vocab.types:
            self.bad(event_field, both("Choose an event type of the vocabulary"))
        alias = _clean(alias_field)
        earlier = [_clean(self.form.alias)] + [_clean(p.alias) for p in self.others[:index - 1]]
        if not alias:
            self.bad(alias_field, both("Each event needs a name, e.g. first, second"))
        elif index and alias in earlier:
            self.bad(alias_field, both("The name '%(alias)s' is already used by an earlier event",
                                       alias=alias))
        pattern: dict[str, Any] = {"event": event, "as": alias}
        where = self.conditions(rows, event if event in self.vocab.types else None,
                                path + ("where",))
        if where:
            pattern["where"] = where
        if same_field is not None:
            same = self.same(same_field, path + ("same",))
            if same:
                pattern["same"] = same
        return pattern

    def same(self, field, path: tuple) -> dict[str, str]:
        """'dossier_id = first.dossier_id, unit = first.unit' as `same:`."""
        self.at(path, field)
        same: dict[str, str] = {}
        for part in _clean(field).split(","):
            if not part.strip():
                continue
            name, sep, other = (t.strip() for t in part.partition("="))
            if not sep or not name or not other:
                self.bad(field, both("Write field = name.field, e.g. dossier_id = "
                                     "first.dossier_id"))
            elif name in same:
                self.bad(field, both("'%(name)s' is given twice", name=name))
            else:
                same[name] = other
                self.at(path + (name,), field)
        return same

    def repeat(self) -> str | dict:
        """What a further event of a key means once its events came together."""
        form = self.form
        self.at(("when", "repeat"), form.repeat)
        chosen = form.repeat.data or DEFAULT_REPEAT
        if chosen not in dict(REPEAT_CHOICES):
            self.bad(form.repeat, both("Choose what a further event means"))
            return DEFAULT_REPEAT
        if chosen != "once_per":
            return chosen
        self.at(("when", "repeat", "once_per"), form.once_per)
        amount = _clean(form.once_per)
        span = None
        if not amount:
            self.bad(form.once_per, both("A length of time is needed, e.g. 30 days"))
        elif amount.startswith("="):
            self.bad(form.once_per, both("A fixed length of time is needed, not a field of the "
                                         "event"))
        else:
            try:
                span = form_to_span(amount, form.once_per_unit.data or "")
            except ValueError as exc:
                self.bad(form.once_per, str(exc))
        return {"once_per": span}

    def group_by(self) -> str | list[str]:
        form = self.form
        self.at(("when", "key"), form.group_by)
        names = [n.strip() for n in _clean(form.group_by).split(",") if n.strip()]
        if not names:
            self.bad(form.group_by, both("A temporal rule needs the field(s) grouping its "
                                         "events, e.g. dossier_id"))
        kinds = field_kinds(self.vocab, self.event)
        for name in names:
            if self.event and name not in kinds:
                self.bad(form.group_by, both("%(event)s has no field '%(name)s'",
                                             event=self.event, name=name))
        return names[0] if len(names) == 1 else names

    def whole(self, field, required: bool) -> int | None:
        text = _clean(field)
        if not text:
            if required:
                self.bad(field, both("A whole number, 2 or more, is needed"))
            return None
        if not _INTEGER.match(text) or int(text) < 2:
            self.bad(field, both("A whole number, 2 or more, is needed, not '%(text)s'",
                                 text=text))
            return None
        return int(text)

    def window(self, path: tuple, required: bool) -> str | dict | None:
        form = self.form
        self.at(path, form.window)
        amount = _clean(form.window)
        if not amount:
            if required:
                self.bad(form.window, both("A length of time is needed, e.g. 30 minutes"))
            return None
        try:
            span = form_to_span(amount, form.window_unit.data or "")
        except ValueError as exc:
            self.bad(form.window, str(exc))
            return None
        if isinstance(span, dict) and self.event:
            (value,) = span.values()
            name = value[1:] if isinstance(value, str) else None
            if name is not None and field_kinds(self.vocab, self.event).get(name) not in \
                    ("integer", "number"):
                self.bad(form.window, both("'%(name)s' is not a number field of %(event)s",
                                           name=name, event=self.event))
        return span

    def absent(self) -> dict:
        form = self.form
        self.at(("when", "absent"), form.awaited_event)
        self.at(("when", "absent", "event"), form.awaited_event)
        awaited = _clean(form.awaited_event)
        if awaited not in self.vocab.types:
            self.bad(form.awaited_event, both("Choose the awaited event type"))
        absent: dict[str, Any] = {"event": awaited}
        where = self.conditions(form.awaited, awaited if awaited in self.vocab.types else None,
                                ("when", "absent", "where"))
        if where:
            absent["where"] = where
        if form.deadline.data == "by":
            self.at(("when", "absent", "by"), form.deadline_field)
            by = _clean(form.deadline_field)
            kind = field_kinds(self.vocab, self.event).get(by)
            if kind not in ("datetime", "string"):
                self.bad(form.deadline_field, both("Choose the date-time field holding the "
                                                   "deadline, e.g. due_at"))
            absent["by"] = by
        else:
            absent["within"] = self.window(("when", "absent", "within"), required=True)
        return absent

    def sustained(self) -> dict:
        form = self.form
        first = form.hold.entries[0].form.field if form.hold.entries else form.kind
        self.at(("when", "sustained"), first)
        hold = self.conditions(form.hold, self.event, ("when", "sustained", "while"))
        if not hold:
            self.bad(first, both("A test each reading must pass is needed, e.g. value greater "
                                 "than 50"))
        sustained: dict[str, Any] = {"while": hold}
        span = self.window(("when", "sustained", "for"), required=False)
        if span is not None:
            sustained["for"] = span
        self.at(("when", "sustained", "readings"), form.readings)
        readings = self.whole(form.readings, required=False)
        if readings is not None:
            sustained["readings"] = readings
        if not _clean(form.window) and not _clean(form.readings):
            self.bad(form.window, both("A length of time or a number of readings in a row is "
                                       "needed"))
        return sustained

    def conditions(self, rows: FieldList, event_type: str | None, path: tuple) -> dict:
        """The rows' tests as `where`: one field's tests merge ({gte: 1, lt: 30})."""
        kinds = field_kinds(self.vocab, event_type)
        where: dict[str, dict] = {}
        for row in rows:
            sub = row.form
            name = _clean(sub.field)
            if not name:
                if _clean(sub.value):
                    self.bad(sub.field, both("Choose the field this value tests"))
                continue
            if name not in kinds:
                if event_type:
                    self.bad(sub.field, both("%(event)s has no field '%(name)s'",
                                             event=event_type, name=name))
                else:
                    self.bad(sub.field, both("The event has no field '%(name)s'", name=name))
                continue
            test = self.test(sub, kinds[name])
            if test is None:
                continue
            op, value = test
            tests = where.setdefault(name, {})
            if op in tests:
                self.bad(sub.op, both("This field already has this test in a row above"))
                continue
            tests[op] = value
            self.at(path + (name,), sub.field)
            self.at(path + (name, op), sub.op if sub.op.data in FLAG_OPS else sub.value)
        # One plain equality is written as the value itself, as inspectors write it.
        return {name: tests["eq"] if list(tests) == ["eq"] else tests
                for name, tests in where.items()}

    def test(self, sub: ConditionForm, kind: str) -> tuple[str, Any] | None:
        op = sub.op.data or ""
        if op in FLAG_OPS:  # blank/present make sense on every field
            return FLAG_OPS[op]
        if op not in dict(OPS):
            self.bad(sub.op, both("Choose a test"))
            return None
        if op not in allowed_ops(kind):
            name = pair(KIND_NAMES[kind]) if kind in KIND_NAMES else kind
            self.bad(sub.op, both(N_("This test cannot be used on a %(kind)s field"),
                                   kind=name))
            return None
        text = _clean(sub.value)
        if not text:
            self.bad(sub.value, both("A value is needed; to test for blank choose 'is blank'"))
            return None
        try:
            if op in LIST_OPS:
                return op, [typed_value(t, kind) for t in text.split(",") if t.strip()]
            if op == "matches":
                why = regex_problem(text)
                if why:
                    raise ValueError(both("The pattern cannot be used") + f": {why}")
                return op, text
            return op, typed_value(text, kind, ordered=op in ORDERED_OPS)
        except ValueError as exc:
            self.bad(sub.value, str(exc))
            return None

    # -- then ---------------------------------------------------------------------------------

    def then(self) -> dict:
        form = self.form
        then: dict[str, Any] = {}
        self.at(("then",), form.title_vi)
        self.at(("then", "open"), form.open)
        if form.open.data:
            if form.open.data not in OPEN_KINDS:
                self.bad(form.open, both("Choose violation, incident or suggestion"))
            then["open"] = form.open.data
        severity = self.severity()
        if severity is not None:
            then["severity"] = severity
        title = self.texts(form.title_vi, form.title_en, ("then", "title"), template=True)
        if title:
            then["title"] = title
        elif form.open.data:
            self.bad(form.title_vi, both("A title is needed when the rule opens a violation or "
                                         "an incident"))
        subject = _clean(form.subject)
        self.at(("then", "subject"), form.subject)
        if subject:
            self.template(subject, form.subject)
            then["subject"] = subject
        data = self.data()
        if data:
            then["data"] = data
        notify = self.notify()
        if notify:
            then["notify"] = notify
        return then

    def severity(self) -> str | dict | None:
        form = self.form
        self.at(("then", "severity"), form.severity)
        chosen = form.severity.data or ""
        if not chosen:
            return None
        if chosen in SEVERITIES:
            return chosen
        if chosen != "bands":
            self.bad(form.severity, both("Choose a severity"))
            return None
        self.at(("then", "severity", "by"), form.severity_by)
        by = _clean(form.severity_by)
        if field_kinds(self.vocab, self.event).get(by) not in ("integer", "number"):
            self.bad(form.severity_by, both("Choose a number field of the event"))
        bands: dict[int | float, str] = {}
        for row in form.bands:
            low, level = _clean(row.form.low), row.form.level.data or ""
            if not low and not level:
                continue
            try:
                value = number(low)
            except ValueError as exc:
                self.bad(row.form.low, str(exc))
                continue
            self.at(("then", "severity", "bands", value), row.form.low)
            if level not in SEVERITIES:
                self.bad(row.form.level, both("Choose a severity"))
            elif value in bands:
                self.bad(row.form.low, both("This value already starts a band"))
            else:
                bands[value] = level
        if not bands:
            first = form.bands.entries[0].form.low if form.bands.entries else form.severity
            self.bad(first, both("At least one band is needed: from value → severity"))
        return {"by": f"{self.alias}.{by}", "bands": bands}

    def data(self) -> dict:
        data: dict[str, str] = {}
        for row in self.form.data_rows:
            name, value = _clean(row.form.name), (row.form.value.data or "").strip()
            if not name and not value:
                continue
            if not DATA_NAME.match(name):
                self.bad(row.form.name, both("A name uses letters, digits and '_' (e.g. "
                                             "dossier_id)"))
                continue
            if name in data:
                self.bad(row.form.name, both("This name is already used above"))
                continue
            self.at(("then", "data", name), row.form.value)
            self.template(value, row.form.value)
            data[name] = value
        return data

    def notify(self) -> list[dict]:
        out: list[dict] = []
        for row in self.form.notices:
            sub = row.form
            to = _clean(sub.to)
            if not to and not _clean(sub.text_vi) and not _clean(sub.text_en):
                continue
            path = ("then", "notify", len(out))
            self.at(path, sub.to)
            self.at(path + ("to",), sub.to)
            self.at(path + ("role",), sub.role)
            known = self.form.departments
            if not to or (known is not None and to not in dict(known)):
                self.bad(sub.to, both("Choose a department of the organisation"))
            item: dict[str, Any] = {"to": to}
            if sub.role.data:
                if sub.role.data not in ROLES:
                    self.bad(sub.role, both("Choose a role"))
                item["role"] = sub.role.data
            text = self.texts(sub.text_vi, sub.text_en, path + ("text",), template=True)
            if not text:
                self.bad(sub.text_vi, both("The notification needs a text"))
            item["text"] = text
            out.append(item)
        return out

    # -- texts --------------------------------------------------------------------------------

    def texts(self, vi, en, path: tuple, template: bool) -> dict[str, str]:
        self.at(path, vi)
        out = {}
        for lang, field in zip(LANGUAGES, (vi, en)):
            self.at(path + (lang,), field)
            text = (field.data or "").strip()
            if text:
                if template:
                    self.template(text, field)
                out[lang] = text
        return out

    def template(self, text: str, field) -> None:
        if self.templates is None:
            return  # an event type or name is already reported; its fields are unknown
        why = template_problem(text, self.templates)
        if why:
            self.bad(field, why)


# ---------------------------------------------------------------------------------------------
# YAML text: write one rule, replace or remove it in a file
# ---------------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style like the shipped files: lists indented under their key, short leaves inline."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _inline(value: Any) -> bool:
    """Does a mapping or list go on one line? Short, two levels at most, no templates, and not
    a pattern (`event:`): `where: {days_late: {gte: 1}}`, `key: [dossier_id, step]`."""
    def length(v: Any, depth: int) -> int | None:
        if isinstance(v, (Mapping, list)):
            if not v or depth > 2 or (isinstance(v, Mapping) and "event" in v):
                return None
            parts = list(v.items()) if isinstance(v, Mapping) else [(None, x) for x in v]
            sizes = [length(k, depth) if k is not None else 0 for k, _ in parts] + \
                [length(x, depth + 1) for _, x in parts]
            return None if None in sizes else sum(sizes) + 4 * len(parts)
        if isinstance(v, str):
            return None if "{" in v or "\n" in v or len(v) > 40 else len(v) + 2
        return len(str(v))

    size = length(value, 1)
    return size is not None and size <= 60


def _represent_dict(dumper: _Dumper, data: Mapping) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=_inline(data))


def _represent_list(dumper: _Dumper, data: list) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=_inline(data))


def _represent_str(dumper: _Dumper, data: str) -> yaml.Node:
    # Templates in double quotes, as docs/rules.md writes them; multi-line text stays one line.
    style = '"' if "{" in data or "\n" in data or data.startswith("=") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)

ITEM_PREFIX = "  - "


def rule_yaml(rule: dict, prefix: str = ITEM_PREFIX) -> str:
    """One rule as an item of the `rules:` list, as upsert_rule writes it."""
    body = yaml.dump(rule, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=4096)
    pad = " " * len(prefix)
    return "".join((prefix if i == 0 else pad) + line + "\n"
                   for i, line in enumerate(body.splitlines()))


def rule_file_text(rules: Sequence[dict]) -> str:
    """A rules file holding these rules."""
    if not rules:
        return "rules: []\n"
    return "rules:\n" + "\n".join(rule_yaml(rule) for rule in rules)


@dataclass(frozen=True)
class _Item:
    """Where one rule of a block `rules:` list sits in the text: [start, end) whole lines."""

    key: Any
    start: int
    end: int
    prefix: str  # "  - ": the text before the rule's first key on its line


def _items(text: str, filename: str) -> list[_Item] | None:
    """The rules of a block `rules:` list in the text; None when the file has no such list."""
    load_yaml(text, filename)  # syntax errors and duplicate keys as ScenarioInvalid, with lines
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return None
    seq = next((v for k, v in root.value if getattr(k, "value", None) == "rules"), None)
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
        return None
    items = []
    for node in seq.value:
        start = text.rfind("\n", 0, node.start_mark.index) + 1
        prefix = text[start:node.start_mark.index]
        if not re.fullmatch(r"[ \t]*-[ \t]+", prefix):
            return None
        end = _last_index(node)
        if text[end - 1:end] != "\n":
            end = text.find("\n", end) + 1 or len(text)
        items.append(_Item(_key_of(node), start, end, prefix))
    return items


def _last_index(node: yaml.Node) -> int:
    """Where the node's last value ends (a block mapping's own end mark is the next token's)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style \
            and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node.end_mark.index


def _key_of(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == "key" and isinstance(v, yaml.ScalarNode):
                return v.value
    return None


def _header(text: str) -> str:
    """The comment and blank lines at the top of a file."""
    lines = text.splitlines(keepends=True)
    head = []
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            break
        head.append(line)
    return "".join(head)


def _rebuilt(text: str, filename: str, change) -> str:
    """The file written anew from its rules (for files without a block list): header kept."""
    data, _ = load_yaml(text, filename)
    rules = data.get("rules") if isinstance(data, Mapping) else None
    if data is not None and (not isinstance(data, Mapping) or
                             not isinstance(rules, (list, type(None)))):
        raise ScenarioInvalid([Problem(filename, "the file must hold `rules:` with a list of "
                                                 "rules; fix it in the YAML editor")])
    head = _header(text)
    return head + ("" if not head or head.endswith("\n") else "\n") + \
        rule_file_text(change(list(rules or [])))


def rule_keys(text: str, filename: str = "rules.yaml") -> list:
    """The keys of the file's rules, in order (None for an item without one)."""
    data, _ = load_yaml(text, filename)
    rules = data.get("rules") if isinstance(data, Mapping) else None
    if not isinstance(rules, list):
        return []
    return [r.get("key") if isinstance(r, Mapping) else None for r in rules]


def upsert_rule(rules_yaml_text: str, rule: dict, old_key: str | None,
                filename: str = "rules.yaml") -> str:
    """The file with `rule` in place of the rule keyed `old_key`, or appended; the rest of the
    text (other rules, comments) unchanged. ScenarioInvalid if the file is not YAML."""
    text = rules_yaml_text
    items = _items(text, filename)
    if items is None:
        def change(rules: list) -> list:
            keys = [r.get("key") if isinstance(r, Mapping) else None for r in rules]
            if old_key is not None and old_key in keys:
                return [rule if k == old_key else r for r, k in zip(rules, keys)]
            return rules + [rule]
        return _rebuilt(text, filename, change)
    keys = [item.key for item in items]
    if old_key is not None and old_key in keys:
        item = items[keys.index(old_key)]
        return text[:item.start] + rule_yaml(rule, item.prefix) + text[item.end:]
    last = items[-1]
    before = text[:last.end] if text[:last.end].endswith("\n") else text[:last.end] + "\n"
    return before + "\n" + rule_yaml(rule, last.prefix) + text[last.end:]


def remove_rule(text: str, key: str, filename: str = "rules.yaml") -> str:
    """The file without the rule keyed `key` (and the comment lines right above it); KeyError
    if there is none."""
    items = _items(text, filename)
    if items is None:
        if key not in rule_keys(text, filename):
            raise KeyError(key)
        return _rebuilt(text, filename, lambda rules: [
            r for r in rules if not (isinstance(r, Mapping) and r.get("key") == key)])
    keys = [item.key for item in items]
    if key not in keys:
        raise KeyError(key)
    index = keys.index(key)
    item = items[index]
    if len(items) == 1:
        return _rebuilt(text[:item.start] + text[item.end:], filename, lambda rules: [])
    start, end = item.start, item.end
    indent = item.prefix[:item.prefix.index("-")]
    while start > 0:  # comments at the rule's own indent, right above it, describe it
        above = text.rfind("\n", 0, start - 1) + 1
        line = text[above:start]
        if not (line.startswith(indent + "#") or (index > 0 and not line.strip())):
            break
        start = above
    if index == 0:
        while end < len(text) and not text[end:text.find("\n", end) + 1 or len(text)].strip():
            end = text.find("\n", end) + 1 or len(text)
    return text[:start] + text[end:]


# ---------------------------------------------------------------------------------------------
# A rule's pattern in words
# ---------------------------------------------------------------------------------------------


def _span_words(value: Any) -> tuple[str, str]:
    try:
        span = parse_span(value)
    except SpanError:
        return str(value), str(value)
    # Wall time as the file writes it ("90m" stays "90m").
    return span.words() if span.working else (str(value), str(value))


def _repeat_words(repeat: Any) -> tuple[str, str]:
    """What a further event means, as a tail of describe_when; nothing for the default."""
    if repeat == DEFAULT_REPEAT:
        return "", ""
    if isinstance(repeat, Mapping) and "once_per" in repeat:
        words = pair(N_("once per %(span)s"), span=_span_words(repeat["once_per"]))
    elif str(repeat) in REPEAT_TAILS:
        words = pair(REPEAT_TAILS[str(repeat)])
    else:
        words = (str(repeat), str(repeat))
    return f" ({words[0]})", f" ({words[1]})"


def describe_when(when: Any) -> str:
    """A rule's `when` in words, Vietnamese first then English."""
    if not isinstance(when, Mapping):
        return "—"
    for mode, message in (("all", N_("All of: %(events)s%(repeat)s")),
                          ("any", N_("Any of: %(events)s%(repeat)s"))):
        if mode in when:
            items = when[mode] if isinstance(when[mode], list) else []
            names = ", ".join(str(p.get("event")) for p in items if isinstance(p, Mapping))
            return both(message, events=names,
                         repeat=_repeat_words(when.get("repeat", DEFAULT_REPEAT)))
    where = when.get("where")
    n = len(where) if isinstance(where, Mapping) else 0
    conditions = ("", "")
    if n:
        conditions = pair(N_("(1 condition)")) if n == 1 else \
            pair(N_("(%(n)s conditions)"), n=n)
        conditions = (f" {conditions[0]}", f" {conditions[1]}")
    key = when.get("key")
    key = ", ".join(map(str, key)) if isinstance(key, list) else key
    values = {"event": when.get("event"), "conditions": conditions, "key": key}
    if "count" in when:
        return both(N_("%(count)s or more %(event)s events%(conditions)s with the same %(key)s "
                        "within %(span)s"),
                     count=when["count"], span=_span_words(when.get("within")), **values)
    if "absent" in when:
        absent = when["absent"] if isinstance(when["absent"], Mapping) else {}
        if "by" in absent:
            deadline = pair(N_("by its %(field)s"), field=absent["by"])
        else:
            deadline = pair(N_("within %(span)s"), span=_span_words(absent.get("within")))
        return both(N_("%(event)s%(conditions)s, then no %(awaited)s with the same %(key)s "
                        "%(deadline)s"), awaited=absent.get("event"), deadline=deadline, **values)
    if "sustained" in when:
        sustained = when["sustained"] if isinstance(when["sustained"], Mapping) else {}
        span = _span_words(sustained.get("for")) if "for" in sustained else ("", "")
        if "readings" in sustained:
            readings = sustained["readings"]
            span = pair(N_("%(span)s or %(n)s readings"), span=span, n=readings) \
                if any(span) else pair(N_("%(n)s readings"), n=readings)
        return both(N_("%(event)s%(conditions)s past the threshold for %(span)s in a row, per "
                        "%(key)s"), span=span, **values)
    if "silence" in when:
        return both(N_("No %(event)s from one %(key)s for %(span)s"),
                     span=_span_words(when["silence"]), **values)
    return both(N_("Every %(event)s event%(conditions)s"), **values)
