"""Working-time functions for scenario expressions and scripts (engine/worktime/functions.py).

`scenario_functions(calendar, clock)` gives now, add_working_days, add_working_hours and
working_hours_between: ISO text in, ISO text (+07:00) out, "now" from the engine's clock. They
are checked directly, from the restricted evaluator and from a Spiff script engine, on the
shipped calendar (data/calendar), and the sandbox must still refuse reaching through them.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from engine.clock import ManualClock
from engine.expressions import ExpressionError, check_expression, evaluate, make_script_engine
from engine.worktime.calendar import CalendarError, default_calendar
from engine.worktime.functions import scenario_functions

TZ = timezone(timedelta(hours=7))
# Friday 6 March 2026, 16:00 in Việt Nam (09:00 UTC): one office hour left before the weekend.
START = datetime(2026, 3, 6, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def funcs(clock: ManualClock) -> dict:
    return scenario_functions(default_calendar(), clock)


def test_the_names_scenarios_may_call(funcs):
    assert sorted(funcs) == ["add_working_days", "add_working_hours", "now",
                             "working_hours_between"]


def test_now_is_the_clock_in_the_province_time_zone(funcs, clock):
    assert funcs["now"]() == "2026-03-06T16:00:00+07:00"
    clock.advance(hours=1, minutes=30)
    assert funcs["now"]() == "2026-03-06T17:30:00+07:00"


def test_tet_2026_is_in_the_calendar_data():
    calendar = default_calendar()
    closed = [date(2026, 2, d) for d in range(14, 23)]  # Sat 14/02 to Sun 22/02
    assert not any(calendar.is_working_day(d) for d in closed)
    assert calendar.is_working_day(date(2026, 2, 13)) and calendar.is_working_day(date(2026, 2, 23))


@pytest.mark.parametrize("moment, days, expected", [
    # Friday before Tết + 3 working days: Tết closes 16–20/02, so Mon 23, Tue 24, Wed 25.
    ("2026-02-13T10:00:00+07:00", 3, "2026-02-25T10:00:00+07:00"),
    ("2026-02-13T03:00:00Z", 3, "2026-02-25T10:00:00+07:00"),  # the same moment in UTC
    ("2026-02-13T03:00:00+00:00", 3, "2026-02-25T10:00:00+07:00"),
    ("2026-03-06T16:00:00+07:00", 1, "2026-03-09T16:00:00+07:00"),
    ("2026-03-06T16:00:00+07:00", 0.5, "2026-03-09T10:30:00+07:00"),
    ("2026-03-06T16:00:00+07:00", 0, "2026-03-06T16:00:00+07:00"),
    # Saturday 10/01/2026 is a swapped working day (làm bù for Friday 02/01).
    ("2026-01-09T16:00:00+07:00", 1, "2026-01-10T16:00:00+07:00"),
])
def test_add_working_days(funcs, moment, days, expected):
    assert funcs["add_working_days"](moment, days) == expected


@pytest.mark.parametrize("moment, hours, expected", [
    ("2026-03-06T16:00:00+07:00", 2, "2026-03-09T08:30:00+07:00"),
    ("2026-03-06T16:00:00+07:00", 1, "2026-03-06T17:00:00+07:00"),  # ends at closing time
    ("2026-03-09T11:00:00+07:00", 1, "2026-03-09T13:30:00+07:00"),  # over the lunch break
    ("2026-03-07T09:00:00+07:00", 0.5, "2026-03-09T08:00:00+07:00"),  # from a Saturday
    ("2026-03-06T16:00:00+07:00", 0, "2026-03-06T16:00:00+07:00"),
])
def test_add_working_hours(funcs, moment, hours, expected):
    assert funcs["add_working_hours"](moment, hours) == expected


def test_working_hours_between(funcs):
    between = funcs["working_hours_between"]
    assert between("2026-03-06T16:00:00+07:00", "2026-03-09T08:30:00+07:00") == 2.0
    assert between("2026-03-09T08:30:00+07:00", "2026-03-06T16:00:00+07:00") == -2.0
    assert between("2026-03-09T07:30:00+07:00", "2026-03-09T17:00:00+07:00") == 8.0
    assert between("2026-02-13T10:00:00+07:00", "2026-02-25T10:00:00+07:00") == 24.0
    assert between("2026-03-07T08:00:00+07:00", "2026-03-08T16:00:00+07:00") == 0.0


def test_aware_datetimes_are_accepted_too(funcs):
    moment = datetime(2026, 3, 6, 16, 0, tzinfo=TZ)
    assert funcs["add_working_days"](moment, 1) == "2026-03-09T16:00:00+07:00"
    assert funcs["working_hours_between"](moment, "2026-03-09T08:30:00+07:00") == 2.0


def test_what_add_returns_reads_back_in(funcs):
    due = funcs["add_working_hours"]("2026-03-06T16:00:00+07:00", 6)
    assert funcs["working_hours_between"]("2026-03-06T16:00:00+07:00", due) == 6.0
    assert funcs["add_working_days"](due, 1) == funcs["add_working_hours"](due, 8)


@pytest.mark.parametrize("name, args, message", [
    ("add_working_days", ("2026-02-13T10:00:00", 1),
     "add_working_days: '2026-02-13T10:00:00' has no UTC offset (write e.g. +07:00)"),
    ("add_working_days", ("2026-02-13", 1),
     "add_working_days: '2026-02-13' has no UTC offset (write e.g. +07:00)"),
    ("add_working_hours", ("13/02/2026 10:00", 1),
     "add_working_hours: '13/02/2026 10:00' is not an ISO 8601 date-time"),
    ("add_working_days", ("tomorrow", 1),
     "add_working_days: 'tomorrow' is not an ISO 8601 date-time"),
    ("add_working_days", (20260213, 1),
     "add_working_days: expected an ISO 8601 date-time, not int"),
    ("add_working_days", (None, 1), "add_working_days: expected an ISO 8601 date-time, not NoneType"),
    ("add_working_days", ("2026-02-13T10:00:00+07:00", -1),
     "add_working_days: expected a number of 0 or more, not -1"),
    ("add_working_hours", ("2026-02-13T10:00:00+07:00", -0.5),
     "add_working_hours: expected a number of 0 or more, not -0.5"),
    ("add_working_hours", ("2026-02-13T10:00:00+07:00", "2"),
     "add_working_hours: expected a number of 0 or more, not '2'"),
    ("add_working_days", ("2026-02-13T10:00:00+07:00", True),
     "add_working_days: expected a number of 0 or more, not True"),
    ("working_hours_between", ("2026-02-13T10:00:00", "2026-02-14T10:00:00+07:00"),
     "working_hours_between: '2026-02-13T10:00:00' has no UTC offset (write e.g. +07:00)"),
    ("working_hours_between", ("2026-02-13T10:00:00+07:00", "x"),
     "working_hours_between: 'x' is not an ISO 8601 date-time"),
])
def test_bad_arguments_are_refused_with_the_function_name(funcs, name, args, message):
    with pytest.raises(ValueError) as info:
        funcs[name](*args)
    assert str(info.value) == message


def test_a_naive_datetime_is_refused(funcs):
    with pytest.raises(ValueError, match="has no UTC offset"):
        funcs["add_working_days"](datetime(2026, 3, 6, 16, 0), 1)


def test_a_year_without_a_holiday_file_is_an_error(funcs):
    with pytest.raises(CalendarError, match="no holiday file for 2099"):
        funcs["add_working_days"]("2099-01-05T10:00:00+07:00", 1)


# --- from the restricted evaluator ---------------------------------------------------------------


def test_usable_from_the_restricted_evaluator(funcs):
    received = "2026-03-06T16:00:00+07:00"
    assert evaluate("add_working_days(received, 2)", {**funcs, "received": received}) == \
        "2026-03-10T16:00:00+07:00"
    assert evaluate("add_working_hours(received, 2) > received",
                    {**funcs, "received": received}) is True
    assert evaluate("now()", funcs) == "2026-03-06T16:00:00+07:00"
    # Monday 02/03 08:00 to Friday 06/03 16:00: 4 days and 8.5 hours of office time.
    assert evaluate("working_hours_between(received, now())",
                    {**funcs, "received": "2026-03-02T08:00:00+07:00"}) == 38.5
    assert evaluate("working_hours_between(received, now()) > 8",
                    {**funcs, "received": "2026-03-02T08:00:00+07:00"}) is True


def test_a_function_error_in_the_evaluator_is_an_expression_error(funcs):
    with pytest.raises(ExpressionError) as info:
        evaluate("add_working_days(received, -2)",
                 {**funcs, "received": "2026-03-06T16:00:00+07:00"})
    assert info.value.line == 1
    assert info.value.message == ("ValueError: add_working_days: expected a number of 0 or "
                                  "more, not -2")


@pytest.mark.parametrize("expression, message", [
    ("add_working_days.__globals__", "attribute '__globals__' is not allowed"),
    ("now.__closure__", "attribute '__closure__' is not allowed"),
    ("working_hours_between.__code__", "attribute '__code__' is not allowed"),
    ("add_working_hours.__wrapped__", "attribute '__wrapped__' is not allowed"),
    ("getattr(now, '__globals__')", "name 'getattr' is not allowed"),
])
def test_the_sandbox_still_refuses_reaching_through_the_functions(funcs, expression, message):
    with pytest.raises(ExpressionError) as info:
        evaluate(expression, funcs)
    assert info.value.message == message
    # Refused when compiled, before anything runs.
    with pytest.raises(ExpressionError):
        check_expression(expression)


# --- from a Spiff script engine ---------------------------------------------------------------


def test_usable_from_a_spiff_script_engine(funcs, clock):
    engine = make_script_engine(1.0, clock, funcs)
    assert engine.clock is clock
    assert engine.environment.evaluate(
        "working_hours_between(a, b)",
        {"a": "2026-03-06T16:00:00+07:00", "b": "2026-03-09T08:30:00+07:00"}) == 2.0
    assert engine.environment.evaluate("now()", {}) == "2026-03-06T16:00:00+07:00"
    clock.advance(days=3)
    assert engine.environment.evaluate("now()", {}) == "2026-03-09T16:00:00+07:00"


def test_a_script_keeps_the_result_but_not_the_functions(funcs, clock):
    engine = make_script_engine(1.0, clock, funcs)
    data = {"received": "2026-02-13T10:00:00+07:00"}
    engine.environment.execute("due = add_working_days(received, 3)", data)
    assert data == {"received": "2026-02-13T10:00:00+07:00", "due": "2026-02-25T10:00:00+07:00"}


def test_task_data_shadows_a_function_name(funcs, clock):
    engine = make_script_engine(1.0, clock, funcs)
    assert engine.environment.evaluate("now", {"now": "from the task"}) == "from the task"


def test_the_spiff_engine_refuses_reaching_through_the_functions(funcs, clock):
    engine = make_script_engine(1.0, clock, funcs)
    with pytest.raises(ExpressionError, match="attribute '__globals__' is not allowed"):
        engine.environment.evaluate("add_working_days.__globals__", {})
    with pytest.raises(ExpressionError, match="attribute '__globals__' is not allowed"):
        engine.validate("add_working_days.__globals__")
    with pytest.raises(ExpressionError, match="attribute '__globals__' is not allowed"):
        engine.environment.execute("g = now.__globals__", {})
