"""Temporal rules of the inspectors' rule file: absent, count, sustained and silence.

Parsing into `Temporal`, every problem with its line and path, severity bands and `notify`,
compiling a temporal rule into single-pattern parts ("<key>#start", "#stop", "#hold") and
matching those parts in a real RuleMatcher, and the spans of time the forms use
(engine/worktime/span.py) on the shipped working calendar. No database is needed.
"""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest

from engine.rules.compiler import (
    HOLD,
    START,
    STOP,
    compile_rule,
    compile_ruleset,
    compile_temporal,
    event_types,
    part_key,
    split_part,
)
from engine.rules.format import (
    THEN_KEYS,
    Condition,
    FieldTest,
    Notice,
    Pattern,
    RuleSet,
    SeverityBands,
    Temporal,
    parse_rules,
)
from engine.rules.matcher import Match, RuleMatcher
from engine.rules.message import to_message
from engine.worktime.calendar import default_calendar
from engine.worktime.span import Span, SpanError, parse_span
from tests import rule_vocabulary as shared
from tests.rule_vocabulary import rule_with

# A vocabulary shaped like the real one (engine.events.vocabulary), fixed here so that the
# "its fields: ..." lists in the expected messages do not move when integrations change.
DOSSIER = {"dossier_id": "string", "procedure": "string", "unit": "string", "officer": "string",
           "step": "string"}
VOCABULARY = {
    "environment.reading": {"station_id": "string", "parameter": "string", "value": "number",
                            "unit": "string", "aqi": "integer", "ward": "string"},
    "social.post": {"post_id": "string", "platform": "string", "keyword": "string",
                    "text": "string", "reach": "integer", "url": "string"},
    "dossier.received": {**DOSSIER, "due_at": "string"},
    "dossier.step_started": {**DOSSIER, "allotted_hours": "number"},
    "dossier.completed": DOSSIER,
}
READING_FIELDS = "station_id, parameter, value, unit, aqi, ward, source, subject"
RECEIVED_FIELDS = "dossier_id, procedure, unit, officer, step, due_at, source, subject"
COMPLETED_FIELDS = "dossier_id, procedure, unit, officer, step, source, subject"
SPAN_EXAMPLES = "e.g. 30m, 2h, 1d, {working_days: 5} or {working_hours: 4}"

TZ = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has no DST


def parse(text: str) -> RuleSet:
    return parse_rules(text, "rules.yaml", VOCABULARY)


def problems_of(text: str) -> list[tuple[int | None, str, str]]:
    return shared.problems_of(text, VOCABULARY)


def one_problem(text: str) -> tuple[int | None, str, str]:
    return shared.one_problem(text, VOCABULARY)


def temporal_of(when: str) -> Temporal:
    return parse(rule_with(when)).rules[0].temporal


# --- the four forms parse into Temporal ---------------------------------------------------------


