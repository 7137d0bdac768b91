"""The rule builder's form and conversions (designer/scenarios/rule_form.py), without pages."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from flask import Flask
from werkzeug.datastructures import MultiDict

from designer.scenarios import rule_form as rf
from engine.events.vocabulary import Vocabulary
from engine.rules.format import parse_rules
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS

# Rules of the shipped scenarios the form cannot express: none (`all:` with `same:` included).
NOT_EXPRESSIBLE: set[str] = set()
DEPARTMENTS = [("so-khoa-hoc-cong-nghe", "Sở Khoa học và Công nghệ"), ("thanh-tra", "Thanh tra")]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


@pytest.fixture(autouse=True)
def request_context():
    """WTForms' Flask integration reads the app's config; CSRF is the pages' business."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False)
    with app.test_request_context():
        yield


def _form(vocab, departments=None, **fields) -> rf.RuleForm:
    """A RuleForm posted with these fields (conditions__0__field → conditions-0-field)."""
    data = MultiDict({name.replace("__", "-"): value for name, value in fields.items()})
    return rf.RuleForm(vocab, departments, formdata=data)


def _parse(rule: dict, vocab):
    return parse_rules(rf.rule_file_text([rule]), "rules.yaml", vocab.field_types()).rules[0]


def _shipped_rules() -> list:
    return [pytest.param(rule, id=rule["key"])
            for path in sorted(Path(SCENARIOS).glob("*/rules.yaml"))
            for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]]


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", _shipped_rules())
def test_every_shipped_rule_round_trips_or_is_reported(rule, vocab):
    data = rf.rule_to_formdata(rule)
    if rule["key"] in NOT_EXPRESSIBLE:
        assert data is None
        assert "cannot express" in rf.unsupported(rule)
        return
    assert rf.unsupported(rule) is None
    form = rf.RuleForm(vocab, formdata=None, data=data)
    assert rf.form_to_rule(form) == rule
    # Posted back as the browser would send it, the same rule comes out and it is valid.
    posted = _form(vocab, **_as_formdata(form))
    assert posted.validate(), (posted.errors, posted.rule_errors)
    assert rf.form_to_rule(posted) == rule


def _as_formdata(form: rf.RuleForm) -> dict:
    """What a browser submits for a rendered form (no button pressed)."""
    out = {}

    def add(field) -> None:
        if field.type == "FieldList":
            for entry in field:
                add(entry)
        elif field.type == "FormField":  # a row, or a further event with rows of its own
            for sub in field.form:
                add(sub)
        elif field.type not in ("SubmitField", "CSRFTokenField"):
            value = field.data if field.type == "SelectField" else field._value()
            out[field.name.replace("-", "__")] = value or ""

    for field in form:
        add(field)
    return out


def test_the_not_expressible_shipped_rules_are_exactly_these():
    found = {p.values[0]["key"] for p in _shipped_rules()
             if rf.rule_to_formdata(p.values[0]) is None}
    assert found == NOT_EXPRESSIBLE


PATTERNS = {
    "plain": dict(event="dossier.returned", conditions__0__field="reason",
                  conditions__0__op="empty", conditions__1__field="procedure",
                  conditions__1__op="in", conditions__1__value="cap-phep, dang-ky",
                  conditions__2__field="source", conditions__2__value="dvc-portal"),
    "count": dict(event="social.post", kind="count", group_by="keyword", count="20",
                  window="10", window_unit="m"),
    "absent-within": dict(event="dossier.received", kind="absent", group_by="dossier_id",
                          awaited_event="dossier.completed", deadline="within", window="15",
                          window_unit="working_days", awaited__0__field="unit",
                          awaited__0__op="ne", awaited__0__value="so-tu-phap"),
    "absent-by": dict(event="dossier.received", kind="absent", group_by="dossier_id",
                      awaited_event="dossier.completed", deadline="by",
                      deadline_field="due_at"),
    "absent-field": dict(event="dossier.step_started", kind="absent",
                         group_by="dossier_id, step", awaited_event="dossier.step_completed",
                         window="=allotted_hours", window_unit="working_hours"),
    "sustained": dict(event="environment.reading", conditions__0__field="parameter",
                      conditions__0__value="pm25", kind="sustained", group_by="station_id",
                      hold__0__field="value", hold__0__op="gt", hold__0__value="50",
                      window="30", window_unit="m", readings="3"),
    "silence": dict(event="environment.reading", kind="silence", group_by="station_id",
                    window="1", window_unit="h"),
    "bands": dict(event="environment.reading", severity="bands", severity_by="aqi",
                  bands__0__low="0", bands__0__level="low", bands__1__low="150.5",
                  bands__1__level="high"),
    "notify": dict(event="social.post", notices__0__to="so-khoa-hoc-cong-nghe",
                   notices__0__role="department_head",
                   notices__0__text_vi="Từ khóa «{event.keyword}»",
                   notices__0__text_en="Keyword '{event.keyword}'"),
}


