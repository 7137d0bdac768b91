"""`all:` rules joined in the database (engine/rules/correlation.py): the key, repeats, restarts.

The pure part (`advance`) first, on hand-made arrivals; then the file's `repeat:` and key
problems; then the engine on its database (SQLite and PostgreSQL): a pair a year apart, a
restart between two events, no subject, a key other than the subject, and what a row holds.
Several real workers on PostgreSQL and Redis are in tests/test_rules_correlation_workers.py.
"""
from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.events import service as events
from engine.rules.correlation import MAX_WAITING, Arrival, advance, keys_of
from engine.rules.format import parse_rules
from engine.rules.message import to_message
from engine.rules.models import RuleState
from engine.worktime.calendar import default_calendar
from tests.conftest import load_scenarios
from tests.rule_vocabulary import VOCABULARY, one_problem, problems_of, rule_with
from tests.time_helpers import Drive, local

CALENDAR = default_calendar()
SUPPLEMENT = "dossier.supplement_requested"
START = local("2026-03-02 09:00")


def join_of(when: str):
    """The rule `r` of a file whose `when` is `when`."""
    return parse_rules(rule_with(when), "rules.yaml", VOCABULARY).rule("r")


PAIR = """\
all:
  - {event: dossier.supplement_requested, as: first}
  - {event: dossier.supplement_requested, as: second, same: {dossier_id: first.dossier_id}}
"""


def arrival(n: int, aliases=("first", "second")) -> Arrival:
    """Event n, n minutes after START."""
    return Arrival((START + timedelta(minutes=n)).isoformat(), n, tuple(aliases))


def run(rule, order: list[int]) -> list[tuple[int, ...]]:
    """Feed events in `order` to one key; the matches, as event ids in alias order."""
    state: dict = {}
    found = []
    for n in order:
        state, match = advance(rule.join, rule.aliases, state, arrival(n), CALENDAR)
        if match:
            found.append(tuple(match[a].id for a in rule.aliases))
    return found


# -- advance: what repeats mean --------------------------------------------------------------


def test_consume_pairs_the_third_with_the_fourth():
    rule = join_of(PAIR)
    assert rule.join.repeat == "consume"
    assert run(rule, [1, 2, 3, 4, 5]) == [(1, 2), (3, 4)]


def test_every_further_event_matches_again_with_the_first():
    rule = join_of(PAIR + "repeat: every\n")
    assert run(rule, [1, 2, 3, 4]) == [(1, 2), (1, 3), (1, 4)]


def test_once_matches_one_time_per_key():
    rule = join_of(PAIR + "repeat: once\n")
    assert run(rule, [1, 2, 3, 4]) == [(1, 2)]


def test_once_per_a_span_matches_again_after_the_quiet_time():
    rule = join_of(PAIR + "repeat: {once_per: 1h}\n")
    # 1+2 match at minute 2; 3..61 fall within the hour after it; 70 and 71 pair again.
    assert run(rule, [1, 2, 3, 30, 61, 70, 71]) == [(1, 2), (70, 71)]


@pytest.mark.parametrize("repeat", ["consume", "every", "once"])
def test_first_and_second_follow_the_events_own_times_not_the_order_seen(repeat):
    # Two workers may see a dossier's two requests in either order: the same match either way.
    rule = join_of(PAIR + f"repeat: {repeat}\n")
    assert run(rule, [2, 1]) == run(rule, [1, 2]) == [(1, 2)]


def test_every_gives_as_many_matches_in_any_order():
    # Each event after the first one seen matches once; which earlier event it pairs with may
    # differ when events are seen out of their own order (documented in docs/rules.md).
    rule = join_of(PAIR + "repeat: every\n")
    assert run(rule, list(range(1, 8))) == [(1, n) for n in range(2, 8)]
    for seed in range(20):
        order = list(range(1, 8))
        random.Random(seed).shuffle(order)
        found = run(rule, order)
        assert len(found) == 6 and all(first < second for first, second in found)


def test_consume_gives_as_many_matches_in_any_order():
    rule = join_of(PAIR)
    for seed in range(20):
        order = list(range(1, 10))
        random.Random(seed).shuffle(order)
        found = run(rule, order)
        assert len(found) == 4 and len({i for m in found for i in m}) == 8
        assert all(first < second for first, second in found)


def test_different_types_wait_for_each_other_in_either_order():
    rule = join_of("""\
all:
  - {event: dossier.supplement_requested, as: asked}
  - {event: dossier.returned, as: back, same: {dossier_id: asked.dossier_id}}
""")
    state, match = advance(rule.join, rule.aliases, {}, arrival(5, ["back"]), CALENDAR)
    assert match is None and state == {"waiting": [[arrival(5).at, 5, ["back"], []]]}
    state, match = advance(rule.join, rule.aliases, state, arrival(9, ["asked"]), CALENDAR)
    assert {a: m.id for a, m in match.items()} == {"asked": 9, "back": 5}
    assert state == {}  # nothing left waiting: the row goes