def test_absent_by_a_deadline_field():
    rule = parse(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: {event: dossier.completed, by: due_at}
        """)).rules[0]
    assert rule.mode == "one"
    assert rule.patterns == (Pattern("dossier.received", "event", line=4),)
    assert rule.temporal == Temporal(
        "absent", ("dossier_id",), by="due_at",
        stop=Pattern("dossier.completed", "event", line=6))
    # The awaited event is listened to as well.
    assert rule.event_types == {"dossier.received", "dossier.completed"}


def test_absent_within_working_days_with_a_test_on_the_awaited_event():
    temporal = temporal_of("""\
        event: dossier.received
        key: dossier_id
        absent:
          event: dossier.completed
          where: {step: tra-ket-qua}
          within: {working_days: 5}
        """)
    assert temporal == Temporal(
        "absent", ("dossier_id",), within=Span(5.0, "working_days"),
        stop=Pattern("dossier.completed", "event", line=7, where=Condition("all", (
            FieldTest("step", "eq", "tra-ket-qua", "string", False, 8),))))
    assert temporal.within.working and temporal.by is None


def test_absent_within_working_hours_read_from_a_field_with_a_list_key():
    temporal = temporal_of("""\
        event: dossier.step_started
        key: [dossier_id, step]
        absent: {event: dossier.completed, within: {working_hours: "=allotted_hours"}}
        """)
    assert temporal.form == "absent"
    assert temporal.key == ("dossier_id", "step")
    assert temporal.within == Span(0.0, "working_hours", field="allotted_hours")
    assert temporal.stop.event == "dossier.completed"


def test_count_within_a_wall_time_window():
    assert temporal_of("""\
        event: social.post
        key: keyword
        count: 20
        within: 10m
        """) == Temporal("count", ("keyword",), within=Span(600.0), count=20)


def test_sustained_with_a_hold_test_a_length_and_a_number_of_readings():
    rule = parse(rule_with("""\
        event: environment.reading
        where: {parameter: pm25}
        key: station_id
        sustained: {while: {value: {gt: 50}}, for: 30m, readings: 3}
        """)).rules[0]
    assert rule.patterns[0].where == Condition("all", (
        FieldTest("parameter", "eq", "pm25", "string", False, 5),))
    assert rule.temporal == Temporal(
        "sustained", ("station_id",), within=Span(1800.0),
        hold=Condition("all", (FieldTest("value", "gt", 50, "number", False, 7),)),
        readings=3)


def test_sustained_takes_for_or_readings_alone_and_any_groups_in_while():
    only_for = temporal_of("""\
        event: environment.reading
        key: station_id
        sustained: {while: {value: {gt: 50}}, for: {minutes: 45}}
        """)
    assert (only_for.within, only_for.readings) == (Span(2700.0), None)
    only_readings = temporal_of("""\
        event: environment.reading
        key: station_id
        sustained:
          while:
            any:
              - value: {gt: 50}
              - aqi: {gte: 151}
          readings: 4
        """)
    assert (only_readings.within, only_readings.readings) == (None, 4)
    assert only_readings.hold == Condition("all", (Condition("any", (
        FieldTest("value", "gt", 50, "number", False, 9),
        FieldTest("aqi", "gte", 151, "integer", False, 10),
    )),))


def test_silence_takes_its_length_as_its_value():
    assert temporal_of("""\
        event: environment.reading
        key: station_id
        silence: 1h
        """) == Temporal("silence", ("station_id",), within=Span(3600.0))


def test_a_temporal_rule_keeps_its_alias_and_a_plain_rule_has_no_temporal():
    rule = parse(rule_with("""\
        event: environment.reading
        as: reading
        key: [station_id, source]
        silence: {working_hours: 2}
        """, '{title: "{reading.station_id}", open: incident}')).rules[0]
    assert rule.aliases == ("reading",)
    assert rule.temporal == Temporal("silence", ("station_id", "source"),
                                     within=Span(2.0, "working_hours"))
    assert parse(rule_with("event: dossier.completed\n")).rules[0].temporal is None


def test_what_each_rule_keeps_in_the_database_by_event_type():
    # Nothing is held in a matcher between events: `all:` rules keep their waiting events and
    # count/sustained rules their windows as rows, read for the events of these types.
    rules = parse("""\
rules:
  - key: pair
    when:
      all:
        - event: dossier.received
          as: first
        - event: dossier.completed
          as: second
          same: {dossier_id: first.dossier_id}
    then: {}
  - key: single
    when: {event: social.post}
    then: {}
  - key: silent
    when: {event: environment.reading, key: station_id, silence: 1h}
    then: {}
  - key: busy
    when: {event: environment.reading, key: station_id, count: 3, within: 1h}
    then: {}
""")
    assert rules.event_types == {"dossier.received", "dossier.completed", "social.post",
                                 "environment.reading"}
    pair, busy = rules.rule("pair"), rules.rule("busy")
    assert rules.correlated_by_type == {"dossier.received": (pair,),
                                        "dossier.completed": (pair,)}
    assert rules.windowed_by_type == {"environment.reading": (busy,)}
    assert pair.join.key == {"first": (("dossier_id",),), "second": (("dossier_id",),)}
    assert pair.join.repeat == "consume"


# --- problems: key, forms, count, within ------------------------------------------------------


def test_a_temporal_rule_needs_a_key():
    assert one_problem(rule_with("event: social.post\ncount: 20\nwithin: 10m\n")) == (
        3, "rules[0].when", "a temporal rule needs `key:`, the field(s) that say which events "
        "belong together (e.g. key: dossier_id)")


@pytest.mark.parametrize("key, message", [
    ("[]", "`key` is a field name or a list of them, not a list"),
    ("5", "`key` is a field name or a list of them, not the number 5"),
    ("", "`key` is a field name or a list of them, not nothing (null)"),
    ("{a: b}", "`key` is a field name or a list of them, not a mapping"),
    ("[station_id, nope]", f"event type environment.reading has no field 'nope'; its fields: "
                           f"{READING_FIELDS}"),
    ("statoin_id", "event type environment.reading has no field 'statoin_id' (did you mean "
                   f"'station_id'?); its fields: {READING_FIELDS}"),
])
def test_a_bad_key_is_reported_on_its_line(key, message):
    text = rule_with(f"event: environment.reading\nkey: {key}\nsilence: 1h\n")
    assert one_problem(text) == (5, "rules[0].when.key", message)


def test_exactly_one_form_at_a_time():
    assert one_problem(rule_with("""\
        event: social.post
        key: keyword
        count: 20
        within: 10m
        silence: 1h
        """)) == (3, "rules[0].when", "a temporal rule takes exactly one of absent, count, "
                  "sustained, silence, not count and silence")
    assert one_problem(rule_with("event: social.post\nkey: keyword\nwithin: 10m\n")) == (
        3, "rules[0].when", "a temporal rule takes exactly one of absent, count, sustained, "
        "silence; `key`/`within` alone say nothing about time")


@pytest.mark.parametrize("count, described", [
    ("1", "the number 1"),
    ("0", "the number 0"),
    ("-3", "the number -3"),
    ("2.5", "the number 2.5"),
    ("true", "the boolean true"),
    ("'20'", "the text '20'"),
    ("", "nothing (null)"),
])
def test_count_is_a_whole_number_of_two_or_more(count, described):
    text = rule_with(f"event: social.post\nkey: keyword\ncount: {count}\nwithin: 10m\n")
    assert one_problem(text) == (
        6, "rules[0].when.count",
        f"`count` is a whole number of events, 2 or more, not {described}")


def test_count_needs_within():
    assert one_problem(rule_with("event: social.post\nkey: keyword\ncount: 20\n")) == (
        3, "rules[0].when", f"`count` needs `within:` ({SPAN_EXAMPLES})")


@pytest.mark.parametrize("form, lines, where", [
    ("absent", "absent: {event: dossier.completed, by: due_at}\n", "inside `absent:`"),
    ("sustained", "sustained: {while: {step: x}, readings: 2}\n",
     "inside `sustained:` (as `for:`)"),
    ("silence", "silence: 1h\n", "as the value of `silence:`"),
])
def test_within_next_to_a_form_other_than_count_says_where_it_goes(form, lines, where):
    text = rule_with(f"event: dossier.received\nkey: dossier_id\n{lines}within: 2h\n")
    assert one_problem(text) == (
        7, "rules[0].when.within", f"for `{form}` the length of time goes {where}")


# --- problems: absent ----------------------------------------------------------------------------

ABSENT_NEEDS = ("`absent` needs either `within:` (a length of time) or `by:` (a date-time field "
                "of the first event holding the deadline)")


@pytest.mark.parametrize("absent", [
    "{event: dossier.completed}",
    "{event: dossier.completed, by: due_at, within: 2h}",
])
def test_absent_needs_within_or_by_but_not_both(absent):
    text = rule_with(f"event: dossier.received\nkey: dossier_id\nabsent: {absent}\n")
    assert one_problem(text) == (6, "rules[0].when.absent", ABSENT_NEEDS)


def test_absent_by_must_name_a_field_of_the_first_event():
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent:
          event: dossier.completed
          by: due_att
        """)) == (8, "rules[0].when.absent.by", "event type dossier.received has no field "
                  f"'due_att' (did you mean 'due_at'?); its fields: {RECEIVED_FIELDS}")
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: {event: dossier.completed, by: 5}
        """)) == (6, "rules[0].when.absent.by", "`by` names a date-time field of the first "
                  "event (e.g. due_at), not the number 5")


def test_absent_by_a_number_field_is_refused():
    problem = one_problem(rule_with("""\
        event: dossier.step_started
        key: dossier_id
        absent: {event: dossier.completed, by: allotted_hours}
        """))
    assert problem[:2] == (6, "rules[0].when.absent.by")


def test_every_key_field_must_exist_on_the_awaited_event():
    assert one_problem(rule_with("""\
        event: dossier.received
        key: [dossier_id, due_at]
        absent: {event: dossier.completed, by: due_at}
        """)) == (6, "rules[0].when.absent.event", "key field 'due_at' is not a field of "
                  "dossier.completed, the awaited event; choose key fields both events have")


def test_the_awaited_event_is_checked_like_a_pattern():
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: {event: dossier.completd, by: due_at}
        """)) == (6, "rules[0].when.absent.event", "unknown event type 'dossier.completd' (did "
                  "you mean 'dossier.completed'?)")
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent:
          event: dossier.completed
          where: {stp: x}
          by: due_at
        """)) == (8, "rules[0].when.absent.where.stp", "event type dossier.completed has no "
                  f"field 'stp' (did you mean 'step'?); its fields: {COMPLETED_FIELDS}")
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: {event: dossier.completed, by: due_at, as: done}
        """)) == (6, "rules[0].when.absent.as", "unknown key 'as' in `absent`; allowed: event, "
                  "where, within, by")
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: dossier.completed
        """)) == (6, "rules[0].when.absent", "`absent` must be a mapping (key: value lines), "
                  "not the text 'dossier.completed'")


def test_absent_without_event_is_one_problem():
    assert one_problem(rule_with("""\
        event: dossier.received
        key: dossier_id
        absent: {by: due_at}
        """)) == (6, "rules[0].when.absent", "`absent` needs 'event'")


# --- problems: spans, "=field" amounts -----------------------------------------------------------


def test_working_hours_read_from_a_number_field_of_the_first_event():
    when = "event: dossier.step_started\nkey: dossier_id\n" \
           "absent: {{event: dossier.completed, within: {{working_hours: \"{}\"}}}}\n"
    assert temporal_of(when.format("=allotted_hours")).within.field == "allotted_hours"
    assert one_problem(rule_with(when.format("=nope"))) == (
        6, "rules[0].when.absent.within", "event type dossier.step_started has no field 'nope'; "
        "its fields: dossier_id, procedure, unit, officer, step, allotted_hours, source, subject")
    assert one_problem(rule_with(when.format("=procedure"))) == (
        6, "rules[0].when.absent.within",
        "'procedure' is a string, not a number of hours or days")
    assert one_problem(rule_with(when.format("="))) == (
        6, "rules[0].when.absent.within", "only working_days/working_hours take an amount from "
        "a field, written {working_hours: \"=allotted_hours\"}")


@pytest.mark.parametrize("span, message", [
    ("10 minutes", f"'10 minutes' is not a length of time ({SPAN_EXAMPLES})"),
    ("0m", "a length of time must be more than zero"),
    ("{weeks: 1}", "unknown unit 'weeks'; use working_days, working_hours, days, hours, minutes "
                   "or seconds"),
    ("{working_days: -1}", "a length of time must be more than zero"),
    ("{working_days: 0}", "a length of time must be more than zero"),
    ("{working_days: 1, working_hours: 4}", f"a length of time has one unit ({SPAN_EXAMPLES})"),
    ("{minutes: '5'}", "'minutes' needs a number, not '5'"),
    ("{hours: '=reach'}", "only working_days/working_hours take an amount from a field, written "
                          "{working_hours: \"=allotted_hours\"}"),
    ("90", f"a length of time is written {SPAN_EXAMPLES}, not 90"),
])
def test_bad_spans_are_reported_where_they_are_written(span, message):
    count = rule_with(f"event: social.post\nkey: keyword\ncount: 3\nwithin: {span}\n")
    assert one_problem(count) == (7, "rules[0].when.within", message)
    silence = rule_with(f"event: social.post\nkey: keyword\nsilence: {span}\n")
    assert one_problem(silence) == (6, "rules[0].when.silence", message)
    sustained = rule_with(f"event: social.post\nkey: keyword\nsustained:\n  while: {{reach: "
                          f"{{gt: 5}}}}\n  for: {span}\n")
    assert one_problem(sustained) == (8, "rules[0].when.sustained.for", message)
    absent = rule_with(f"event: social.post\nkey: keyword\nabsent:\n  event: social.post\n"
                       f"  within: {span}\n")
    assert one_problem(absent) == (8, "rules[0].when.absent.within", message)


# --- problems: sustained -------------------------------------------------------------------------


@pytest.mark.parametrize("sustained, problem", [
    ("{while: {value: {gt: 50}}}",
     (6, "rules[0].when.sustained", "`sustained` needs `for:` (how long) or `readings:` (how "
                                    "many in a row), or both (whichever comes first)")),
    ("{for: 30m}", (6, "rules[0].when.sustained", "`sustained` needs 'while'")),
    ("{while: {value: {gt: 50}}, readings: 1}",
     (6, "rules[0].when.sustained.readings", "`readings` is a whole number, 2 or more, not the "
                                             "number 1")),
    ("{while: {value: {gt: 50}}, readings: true}",
     (6, "rules[0].when.sustained.readings", "`readings` is a whole number, 2 or more, not the "
                                             "boolean true")),
    ("{while: {valu: {gt: 50}}, for: 30m}",
     (6, "rules[0].when.sustained.while.valu", "event type environment.reading has no field "
      f"'valu' (did you mean 'value'?); its fields: {READING_FIELDS}")),
    ("{while: {value: {gt: 50}}, for: 30m, every: 5m}",
     (6, "rules[0].when.sustained.every", "unknown key 'every' in `sustained`; allowed: while, "
                                          "for, readings")),
])
def test_sustained_problems(sustained, problem):
    text = rule_with(f"event: environment.reading\nkey: station_id\nsustained: {sustained}\n")
    assert one_problem(text) == problem


# --- problems: temporal keys belong to a single pattern ------------------------------------------


@pytest.mark.parametrize("key", ["key", "within", "count", "absent", "sustained", "silence"])
def test_temporal_keys_inside_or_next_to_all_patterns_are_refused(key):
    assert one_problem(rule_with(f"""\
        all:
          - {{event: social.post, as: a, {key}: 3}}
          - {{event: social.post, as: b}}
        """)) == (5, f"rules[0].when.all[0].{key}", f"'{key}' is temporal; temporal rules watch "
                  "one pattern (`event:` directly under `when`), not a pattern of `all:` / `any:`")
    assert one_problem(rule_with(f"""\
        any:
          - {{event: social.post}}
        {key}: 3
        """)) == (6, f"rules[0].when.{key}", f"'{key}' is temporal; temporal rules watch one "
                  "pattern (`event:`), not `any:`")


# --- a file with several problems: every one, in reading order ----------------------------------

BAD = """\
rules:
  - key: overdue
    when:
      event: dossier.received
      key: dossier_id
      within: 2h
      absent:
        event: dossier.completed
        by: due_att
    then: {}
  - key: spreading
    when:
      event: social.post
      key: [keyword, platfrom]
      count: 1
      within: 10 minutes
    then: {}
  - key: pm25
    when:
      event: environment.reading
      key: station_id
      sustained:
        while: {value: {gt: 50}}
        readings: 1
        for: 0m
    then: {}
  - key: silent
    when: {event: environment.reading, silence: {weeks: 1}}
    then: {}