def _check_parsed(kind: str, parsed) -> None:
    temporal = parsed.temporal
    if kind == "plain":
        tests = {(t.field, t.op): t.value for t in parsed.patterns[0].where.items}
        assert tests == {("reason", "empty"): True, ("procedure", "in"): ["cap-phep", "dang-ky"],
                         ("source", "eq"): "dvc-portal"}
        assert temporal is None
    elif kind == "count":
        assert (temporal.form, temporal.count, temporal.within.amount) == ("count", 20, 600)
    elif kind == "absent-within":
        assert temporal.stop.event == "dossier.completed"
        assert (temporal.within.amount, temporal.within.unit) == (15, "working_days")
        assert temporal.stop.where.items[0].op == "ne"
    elif kind == "absent-by":
        assert (temporal.form, temporal.by, temporal.within) == ("absent", "due_at", None)
    elif kind == "absent-field":
        assert temporal.key == ("dossier_id", "step")
        assert temporal.within.field == "allotted_hours"
    elif kind == "sustained":
        assert temporal.hold.items[0].value == 50 and temporal.readings == 3
        assert temporal.within.amount == 1800
    elif kind == "silence":
        assert (temporal.form, temporal.within.amount) == ("silence", 3600)
    elif kind == "bands":
        assert parsed.then.severity.by == "event.aqi"
        assert parsed.then.severity.bands == ((0.0, "low"), (150.5, "high"))
    elif kind == "notify":
        notice = parsed.then.notify[0]
        assert (notice.to, notice.role) == ("so-khoa-hoc-cong-nghe", "department_head")
        assert notice.text == {"vi": "Từ khóa «{event.keyword}»", "en": "Keyword '{event.keyword}'"}


@pytest.mark.parametrize("kind", PATTERNS)
def test_each_pattern_kind_makes_yaml_the_parser_reads(kind, vocab):
    form = _form(vocab, DEPARTMENTS, key=f"r-{kind}", title_vi="Quy tắc {event.id}",
                 **PATTERNS[kind])
    assert form.validate(), (form.errors, form.rule_errors)
    rule = rf.form_to_rule(form)
    _check_parsed(kind, _parse(rule, vocab))
    # ... and the rule comes back into the same form data.
    again = rf.RuleForm(vocab, DEPARTMENTS, formdata=None, data=rf.rule_to_formdata(rule))
    assert rf.form_to_rule(again) == rule


def test_one_fields_tests_merge_and_a_single_equality_is_plain(vocab):
    form = _form(vocab, key="r", event="environment.reading",
                 conditions__0__field="aqi", conditions__0__op="gte", conditions__0__value="101",
                 conditions__1__field="aqi", conditions__1__op="lt", conditions__1__value="201",
                 conditions__2__field="parameter", conditions__2__value="pm10")
    assert form.validate(), form.errors
    assert rf.form_to_rule(form)["when"]["where"] == {"aqi": {"gte": 101, "lt": 201},
                                                      "parameter": "pm10"}


# -- correlated events (all:) and what a repeat means ------------------------------------------

SUPPLEMENT = "dossier.supplement_requested"
# Two supplement requests on one dossier, as the form is filled in.
PAIR = dict(key="second-request", event=SUPPLEMENT, alias="first", patterns__0__alias="second",
            patterns__0__event=SUPPLEMENT, patterns__0__same="dossier_id = first.dossier_id",
            open="violation", title_vi="Hồ sơ {second.dossier_id} bị yêu cầu bổ sung lần hai",
            data_rows__0__name="first_reason", data_rows__0__value="{first.reason}")


