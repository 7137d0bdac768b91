"""A merger taking effect: the ended department's open work, people and subscriptions move to its
successor on the successor's first day (engine/org/handover.py), through the scheduler and
through `ioc org load`."""
from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.auth.models import User
from engine.notify import service as notify
from engine.notify.models import WebhookSubscription
from engine.org import handover
from engine.org import service as org
from engine.tasks import service as tasks
from engine.timers.models import ORG, Timer
from tests.conftest import ORG_FILE, load_scenarios
from tests.time_helpers import Drive, local

NNMT = "so-nong-nghiep-moi-truong"
# Hồ Chí Minh City's department, which (in this test) takes over the former Bình Dương one.
HCM = "so-nong-nghiep-moi-truong-tphcm"
SECRET = "bí-mật-của-cổng-sms-0123456789"


def merger_file(tmp_path, last_day: date):
    """The shipped organisation with NNMT ending on `last_day`, succeeded by HCM the day after."""
    data = yaml.safe_load(open(ORG_FILE, encoding="utf-8"))
    [nnmt] = [u for u in data["units"] if u["key"] == NNMT]
    nnmt["valid_to"], nnmt["successor"] = last_day, HCM
    data["units"].append({
        "key": HCM, "name_vi": "Sở Nông nghiệp và Môi trường Thành phố Hồ Chí Minh",
        "name_en": "Ho Chi Minh City Department of Agriculture and Environment",
        "kind": "department", "parent": None, "valid_from": last_day + timedelta(days=1),
        "valid_to": None, "successor": None, "aliases": []})
    path = tmp_path / "merger.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def drive(ioc, source):
    """Shipped scenarios, Monday 2 March 2026 09:00: a hotline ticket has opened a task in NNMT
    (claimed by its officer) with its two SLA clocks; NNMT has a head and a webhook."""
    load_scenarios(ioc)
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])
    drive.head = drive.user("lanhdao.nnmt", "department_head", NNMT)
    drive.officer = drive.user("canbo.nnmt", "civil_servant", NNMT)
    drive.other = drive.user("canbo.xd", "civil_servant", "so-xay-dung")
    with drive.db.session() as s:
        drive.hook = notify.add_webhook(s, "https://sms.nnmt.example.vn/ioc", SECRET,
                                        department_key=NNMT, departments=org.known_keys(s)).id
    drive.send("hotline.ticket.created", {
        "ticket_id": "1022-700", "category": "environment", "ward": "phuong-di-an",
        "description": "Nước thải đổ ra kênh"}, subject="1022-700")
    [drive.task] = drive.tasks("answer_ticket")
    drive.claim(drive.officer, drive.task.id)
    return drive


def _departments(drive) -> dict:
    with drive.db.read() as s:
        return {
            "task": s.get(type(drive.task), drive.task.id).department_key,
            "clocks": {c.sla_key: c.department_key for c in drive.clocks()},
            "users": {u.username: u.department_key for u in s.scalars(select(User))},
            "hook": s.get(WebhookSubscription, drive.hook).department_key,
        }


def test_the_work_moves_at_midnight_of_the_successors_first_day(drive, tmp_path):
    with drive.db.session() as s:
        org.load_file(s, merger_file(tmp_path, date(2026, 3, 4)))
        assert handover.schedule(s, date(2026, 3, 2)) == [date(2026, 3, 5)]
        handover.schedule(s, date(2026, 3, 2))  # loading again keeps one timer
    with drive.db.read() as s:
        [timer] = s.scalars(select(Timer).where(Timer.kind == ORG))
        assert timer.due_at == local("2026-03-05 00:00")

    drive.at(local("2026-03-04 23:59"))  # NNMT's last day: nothing moves yet
    assert _departments(drive)["task"] == NNMT
    drive.at(local("2026-03-05 00:00"))
    assert _departments(drive) == {
        # The acknowledgement clock stopped at the claim: it stays with the department of its day.
        "task": HCM, "clocks": {"acknowledge": NNMT, "resolve": HCM}, "hook": HCM,
        "users": {"lanhdao.nnmt": HCM, "canbo.nnmt": HCM, "canbo.xd": "so-xay-dung"}}

    with drive.db.read() as s:
        moved = [(r.action, r.subject_type, r.details["from"], r.details["to"], r.details["on"])
                 for r in s.scalars(select(AuditRecord).where(AuditRecord.actor == "org")
                                    .order_by(AuditRecord.seq))]
        assert Counter(event for event, *_ in moved) == {
            "task.handed_over": 1, "sla.handed_over": 1, "user.handed_over": 2,
            "webhook.handed_over": 1}
        assert {tuple(rest) for _, _, *rest in moved} == {(NNMT, HCM, "2026-03-05")}
        # The officer, moved with the task, still holds the claim and sees it in the inbox.
        officer = s.get(User, drive.officer.id)
        assert [t.id for t in tasks.list_tasks(s, officer)] == [drive.task.id]
    drive.complete(officer, drive.task.id, {"answer": "Đã yêu cầu cơ sở khắc phục"})
    assert {c.status for c in drive.clocks()} == {"met"}
    with drive.db.read() as s:
        assert audit.verify(s).ok


def test_a_second_handover_moves_nothing(drive, tmp_path):
    with drive.db.session() as s:
        org.load_file(s, merger_file(tmp_path, date(2026, 3, 4)))
        assert handover.hand_over(s, date(2026, 3, 4)) == Counter()  # NNMT still in force
        first = handover.hand_over(s, date(2026, 3, 5))
        assert first == {"tasks": 1, "clocks": 1, "users": 2, "webhooks": 1}
        assert handover.hand_over(s, date(2026, 3, 5)) == Counter()


def test_a_closed_task_and_a_stopped_clock_stay_where_they_were(drive, tmp_path):
    drive.complete(drive.officer, drive.task.id, {"answer": "Đã xử lý"})
    with drive.db.session() as s:
        org.load_file(s, merger_file(tmp_path, date(2026, 3, 4)))
        moved = handover.hand_over(s, date(2026, 3, 5))
    assert moved == {"users": 2, "webhooks": 1}  # history keeps the department of its day
    assert _departments(drive)["task"] == NNMT
    assert _departments(drive)["clocks"] == {"acknowledge": NNMT, "resolve": NNMT}


def test_org_load_hands_over_what_already_ended_and_schedules_the_rest(drive, tmp_path,
                                                                       monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", drive.db.url)
    runner = CliRunner()
    ended = runner.invoke(main, ["org", "load", str(merger_file(tmp_path, date(2026, 3, 4)))])
    assert ended.exit_code == 0, ended.output
    assert "handed over to successors: tasks 1, clocks 1, users 2, webhooks 1" in ended.output
    assert _departments(drive)["task"] == HCM

    later = org.today() + timedelta(days=30)
    (tmp_path / "later").mkdir()
    result = runner.invoke(main, ["org", "load", str(merger_file(tmp_path / "later", later))])
    assert result.exit_code == 0, result.output
    day = (later + timedelta(days=1)).isoformat()
    assert re.search(rf"successors take over on {day} \(00:00\): handover scheduled",
                     result.output)
    assert "handed over" not in result.output  # HCM is not in force yet: nothing moves today
    with drive.db.read() as s:
        refs = set(s.scalars(select(Timer.ref).where(Timer.kind == ORG)))
    assert f"handover:{day}" in refs
