"""The dry run: a draft fed sample events in a sandbox, the real database left untouched."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from engine.app import create_app
from engine.db import Base
from engine.events import service as events
from engine.events.vocabulary import Vocabulary
from engine.scenarios import drafts, dryrun, service
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS
from tests.test_web import _csrf, _login
from tests.time_helpers import local

DOSSIER = {"procedure": "1.004227", "unit": "phuong-thu-dau-mot", "officer": "tran.thi.lan"}


def _files(name: str) -> dict[str, str]:
    return service.read_folder(f"{SCENARIOS}/{name}")


def _post(i: int, at: datetime, keyword: str = "ngập lụt") -> dict:
    return {"type": "social.post", "time": at.isoformat(),
            "data": {"post_id": f"p{i}", "platform": "facebook", "keyword": keyword,
                     "url": f"https://fb.test/{i}"}}


def _posts(count: int, start: datetime, keyword: str = "ngập lụt", every_s: int = 20) -> list:
    return [_post(i, start + timedelta(seconds=every_s * i), keyword) for i in range(count)]


def _run(ioc, name: str | dict, sample: list, **kwargs) -> dict:
    """Dry-run a shipped scenario (by name) or these files."""
    files = _files(name) if isinstance(name, str) else name
    with ioc.db.read() as s:
        report = dryrun.dry_run(files, sample, vocabulary=ioc.vocabulary,
                                calendar=ioc.calendar, organisation=s, **kwargs)
    json.dumps(report)  # what the page receives
    return report


def _counts(db) -> dict[str, int]:
    with db.read() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t))
                for t in Base.metadata.sorted_tables}


# -- what a dry run shows -----------------------------------------------------------------

def test_hot_topic_twenty_posts_in_ten_minutes_open_an_incident(ioc):
    start = local("2026-03-02 09:00")
    sample = _posts(20, start) + _posts(3, start, keyword="giá xăng")
    report = _run(ioc, "hot-topic", sample)

    assert [e["status"] for e in report["events"]] == ["processed"] * 23
    [match] = report["matches"]
    assert match["rule"] == "keyword-spreading"
    assert match["rule_name"]["en"] == "Keyword spreading fast"
    assert match["event_indexes"] == list(range(20))
    assert match["at"] == (start + timedelta(seconds=20 * 19)).isoformat()
    [incident] = report["violations"]
    assert (incident["kind"], incident["subject"]) == ("incident", "ngập lụt")
    assert "ngập lụt" in incident["title"]["vi"]
    [instance] = report["instances"]
    assert instance["rule"] == "keyword-spreading" and instance["status"] == "running"
    assert instance["path"] == ["start", "to_assess"]
    assert instance["waiting"] == ["assess_topic"]
    assert [s["element"] for s in instance["steps"]] == ["start"]
    [task] = report["tasks"]
    assert (task["element"], task["department"], task["status"]) == \
        ("assess_topic", "so-khoa-hoc-cong-nghe", "open")
    assert task["form"] == ["outcome", "response"]
    [notice] = report["notifications"]
    assert (notice["kind"], notice["to"], notice["role"]) == \
        ("rule.notify", "so-khoa-hoc-cong-nghe", "department_head")
    assert "ngập lụt" in notice["text"]
    # No settle: the clock stops at the last post, before the 2 h SLA's first level.
    assert [t["status"] for t in report["timers"]] == ["pending"]
    assert report["clock"] == {"start": start.isoformat(),
                               "end": (start + timedelta(seconds=20 * 19)).isoformat()}
    assert report["summary"]["violations"] == 1 and report["summary"]["failed"] == 0


def test_dossier_overdue_with_settle_shows_the_absence_and_the_sla_levels(ioc):
    due = local("2026-03-04 17:00")

    def received(dossier_id: str, at: str, by: datetime = due) -> dict:
        return {"type": "dossier.received", "time": local(at).isoformat(), "subject": dossier_id,
                "data": {"dossier_id": dossier_id, **DOSSIER, "due_at": by.isoformat()}}

    sample = [received("HS-1", "2026-03-02 09:00"), received("HS-2", "2026-03-02 09:05"),
              {"type": "dossier.completed", "time": local("2026-03-03 10:00").isoformat(),
               "data": {"dossier_id": "HS-2", **DOSSIER}},
              # After the deadline: the absence must fire at its own moment, before this event.
              received("HS-3", "2026-03-05 08:00", local("2026-03-12 17:00"))]
    without = _run(ioc, "dossier-overdue", sample[:3])
    assert without["violations"] == [] and without["clock"]["end"] == \
        local("2026-03-03 10:00").isoformat()

    report = _run(ioc, "dossier-overdue", sample, settle=timedelta(days=4))
    [match] = report["matches"]
    assert match["event_indexes"] == [0] and match["at"] == due.isoformat()
    [violation] = report["violations"]
    assert violation["subject"] == "HS-1" and violation["at"] == due.isoformat()
    [task] = report["tasks"]
    assert (task["element"], task["department"]) == ("issue_apology", "phuong-thu-dau-mot")
    # 50 % warns the unit, 100 % its head, 200 % the People's Committee Office (sla.yaml).
    assert [(n["kind"], n["to"], n["role"], n["at"]) for n in report["notifications"]] == [
        ("sla.notify", "phuong-thu-dau-mot", None, local("2026-03-05 11:30").isoformat()),
        ("sla.escalate", "phuong-thu-dau-mot", "department_head",
         local("2026-03-05 17:00").isoformat()),
        ("sla.escalate", "van-phong-ubnd", "department_head",
         local("2026-03-06 17:00").isoformat())]
    assert task["escalated_to"] == "van-phong-ubnd"
    sla_timers = [t for t in report["timers"] if t["kind"] == "sla"]
    assert [(t["element"], t["status"]) for t in sla_timers] == [("issue_apology", "fired")] * 3
    # HS-3's deadline is still ahead when the settle ends.
    assert [t["status"] for t in report["timers"] if t["kind"] == "rule"].count("pending") == 1
    assert report["clock"]["end"] == local("2026-03-09 08:00").isoformat()
    [sla] = report["slas"]
    assert sla["breached"] and sla["level"] == 2


# The second supplement request on one dossier (dossier-violations), with a `repeat:` of choice.
SAME_DOSSIER = "          same: {dossier_id: first.dossier_id}\n"


def _supplement_rule(repeat: str | None) -> dict[str, str]:
    files = _files("dossier-violations")
    assert SAME_DOSSIER in files["rules.yaml"]
    if repeat is not None:
        files["rules.yaml"] = files["rules.yaml"].replace(
            SAME_DOSSIER, SAME_DOSSIER + f"      repeat: {repeat}\n")
    return files


def _supplement(dossier_id: str, at: str) -> dict:
    return {"type": "dossier.supplement_requested", "time": local(at).isoformat(),
            "subject": dossier_id,
            "data": {"dossier_id": dossier_id, **DOSSIER, "reason": "Thiếu bản sao CCCD"}}


# Three requests on HS-1 (the 3rd one first in the list: pairs follow the events' own times)
# and one on HS-2, which has nothing to pair with.
THREE_REQUESTS = [_supplement("HS-1", "2026-03-04 09:00"), _supplement("HS-1", "2026-03-02 09:00"),
                  _supplement("HS-2", "2026-03-02 10:00"), _supplement("HS-1", "2026-03-03 09:00")]


@pytest.mark.parametrize("repeat,mode,pairs,label", [
    (None, "consume", [[1, 3]],
     {"vi": "Mỗi sự kiện chỉ dùng một lần", "en": "events are used once"}),
    ("every", "every", [[1, 3], [0, 1]],
     {"vi": "Mỗi sự kiện sau lại là vi phạm", "en": "each further event matches again"}),
    ("once", "once", [[1, 3]], {"vi": "Chỉ một lần cho mỗi khóa", "en": "once per key"}),
    ("{once_per: {working_days: 5}}", "once", [[1, 3]],
     {"vi": "Một lần trong mỗi 5 ngày làm việc", "en": "once per 5 working days"}),
])
def test_each_match_of_an_all_rule_shows_its_repeat_and_key(ioc, repeat, mode, pairs, label):
    report = _run(ioc, _supplement_rule(repeat), THREE_REQUESTS)
    matches = [m for m in report["matches"] if m["rule"] == "repeated-supplement-request"]
    # consume: the 3rd request waits for a 4th; every: it pairs again, with the 1st.
    assert [sorted(m["event_indexes"]) for m in matches] == [sorted(p) for p in pairs]
    assert len(report["violations"]) == len(pairs)
    for match in matches:
        correlation = match["correlation"]
        assert (correlation["repeat"], correlation["label"]) == (mode, label)
        assert correlation["key"] == '["HS-1"]'
        assert correlation["key_fields"] == {"dossier_id": "HS-1"}


def test_matches_of_other_rules_have_no_correlation(ioc):
    report = _run(ioc, "hot-topic", _posts(20, local("2026-03-02 09:00")))
    assert [m["correlation"] for m in report["matches"]] == [None]


def test_the_dry_run_page_shows_the_repeat_and_the_key(ioc, people):
    with ioc.db.session() as s:
        draft_id = drafts.import_files(s, _supplement_rule("every"), actor="test").id
    client = create_app(services=ioc).test_client()
    assert _login(client, "inspector").status_code == 302
    form = client.get(f"/designer/drafts/{draft_id}/dry-run").get_data(as_text=True)
    resp = client.post(f"/designer/drafts/{draft_id}/dry-run", data={
        "csrf_token": _csrf(form), "stream": "manual", "events": json.dumps(THREE_REQUESTS),
        "settle_days": "0"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, body
    table = body[body.index('<table id="matches">'):]
    table = table[:table.index("</table>")]
    assert "Lặp lại <small>Repeat</small>" in table and "Khóa liên kết" in table
    assert table.count('data-repeat="every">Mỗi sự kiện sau lại là vi phạm <small>each further '
                       'event matches again</small>') == 2
    assert table.count("<code>dossier_id</code> = HS-1") == 2


def test_the_path_holds_nodes_and_flows_in_order(ioc):
    ticket = {"ticket_id": "T-1", "category": "environment", "ward": "phuong-di-an",
              "description": "Khói bụi", "location": {"lat": 10.9, "lon": 106.77}}
    sample = [{"type": "hotline.ticket.created", "subject": "T-1", "data": ticket},
              {"type": "hotline.ticket.created", "subject": "T-2",
               "data": {**ticket, "ticket_id": "T-2"}},
              {"type": "hotline.ticket.resolved", "data": {"ticket_id": "T-1", "answer": "Xong"}}]
    report = _run(ioc, "hotline-ticket", sample)
    resolved, waiting = report["instances"]
    assert resolved["status"] == "completed" and resolved["waiting"] == []
    assert resolved["path"] == ["start", "to_route", "route", "resolved_at_call_centre",
                                "to_close_elsewhere", "close_elsewhere", "to_end_elsewhere",
                                "end_elsewhere"]
    assert waiting["path"] == ["start", "to_route", "route", "to_answer"]
    assert waiting["waiting"] == ["answer_ticket", "resolved_at_call_centre"]
    # Events without a time keep their order, one second apart.
    times = [datetime.fromisoformat(e["time"]) for e in report["events"]]
    assert [b - a for a, b in zip(times, times[1:])] == [timedelta(seconds=1)] * 2
    assert [t["status"] for t in report["tasks"]] == ["cancelled", "open"]


def test_an_event_the_sandbox_refuses_is_failed_with_its_field(ioc):
    sample = _posts(2, local("2026-03-02 09:00"))
    sample[1]["data"]["platform"] = "myspace"
    report = _run(ioc, "hot-topic", sample)
    ok, refused = report["events"]
    assert ok["status"] == "processed" and ok["error"] is None
    assert refused["status"] == "failed" and "data.platform" in refused["error"]


def test_a_draft_that_does_not_check_raises_and_leaves_no_folder(ioc, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    files = _files("hot-topic")
    files["scenario.yaml"] = files["scenario.yaml"].replace("severity: medium", "severity: huge")
    with pytest.raises(ScenarioInvalid) as err:
        dryrun.dry_run(files, [], vocabulary=ioc.vocabulary, calendar=ioc.calendar)
    assert [p.path for p in err.value.problems] == ["severity"]
    _run(ioc, "hot-topic", _posts(1, local("2026-03-02 09:00")))
    assert list(tmp_path.iterdir()) == []


def test_the_organisation_file_is_used_without_a_real_session(ioc):
    report = dryrun.dry_run(_files("hot-topic"), _posts(20, local("2026-03-02 09:00")),
                            vocabulary=ioc.vocabulary, calendar=ioc.calendar)
    assert report["tasks"][0]["department"] == "so-khoa-hoc-cong-nghe"


# -- isolation ------------------------------------------------------------------------------

def test_the_real_database_is_untouched(loaded, people, source):
    # Real events, users, scenarios and audit records exist; a dry run reads some of them.
    start = local("2026-03-02 09:00")
    result = events.ingest(loaded.db, source[0], [
        {"specversion": "1.0", "id": f"real-{i}", "source": "/social", **post}
        for i, post in enumerate(_posts(20, start))], loaded.vocabulary)
    assert len(result.accepted) == 20
    before = _counts(loaded.db)
    assert before["events"] == 20 and before["users"] > 0 and before["audit_records"] > 0
    with loaded.db.read() as s:
        sample = dryrun.recorded(s, {"social.post"}, start, start + timedelta(hours=1))
    report = _run(loaded, "hot-topic", sample)
    assert len(report["violations"]) == 1 and len(report["notifications"]) == 1
    assert _counts(loaded.db) == before
    # The real events stay pending for the real pipeline, which still matches them itself.
    assert loaded.run_pending()[0] == 20
    with loaded.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Base.metadata.tables["violations"])) == 1


def test_two_dry_runs_in_a_row_share_no_rule_state(ioc):
    start = local("2026-03-02 09:00")
    first = _run(ioc, "hot-topic", _posts(15, start))
    assert first["matches"] == []
    # Had the first run's 15 posts stayed in the rule engine, 5 more would make 20.
    second = _run(ioc, "hot-topic", _posts(5, start + timedelta(minutes=6)))
    assert second["matches"] == [] and second["violations"] == []
    third = _run(ioc, "hot-topic", _posts(20, start))
    assert len(third["matches"]) == 1 and third["instances"][0]["id"] == 1


# -- where the events come from -------------------------------------------------------------

def test_manual_events_are_checked_like_ingestion_naming_index_and_field():
    good = _post(0, local("2026-03-02 09:00"))
    missing = _post(1, local("2026-03-02 09:01"))
    del missing["data"]["keyword"]
    text = json.dumps([good, missing, "not an event", {**good, "time": "yesterday"}])
    with pytest.raises(dryrun.DryRunInputError) as err:
        dryrun.parse_manual(text)
    problems = {(p["index"], p["field"]): p["message"] for p in err.value.problems}
    assert set(problems) == {(1, "data.keyword"), (2, ""), (3, "time")}
    assert problems[(1, "data.keyword")] == \
        "Sự kiện [1]: thiếu data.keyword / event [1]: data.keyword is required"
    assert problems[(3, "time")].startswith("Sự kiện [3]: time không hợp lệ / event [3]: time")

    [event] = dryrun.parse_manual(json.dumps([good]))
    assert (event["specversion"], event["type"], event["data"]) == \
        ("1.0", "social.post", good["data"])


@pytest.mark.parametrize("text, message", [
    ("[{", "Không đọc được JSON (dòng 1, cột 3) / not valid JSON at line 1, column 3"),
    ('{"type": "social.post"}', "expected a JSON array"),
    ("[]", "expected a JSON array of at least one event"),
])
def test_manual_text_that_is_not_an_array_of_events_is_refused(text, message):
    with pytest.raises(dryrun.DryRunInputError) as err:
        dryrun.parse_manual(text, Vocabulary.load())
    [problem] = err.value.problems
    assert problem["index"] is None and message in problem["message"]


def test_manual_events_with_a_session_check_organisation_units(ioc):
    event = {"type": "dossier.completed", "data": {"dossier_id": "HS-1", **DOSSIER,
                                                   "unit": "phuong-khong-co"}}
    with ioc.db.read() as s, pytest.raises(dryrun.DryRunInputError) as err:
        dryrun.parse_manual(json.dumps([event]), ioc.vocabulary, s)
    assert [(p["index"], p["field"]) for p in err.value.problems] == [(0, "data.unit")]


def test_recorded_reads_stored_events_of_the_types_in_the_window(ioc, source):
    start = local("2026-03-02 09:00")
    raws = [{"specversion": "1.0", "id": f"r{i}", "source": "/s", **p}
            for i, p in enumerate(_posts(6, start, every_s=600))]
    raws.append({"specversion": "1.0", "id": "other", "source": "/s",
                 "type": "dossier.completed", "time": start.isoformat(),
                 "data": {"dossier_id": "HS-1", **DOSSIER}})
    raws.reverse()  # stored out of time order
    assert len(events.ingest(ioc.db, source[0], raws, ioc.vocabulary).accepted) == 7
    with ioc.db.read() as s:
        got = dryrun.recorded(s, {"social.post"}, start + timedelta(minutes=10),
                              start + timedelta(minutes=40))
        limited = dryrun.recorded(s, {"social.post", "dossier.completed"}, start,
                                  start + timedelta(hours=2), limit=2)
        assert dryrun.recorded(s, set(), start, start + timedelta(hours=1)) == []
        with pytest.raises(dryrun.DryRunInputError) as err:
            dryrun.recorded(s, {"social.post"}, start, start, limit=0)
    assert [e["id"] for e in got] == ["r1", "r2", "r3"]
    assert [datetime.fromisoformat(e["time"]) for e in got] == \
        [start + timedelta(minutes=m) for m in (10, 20, 30)]
    assert got[0]["data"]["post_id"] == "p1" and got[0]["type"] == "social.post"
    assert {e["id"] for e in limited} == {"other", "r0"}
    assert {p["field"] for p in err.value.problems} == {"until", "limit"}


def test_simulated_gives_only_the_asked_types():
    start = datetime(2026, 3, 2, 8, tzinfo=timezone(timedelta(hours=7)))
    sample = dryrun.simulated({"social.post", "dossier.received"}, start, 24)
    assert {e["type"] for e in sample} == {"social.post", "dossier.received"}
    moments = [datetime.fromisoformat(e["time"]) for e in sample]
    assert moments == sorted(moments) and start <= moments[0] and moments[-1] < \
        start + timedelta(hours=24)
    assert dryrun.simulated({"social.post"}, start, 24, seed=1) == \
        [e for e in sample if e["type"] == "social.post"]
    with pytest.raises(dryrun.DryRunInputError) as err:
        dryrun.simulated({"social.post"}, start.replace(tzinfo=None), 0)
    assert {p["field"] for p in err.value.problems} == {"start", "hours"}


def test_event_types_are_those_of_the_rules_and_the_message_events():
    vocabulary = Vocabulary.load()
    assert dryrun.event_types(_files("hotline-ticket"), vocabulary) == \
        {"hotline.ticket.created", "hotline.ticket.resolved"}
    assert dryrun.event_types(_files("dossier-overdue"), vocabulary) == \
        {"dossier.received", "dossier.completed"}
    broken = {**_files("hot-topic"), "rules.yaml": "rules: [oops"}
    assert dryrun.event_types(broken, vocabulary) == set()


def test_a_dry_run_has_one_budget_for_all_its_scenario_code(ioc, tmp_path, monkeypatch):
    """20 events through `while True: pass` would hold the request 20 × the script timeout:
    the run's scenario code shares one budget, then each further start fails at once, named."""
    from tests.scenario_files import write_scenario
    from tests.test_incidents import BROKEN_START

    monkeypatch.setattr(dryrun, "CODE_BUDGET_S", 2.5)
    folder = write_scenario(tmp_path, "spin", "dossier.received",
                            BROKEN_START.replace("{script}", "while True:\n    pass"))
    sample = [{"type": "dossier.received", "time": f"2026-03-02T09:{i:02d}:00+07:00",
               "data": {**DOSSIER, "dossier_id": f"HS-{i}",
                        "due_at": "2026-03-20T17:00:00+07:00"}} for i in range(20)]
    report = _run(ioc, service.read_folder(folder), sample)
    errors = [i["error"] for i in report["instances"]]
    assert len(errors) == 20
    timed_out = [e for e in errors if "timed out" in e]
    spent = [e for e in errors if "the dry run used up its 2.5 s for scenario code" in e]
    assert 1 <= len(timed_out) <= 3 and len(timed_out) + len(spent) == 20