def _shipped(key: str) -> dict:
    return next(p.values[0] for p in _shipped_rules() if p.values[0]["key"] == key)


@pytest.mark.parametrize("repeat,fields,mode,once_per", [
    (None, {}, "consume", None),
    ("every", {"repeat": "every"}, "every", None),
    ("once", {"repeat": "once"}, "once", None),
    ({"once_per": "30d"}, {"repeat": "once_per", "once_per": "30", "once_per_unit": "d"},
     "once", 30 * 86400),
    ({"once_per": {"working_days": 5}},
     {"repeat": "once_per", "once_per": "5", "once_per_unit": "working_days"}, "once", 5),
])
def test_a_correlated_rule_round_trips_with_its_repeat(repeat, fields, mode, once_per, vocab):
    rule = _shipped("repeated-supplement-request")
    if repeat is not None:
        rule = {**rule, "when": {**rule["when"], "repeat": repeat}}
    data = rf.rule_to_formdata(rule)
    assert {k: data[k] for k in fields} == fields
    assert data["alias"] == "first" and data["patterns"][0]["same"] == \
        "dossier_id = first.dossier_id"
    assert rf.form_to_rule(rf.RuleForm(vocab, formdata=None, data=data)) == rule
    posted = _form(vocab, **_as_formdata(rf.RuleForm(vocab, formdata=None, data=data)))
    assert posted.validate(), (posted.errors, posted.rule_errors)
    assert rf.form_to_rule(posted) == rule
    join = _parse(rule, vocab).join
    assert join.repeat == mode
    assert (join.once_per.amount if join.once_per else None) == once_per


def test_the_default_repeat_writes_nothing(vocab):
    form = _form(vocab, **PAIR, repeat="consume")
    assert form.validate(), (form.errors, form.rule_errors)
    rule = rf.form_to_rule(form)
    assert set(rule["when"]) == {"all"} and "repeat" not in rf.rule_yaml(rule)
    # The shipped rule, opened and saved unchanged, is written back as it was (no `repeat:`).
    shipped = _shipped("repeated-supplement-request")
    again = rf.form_to_rule(_form(vocab, **_as_formdata(
        rf.RuleForm(vocab, formdata=None, data=rf.rule_to_formdata(shipped)))))
    assert again == shipped


def test_correlated_events_make_an_all_rule_the_parser_reads(vocab):
    form = _form(vocab, **PAIR, repeat="once_per", once_per="2", once_per_unit="working_days",
                 patterns__0__conditions__0__field="reason", patterns__0__conditions__0__op="filled")
    assert form.validate(), (form.errors, form.rule_errors)
    rule = rf.form_to_rule(form)
    assert rule["when"] == {
        "all": [{"event": SUPPLEMENT, "as": "first"},
                {"event": SUPPLEMENT, "as": "second", "where": {"reason": {"empty": False}},
                 "same": {"dossier_id": "first.dossier_id"}}],
        "repeat": {"once_per": {"working_days": 2}}}
    parsed = _parse(rule, vocab)
    assert (parsed.join.repeat, parsed.join.once_per.unit) == ("once", "working_days")
    assert parsed.join.key == {"first": (("dossier_id",),), "second": (("dossier_id",),)}
    assert "(một lần mỗi 2 ngày làm việc) / " in rf.describe_when(rule["when"])


def test_a_key_of_two_fields_and_bands_of_the_first_event(vocab):
    form = _form(vocab, key="step-done-twice", event="dossier.step_started", alias="started",
                 patterns__0__alias="done", patterns__0__event="dossier.step_completed",
                 patterns__0__same="dossier_id = started.dossier_id, step = started.step",
                 repeat="every", severity="bands", severity_by="allotted_hours",
                 bands__0__low="0", bands__0__level="low", bands__1__low="8",
                 bands__1__level="high", title_vi="Bước {done.step} của {started.dossier_id}")
    assert form.validate(), (form.errors, form.rule_errors)
    rule = rf.form_to_rule(form)
    assert rule["when"]["repeat"] == "every"
    assert rule["then"]["severity"]["by"] == "started.allotted_hours"
    parsed = _parse(rule, vocab)
    assert parsed.join.key["done"] == (("dossier_id",), ("step",))
    again = rf.RuleForm(vocab, formdata=None, data=rf.rule_to_formdata(rule))
    assert rf.form_to_rule(again) == rule