"""


def test_a_bad_temporal_file_reports_every_problem_with_line_and_path():
    assert problems_of(BAD) == [
        (6, "rules[0].when.within", "for `absent` the length of time goes inside `absent:`"),
        (9, "rules[0].when.absent.by", "event type dossier.received has no field 'due_att' "
                                       f"(did you mean 'due_at'?); its fields: {RECEIVED_FIELDS}"),
        (14, "rules[1].when.key", "event type social.post has no field 'platfrom' (did you mean "
                                  "'platform'?); its fields: post_id, platform, keyword, text, "
                                  "reach, url, source, subject"),
        (15, "rules[1].when.count", "`count` is a whole number of events, 2 or more, not the "
                                    "number 1"),
        (16, "rules[1].when.within", f"'10 minutes' is not a length of time ({SPAN_EXAMPLES})"),
        (24, "rules[2].when.sustained.readings", "`readings` is a whole number, 2 or more, not "
                                                 "the number 1"),
        (25, "rules[2].when.sustained.for", "a length of time must be more than zero"),
        (28, "rules[3].when", "a temporal rule needs `key:`, the field(s) that say which events "
                              "belong together (e.g. key: dossier_id)"),
        (28, "rules[3].when.silence", "unknown unit 'weeks'; use working_days, working_hours, "
                                      "days, hours, minutes or seconds"),
    ]


# --- then: severity bands and notify ------------------------------------------------------------

AIR = """\
rules:
  - key: pm25
    when:
      event: environment.reading
      where: {parameter: pm25}
      key: station_id
      sustained: {while: {value: {gt: 50}}, for: 30m}
    then:
      open: incident
      severity:
        by: event.aqi
        bands: {201: critical, 0: low, 151: high, 101: medium}
      title: "Trạm {event.station_id}: AQI {event.aqi}"
      notify:
        - to: so-tai-nguyen-moi-truong
          role: department_head
          text:
            vi: "Trạm {event.station_id}: PM2.5 {event.value} µg/m³"
            en: "Station {event.station_id}: PM2.5 {event.value} µg/m³"
        - {to: ioc, text: "AQI {event.aqi}"}