def test_an_event_handled_twice_changes_nothing():
    rule = join_of(PAIR)
    state, _ = advance(rule.join, rule.aliases, {}, arrival(1), CALENDAR)
    assert advance(rule.join, rule.aliases, state, arrival(1), CALENDAR) == (state, None)


def test_a_key_keeps_at_most_max_waiting_events():
    rule = join_of("""\
all:
  - {event: dossier.supplement_requested, as: asked}
  - {event: dossier.returned, as: back, same: {dossier_id: asked.dossier_id}}
""")
    state: dict = {}
    for n in range(MAX_WAITING + 5):
        state, match = advance(rule.join, rule.aliases, state, arrival(n, ["asked"]), CALENDAR)
        assert match is None
    assert len(state["waiting"]) == MAX_WAITING
    _, match = advance(rule.join, rule.aliases, state, arrival(10**6, ["back"]), CALENDAR)
    assert match["asked"].id == 0  # the earliest kept is used first


def test_three_patterns_chained_by_same_share_one_key():
    rule = join_of("""\
all:
  - {event: dossier.supplement_requested, as: a}
  - {event: dossier.returned, as: b, same: {dossier_id: a.dossier_id}}
  - {event: dossier.supplement_requested, as: c, same: {dossier_id: b.dossier_id}}
""")
    assert rule.join.key == {"a": (("dossier_id",),), "b": (("dossier_id",),),
                             "c": (("dossier_id",),)}
    message = to_message(1, SUPPLEMENT, "dvc", None, {"dossier_id": "H1"})
    assert keys_of(rule, {"a", "c"}, message) == {'["H1"]': ("a", "c")}
    assert keys_of(rule, {"a"}, to_message(2, SUPPLEMENT, "dvc", None, {})) == {}


def test_two_fields_give_a_key_of_two_values_and_numbers_are_one_key():
    rule = join_of("""\
all:
  - {event: dossier.returned, as: a}
  - {event: dossier.returned, as: b, same: {unit: a.unit, days_late: a.days_late}}
""")
    one = to_message(1, "dossier.returned", "dvc", None, {"unit": "U1", "days_late": 5})
    other = to_message(2, "dossier.returned", "dvc", None, {"unit": "U1", "days_late": 5.0})
    assert keys_of(rule, {"a", "b"}, one) == keys_of(rule, {"a", "b"}, other) == {
        '["U1", 5]': ("a", "b")}


# -- the rule file -----------------------------------------------------------------------------


def test_repeat_must_be_one_of_the_known_ways():
    line, path, message = one_problem(rule_with(PAIR + "repeat: evry\n"))
    assert (line, path) == (7, "rules[0].when.repeat")
    assert "consume, every, once" in message and "did you mean 'every'" in message


def test_repeat_once_per_needs_a_length_of_time():
    line, path, message = one_problem(rule_with(PAIR + "repeat: {once_per: soon}\n"))
    assert path == "rules[0].when.repeat.once_per"


def test_repeat_belongs_to_all():
    _, path, message = one_problem(rule_with("""\
any:
  - {event: dossier.supplement_requested}
  - {event: dossier.returned}
repeat: every
"""))
    assert path == "rules[0].when.repeat" and "`any:` matches each event on its own" in message


def test_every_pattern_must_give_the_key():
    assert problems_of(rule_with("""\
all:
  - {event: dossier.supplement_requested, as: a}
  - {event: dossier.returned, as: b, same: {dossier_id: a.dossier_id}}
  - {event: dossier.returned, as: c, same: {unit: a.unit}}
""")) == [
        (6, "rules[0].when.all[1].same", "the patterns of `all:` wait for each other by one "
         "key, and 'b' does not say which of its fields equals a.unit, c.unit; add it to its "
         "`same:`"),
        (7, "rules[0].when.all[2].same", "the patterns of `all:` wait for each other by one "
         "key, and 'c' does not say which of its fields equals a.dossier_id, b.dossier_id; add "
         "it to its `same:`")]


# -- the engine: keys in the database ----------------------------------------------------------


@pytest.fixture
def drive(ioc, source):
    """The engine with the shipped scenarios (repeated-supplement-request among them)."""
    load_scenarios(ioc)
    return Drive(ioc.db, ioc.vocabulary, START, source[0])


_n = itertools.count(1)


def request(dossier: str, subject: str | None = None, **extra) -> dict:
    event = {"specversion": "1.0", "id": f"corr-{next(_n)}", "source": "/test/corr",
             "type": SUPPLEMENT, "data": {"dossier_id": dossier, "procedure": "1.004227",
                                          "unit": "phuong-thu-dau-mot", "officer": "le.an",
                                          **extra}}
    if subject:
        event["subject"] = subject
    return event


def send(drive: Drive, *raws: dict) -> None:
    for raw in raws:
        raw.setdefault("time", drive.clock.now().isoformat())
    result = events.ingest(drive.db, drive.source_id, list(raws), drive.vocabulary, drive.clock)
    assert not result.refused, result.refused
    drive.ioc.run_pending()