@pytest.mark.parametrize("fields,where,message", [
    (dict(repeat="once_per"), "once_per", "Cần khoảng thời gian"),
    (dict(repeat="once_per", once_per="=allotted_hours", once_per_unit="working_hours"),
     "once_per", "không lấy từ trường"),
    (dict(repeat="once_per", once_per="ba", once_per_unit="d"), "once_per", "không phải là số"),
    (dict(repeat="sometimes"), "repeat", "Choose what a further event means"),
    (dict(kind="count", group_by="dossier_id", count="2", window="1", window_unit="d"), "kind",
     "A time pattern watches one event"),
    (dict(alias=""), "alias", "Each event needs a name"),
    (dict(patterns__0__same="dossier_id first.dossier_id"), "patterns.0.same",
     "Write field = name.field"),
    (dict(patterns__0__event="dossier.nope"), "patterns.0.event", "Choose an event type"),
    (dict(title_vi="Hồ sơ {third.dossier_id}"), "title_vi",
     "Only {first.…}, {second.…} can be used here, not 'third'"),
    (dict(title_vi="Hồ sơ {second.dosier_id}"), "title_vi",
     "The event 'second' has no field 'dosier_id'"),
])
def test_bad_correlated_input_is_an_error_on_its_field(fields, where, message, vocab):
    form = _form(vocab, **{**PAIR, **fields})
    assert not form.validate()
    field = form
    for part in where.split("."):
        field = field[int(part)].form if part.isdigit() else field[part]
    assert message in _errors(field), form.errors


def test_repeat_without_correlated_events_is_an_error_on_the_repeat(vocab):
    form = _form(vocab, key="r", event="dossier.returned", repeat="every")
    assert not form.validate()
    assert "Only for correlated events" in _errors(form.repeat)
    assert form.correlated  # so the page opens the part where the repeat and its error are


def test_the_parsers_key_problem_lands_on_the_events_same(vocab):
    # A third event tied to the second by `unit` only: the parser wants the whole key from each.
    form = _form(vocab, **PAIR, patterns__1__alias="third", patterns__1__event="dossier.returned",
                 patterns__1__same="unit = second.unit")
    assert not form.validate()
    same = _errors(form.patterns[1].form.same)
    assert "Invalid" in same and "'third' does not say which of its fields equals" in same


def test_the_parsers_problems_on_a_further_event_land_on_it(vocab):
    form = _form(vocab, **{**PAIR, "patterns__0__alias": "first"})
    assert not form.validate()
    assert "already used by an earlier event" in _errors(form.patterns[0].form.alias)
    assert form.title_vi.errors == []
    form = _form(vocab, **{**PAIR, "patterns__0__same": "dossier_id = frist.dossier_id"})
    assert not form.validate()
    assert "unknown alias 'frist'" in _errors(form.patterns[0].form.same)


def test_the_form_offers_one_empty_further_event(vocab):
    single = rf.RuleForm(vocab, formdata=None, data=rf.rule_to_formdata(
        _shipped("returned-without-reason")))
    assert len(single.patterns) == 1 and not single.correlated
    pair = rf.RuleForm(vocab, formdata=None, data=rf.rule_to_formdata(
        _shipped("repeated-supplement-request")))
    assert len(pair.patterns) == 2 and pair.correlated
    assert pair.patterns[1].form.alias.data in ("", None)
    assert len(pair.patterns[0].form.conditions) == rf.ROWS


# -- bad input: the error is on the field --------------------------------------------------------


def _errors(field) -> str:
    return " ".join(field.errors)


def test_unknown_field_is_an_error_on_that_row(vocab):
    form = _form(vocab, key="r", event="dossier.returned", conditions__0__field="reasn",
                 conditions__0__op="empty")
    assert not form.validate()
    assert "'reasn'" in _errors(form.conditions[0].form.field)


@pytest.mark.parametrize("window,unit,message", [
    ("abc", "m", "không phải là số"), ("0", "h", "lớn hơn 0"), ("-5", "m", "lớn hơn 0"),
    ("=allotted_hours", "h", "không phải là số"), ("5", "weeks", "Chọn đơn vị"),
])
def test_bad_duration_is_an_error_on_the_window(window, unit, message, vocab):
    form = _form(vocab, key="r", event="social.post", kind="count", group_by="keyword",
                 count="5", window=window, window_unit=unit)
    assert not form.validate()
    assert message in _errors(form.window)
    assert form.count.errors == []


