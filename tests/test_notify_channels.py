"""Notifications out: e-mail to a real local SMTP server, signed webhooks to a real local HTTP
server, retries with backoff on a hand-moved clock, and SLA level texts from the scenario file.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import textwrap
import threading
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select

from engine.audit import service as audit
from engine.audit.models import AuditRecord
from engine.auth import service as auth
from engine.auth.models import User
from engine.clock import ManualClock
from engine.config import Settings
from engine.notify import service as notify
from engine.notify.channels import build_channels
from engine.notify.channels.webhook import verify
from engine.notify.delivery import Outbox
from engine.notify.models import EMAIL, FAILED, IN_APP, PENDING, SENT, WEBHOOK, Notification
from engine.scenarios.problems import ScenarioInvalid
from engine.sla.definitions import parse_slas, render_text
from tests.conftest import SCENARIOS, load_scenarios
from tests.time_helpers import Drive, local

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
NNMT = "so-nong-nghiep-moi-truong"
SECRET = "bí-mật-của-cổng-sms-0123456789"


# -- real servers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses RCPT for addresses in `refuse`.
    `settings` are the engine's settings for sending to it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.messages: list = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 không có hộp thư này / no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


def start_smtp(port: int) -> tuple[Controller, Mailbox]:
    box = Mailbox(smtp_settings(port))
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, box


@pytest.fixture
def smtp():
    """A real SMTP server on a free local port; yields its mailbox (with the settings to use)."""
    controller, box = start_smtp(free_port())
    yield box
    controller.stop()


def smtp_settings(port: int, **more) -> Settings:
    """Settings whose e-mail channel is the SMTP server at this local port."""
    return Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="ioc@binhduong.gov.vn",
                    notify_timeout_s=5, **more)


@pytest.fixture(autouse=True)
def _no_outside_smtp(monkeypatch):
    # The machine's own environment must not switch e-mail on for these tests.
    for name in ("IOC_SMTP_HOST", "IOC_SMTP_PORT", "IOC_SMTP_FROM", "IOC_SMTP_USER",
                 "IOC_SMTP_PASSWORD", "IOC_SMTP_STARTTLS", "IOC_NOTIFY_MAX_ATTEMPTS",
                 "IOC_NOTIFY_RETRY_BASE_S", "IOC_NOTIFY_RETRY_FACTOR"):
        monkeypatch.delenv(name, raising=False)


class Receiver:
    """A real HTTP server in a thread; answers each POST with the next scripted status (200)."""

    def __init__(self):
        self.requests: list[tuple] = []  # (headers as received, raw body)
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.headers, raw))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write("lỗi máy chủ / server error".encode() if status >= 400 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ioc/hook?k=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Shut down and close the port: later connections are refused."""
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


# -- helpers --------------------------------------------------------------------------------------

def person(db, username: str, role: str, department: str, email: str | None = None) -> int:
    with db.session() as s:
        user, _ = auth.create_user(s, username, role, department, full_name="Nguyễn Văn Sơn")
        user.email = email
        return user.id


def send(db, **kwargs) -> Notification:
    fields = {"kind": "sla.escalate", "subject": "[100%] Quá hạn: «Tiếp nhận phản ánh» – 1022-7",
              "text": "Tiếp nhận phản ánh: đã dùng 8 giờ làm việc (100%).\n"
                      "Acknowledge the ticket: 8 working hours used (100%).",
              "actor": "sla", "email": False} | kwargs
    with db.session() as s:
        return notify.send(s, **fields)


def rows(db, channel: str | None = None) -> list[Notification]:
    with db.read() as s:
        query = select(Notification).order_by(Notification.id)
        if channel:
            query = query.where(Notification.channel == channel)
        return list(s.scalars(query))


def attempts_audited(db, notification_id: int) -> list[tuple[str, int, bool | None]]:
    with db.read() as s:
        found = s.scalars(select(AuditRecord).where(
            AuditRecord.subject_type == "notification",
            AuditRecord.subject_id == str(notification_id),
            AuditRecord.action.in_(("notification.sent", "notification.failed")))
            .order_by(AuditRecord.seq))
        return [(r.action, r.details["attempt"], r.details.get("final")) for r in found]


# -- settings -------------------------------------------------------------------------------------

