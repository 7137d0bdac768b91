"""The inbox a page at a time (engine/tasks/inbox.py, issue 23): filters, three orders, keyset
pages that add up to the whole list with nothing lost or doubled, a count, the filters kept in
the URL; bad filters are a 400 naming them."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.app import create_app
from engine.auth.models import User
from engine.clock import ManualClock
from engine.sla.models import OPEN_STATES, SlaClock
from engine.tasks import inbox
from engine.tasks.models import Task
from tests.conftest import on_clock
from tests.spine_helpers import dossier, send, ticket
from tests.test_web import _login
from tests.time_helpers import local


@pytest.fixture
def many(loaded, source, people):
    """Four hotline tickets (tasks with an SLA) and three dossier violations (without), on a
    Monday morning's clock."""
    ioc = on_clock(loaded, ManualClock(local("2026-03-02 09:00")))
    client = create_app(services=ioc).test_client()
    for n in range(4):
        send(client, source[1], ticket(f"1022-70{n}", ward="phuong-di-an"))
        ioc.pipeline.drain()
        ioc.clock.advance(minutes=7)  # each ticket's deadline a little later
    for n in range(3):
        send(client, source[1], dossier("dossier.supplement_requested", f"H08.{n}"),
             dossier("dossier.supplement_requested", f"H08.{n}"))
    ioc.pipeline.drain()
    return ioc


def _all_pages(session, user, filters, limit=3):
    seen, cursor = [], ""
    while True:
        rows, cursor, total = inbox.page(session, user, filters, cursor, limit=limit)
        seen += [t.id for t in rows]
        if cursor is None:
            return seen, total