def test_a_span_from_a_field_needs_a_number_field(vocab):
    form = _form(vocab, key="r", event="dossier.step_started", kind="absent",
                 group_by="dossier_id", awaited_event="dossier.step_completed",
                 window="=officer", window_unit="working_hours")
    assert not form.validate()
    assert "'officer'" in _errors(form.window)


@pytest.mark.parametrize("field,op,value,message", [
    ("value", "gt", "nhiều", "không phải là số"),         # number
    ("aqi", "eq", "1.5", "số nguyên"),                    # integer
    ("aqi", "in", "1, x", "số nguyên"),                   # a list of whole numbers
    ("value", "matches", "5.*", "không dùng được"),       # no patterns on numbers
    ("station_id", "matches", "^HN", "not supported"),    # the rule engine's pattern language
    ("station_id", "eq", "", "Cần giá trị"),
])
def test_value_of_the_wrong_type_is_an_error_on_that_row(field, op, value, message, vocab):
    form = _form(vocab, key="r", event="environment.reading", conditions__0__field=field,
                 conditions__0__op=op, conditions__0__value=value)
    assert not form.validate()
    row = form.conditions[0].form
    assert message in _errors(row.value) + _errors(row.op)


def test_dates_are_checked_and_kept_as_text(vocab):
    bad = _form(vocab, key="r", event="dossier.received", conditions__0__field="due_at",
                conditions__0__op="lt", conditions__0__value="ngày mai")
    assert not bad.validate()
    assert "2025-07-01" in _errors(bad.conditions[0].form.value)
    good = _form(vocab, key="r", event="dossier.received", conditions__0__field="due_at",
                 conditions__0__op="lt", conditions__0__value="2025-07-01")
    assert good.validate(), good.errors
    assert rf.form_to_rule(good)["when"]["where"] == {"due_at": {"lt": "2025-07-01"}}


def test_templates_may_name_only_fields_of_the_event(vocab):
    form = _form(vocab, key="r", event="dossier.returned", open="violation",
                 title_vi="Hồ sơ {event.dosier_id}", subject="{first.dossier_id}",
                 data_rows__0__name="unit", data_rows__0__value="{event.unit",
                 data_rows__1__name="ok", data_rows__1__value="{event.reason} {event.source}")
    assert not form.validate()
    assert "'dosier_id'" in _errors(form.title_vi)
    assert "'first'" in _errors(form.subject)
    assert "never closed" in _errors(form.data_rows[0].form.value)
    assert form.data_rows[1].form.value.errors == []


def test_other_checks_name_their_field(vocab):
    form = _form(vocab, DEPARTMENTS, key="Bad Key", event="social.post", kind="count",
                 count="1", window="5", open="incident", severity="bands",
                 notices__0__to="so-khong-co", notices__0__text_vi="x",
                 data_rows__0__name="a b", data_rows__0__value="x")
    assert not form.validate()
    assert "a-z, 0-9" in _errors(form.key)
    assert "nhóm" in _errors(form.group_by)
    assert "2 trở lên" in _errors(form.count)
    assert "tiêu đề" in _errors(form.title_vi)
    assert "trường số" in _errors(form.severity_by)
    assert "dải" in _errors(form.bands[0].form.low)
    assert "đơn vị" in _errors(form.notices[0].form.to)
    assert "Tên gồm" in _errors(form.data_rows[0].form.name)


def test_the_parsers_problems_land_on_their_field(vocab):
    # The key is a field of the first event only: the parser says so, on the awaited event.
    form = _form(vocab, key="r", event="dossier.received", kind="absent", group_by="due_at",
                 awaited_event="dossier.completed", window="2", window_unit="d")
    assert not form.validate()
    assert "due_at" in _errors(form.awaited_event) and "Invalid" in _errors(form.awaited_event)


def test_a_key_used_by_another_rule_is_an_error_on_the_key(vocab):
    text = (Path(SCENARIOS) / "air-quality" / "rules.yaml").read_text(encoding="utf-8")
    form = _form(vocab, key="station-silent", event="environment.reading", kind="silence",
                 group_by="station_id", window="2", window_unit="h")
    assert form.validate()
    whole = rf.upsert_rule(text, rf.form_to_rule(form), None)
    assert not form.check_file(whole, "rules.yaml", 2)
    assert "already used" in _errors(form.key)