def test_smtp_is_off_unless_configured_and_half_configurations_are_refused():
    assert not Settings.from_env({}).smtp_enabled
    assert EMAIL not in build_channels(Settings())
    on = Settings.from_env({"IOC_SMTP_HOST": "mail.binhduong.gov.vn", "IOC_SMTP_PORT": "587",
                            "IOC_SMTP_FROM": "ioc@binhduong.gov.vn", "IOC_SMTP_USER": "ioc",
                            "IOC_SMTP_PASSWORD": "pw-secret", "IOC_SMTP_STARTTLS": "true",
                            "IOC_NOTIFY_MAX_ATTEMPTS": "3"})
    assert (on.smtp_enabled, on.smtp_port, on.smtp_starttls, on.notify_max_attempts) == \
        (True, 587, True, 3)
    assert "pw-secret" not in repr(on)
    assert EMAIL in build_channels(on)
    for env, named in [({"IOC_SMTP_HOST": "h"}, "IOC_SMTP_FROM"),
                       ({"IOC_SMTP_FROM": "a@b"}, "IOC_SMTP_HOST"),
                       ({"IOC_SMTP_HOST": "h", "IOC_SMTP_FROM": "a@b", "IOC_SMTP_USER": "u"},
                        "IOC_SMTP_PASSWORD"),
                       ({"IOC_SMTP_HOST": "h", "IOC_SMTP_FROM": "a@b",
                         "IOC_SMTP_STARTTLS": "maybe"}, "IOC_SMTP_STARTTLS"),
                       ({"IOC_NOTIFY_MAX_ATTEMPTS": "0"}, "IOC_NOTIFY_MAX_ATTEMPTS")]:
        with pytest.raises(ValueError, match=named):
            Settings.from_env(env)


# -- in-app and e-mail ----------------------------------------------------------------------------

def test_in_app_works_without_smtp_and_nothing_is_queued_for_email(ioc):
    head = person(ioc.db, "lanhdao.nnmt", "department_head", NNMT, "son@nnmt.gov.vn")
    row = send(ioc.db, department_key=NNMT, role="department_head")
    assert (row.channel, row.status) == (IN_APP, SENT)
    assert [r.channel for r in rows(ioc.db)] == [IN_APP]
    with ioc.db.read() as s:
        assert [n.id for n in notify.for_user(s, s.get(User, head))] == [row.id]
    assert Outbox(ioc.db, ManualClock(NOW), ioc.settings).run_once() == 0


def test_email_reaches_the_department_head_through_a_real_smtp_server(ioc, smtp):
    head = person(ioc.db, "lanhdao.nnmt", "department_head", NNMT, "son@nnmt.gov.vn")
    person(ioc.db, "canbo.nnmt", "civil_servant", NNMT, "ha@nnmt.gov.vn")  # not a head
    person(ioc.db, "lanhdao.xd", "department_head", "so-xay-dung", "tuan@xd.gov.vn")
    person(ioc.db, "lanhdao2.nnmt", "department_head", NNMT)  # no address: in-app only
    parent = send(ioc.db, department_key=NNMT, role="department_head", instance_id=7, email=True)
    [mail_row] = rows(ioc.db, EMAIL)
    assert (mail_row.user_id, mail_row.parent_id, mail_row.status, mail_row.address) == \
        (head, parent.id, PENDING, "son@nnmt.gov.vn")

    clock = ManualClock(NOW)
    outbox = Outbox(ioc.db, clock, smtp.settings)
    assert outbox.run_once() == 1
    [(to, mail)] = smtp.messages
    assert to == ["son@nnmt.gov.vn"]
    assert mail["Subject"] == "[IOC] [100%] Quá hạn: «Tiếp nhận phản ánh» – 1022-7"
    assert mail["From"] == "ioc@binhduong.gov.vn"
    assert mail["X-IOC-Notification"] == str(mail_row.id)
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    body = mail.get_content()
    assert "Tiếp nhận phản ánh: đã dùng 8 giờ làm việc" in body
    assert "Acknowledge the ticket: 8 working hours used" in body
    assert "Vụ việc / Case: #7" in body and "please do not reply" in body

    [sent] = rows(ioc.db, EMAIL)
    assert (sent.status, sent.attempts, sent.sent_at, sent.error) == (SENT, 1, NOW, None)
    assert attempts_audited(ioc.db, sent.id) == [("notification.sent", 1, None)]
    assert outbox.run_once() == 0  # nothing left
    with ioc.db.read() as s:
        assert audit.verify(s).ok


