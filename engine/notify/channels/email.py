"""E-mail over SMTP: one plain-text UTF-8 message per notification and person.

The text is the notification's own (Vietnamese first, then its English line), followed by a
short bilingual footer. One SMTP conversation per message keeps failures separate: a refused
address fails only its own row.
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from engine.config import Settings
from engine.notify.channels import Address, DeliveryError, Message, Unreachable
from engine.notify.models import EMAIL

FOOTER = ("--\n"
          "Thông báo tự động của Trung tâm Giám sát, điều hành đô thị thông minh (IOC). "
          "Vui lòng không trả lời thư này; xem chi tiết trong ứng dụng IOC.\n"
          "Automatic notification from the Intelligent Operations Center; please do not reply, "
          "see the IOC web app for details.")


def compose(message: Message, sender: str, to: str) -> EmailMessage:
    """The e-mail for one message: subject, UTF-8 plain text, and headers that say it is automatic."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = f"[IOC] {message.subject}"
    mail["Date"] = format_datetime(message.created_at)
    # The same Message-ID on every attempt: a mail sent twice (its answer lost) reads as one.
    domain = sender.rpartition("@")[2] or "ioc.invalid"
    mail["Message-ID"] = f"<ioc.{message.id}.{int(message.created_at.timestamp())}@{domain}>"
    # Tells mail servers and out-of-office replies not to answer an automatic message (RFC 3834).
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-IOC-Notification"] = str(message.id)
    mail["X-IOC-Kind"] = message.kind
    about = [f"Mã thông báo / Notification: #{message.id}"]
    if message.instance_id is not None:
        about.append(f"Vụ việc / Case: #{message.instance_id}")
    if message.task_id is not None:
        about.append(f"Công việc / Task: #{message.task_id}")
    body = f"{message.text.strip()}\n\n{' · '.join(about)}\n\n{FOOTER}\n"
    mail.set_content(body, charset="utf-8")
    return mail


class EmailChannel:
    """Sends through one SMTP server (optionally STARTTLS and login)."""

    name = EMAIL

    def __init__(self, host: str, port: int, sender: str, *, user: str | None = None,
                 password: str | None = None, starttls: bool = False, timeout_s: float = 10.0):
        self.host, self.port, self.sender = host, port, sender
        self.user, self._password = user, password
        self.starttls, self.timeout_s = starttls, timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> "EmailChannel":
        """The channel for IOC_SMTP_*."""
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                   user=settings.smtp_user, password=settings.smtp_password,
                   starttls=settings.smtp_starttls, timeout_s=settings.notify_timeout_s)

    def route(self, address: Address) -> str:
        """Every e-mail goes through the one configured server."""
        return f"smtp://{self.host}:{self.port}"

    def deliver(self, message: Message, address: Address) -> None:
        """Hand the e-mail to the SMTP server; raise DeliveryError if it does not take it."""
        mail = compose(message, self.sender, address.value)
        where = self.route(address)
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unreachable(f"{where}: {_describe(exc)}") from exc
        try:
            try:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self._password or "")
                smtp.send_message(mail)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                # 5xx: the server will never take this address (unknown mailbox); 4xx: later.
                permanent = bool(codes) and all(500 <= code < 600 for code in codes)
                raise DeliveryError(f"{where}: recipient refused ({_codes(exc.recipients)})",
                                    permanent=permanent) from exc
            except TimeoutError as exc:  # a server that stops answering is gone for this pass
                raise Unreachable(f"{where}: no answer within {self.timeout_s:g} s") from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise DeliveryError(f"{where}: {_describe(exc)}") from exc
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass  # the server took the message; a lost goodbye changes nothing
        finally:
            smtp.close()

def _codes(recipients: dict) -> str:
    return "; ".join(f"{code} {_text(reply)}" for code, reply in recipients.values())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"