"""


def reading(aqi, **data) -> dict:
    fields = {"station_id": "S1", "parameter": "pm25", "value": 80.5, **data}
    if aqi is not None:
        fields["aqi"] = aqi
    return to_message(1, "environment.reading", "quan-trac", "S1", fields)


def test_severity_bands_are_parsed_in_ascending_order():
    action = parse(AIR).rules[0].then
    assert action.severity == SeverityBands("event.aqi", (
        (0.0, "low"), (101.0, "medium"), (151.0, "high"), (201.0, "critical")))


@pytest.mark.parametrize("aqi, severity", [
    (40, "low"),
    (0, "low"),
    (100, "low"),
    (101, "medium"),
    (120, "medium"),
    (160, "high"),
    (200.5, "high"),
    (250, "critical"),
    (-5, None),  # below every band
    (None, None),  # the field is missing
    ("160", None),  # not a number
    (True, None),  # a boolean is not a number
])
def test_render_picks_the_band_the_value_reaches(aqi, severity):
    action = parse(AIR).rules[0].then
    assert action.render({"event": reading(aqi)})["severity"] == severity


def test_notify_is_parsed_and_rendered():
    action = parse(AIR).rules[0].then
    assert action.notify == (
        Notice(to="so-tai-nguyen-moi-truong", role="department_head",
               text={"vi": "Trạm {event.station_id}: PM2.5 {event.value} µg/m³",
                     "en": "Station {event.station_id}: PM2.5 {event.value} µg/m³"}, line=15),
        Notice(to="ioc", role=None, text={"vi": "AQI {event.aqi}"}, line=20),
    )
    assert action.render({"event": reading(160)}) == {
        "open": "incident",
        "severity": "high",
        "title": {"vi": "Trạm S1: AQI 160"},
        "subject": None,
        "data": {},
        "notify": [
            {"to": "so-tai-nguyen-moi-truong", "role": "department_head",
             "text": {"vi": "Trạm S1: PM2.5 80.5 µg/m³", "en": "Station S1: PM2.5 80.5 µg/m³"}},
            {"to": "ioc", "role": None, "text": {"vi": "AQI 160"}},
        ],
    }
    # A missing value renders as empty text in a notification.
    assert action.render({"event": reading(None)})["notify"][1]["text"] == {"vi": "AQI "}


SINGLE_NOTICE = rule_with("event: environment.reading\n",
                          "{notify: {to: ioc, text: {en: 'Reading {event.id}'}}}")


def test_notify_may_be_a_single_mapping():
    [notice] = parse(SINGLE_NOTICE).rules[0].then.notify
    assert (notice.to, notice.role, notice.text) == ("ioc", None, {"en": "Reading {event.id}"})
    assert parse(SINGLE_NOTICE).rules[0].then.render({"event": reading(1)})["notify"] == [
        {"to": "ioc", "role": None, "text": {"en": "Reading 1"}}]


def test_a_single_mapping_notify_keeps_its_line():
    [notice] = parse(SINGLE_NOTICE).rules[0].then.notify
    assert notice.line == 5


BANDS_PREFIX = "rules[0].then.severity"
NOTIFY_PREFIX = "rules[0].then.notify"


@pytest.mark.parametrize("then, path, message", [
    ("{severity: {by: event.nope, bands: {0: low}}}", f"{BANDS_PREFIX}.by",
     "'event' (environment.reading) has no field 'nope'"),
    ("{severity: {by: aqi, bands: {0: low}}}", f"{BANDS_PREFIX}.by",
     "`by` is a number field written alias.field (e.g. event.aqi), not the text 'aqi'"),
    ("{severity: {by: other.aqi, bands: {0: low}}}", f"{BANDS_PREFIX}.by",
     "unknown alias 'other' in {other.aqi}; this rule's aliases: event"),
    ("{severity: {by: event.aqi, bands: {0: urgent}}}", f"{BANDS_PREFIX}.bands[0]",
     "a band is <lowest value>: <low|medium|high|critical>, not 0: 'urgent'"),
    ("{severity: {by: event.aqi, bands: {x: low}}}", f"{BANDS_PREFIX}.bands.x",
     "a band is <lowest value>: <low|medium|high|critical>, not 'x': 'low'"),
    ("{severity: {by: event.aqi, bands: {}}}", f"{BANDS_PREFIX}.bands",
     "`bands` maps the lowest value of each band to a severity: {0: low, 151: high}"),
    ("{severity: {by: event.aqi, bands: [low, high]}}", f"{BANDS_PREFIX}.bands",
     "`bands` maps the lowest value of each band to a severity: {0: low, 151: high}"),
    ("{severity: {by: event.aqi}}", BANDS_PREFIX, "`severity` needs 'bands'"),
    ("{severity: {by: event.aqi, bands: {0: low}, above: 5}}", f"{BANDS_PREFIX}.above",
     "unknown key 'above' in `severity`; allowed: by, bands"),
    ("{notify: [{to: So_TNMT, text: x}]}", f"{NOTIFY_PREFIX}[0].to",
     "`to` is a department key, not the text 'So_TNMT'"),
    ("{notify: [{to: ioc, role: 'Head Of', text: x}]}", f"{NOTIFY_PREFIX}[0].role",
     "`role` is a role name such as department_head, not the text 'Head Of'"),
    ("{notify: [{to: ioc}]}", f"{NOTIFY_PREFIX}[0]", "a notification needs 'text'"),
    ("{notify: [{text: x}]}", f"{NOTIFY_PREFIX}[0]", "a notification needs 'to'"),
    ("{notify: [{to: ioc, text: '{event.nope}'}]}", f"{NOTIFY_PREFIX}[0].text",
     "'event' (environment.reading) has no field 'nope'"),
    ("{notify: [{to: ioc, text: {fr: x}}]}", f"{NOTIFY_PREFIX}[0].text.fr",
     "unknown key 'fr' in text; allowed: vi, en"),
    ("{notify: [{to: ioc, text: {}}]}", f"{NOTIFY_PREFIX}[0].text",
     "text needs at least one language (vi or en)"),
    ("{notify: [{to: ioc, text: x, cc: ward}]}", f"{NOTIFY_PREFIX}[0].cc",
     "unknown key 'cc' in a notification; allowed: to, role, text"),
    ("{notify: []}", NOTIFY_PREFIX,
     "`notify` is a list like - {to: so-khoa-hoc-cong-nghe, text: ...}"),
    ("{notify: ioc}", NOTIFY_PREFIX,
     "`notify` is a list like - {to: so-khoa-hoc-cong-nghe, text: ...}"),
    ("{notfy: []}", "rules[0].then.notfy",
     f"unknown key 'notfy' in `then` (did you mean 'notify'?); allowed: {', '.join(THEN_KEYS)}"),
])
def test_bad_bands_and_notify_entries_are_reported(then, path, message):
    assert one_problem(rule_with("event: environment.reading\n", then)) == (5, path, message)


def test_then_keys_include_notify():
    assert THEN_KEYS == ("open", "severity", "title", "subject", "data", "notify")


def test_severity_bands_by_a_text_field_are_refused():
    problem = one_problem(rule_with("event: environment.reading\n",
                                    "{severity: {by: event.station_id, bands: {0: low}}}"))
    assert problem[:2] == (5, f"{BANDS_PREFIX}.by")


# --- compiling temporal rules into parts --------------------------------------------------------

TEMPORAL_RULES = """\
rules:
  - key: overdue
    when:
      event: dossier.received
      key: dossier_id
      absent:
        event: dossier.completed
        where: {step: tra-ket-qua}
        within: {working_days: 5}
    then: {}
  - key: spreading
    when: {event: social.post, key: keyword, count: 20, within: 10m}
    then: {}
  - key: pm25
    when:
      event: environment.reading
      where: {parameter: pm25}
      key: station_id
      sustained: {while: {value: {gt: 50}}, for: 30m, readings: 3}
    then: {}
  - key: silent
    when: {event: environment.reading, key: station_id, silence: 1h}
    then: {}
  - key: returned
    when:
      event: dossier.completed
      where: {step: tra-ket-qua}
    then: {}