# -- what the form cannot express ----------------------------------------------------------------


@pytest.mark.parametrize("when,why", [
    ({"any": [{"event": "dossier.returned", "as": "a"}, {"event": "dossier.completed",
                                                          "as": "b"}]},
     "any:"),
    ({"all": [{"event": "dossier.returned", "as": "a"}], "repeat": "once"},
     "`repeat` with a single pattern"),
    ({"all": [{"event": "dossier.returned", "as": "a"}, {"event": "dossier.returned", "as": "b",
                                                          "same": {"unit": "a.unit"}}],
      "repeat": {"once_per": {"working_hours": "=allotted_hours"}}}, "repeat:"),
    ({"all": [{"event": "dossier.returned", "as": "a"}, {"event": "dossier.returned", "as": "b",
                                                          "same": {"unit": ["a.unit"]}}]},
     "this form of `same:`"),
    ({"event": "dossier.returned", "where": {"any": [{"reason": "x"}, {"unit": "y"}]}},
     "any:/all:"),
    ({"event": "hotline.ticket.created", "where": {"location.ward": "x"}}, "location.ward"),
    ({"event": "dossier.returned", "as": "returned"}, "as:"),
])
def test_unsupported_rules_say_why(when, why):
    rule = {"key": "r", "when": when, "then": {}}
    assert rf.rule_to_formdata(rule) is None
    assert why in rf.unsupported(rule) and " / The rule builder cannot express" in \
        rf.unsupported(rule)


def test_data_that_is_not_text_is_not_expressible():
    rule = {"key": "r", "when": {"event": "dossier.returned"}, "then": {"data": {"n": 3}}}
    assert "not text" in rf.unsupported(rule)


def test_one_pattern_under_any_is_shown_as_a_plain_pattern(vocab):
    rule = {"key": "r", "when": {"any": [{"event": "dossier.returned"}]}, "then": {}}
    data = rf.rule_to_formdata(rule)
    form = rf.RuleForm(vocab, formdata=None, data=data)
    assert rf.form_to_rule(form) == {"key": "r", "when": {"event": "dossier.returned"},
                                     "then": {}}


# -- the file's text -----------------------------------------------------------------------------

AIR = (Path(SCENARIOS) / "air-quality" / "rules.yaml").read_text(encoding="utf-8")
NEW_RULE = {"key": "pm10-high", "when": {"event": "environment.reading",
                                         "where": {"parameter": "pm10", "value": {"gt": 150}}},
            "then": {"open": "incident", "title": {"vi": "PM10 cao ở {event.station_id}"}}}


def _keys(text: str) -> list[str]:
    return [r["key"] for r in yaml.safe_load(text)["rules"]]


def _comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def test_replacing_a_rule_keeps_the_others_and_the_comments(vocab):
    silent = next(r for r in yaml.safe_load(AIR)["rules"] if r["key"] == "station-silent")
    changed = {**silent, "when": {**silent["when"], "silence": "2h"}}
    text = rf.upsert_rule(AIR, changed, "station-silent")
    assert _keys(text) == ["pm25-sustained", "station-silent"]
    assert yaml.safe_load(text)["rules"][1] == changed
    assert _comments(text) == _comments(AIR)
    first_rule_end = AIR.index("  - key: station-silent")
    assert text[:first_rule_end] == AIR[:first_rule_end]  # byte for byte
    parse_rules(text, "rules.yaml", vocab.field_types())


def test_replacing_the_first_rule_leaves_the_second_as_written(vocab):
    pm25 = yaml.safe_load(AIR)["rules"][0]
    changed = {**pm25, "name": {"vi": "PM2.5 cao kéo dài", "en": "PM2.5 high for long"}}
    text = rf.upsert_rule(AIR, changed, "pm25-sustained")
    second = AIR[AIR.index("\n  - key: station-silent"):]
    assert text.endswith(second)
    assert text.startswith("# Quy tắc phát hiện")
    assert yaml.safe_load(text)["rules"] == [changed, yaml.safe_load(AIR)["rules"][1]]
    parse_rules(text, "rules.yaml", vocab.field_types())