def overdue_ticket(ioc, source, settings: Settings | None = None) -> tuple[Drive, User]:
    """The engine (with these settings) after a hotline ticket nobody acknowledged for one
    working day: its SLA has escalated to NNMT's head, who has an e-mail address."""
    load_scenarios(ioc)
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0], settings)
    head = drive.user("lanhdao.nnmt", "department_head", NNMT)
    with drive.db.session() as s:
        s.get(User, head.id).email = "son@nnmt.gov.vn"
    drive.send("hotline.ticket.created", {
        "ticket_id": "1022-500", "category": "environment", "ward": "phuong-di-an",
        "description": "Khói bụi từ xưởng gỗ"}, subject="1022-500")
    drive.at(local("2026-03-03 09:00"))
    return drive, head


def test_sla_escalation_is_emailed_to_the_head_end_to_end(ioc, source, smtp):
    drive, head = overdue_ticket(ioc, source, smtp.settings)
    in_app, mail = ([n for n in drive.notifications("sla.escalate") if n.channel == c]
                    for c in (IN_APP, EMAIL))
    [escalation], [mail_row] = in_app, mail
    assert (mail_row.parent_id, mail_row.user_id) == (escalation.id, head.id)

    assert drive.ioc.outbox.run_once() == 1  # what the runner does after each pass
    [(to, mail)] = smtp.messages
    assert to == ["son@nnmt.gov.vn"]
    assert mail["Subject"].startswith("[IOC] [100%] Quá hạn: «Tiếp nhận phản ánh» – 1022-500")
    body = mail.get_content()
    assert "Tiếp nhận phản ánh: đã dùng 8 giờ làm việc trên thời hạn 8 giờ làm việc" in body
    assert "Acknowledge the ticket:" in body


def test_the_engine_follows_its_settings_not_the_environment(ioc, source, smtp, monkeypatch):
    # E-mail switched on in the environment only: an engine built from settings without it
    # (as every engine is built: Services(settings)) queues nothing for e-mail and sends nothing.
    port = smtp.settings.smtp_port
    monkeypatch.setenv("IOC_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IOC_SMTP_PORT", str(port))
    monkeypatch.setenv("IOC_SMTP_FROM", "ioc@binhduong.gov.vn")
    drive, _ = overdue_ticket(ioc, source)
    assert [n.channel for n in drive.notifications("sla.escalate")] == [IN_APP]
    assert drive.ioc.outbox.run_once() == 0
    assert smtp.messages == []


def test_smtp_server_down_is_retried_and_delivered_when_it_is_back(ioc):
    port = free_port()  # nothing listens here yet
    person(ioc.db, "a.nnmt", "civil_servant", NNMT, "a@nnmt.gov.vn")
    person(ioc.db, "b.nnmt", "civil_servant", NNMT, "b@nnmt.gov.vn")
    send(ioc.db, department_key=NNMT, email=True)
    first, second = rows(ioc.db, EMAIL)
    clock = ManualClock(NOW)
    outbox = Outbox(ioc.db, clock, smtp_settings(port))

    assert outbox.run_once() == 2
    for row in rows(ioc.db, EMAIL):
        assert (row.status, row.attempts) == (PENDING, 1)
        assert row.next_attempt_at == NOW + timedelta(minutes=1)
        assert f"smtp://127.0.0.1:{port}" in row.error
    # The server was tried once in that pass: the second message did not wait for it again.
    assert "not retried in this pass" in rows(ioc.db, EMAIL)[1].error

    controller, box = start_smtp(port)
    try:
        clock.advance(seconds=59)
        assert outbox.run_once() == 0  # not due yet
        clock.advance(seconds=1)
        assert outbox.run_once() == 2
    finally:
        controller.stop()
    assert sorted(to for to, _ in box.messages) == [["a@nnmt.gov.vn"], ["b@nnmt.gov.vn"]]
    assert [r.status for r in rows(ioc.db, EMAIL)] == [SENT, SENT]
    assert attempts_audited(ioc.db, first.id) == [("notification.failed", 1, False),
                                                  ("notification.sent", 2, None)]
    assert attempts_audited(ioc.db, second.id) == [("notification.failed", 1, False),
                                                   ("notification.sent", 2, None)]