"""


def test_a_temporal_rule_compiles_into_single_pattern_parts():
    ruleset = parse(TEMPORAL_RULES)
    compiled = compile_ruleset(ruleset, "temporal")
    assert list(compiled) == [
        "overdue#start", "overdue#stop", "spreading#start", "pm25#start", "pm25#hold",
        "silent#start", "returned",
    ]
    for name, definition in compiled.items():
        assert definition["run"] == name
        assert len(definition["all"]) == 1 and "any" not in definition
    assert {name: event_types(d) for name, d in compiled.items()} == {
        "overdue#start": {"dossier.received"},
        "overdue#stop": {"dossier.completed"},
        "spreading#start": {"social.post"},
        "pm25#start": {"environment.reading"},
        "pm25#hold": {"environment.reading"},
        "silent#start": {"environment.reading"},
        "returned": {"dossier.completed"},
    }
    assert compiled["overdue#stop"] == {
        "all": [{"event": {"$and": [{"t": "dossier.completed"},
                                    {"data.step": "tra-ket-qua"}]}}],
        "run": "overdue#stop"}
    # The hold part tests the pattern's own `where` and the sustained `while`.
    assert compiled["pm25#start"] == {
        "all": [{"event": {"$and": [{"t": "environment.reading"},
                                    {"data.parameter": "pm25"}]}}],
        "run": "pm25#start"}
    assert compiled["pm25#hold"] == {
        "all": [{"event": {"$and": [{"t": "environment.reading"},
                                    {"$and": [{"data.parameter": "pm25"},
                                              {"$gt": {"data.value": 50}}]}]}}],
        "run": "pm25#hold"}
    assert compiled["silent#start"] == {"all": [{"event": {"t": "environment.reading"}}],
                                        "run": "silent#start"}
    # Plain JSON, to be stored with the scenario version.
    assert json.loads(json.dumps(compiled)) == compiled


def test_compile_temporal_gives_the_parts_of_each_form():
    ruleset = parse(TEMPORAL_RULES)
    assert list(compile_temporal(ruleset.rule("overdue"))) == [
        part_key("overdue", START), part_key("overdue", STOP)]
    assert list(compile_temporal(ruleset.rule("spreading"))) == [part_key("spreading", START)]
    assert list(compile_temporal(ruleset.rule("pm25"))) == [
        part_key("pm25", START), part_key("pm25", HOLD)]
    assert list(compile_temporal(ruleset.rule("silent"))) == [part_key("silent", START)]


def test_a_plain_rule_still_compiles_as_before():
    ruleset = parse(TEMPORAL_RULES)
    plain = ruleset.rule("returned")
    expected = {"all": [{"event": {"$and": [{"t": "dossier.completed"},
                                            {"data.step": "tra-ket-qua"}]}}],
                "run": "returned"}
    assert compile_rule(plain) == expected
    assert compile_ruleset(ruleset, "temporal")["returned"] == expected
    assert split_part("returned") == ("returned", None)


@pytest.mark.parametrize("rule_key, part, name", [
    ("overdue", START, "overdue#start"),
    ("overdue", STOP, "overdue#stop"),
    ("pm25-sustained", HOLD, "pm25-sustained#hold"),
])
def test_part_key_and_split_part_are_inverse(rule_key, part, name):
    assert part_key(rule_key, part) == name
    assert split_part(name) == (rule_key, part)


# --- the parts in a real RuleMatcher -------------------------------------------------------------

_ids = itertools.count(1)


@pytest.fixture
def matcher():
    loaded = RuleMatcher()
    loaded.load("temporal", compile_ruleset(parse(TEMPORAL_RULES), "temporal"))
    yield loaded
    loaded.unload("temporal")


def post(matcher: RuleMatcher, type_: str, data: dict) -> list[Match]:
    """Post one event with a fresh id (unique within the matcher, like an event store key)."""
    event_id = next(_ids)
    matches = matcher.post("temporal", to_message(event_id, type_, "test", None, data))
    assert all(m.events["event"]["id"] == event_id for m in matches)
    return matches


def parts(matches: list[Match]) -> list[str]:
    return [m.rule_key for m in matches]


def test_a_reading_over_the_limit_matches_start_and_hold(matcher):
    matches = post(matcher, "environment.reading",
                   {"station_id": "S1", "parameter": "pm25", "value": 80, "aqi": 160})
    assert parts(matches) == ["pm25#start", "pm25#hold", "silent#start"]
    assert matches[1].events["event"]["data"]["value"] == 80
    assert [split_part(k) for k in parts(matches)] == [
        ("pm25", START), ("pm25", HOLD), ("silent", START)]


def test_a_reading_under_the_limit_matches_start_only(matcher):
    matches = post(matcher, "environment.reading",
                   {"station_id": "S1", "parameter": "pm25", "value": 50, "aqi": 120})
    assert parts(matches) == ["pm25#start", "silent#start"]


def test_a_reading_of_another_parameter_matches_no_part_of_the_sustained_rule(matcher):
    matches = post(matcher, "environment.reading",
                   {"station_id": "S1", "parameter": "o3", "value": 80, "aqi": 40})
    assert parts(matches) == ["silent#start"]  # silence listens to every reading


def test_a_reading_of_another_parameter_matches_nothing_in_a_sustained_only_ruleset():
    only = RuleMatcher()
    ruleset = parse(TEMPORAL_RULES)
    only.load("pm25", compile_temporal(ruleset.rule("pm25")))
    try:
        message = to_message(next(_ids), "environment.reading", "test", None,
                             {"station_id": "S1", "parameter": "o3", "value": 80})
        assert only.post("pm25", message) == []
    finally:
        only.unload("pm25")


def test_the_absent_rule_starts_on_receipt_and_stops_on_the_awaited_event(matcher):
    assert parts(post(matcher, "dossier.received", {"dossier_id": "HS-1"})) == ["overdue#start"]
    # dossier.completed at the right step is the awaited event (and the plain rule's event).
    assert parts(post(matcher, "dossier.completed", {"dossier_id": "HS-1",
                                                     "step": "tra-ket-qua"})) == [
        "overdue#stop", "returned"]
    # At another step it is neither.
    assert post(matcher, "dossier.completed", {"dossier_id": "HS-1", "step": "tham-dinh"}) == []


def test_every_post_counts_in_a_count_rule(matcher):
    for _ in range(3):
        assert parts(post(matcher, "social.post", {"keyword": "ngập"})) == ["spreading#start"]


# --- spans of time ----------------------------------------------------------------------------


@pytest.mark.parametrize("value, span", [
    ("30s", Span(30.0)),
    ("10m", Span(600.0)),
    ("2h", Span(7200.0)),
    ("1d", Span(86400.0)),
    ("1.5h", Span(5400.0)),
    (" 2h ", Span(7200.0)),
    ({"seconds": 45}, Span(45.0)),
    ({"minutes": 5}, Span(300.0)),
    ({"hours": 2}, Span(7200.0)),
    ({"days": 1}, Span(86400.0)),
    ({"working_days": 2}, Span(2.0, "working_days")),
    ({"working_hours": 4}, Span(4.0, "working_hours")),
    ({"working_hours": 0.5}, Span(0.5, "working_hours")),
    ({"working_hours": "=allotted_hours"}, Span(0.0, "working_hours", field="allotted_hours")),
    ({"working_days": "= days_allowed "}, Span(0.0, "working_days", field="days_allowed")),
])
def test_parse_span(value, span):
    assert parse_span(value) == span


@pytest.mark.parametrize("value, message", [
    ("10 minutes", f"'10 minutes' is not a length of time ({SPAN_EXAMPLES})"),
    ("2H", f"'2H' is not a length of time ({SPAN_EXAMPLES})"),
    ("-1h", f"'-1h' is not a length of time ({SPAN_EXAMPLES})"),
    ("1w", f"'1w' is not a length of time ({SPAN_EXAMPLES})"),
    ("0m", "a length of time must be more than zero"),
    ({"working_days": -1}, "a length of time must be more than zero"),
    ({"weeks": 1}, "unknown unit 'weeks'; use working_days, working_hours, days, hours, minutes "
                   "or seconds"),
    ({}, f"a length of time has one unit ({SPAN_EXAMPLES})"),
    ({"minutes": True}, "'minutes' needs a number, not True"),
    ({"minutes": "=x"}, "only working_days/working_hours take an amount from a field, written "
                        "{working_hours: \"=allotted_hours\"}"),
    (5, f"a length of time is written {SPAN_EXAMPLES}, not 5"),
    (None, f"a length of time is written {SPAN_EXAMPLES}, not None"),
])
def test_parse_span_refuses(value, message):
    with pytest.raises(SpanError) as info:
        parse_span(value)
    assert str(info.value) == message


def test_span_text_and_description():
    assert str(parse_span("90m")) == "90m"
    assert str(parse_span("2h")) == "2h"
    assert str(parse_span("1d")) == "1d"
    assert str(parse_span("90s")) == "90s"
    assert str(parse_span({"working_days": 5})) == "5 ngày làm việc / working days"
    assert str(parse_span({"working_hours": 4})) == "4 giờ làm việc / working hours"
    assert parse_span({"working_days": 5}).describe() == {"amount": 5.0, "unit": "working_days"}
    assert parse_span("10m").describe() == {"amount": 600.0, "unit": "seconds"}
    assert parse_span({"working_hours": 1}).working and not parse_span("1h").working


FRIDAY_4PM = datetime(2026, 3, 6, 16, 0, tzinfo=TZ)


@pytest.mark.parametrize("value, after", [
    ({"working_hours": 2}, datetime(2026, 3, 9, 8, 30, tzinfo=TZ)),  # over the weekend
    ({"working_hours": 1}, datetime(2026, 3, 6, 17, 0, tzinfo=TZ)),  # ends at closing time
    ({"working_days": 2}, datetime(2026, 3, 10, 16, 0, tzinfo=TZ)),
    ("2h", datetime(2026, 3, 6, 18, 0, tzinfo=TZ)),  # wall time ignores office hours
    ({"days": 3}, datetime(2026, 3, 9, 16, 0, tzinfo=TZ)),
])
def test_span_after_on_the_calendar(value, after):
    moment = parse_span(value).after(FRIDAY_4PM, default_calendar())
    assert moment == after and moment.utcoffset() is not None


def test_span_after_a_fraction_and_across_tet():
    calendar = default_calendar()
    assert parse_span({"working_hours": 4}).after(FRIDAY_4PM, calendar, 0.5) == \
        datetime(2026, 3, 9, 8, 30, tzinfo=TZ)
    # Friday 13/02/2026, then Tết (16–20/02) closes the offices for a week.
    assert parse_span({"working_days": 3}).after(datetime(2026, 2, 13, 10, tzinfo=TZ),
                                                 calendar) == datetime(2026, 2, 25, 10, tzinfo=TZ)


def test_span_elapsed_counts_in_its_own_basis():
    calendar = default_calendar()
    monday = datetime(2026, 3, 9, 8, 30, tzinfo=TZ)
    assert parse_span({"working_hours": 2}).elapsed(FRIDAY_4PM, monday, calendar) == \
        timedelta(hours=2)
    assert parse_span("2h").elapsed(FRIDAY_4PM, monday, calendar) == \
        timedelta(days=2, hours=16, minutes=30)


def test_span_length():
    calendar = default_calendar()
    assert parse_span({"working_days": 1}).length(calendar) == timedelta(hours=8)
    assert parse_span({"working_days": 1.5}).length(calendar) == timedelta(hours=12)
    assert parse_span({"working_hours": 3}).length(calendar) == timedelta(hours=3)
    assert parse_span("90m").length(calendar) == timedelta(minutes=90)


def test_a_field_span_resolves_from_the_event_data():
    span = parse_span({"working_hours": "=allotted_hours"})
    assert span.resolve({"allotted_hours": 3}) == Span(3.0, "working_hours")
    assert span.resolve({"allotted_hours": 1.5}).after(FRIDAY_4PM, default_calendar()) == \
        datetime(2026, 3, 9, 8, 0, tzinfo=TZ)
    fixed = parse_span("10m")
    assert fixed.resolve({}) is fixed


@pytest.mark.parametrize("data, shown", [
    ({}, "None"),
    ({"allotted_hours": None}, "None"),
    ({"allotted_hours": 0}, "0"),
    ({"allotted_hours": -2}, "-2"),
    ({"allotted_hours": "3"}, "'3'"),
    ({"allotted_hours": True}, "True"),
])
def test_a_field_span_refuses_a_missing_or_bad_amount(data, shown):
    with pytest.raises(SpanError) as info:
        parse_span({"working_hours": "=allotted_hours"}).resolve(data)
    assert str(info.value) == (f"field 'allotted_hours' should hold a positive number of "
                               f"working_hours, not {shown}")


def test_an_unresolved_field_span_has_no_length():
    span = parse_span({"working_hours": "=allotted_hours"})
    message = "the span's amount comes from field 'allotted_hours'; resolve it first"
    with pytest.raises(SpanError, match=message):
        span.length(default_calendar())
    with pytest.raises(SpanError, match=message):
        span.after(FRIDAY_4PM, default_calendar())