def test_a_new_rule_is_appended_after_the_others(vocab):
    text = rf.upsert_rule(AIR, NEW_RULE, None)
    assert text.startswith(AIR)
    assert _keys(text) == ["pm25-sustained", "station-silent", "pm10-high"]
    assert yaml.safe_load(text)["rules"][2] == NEW_RULE
    parse_rules(text, "rules.yaml", vocab.field_types())


@pytest.mark.parametrize("start", [
    "", "rules: []\n",
    "# Quy tắc phát hiện / detection rules\n# second line\nrules: []\n",
    "rules:\n", "rules: [{key: a, when: {event: dossier.returned}, then: {}}]\n",
])
def test_a_rule_goes_into_an_empty_or_flow_file(start, vocab):
    text = rf.upsert_rule(start, NEW_RULE, None)
    assert yaml.safe_load(text)["rules"][-1] == NEW_RULE
    assert text.startswith("".join(line for line in start.splitlines(keepends=True)
                                   if line.startswith("#")))
    parse_rules(text, "rules.yaml", vocab.field_types())


def test_a_file_that_is_not_yaml_is_refused_with_its_line():
    with pytest.raises(ScenarioInvalid) as info:
        rf.upsert_rule("rules:\n  - key: a\n   when: x\n", NEW_RULE, None)
    assert info.value.problems[0].line == 3


def test_removing_a_rule_keeps_the_others_as_written(vocab):
    path = Path(SCENARIOS) / "dossier-violations" / "rules.yaml"
    text = path.read_text(encoding="utf-8")
    after = rf.remove_rule(text, "repeated-supplement-request")
    assert _keys(after) == ["returned-without-reason"]
    assert after.endswith(text[text.index("  - key: returned-without-reason"):])
    assert after.startswith("# Quy tắc phát hiện / detection rules")
    assert "Decree 61/2018" not in after  # the comment inside the removed rule went with it
    parse_rules(after, "rules.yaml", vocab.field_types())
    last = rf.remove_rule(text, "returned-without-reason")
    assert _keys(last) == ["repeated-supplement-request"] and "\n\n\n" not in last
    with pytest.raises(KeyError):
        rf.remove_rule(text, "no-such-rule")


def test_removing_the_last_rule_leaves_an_empty_list():
    text = rf.remove_rule(rf.upsert_rule("# đầu tệp / header\nrules: []\n", NEW_RULE, None),
                          "pm10-high")
    assert text == "# đầu tệp / header\nrules: []\n"


def test_a_comment_right_above_a_rule_goes_with_it():
    text = ("rules:\n  - key: a\n    when: {event: dossier.returned}\n    then: {}\n\n"
            "  # about b\n  - key: b\n    when: {event: dossier.returned}\n    then: {}\n")
    assert rf.remove_rule(text, "b") == ("rules:\n  - key: a\n    when: {event: dossier.returned}"
                                         "\n    then: {}\n")


# -- words and sources ---------------------------------------------------------------------------


@pytest.mark.parametrize("key,words", [
    ("keyword-spreading", "Từ 20 sự kiện social.post cùng keyword trong 10m / 20 or more"),
    ("station-silent", "Không có environment.reading từ cùng station_id trong 1h / No "),
    ("not-returned-by-deadline", "rồi không có dossier.completed cùng dossier_id trước hạn "
                                 "due_at / "),
    ("step-held-too-long", "trong =allotted_hours giờ làm việc / "),
    ("pm25-sustained", "liên tục vượt ngưỡng trong 30m, theo station_id / "),
    ("returned-without-reason", "Mỗi sự kiện dossier.returned (1 điều kiện) / Every "),
    ("repeated-supplement-request", "Tất cả: dossier.supplement_requested, "),
])
def test_patterns_in_words(key, words):
    rule = next(p.values[0] for p in _shipped_rules() if p.values[0]["key"] == key)
    assert words in rf.describe_when(rule["when"])


def test_sources_group_every_event_type_once(vocab):
    groups = rf.sources(vocab)
    listed = [t for g in groups for t in g.types]
    assert sorted(listed) == sorted(vocab.types)
    public = next(g for g in groups if g.key == "public_services")
    assert "dossier.received" in public.types and public.name.startswith("Dịch vụ công")