def repeated(drive: Drive) -> list:
    return [v for v in drive.violations() if v.rule_key == "repeated-supplement-request"]


def rows(drive: Drive) -> list[RuleState]:
    with drive.db.read() as s:
        return list(s.scalars(select(RuleState).where(
            RuleState.rule_key == "repeated-supplement-request").order_by(RuleState.id)))


def test_a_pair_400_days_apart_across_a_restart_still_matches(drive):
    send(drive, request("HS-400"))
    [row] = rows(drive)
    assert row.key == '["HS-400"]' and len(row.state["waiting"]) == 1
    drive.restart()  # a new engine process: nothing replayed, nothing held in memory
    drive.clock.advance(days=400)
    send(drive, request("HS-400", reason="thiếu bản sao"))
    [violation] = repeated(drive)
    assert violation.subject == "HS-400" and len(violation.event_ids) == 2
    assert rows(drive) == []  # the pair is used up: its row is gone


def test_without_a_subject_and_with_a_subject_unlike_the_key(drive):
    # Three dossiers: no subject at all; the officer as the subject; a subject per event.
    send(drive, request("HS-A"), request("HS-B", subject="le.an"),
         request("HS-C", subject="evt-1"))
    drive.clock.advance(hours=1)
    send(drive, request("HS-A"), request("HS-B", subject="le.an"),
         request("HS-C", subject="evt-2"))
    assert sorted(v.subject for v in repeated(drive)) == ["HS-A", "HS-B", "HS-C"]


def test_the_match_names_first_and_second_by_their_own_times(drive):
    # The later request is stored (and handled) first: a source back-filling its log.
    later = request("HS-T", reason="lần hai")
    later["time"] = (START + timedelta(hours=2)).isoformat()
    earlier = request("HS-T", reason="lần một")
    earlier["time"] = START.isoformat()
    send(drive, later)
    send(drive, earlier)
    [violation] = repeated(drive)
    [task_data] = [i.data for i in _instances(drive, violation.instance_id)]
    assert task_data["first_reason"] == "lần một" and task_data["second_reason"] == "lần hai"


def _instances(drive, instance_id):
    from engine.processes.models import ProcessInstance

    with drive.db.read() as s:
        return [s.get(ProcessInstance, instance_id)]


def test_a_row_holds_little_per_open_correlation(drive):
    send(drive, *[request(f"HS-{n:05d}") for n in range(300)])
    with drive.db.read() as s:
        count = s.scalar(select(func.count()).select_from(RuleState))
        sizes = [len(r.key) + len(str(r.state)) for r in s.scalars(select(RuleState))]
    assert count == 300
    assert max(sizes) < 200  # a key and one waiting entry: the size of a dossier id and a time


# -- upgrading from correlations kept in memory ------------------------------------------------


def test_rebuild_puts_open_correlations_of_the_store_into_rows_once(drive):
    from engine.rules.rebuild import rebuild

    send(drive, request("HS-U1"), request("HS-U2"))
    drive.clock.advance(hours=1)
    send(drive, request("HS-U2"))  # a pair: matched, nothing left open
    with drive.db.session() as s:  # what an engine before migration 0010 left: no rows
        s.execute(RuleState.__table__.delete())
    since = START - timedelta(days=30)
    counts = rebuild(drive.ioc.pipeline, since)
    assert counts["dossier-violations@1/repeated-supplement-request"] == 3
    [row] = rows(drive)  # HS-U2's pair was used up again; HS-U1 waits
    assert row.key == '["HS-U1"]' and len(row.state["waiting"]) == 1
    assert rebuild(drive.ioc.pipeline, since) == {}  # it has rows now: left alone
    assert len(repeated(drive)) == 1  # the replay acted on nothing
    send(drive, request("HS-U1"))
    assert sorted(v.subject for v in repeated(drive)) == ["HS-U1", "HS-U2"]


def test_ioc_rules_rebuild_says_what_it_read(ioc, source, monkeypatch):
    from click.testing import CliRunner

    from engine.cli import main

    load_scenarios(ioc)
    result = events.ingest(ioc.db, source[0], [request("HS-C1")], ioc.vocabulary)
    assert not result.refused
    ioc.run_pending()
    with ioc.db.session() as s:
        s.execute(RuleState.__table__.delete())
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    out = CliRunner().invoke(main, ["rules", "rebuild", "--days", "1"])
    assert out.exit_code == 0, out.output
    assert "dossier-violations@1/repeated-supplement-request: 1 events read" in out.output
    again = CliRunner().invoke(main, ["rules", "rebuild"])
    assert again.exit_code == 0 and "nothing to rebuild" in again.output
    bad = CliRunner().invoke(main, ["rules", "rebuild", "--days", "0"])
    assert bad.exit_code == 2 and "--days" in bad.output