def test_a_mailbox_the_server_refuses_for_good_fails_at_once(ioc, smtp):
    smtp.refuse.add("ghost@nnmt.gov.vn")
    person(ioc.db, "ghost.nnmt", "department_head", NNMT, "ghost@nnmt.gov.vn")
    send(ioc.db, department_key=NNMT, role="department_head", email=True)
    Outbox(ioc.db, ManualClock(NOW), smtp.settings).run_once()
    [row] = rows(ioc.db, EMAIL)
    assert (row.status, row.attempts) == (FAILED, 1)
    assert "550" in row.error
    assert attempts_audited(ioc.db, row.id) == [("notification.failed", 1, True)]


# -- webhooks -------------------------------------------------------------------------------------

def test_webhook_is_posted_signed_to_a_real_http_server(ioc, receiver):
    with ioc.db.session() as s:
        sub = notify.add_webhook(s, receiver.url, SECRET, department_key=NNMT).id
        notify.add_webhook(s, receiver.url + "&other", SECRET, department_key="so-xay-dung")
    send(ioc.db, department_key=NNMT, role="department_head", task_id=3)
    [row] = rows(ioc.db, WEBHOOK)
    assert (row.webhook_id, row.status) == (sub, PENDING)

    assert Outbox(ioc.db, ManualClock(NOW), ioc.settings).run_once() == 1
    [(headers, raw)] = receiver.requests
    assert {"X-IOC-Signature", "X-IOC-Delivery"} <= set(headers.keys())  # as documented
    assert headers["X-IOC-Signature"].startswith("sha256=")
    assert verify(SECRET, raw, headers["X-IOC-Signature"])
    assert not verify("another-secret-0123456789", raw, headers["X-IOC-Signature"])
    assert headers["X-IOC-Delivery"] == str(row.id)
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    doc = json.loads(raw.decode("utf-8"))
    assert doc["id"] == row.id and doc["kind"] == "sla.escalate" and doc["task_id"] == 3
    assert doc["subject"].startswith("[100%] Quá hạn")
    assert doc["recipient"] == {"user_id": None, "department": NNMT, "role": "department_head"}
    assert rows(ioc.db, WEBHOOK)[0].status == SENT
    assert attempts_audited(ioc.db, row.id) == [("notification.sent", 1, None)]


def test_webhook_subscriptions_match_department_and_role(ioc):
    officer = person(ioc.db, "canbo.nnmt", "civil_servant", NNMT)
    with ioc.db.session() as s:
        everything = notify.add_webhook(s, "https://sms.example.vn/all", SECRET).id
        heads = notify.add_webhook(s, "https://chat.example.vn/h", SECRET, department_key=NNMT,
                                   role="department_head").id
        officers = notify.add_webhook(s, "https://app.example.vn/o", SECRET,
                                      department_key=NNMT, role="civil_servant").id
        off = notify.add_webhook(s, "https://old.example.vn/", SECRET, department_key=NNMT).id
        notify.deactivate_webhook(s, off)

    def targets(**kwargs) -> list[int]:
        with ioc.db.session() as s:
            parent = notify.send(s, kind="k", subject="s", text="t", actor="test", email=False,
                                 **kwargs)
            return [n.webhook_id for n in s.scalars(select(Notification).where(
                Notification.parent_id == parent.id).order_by(Notification.id))]

    assert targets(department_key=NNMT) == [everything, heads, officers]  # the whole department
    assert targets(department_key=NNMT, role="department_head") == [everything, heads]
    assert targets(user_id=officer) == [everything, officers]
    assert targets(department_key="so-xay-dung") == [everything]