def _follow(client, url: str, ids: str = r'<td data-label="#">(\d+)</td>') -> list[int]:
    """The ids on every page of a list, following its "next page" links from `url`."""
    seen = []
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(ids, page)]
        found = re.search(r'href="([^"]+)" id="next-page"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    return seen


def test_every_order_pages_through_every_task_once(many):
    with many.db.read() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        tasks = list(s.scalars(select(Task)))
        due = {}
        for clock in s.scalars(select(SlaClock).where(SlaClock.status.in_(OPEN_STATES))):
            if clock.task_id:
                due[clock.task_id] = min(filter(None, (due.get(clock.task_id), clock.due_at)))
        expected_urgent = sorted((t.id for t in tasks),
                                 key=lambda i: (i not in due, due.get(i) or 0, i))
        assert len(tasks) == 7 and 0 < len(due) < 7
        urgent, total = _all_pages(s, admin, inbox.Filters())
        assert (urgent, total) == (expected_urgent, 7)
        ids = sorted(t.id for t in tasks)
        assert _all_pages(s, admin, inbox.Filters(sort="newest"))[0] == ids[::-1]
        assert _all_pages(s, admin, inbox.Filters(sort="oldest"))[0] == ids
        hotline = _all_pages(s, admin, inbox.Filters(scenario="hotline-ticket"))[0]
        assert sorted(hotline) == sorted(due) and len(hotline) == 4
        assert _all_pages(s, admin, inbox.Filters(subject="h08.1"))[0] == [
            t.id for t in tasks if t.context.get("dossier_id") == "H08.1"]
        assert _all_pages(s, admin, inbox.Filters(department="so-nong-nghiep-moi-truong"))[1] \
            == 4


def test_the_inbox_page_keeps_its_filters_in_the_url_and_refuses_bad_ones(many, people):
    client = create_app(services=many).test_client()
    assert _login(client, "admin").status_code == 302
    page = client.get("/inbox?sort=oldest&scenario=hotline-ticket").get_data(as_text=True)
    assert 'id="task-total">4<' in page, re.findall(r"task-total.{0,20}", page)
    assert client.get("/inbox?state=lost").status_code == 400
    assert client.get("/inbox?cursor=abc~x").status_code == 400
    # A civil servant sees their unit's tasks only; another unit's filter is refused.
    officer = create_app(services=many).test_client()
    assert _login(officer, "phvhcc").status_code == 302
    mine = officer.get("/inbox").get_data(as_text=True)
    assert 'id="task-total">3<' in mine and 'name="department"' not in mine
    assert officer.get("/inbox?department=so-nong-nghiep-moi-truong").status_code == 400


def test_pages_of_a_long_inbox_link_to_each_other(many, monkeypatch):
    monkeypatch.setattr(inbox, "PAGE", 3)
    client = create_app(services=many).test_client()
    assert _login(client, "admin").status_code == 302
    seen = _follow(client, "/inbox?sort=newest&state=")  # the order kept on every page
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 7


def test_violations_are_filtered_paged_and_counted(many, people, monkeypatch):
    from engine.violations import search
    from engine.violations.models import Violation

    with many.db.read() as s:
        severity = {v.severity for v in s.scalars(select(Violation))}
    assert len(severity) == 1  # the three dossier violations of one rule
    client = create_app(services=many).test_client()
    assert _login(client, "auditor").status_code == 302

    def total(query=""):
        page = client.get(f"/violations?{query}").get_data(as_text=True)
        return int(re.search(r'id="violation-total">(\d+)<', page).group(1))
    assert total() == 3
    assert (total("kind=violation"), total("kind=incident")) == (3, 0)
    assert total(f"severity={severity.pop()}&status=open") == 3
    assert total("severity=critical") == 0
    assert total("subject=h08.2") == 1
    assert total("since=2026-03-03") == 0
    assert total("since=2026-03-02&until=2026-03-02") == 3
    for bad in ("kind=other", "since=hom-nay", "severity=urgent", "after=0"):
        assert client.get(f"/violations?{bad}").status_code == 400, bad
    monkeypatch.setattr(search, "PAGE", 2)
    seen = _follow(client, "/violations?order=oldest")
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_the_sla_board_takes_a_period_a_unit_and_a_scenario(many, people):
    client = create_app(services=many).test_client()
    assert _login(client, "auditor").status_code == 302

    def items(query):
        resp = client.get(f"/sla?{query}")
        page = resp.get_data(as_text=True)
        return resp.status_code, page.count('data-label="Còn lại / Left"')
    assert items("") == (200, 8)  # two open clocks for each of the four tickets
    assert items("scenario=hotline-ticket&department=so-nong-nghiep-moi-truong") == (200, 8)
    assert items("scenario=dossier-violations") == (200, 0)
    assert items("department=so-xay-dung") == (200, 0)
    page = client.get("/sla?since=2026-03-01&until=2026-03-31").get_data(as_text=True)
    assert "Từ 01/03/2026 đến 31/03/2026" in page
    assert items("since=2026-03-10&until=2026-03-01")[0] == 400
    assert items("scenario=khong-co")[0] == 400


def test_events_and_dead_letters_are_filtered_paged_and_counted(many, people, monkeypatch):
    from datetime import timedelta

    from sqlalchemy import func

    from engine.events import search
    from engine.events.models import Event
    from engine.org.service import local_time

    with many.db.session() as s:  # one event failed for good: a dead letter
        dead = s.scalars(select(Event).where(Event.subject == "1022-702")).one()
        dead.status, dead.error = "failed", "KeyError: 'ward'"
    client = create_app(services=many).test_client()
    assert _login(client, "inspector").status_code == 302

    def total(path):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        return int(re.search(r'id="event-total">(\d+)<', resp.get_data(as_text=True)).group(1))
    assert total("/events") == 10  # four tickets, three dossiers sent twice
    assert total("/events?type=hotline.ticket.created") == 4
    assert total("/events?status=failed") == 1
    assert total("/events?subject=H08.1") == 2
    # Events are stamped when received (real time): the day after the newest one has none.
    with many.db.read() as s:
        newest = s.scalar(select(func.max(Event.received_at)))
    after = (local_time(newest).date() + timedelta(days=1)).isoformat()
    assert total(f"/events?since={after}") == 0
    assert total(f"/events?until={after}") == 10
    assert client.get("/events?status=lost").status_code == 400
    assert client.get("/events?type=made.up").status_code == 400
    monkeypatch.setattr(search, "PAGE", 4)
    seen = _follow(client, "/events?type=", r'<td class="num" data-label="#">(\d+)</td>')
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 10

    admin = create_app(services=many).test_client()
    assert _login(admin, "admin").status_code == 302
    letters = admin.get("/dead-letters").get_data(as_text=True)
    assert 'id="event-total">1<' in letters and "KeyError" in letters
    assert 'id="event-total">0<' in admin.get(
        "/dead-letters?type=dossier.supplement_requested").get_data(as_text=True)
    officer = create_app(services=many).test_client()
    assert _login(officer, "phvhcc").status_code == 302
    assert officer.get("/events").status_code == 403
