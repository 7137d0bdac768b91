"""The commander's pages (issue 19): the board shows suggestions, playbooks and runs with each
order's state; the start form names what is wrong on its field; a dismissal needs its reason;
nobody else reaches them."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.app import create_app
from engine.auth import service as auth_service
from engine.playbooks.models import Suggestion
from engine.processes.models import ProcessInstance
from engine.tasks.models import Task
from tests.spine_helpers import send
from tests.test_playbooks import storm_warning
from tests.test_web import _csrf, _login


@pytest.fixture
def client(loaded):
    with loaded.db.session() as s:
        auth_service.create_user(s, "chihuy", "commander", "van-phong-ubnd",
                                 full_name="Trương Tấn Dũng", password="password-123")
    return create_app(services=loaded).test_client()


def _start_page(client, url):
    page = client.get(url)
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_the_commander_starts_a_run_from_the_board_and_sees_its_orders(client, loaded, source):
    _login(client, "chihuy")
    board = client.get("/command").get_data(as_text=True)
    assert "Bảng chỉ huy" in board and "Ứng phó bão, lũ, ngập lụt" in board
    assert 'href="/command"' in client.get("/inbox").get_data(as_text=True)  # in the menu
    html = _start_page(client, "/command/playbooks/flood-storm/start")
    assert "Cấp độ 3 – rủi ro thiên tai lớn / Level 3 – high disaster risk" in html
    assert "Phường Thủ Dầu Một" in html and "Thành phố Thủ Dầu Một" not in html  # current areas
    # No level, no area: both fields say so, and nothing starts.
    refused = client.post("/command/playbooks/flood-storm/start",
                          data={"csrf_token": _csrf(html), "notes": ""})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "choose one of the playbook&#39;s levels" in text or "choose one of the" in text
    assert "choose at least one ward or commune" in text
    with loaded.db.read() as s:
        assert s.scalars(select(ProcessInstance)).first() is None
    started = client.post("/command/playbooks/flood-storm/start", data={
        "csrf_token": _csrf(html), "level": "3", "wards": ["phuong-thu-dau-mot", "phuong-di-an"],
        "notes": "Mưa lớn kết hợp triều cường"})
    assert started.status_code == 302 and "/instances/" in started.headers["Location"]
    board = client.get("/command").get_data(as_text=True)
    run = re.search(r'<article class="card run running".*?</article>', board, re.S).group(0)
    assert "Cấp độ 3" in run and "Mưa lớn kết hợp triều cường" in run
    assert run.count('class="order sent"') == 6  # two wards and four forces, none taken yet
    assert "Phường Dĩ An" in run and "Bộ Chỉ huy Quân sự" in run
    assert "đã giao / sent" in run and "0 phút / 0 min" in run


def test_a_suggestion_card_is_started_or_dismissed_with_a_reason(client, loaded, source):
    send(client, source[1], storm_warning(), storm_warning(identifier="VN-4", event_name="Lũ"))
    loaded.pipeline.drain()
    _login(client, "chihuy")
    board = client.get("/command").get_data(as_text=True)
    with loaded.db.read() as s:
        storm, flood = sorted(s.scalars(select(Suggestion)), key=lambda x: x.id)
    assert f'id="suggestion-{storm.id}"' in board and "Sơ tán dân vùng trũng thấp" in board
    token = _csrf(board)
    empty = client.post(f"/command/suggestions/{flood.id}/dismiss",
                        data={"csrf_token": token, "reason": ""}, follow_redirects=True)
    assert "Bỏ qua đề xuất phải ghi lý do" in empty.get_data(as_text=True)
    client.post(f"/command/suggestions/{flood.id}/dismiss",
                data={"csrf_token": token, "reason": "Cùng một cơn bão"})
    html = _start_page(client, f"/command/suggestions/{storm.id}/start")
    assert "Bão số 9: đề xuất kích hoạt" in html
    client.post(f"/command/suggestions/{storm.id}/start", data={
        "csrf_token": _csrf(html), "level": "4", "whole_area": "y"})
    with loaded.db.read() as s:
        decided = {x.id: x.status for x in s.scalars(select(Suggestion))}
        wards = {t.department_key for t in s.scalars(select(Task).where(
            Task.bpmn_id == "order_wards"))}
    assert decided == {storm.id: "started", flood.id: "dismissed"} and len(wards) == 36
    board = client.get("/command").get_data(as_text=True)
    assert "Không có đề xuất nào chờ quyết định" in board
    # A second decision on the same card is refused, and says by whom it was taken.
    again = client.post(f"/command/suggestions/{storm.id}/start", data={
        "csrf_token": _csrf(board), "level": "4", "whole_area": "y"}, follow_redirects=True)
    assert "đã được quyết định" in again.get_data(as_text=True)


def test_only_commanders_reach_the_command_pages(client, people):
    _login(client, "thudaumot")
    assert client.get("/command").status_code == 403
    assert client.get("/command/playbooks/flood-storm/start").status_code == 403
    assert 'href="/command"' not in client.get("/inbox").get_data(as_text=True)


def _flood_run(client, loaded, level: str, ward: str) -> int:
    """Log in as the commander and start the flood playbook for one ward; the run's id."""
    _login(client, "chihuy")
    html = _start_page(client, "/command/playbooks/flood-storm/start")
    client.post("/command/playbooks/flood-storm/start", data={
        "csrf_token": _csrf(html), "level": level, "wards": [ward]})
    with loaded.db.read() as s:
        return s.scalars(select(ProcessInstance)).one().id