def test_failing_webhook_is_retried_with_backoff_then_failed(ioc, receiver):
    with ioc.db.session() as s:
        notify.add_webhook(s, receiver.url, SECRET, department_key=NNMT)
    send(ioc.db, department_key=NNMT)
    [row] = rows(ioc.db, WEBHOOK)
    clock = ManualClock(NOW)
    outbox = Outbox(ioc.db, clock, settings=Settings(notify_max_attempts=3))

    receiver.statuses = [500]
    assert outbox.run_once() == 1  # attempt 1: the receiver answers 500
    [after] = rows(ioc.db, WEBHOOK)
    assert (after.status, after.attempts) == (PENDING, 1)
    assert after.next_attempt_at == NOW + timedelta(minutes=1)
    assert "answered 500 Internal Server Error: lỗi máy chủ" in after.error

    receiver.stop()  # from now on: connection refused
    clock.advance(seconds=59)
    assert outbox.run_once() == 0
    clock.advance(seconds=1)
    assert outbox.run_once() == 1  # attempt 2: refused, next in 5 minutes
    [after] = rows(ioc.db, WEBHOOK)
    assert (after.status, after.attempts) == (PENDING, 2)
    assert after.next_attempt_at == clock.now() + timedelta(minutes=5)
    assert "refused" in after.error.lower()

    clock.advance(minutes=5)
    assert outbox.run_once() == 1  # attempt 3 of 3: failed for good
    [after] = rows(ioc.db, WEBHOOK)
    assert (after.status, after.attempts, after.next_attempt_at) == (FAILED, 3, None)
    clock.advance(hours=5)
    assert outbox.run_once() == 0
    assert len(receiver.requests) == 1
    assert attempts_audited(ioc.db, row.id) == [("notification.failed", 1, False),
                                                ("notification.failed", 2, False),
                                                ("notification.failed", 3, True)]
    with ioc.db.read() as s:
        retry = s.scalars(select(AuditRecord).where(
            AuditRecord.action == "notification.failed").order_by(AuditRecord.seq)).first()
        assert retry.details["retry_at"].startswith("2026-03-02 02:01:00")
        assert audit.verify(s).ok


def test_a_subscription_disabled_after_queueing_is_not_posted(ioc, receiver):
    with ioc.db.session() as s:
        sub = notify.add_webhook(s, receiver.url, SECRET, department_key=NNMT).id
    send(ioc.db, department_key=NNMT)
    with ioc.db.session() as s:
        notify.deactivate_webhook(s, sub)
    Outbox(ioc.db, ManualClock(NOW), ioc.settings).run_once()
    [row] = rows(ioc.db, WEBHOOK)
    assert row.status == FAILED and "no longer active" in row.error
    assert receiver.requests == []


def test_webhook_subscriptions_are_checked(ioc):
    with ioc.db.session() as s:
        departments = {NNMT}
        for url, secret, dept, role, field in [
                ("ftp://x.vn/h", SECRET, None, None, "url"),
                ("https:///nohost", SECRET, None, None, "url"),
                ("https://x.vn/h", "short", None, None, "secret"),
                ("https://x.vn/h", SECRET, "so-khong-co", None, "department"),
                ("https://x.vn/h", SECRET, NNMT, "boss", "role")]:
            with pytest.raises(notify.WebhookInvalid) as info:
                notify.add_webhook(s, url, secret, department_key=dept, role=role,
                                   departments=departments)
            assert info.value.field == field


