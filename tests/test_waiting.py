"""What a running case waits for (engine/processes/waiting.py), as the history and case pages
say it: the open task and its unit, the message that would end it, none once it has ended."""
from __future__ import annotations

from engine.app import create_app
from engine.processes import waiting
from engine.processes.models import ProcessInstance
from tests.spine_helpers import event, send, ticket
from tests.test_web import _login


def test_a_hotline_case_waits_for_its_task_or_the_call_centres_resolution(loaded, source,
                                                                           people):
    client = create_app(services=loaded).test_client()
    send(client, source[1], ticket("1022-5501"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        instance = s.query(ProcessInstance).one()
        waits = waiting.waiting_for(s, loaded.runtime, instance)
    assert [(w.kind, w.department, w.about) for w in waits] == [
        ("task", "so-nong-nghiep-moi-truong", None),
        ("message", None, "1022-5501")]
    assert waits[1].name == "hotline.ticket.resolved"

    assert _login(client, "auditor").status_code == 302
    for url in (f"/instances/{instance.id}", f"/cases/{instance.id}"):
        page = client.get(url).get_data(as_text=True)
        section = page[page.index('id="waiting"'):]
        section = section[:section.index("</section>")]
        assert "Sở Nông nghiệp và Môi trường" in section
        assert "về 1022-5501" in section and "hotline.ticket.resolved" not in section
        assert "Điều nào đến trước" in section

    send(client, source[1], event("hotline.ticket.resolved", {
        "ticket_id": "1022-5501", "resolution": "Đã xử lý"}, subject="1022-5501"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        instance = s.get(ProcessInstance, instance.id)
        assert instance.status == "completed"
        assert waiting.waiting_for(s, loaded.runtime, instance) == []
    assert 'id="waiting"' not in client.get(f"/instances/{instance.id}").get_data(as_text=True)