def test_a_public_warning_is_drafted_from_a_run_and_published_on_approval(client, loaded):
    run = _flood_run(client, loaded, "3", "phuong-thu-dau-mot")
    form = _start_page(client, f"/command/runs/{run}/warnings/new")
    # The run's area, already chosen.
    assert re.search(r'<input checked[^>]*value="phuong-thu-dau-mot"', form)
    fields = {"csrf_token": _csrf(form), "msg_type": "Alert", "references_id": "",
              "event": "Bão số 9", "category": "Met", "urgency": "Immediate",
              "severity": "Severe", "certainty": "Likely", "headline_vi": "",
              "headline_en": "Typhoon 9: evacuate", "expires_hours": "12",
              "wards": ["phuong-thu-dau-mot"]}
    refused = client.post(f"/command/runs/{run}/warnings/new", data=fields)
    assert refused.status_code == 422 and "Bắt buộc" in refused.get_data(as_text=True)
    drafted = client.post(f"/command/runs/{run}/warnings/new",
                          data={**fields, "headline_vi": "Bão số 9: sơ tán dân"})
    assert drafted.status_code == 302
    assert client.get("/public/warnings.atom").data.count(b"<entry>") == 0  # a draft
    board = client.get("/command").get_data(as_text=True)
    publish = re.search(r'action="(/command/warnings/\d+/publish)"', board).group(1)
    assert client.post(publish, data={"csrf_token": _csrf(board)}).status_code == 302
    feed = client.get("/public/warnings.atom").get_data(as_text=True)
    assert "Alert: Bão số 9: sơ tán dân" in feed
    assert "đã phát lúc / published on" in client.get("/command").get_data(as_text=True)


def test_the_commander_messages_every_unit_of_a_run_from_the_board(client, loaded):
    run = _flood_run(client, loaded, "2", "phuong-di-an")
    board = client.get("/command").get_data(as_text=True)
    empty = client.post(f"/command/runs/{run}/message", data={"csrf_token": _csrf(board),
                                                              "text": ""},
                        follow_redirects=True)
    assert "Chỉ đạo phải có nội dung" in empty.get_data(as_text=True)
    sent = client.post(f"/command/runs/{run}/message",
                       data={"csrf_token": _csrf(board), "text": "Báo cáo mỗi 2 giờ"},
                       follow_redirects=True)
    assert "Đã gửi tới 5 đơn vị" in sent.get_data(as_text=True)  # a ward and four forces


def test_starting_from_a_suggestion_proposes_the_ward_the_detection_named(client, loaded, source):
    from tests.test_playbooks import crowd

    send(client, source[1], crowd("cam-9", 500))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        card = s.scalars(select(Suggestion)).one()
    _login(client, "chihuy")
    html = _start_page(client, f"/command/suggestions/{card.id}/start")
    assert re.search(r'<input checked[^>]*value="phuong-thu-dau-mot"', html)
    assert "Toàn địa bàn" not in html  # a gathering is local


def test_a_playbook_without_an_area_asks_for_none(client, loaded):
    _login(client, "chihuy")
    html = _start_page(client, "/command/playbooks/cyber-incident/start")
    assert "Phường, xã" not in html and "Toàn địa bàn" not in html
    started = client.post("/command/playbooks/cyber-incident/start",
                          data={"csrf_token": _csrf(html), "level": "1"})
    assert started.status_code == 302
