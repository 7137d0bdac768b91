"""The shipped time scenarios, driven by events and a hand-moved clock (no sleeping)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.audit import service as audit
from engine.timers.models import Timer
from engine.violations.models import RuleMatch
from tests.conftest import load_scenarios
from tests.time_helpers import Drive, local

DOSSIER = {"procedure": "1.004227", "unit": "phuong-thu-dau-mot", "officer": "tran.thi.lan"}


@pytest.fixture
def drive(ioc, source):
    """The engine with the shipped scenarios, on a clock set to Monday 2 March 2026, 09:00."""
    load_scenarios(ioc)
    return Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])


def _received(drive, dossier_id, due):
    drive.send("dossier.received", {"dossier_id": dossier_id, **DOSSIER,
                                    "due_at": due.isoformat()}, subject=dossier_id)


def test_dossier_overdue_apology_escalation_and_new_date(drive):
    head = drive.user("lanhdao.tdm", "department_head", "phuong-thu-dau-mot")
    officer = drive.user("canbo.tdm", "civil_servant", "phuong-thu-dau-mot")
    office = drive.user("vp.ubnd", "department_head", "van-phong-ubnd")
    due = local("2026-03-04 17:00")
    _received(drive, "HS-001", due)
    _received(drive, "HS-002", due)
    drive.at(local("2026-03-03 10:00"))
    drive.send("dossier.completed", {"dossier_id": "HS-002", **DOSSIER})

    drive.at(local("2026-03-04 16:59"))
    assert drive.violations() == []
    drive.at(due)  # the deadline is reached: only the dossier not returned is overdue
    [violation] = drive.violations()
    assert (violation.subject, violation.rule_key) == ("HS-001", "not-returned-by-deadline")
    [apology] = drive.tasks("issue_apology")
    assert apology.department_key == "phuong-thu-dau-mot"
    [clock] = drive.clocks("apology")
    # One working day from Wednesday 17:00 (closing time) is Thursday 17:00.
    assert clock.due_at == local("2026-03-05 17:00")

    drive.at(local("2026-03-05 11:29"))
    assert drive.notifications() == []
    drive.at(local("2026-03-05 11:30"))  # 50 %: the department hears (nobody claimed it yet)
    [warning] = drive.notifications()
    assert (warning.kind, warning.department_key, warning.role) == \
        ("sla.notify", "phuong-thu-dau-mot", None)
    drive.at(local("2026-03-05 17:00"))  # 100 %: the unit's head
    escalated = drive.notifications("sla.escalate")
    assert [(n.department_key, n.role) for n in escalated] == \
        [("phuong-thu-dau-mot", "department_head")]
    # Worded by the scenario's own template (sla.yaml), with the dossier and the times filled in.
    assert "Hồ sơ HS-001 trễ hạn" in escalated[0].text and "chỉ đạo xử lý ngay" in escalated[0].text
    assert drive.tasks("issue_apology")[0].escalated_to == "phuong-thu-dau-mot"
    # 200 % falls on Friday 17:00: the People's Committee Office, which now sees the task.
    drive.at(local("2026-03-06 16:59"))
    assert len(drive.notifications("sla.escalate")) == 1
    drive.at(local("2026-03-06 17:00"))
    assert drive.notifications("sla.escalate")[-1].department_key == "van-phong-ubnd"
    from engine.tasks import service as tasks
    with drive.db.read() as s:
        assert [t.id for t in tasks.list_tasks(s, office)] == [apology.id]
        assert [t.id for t in tasks.list_tasks(s, head)] == [apology.id]

    drive.at(local("2026-03-09 08:00"))
    drive.complete(officer, apology.id, {"apology_number": "15/PXL-UBND",
                                         "new_appointment": "2026-03-11",
                                         "delay_reason": "Chờ ý kiến cơ quan phối hợp"})
    [clock] = drive.clocks("apology")
    assert clock.status == "breached" and clock.level == 2
    # The process now waits for the result or the end of the new date, whichever comes first.
    with drive.db.read() as s:
        [timer] = s.scalars(select(Timer).where(Timer.kind == "bpmn", Timer.status == "pending"))
    assert timer.due_at == local("2026-03-11 17:00")
    drive.at(local("2026-03-11 16:59"))
    assert drive.tasks("review_missed_date") == []
    drive.at(local("2026-03-11 17:00"))
    # Due, but the process also waits for the result: a result received before 17:00 may still
    # be committing, so the timer fires a second later (pipeline.MESSAGE_SETTLE) and wins.
    assert drive.tasks("review_missed_date") == []
    drive.at(local("2026-03-11 17:00:01"))
    [review] = drive.tasks("review_missed_date")
    assert review.department_key == "van-phong-ubnd"
    drive.complete(office, review.id, {"finding": "Đơn vị trễ hẹn lần hai",
                                       "outcome": "reminded_unit"})
    [violation] = drive.violations()
    assert (violation.status, violation.outcome) == ("closed", "reminded_unit")
    with drive.db.read() as s:
        assert audit.verify(s).ok


def test_result_returned_after_the_apology_ends_the_wait(drive):
    officer = drive.user("canbo.tdm", "civil_servant", "phuong-thu-dau-mot")
    _received(drive, "HS-010", local("2026-03-02 17:00"))
    drive.at(local("2026-03-02 17:00"))
    [apology] = drive.tasks("issue_apology")
    drive.complete(officer, apology.id, {"apology_number": "16/PXL", "new_appointment":
                                         "2026-03-06", "delay_reason": "Thiếu cán bộ"})
    [clock] = drive.clocks("apology")
    assert clock.status == "met"
    drive.at(local("2026-03-04 10:00"))
    drive.send("dossier.completed", {"dossier_id": "HS-010", **DOSSIER})
    [violation] = drive.violations()
    assert (violation.status, violation.outcome) == ("closed", "returned_after_apology")
    drive.at(local("2026-03-07 09:00"))  # the new date's timer was cancelled with the wait
    assert drive.tasks("review_missed_date") == []
    with drive.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Timer).where(
            Timer.status == "pending")) == 0


def test_a_deadline_survives_a_restart_and_fires_once(drive):
    _received(drive, "HS-020", local("2026-03-03 12:00"))
    first = drive.ioc
    drive.clock.set(local("2026-03-03 12:05"))
    second = drive.restart()  # a new process after the deadline passed while it was down
    assert second.run_pending() == (0, 1)
    assert first.run_pending() == (0, 0)  # the old process finds nothing left to fire
    assert [v.subject for v in drive.violations()] == ["HS-020"]
    with drive.db.read() as s:
        assert s.scalar(select(func.count()).select_from(RuleMatch)) == 1


def test_step_held_beyond_its_allotted_working_hours(drive):
    drive.at(local("2026-03-06 15:00"))  # a Friday afternoon
    step = {"dossier_id": "HS-030", **DOSSIER, "step": "tham-dinh", "allotted_hours": 4}
    drive.send("dossier.step_started", step)
    drive.send("dossier.step_started", {**step, "dossier_id": "HS-031"})
    drive.at(local("2026-03-06 16:00"))
    drive.send("dossier.step_completed", {**step, "dossier_id": "HS-031"})
    # Fri 15:00–17:00 is 2 working hours; the other 2 end on Monday at 09:30.
    drive.at(local("2026-03-09 09:29"))
    assert drive.violations() == []
    drive.at(local("2026-03-09 09:30"))
    [violation] = drive.violations()
    assert violation.subject == "HS-030" and "tham-dinh" in violation.title_vi
    [review] = drive.tasks("review_held_step")
    assert review.department_key == "phuong-thu-dau-mot"
    assert review.context["officer"] == "tran.thi.lan"


def test_hotline_acknowledgement_and_resolution_slas(drive):
    head = drive.user("lanhdao.nnmt", "department_head", "so-nong-nghiep-moi-truong")
    officer = drive.user("canbo.nnmt", "civil_servant", "so-nong-nghiep-moi-truong")
    drive.send("hotline.ticket.created", {
        "ticket_id": "1022-500", "category": "environment", "ward": "phuong-di-an",
        "description": "Khói bụi từ xưởng gỗ"}, subject="1022-500")
    [answer] = drive.tasks("answer_ticket")
    ack, resolve = drive.clocks("acknowledge")[0], drive.clocks("resolve")[0]
    assert ack.due_at == local("2026-03-03 09:00")
    assert resolve.due_at == local("2026-03-09 09:00")  # 5 working days, over a weekend

    drive.at(local("2026-03-03 09:00"))  # nobody acknowledged: the head is called in
    [escalation] = drive.notifications("sla.escalate")
    assert (escalation.department_key, escalation.role) == \
        ("so-nong-nghiep-moi-truong", "department_head")
    drive.at(local("2026-03-03 10:00"))
    drive.claim(officer, answer.id)
    ack = drive.clocks("acknowledge")[0]
    assert ack.status == "breached" and ack.elapsed_seconds == 9 * 3600  # 8 h + 1 h

    drive.at(local("2026-03-06 09:00"))  # 80 % of 5 working days: the department is reminded
    assert [n.kind for n in drive.notifications()][-1] == "sla.notify"
    drive.complete(officer, answer.id, {"answer": "Đã kiểm tra, yêu cầu xưởng khắc phục"})
    resolve = drive.clocks("resolve")[0]
    assert resolve.status == "met"
    with drive.db.read() as s:
        report = drive.ioc.sla.report(s, since=local("2026-03-01 00:00"),
                                      until=local("2026-03-31 00:00"))
    [dept] = report["departments"]
    assert (dept["key"], dept["met"], dept["missed"], dept["compliance_pct"]) == \
        ("so-nong-nghiep-moi-truong", 1, 1, 50.0)
    assert head.role == "department_head"


def _reading(drive, station, value, aqi=160):
    drive.send("environment.reading", {"station_id": station, "parameter": "pm25",
                                       "value": value, "unit": "µg/m³", "aqi": aqi,
                                       "ward": "phuong-di-an"})


def test_sustained_pm25_opens_one_incident_across_a_restart(drive):
    start = local("2026-03-07 20:00")  # a Saturday evening: pollution keeps no office hours
    for minutes, value in [(0, 60), (10, 62), (20, 40), (30, 55), (40, 58)]:
        drive.at(start + _min(minutes))
        _reading(drive, "BD-AQ-01", value)
    drive.restart()  # the streak since 20:30 lives in the database
    for minutes, value in [(50, 61), (60, 70), (70, 75)]:
        drive.at(start + _min(minutes))
        if minutes == 60:
            assert drive.violations() == []  # 20:30 → 20:50 is only 20 minutes
        _reading(drive, "BD-AQ-01", value)
    [incident] = drive.violations()
    assert (incident.kind, incident.severity, incident.rule_key) == \
        ("incident", "high", "pm25-sustained")  # AQI 160: "bad" band
    [respond] = drive.tasks("respond_air_quality")
    assert respond.department_key == "so-nong-nghiep-moi-truong"
    assert respond.context["rule_window"]["readings"] == 4


def test_a_silent_station_opens_a_maintenance_task(drive):
    drive.at(local("2026-03-07 06:00"))
    _reading(drive, "BD-AQ-02", 20, aqi=40)
    drive.at(local("2026-03-07 06:30"))
    _reading(drive, "BD-AQ-02", 22, aqi=42)
    drive.at(local("2026-03-07 07:29"))
    assert drive.violations() == []
    drive.at(local("2026-03-07 07:30"))  # an hour after its last reading
    [incident] = drive.violations()
    assert (incident.rule_key, incident.subject) == ("station-silent", "BD-AQ-02")
    [restore] = drive.tasks("restore_station")
    assert restore.department_key == "so-nong-nghiep-moi-truong"
    drive.at(local("2026-03-07 12:00"))
    assert len(drive.violations()) == 1  # silent once; it takes a new reading to re-arm


def test_hot_topic_needs_twenty_posts_within_ten_minutes(drive):
    drive.user("lanhdao.khcn", "department_head", "so-khoa-hoc-cong-nghe")
    drive.at(local("2026-03-07 21:00"))
    for i in range(20):  # one post every 2 minutes: never 20 inside 10 minutes
        drive.send("social.post", {"post_id": f"slow-{i}", "platform": "facebook",
                                   "keyword": "kẹt xe Mỹ Phước"})
        drive.advance(minutes=2)
    assert drive.violations() == []
    for i in range(20):
        if i == 19:
            assert drive.violations() == []
        drive.send("social.post", {"post_id": f"fast-{i}", "platform": "facebook",
                                   "keyword": "ngập Dĩ An", "url": f"https://fb.example/{i}"})
        drive.advance(seconds=25)
    [incident] = drive.violations()
    assert (incident.kind, incident.subject) == ("incident", "ngập Dĩ An")
    [notice] = drive.notifications("rule.notify")
    assert (notice.department_key, notice.role) == ("so-khoa-hoc-cong-nghe", "department_head")
    assert "ngập Dĩ An" in notice.text
    [assess] = drive.tasks("assess_topic")
    assert assess.department_key == "so-khoa-hoc-cong-nghe"


def _min(minutes: int):
    from datetime import timedelta
    return timedelta(minutes=minutes)


def test_a_deadline_past_the_calendars_files_is_computed_and_marked_provisional(ioc, source):
    """No holiday file exists for 2029 or 2030: the ticket is still handled (never a dead
    letter), its deadline counted with the Labour Code's holidays (1 January 2030 off) and
    marked provisional."""
    from engine.events.models import Event

    load_scenarios(ioc)
    drive = Drive(ioc.db, ioc.vocabulary, local("2029-12-26 09:00"), source[0])  # a Wednesday
    drive.send("hotline.ticket.created", {
        "ticket_id": "1022-2029", "category": "environment", "ward": "phuong-di-an",
        "description": "Khói bụi từ xưởng gỗ"}, subject="1022-2029")
    with drive.db.read() as s:
        assert [e.status for e in s.scalars(select(Event))] == ["processed"]
    [resolve] = drive.clocks("resolve")
    # Thu 27, Fri 28, Mon 31, (Tue 1 January off), Wed 2, Thu 3 January 09:00.
    assert resolve.due_at == local("2030-01-03 09:00")
    assert drive.ioc.sla.item(resolve)["provisional"] is True
    [ack] = drive.clocks("acknowledge")
    assert drive.ioc.sla.item(ack)["provisional"] is True  # 2029 is computed too