def test_cli_webhook_add_and_list(ioc, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    ok = runner.invoke(main, ["notify", "webhook", "add", "https://sms.example.vn/ioc",
                              "--secret", SECRET, "--department", NNMT,
                              "--role", "department_head"])
    assert ok.exit_code == 0, ok.output
    # Ids come from the database (PostgreSQL sequences are not reset between tests).
    webhook_id = re.match(r"webhook (\d+): https://sms\.example\.vn/ioc ", ok.output).group(1)
    bad_scheme = runner.invoke(main, ["notify", "webhook", "add", "ftp://x.vn/", "--secret",
                                      SECRET])
    assert bad_scheme.exit_code == 1 and "http:// or https://" in bad_scheme.output
    bad_dept = runner.invoke(main, ["notify", "webhook", "add", "https://x.vn/", "--secret",
                                    SECRET, "--department", "so-khong-co"])
    assert bad_dept.exit_code == 1 and "--department" in bad_dept.output
    listed = runner.invoke(main, ["notify", "webhook", "list"])
    assert listed.exit_code == 0
    assert NNMT in listed.output and "department_head" in listed.output
    assert "https://sms.example.vn/ioc" in listed.output and SECRET not in listed.output
    assert runner.invoke(main, ["notify", "webhook", "disable", webhook_id]).exit_code == 0
    assert "inactive" in runner.invoke(main, ["notify", "webhook", "list"]).output


# -- SLA level texts ------------------------------------------------------------------------------

LEVEL_TEXT = """\
slas:
  - key: acknowledge
    name: {vi: Tiếp nhận phản ánh, en: Acknowledge}
    measures: instance
    target: 4h
    levels:
      - {at: 50%, notify: department}
      - at: 100%
        escalate: head
        text:
          vi: "{name} – {subject}: quá hạn ({percent}, {used}/{target}, hạn {due})"
          en: "{name} – {subject}: overdue"
"""


def test_level_text_templates_parse_and_render():
    [sla] = parse_slas(LEVEL_TEXT, "sla.yaml")
    assert sla.levels[0].text is None
    text = sla.levels[1].text
    assert set(text) == {"vi", "en"}
    assert render_text(text["vi"], {"name": "Tiếp nhận", "subject": "1022-7", "percent": "100%",
                                    "used": "4.0 giờ", "target": "4.0 giờ",
                                    "due": "13:00 02/03/2026"}) == \
        "Tiếp nhận – 1022-7: quá hạn (100%, 4.0 giờ/4.0 giờ, hạn 13:00 02/03/2026)"


@pytest.mark.parametrize("text, line, message", [
    ('{vi: "Quá hạn {deadline}"}', 10, "unknown placeholder {deadline}"),
    ('{vi: "ok {name}", en: "{name.__class__}"}', 10, "unknown placeholder {name.__class__}"),
    ('{vi: "Quá hạn {percent:>9}"}', 10, "write the placeholder plainly"),
    ('{vi: "Quá hạn {name"}', 10, "without its pair"),
    ('{en: "only English"}', 10, "vi is required"),
    ('{vi: "ok", fr: "non"}', 10, "unknown language 'fr'"),
])
def test_a_bad_level_text_is_refused_with_its_line(text, line, message):
    bad = LEVEL_TEXT.replace(
        '        text:\n          vi: "{name} – {subject}: quá hạn ({percent}, {used}/{target}, '
        'hạn {due})"\n          en: "{name} – {subject}: overdue"\n', f"        text: {text}\n")
    assert bad != LEVEL_TEXT
    with pytest.raises(ScenarioInvalid) as info:
        parse_slas(bad, "sla.yaml")
    [problem] = info.value.problems
    assert problem.line == line, problem
    assert message in problem.message
    assert str(problem).startswith(f"sla.yaml:{line}: slas[0].levels[1].text")


def test_a_bad_placeholder_in_a_multiline_text_names_its_own_line():
    bad = LEVEL_TEXT.replace('en: "{name} – {subject}: overdue"', 'en: "{name}: {late}"')
    with pytest.raises(ScenarioInvalid) as info:
        parse_slas(bad, "sla.yaml")
    [problem] = info.value.problems
    assert (problem.line, problem.path) == (12, "slas[0].levels[1].text.en")
    assert "unknown placeholder {late}; known: {name}, {subject}, {percent}" in problem.message


def test_scenario_level_text_is_what_people_receive(ioc, source, tmp_path):
    folder = tmp_path / "hotline-ticket"
    shutil.copytree(Path(SCENARIOS) / "hotline-ticket", folder)
    sla = folder / "sla.yaml"
    original = sla.read_text(encoding="utf-8")
    [level] = [line for line in original.splitlines()
               if line.startswith("      - {at: 100%, escalate: head}")][:1]
    sla.write_text(original.replace(level, textwrap.indent(textwrap.dedent("""\
        - at: 100%
          escalate: head
          text:
            vi: "Phản ánh {subject} chưa được tiếp nhận: {used} / {target} ({percent}), hạn {due}."
            en: "Ticket {subject} not acknowledged: {used} of {target} ({percent}), due {due}."
        """), "      ").rstrip("\n"), 1), encoding="utf-8")
    load_scenarios(ioc, str(tmp_path))
    drive = Drive(ioc.db, ioc.vocabulary, local("2026-03-02 09:00"), source[0])
    drive.send("hotline.ticket.created", {
        "ticket_id": "1022-501", "category": "environment", "ward": "phuong-di-an",
        "description": "Nước thải"}, subject="1022-501")
    drive.at(local("2026-03-03 09:00"))
    [escalation] = drive.notifications("sla.escalate")  # no e-mail configured: in-app only
    assert escalation.text == (
        "Phản ánh 1022-501 chưa được tiếp nhận: 8 giờ làm việc / 8 giờ làm việc (100%), "
        "hạn 09:00 03/03/2026.\n"
        "Ticket 1022-501 not acknowledged: 8 working hours of 8 working hours (100%), "
        "due 09:00 03/03/2026.")
    assert escalation.subject.startswith("[100%] Quá hạn")
