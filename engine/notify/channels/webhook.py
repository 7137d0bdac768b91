"""Webhooks: POST one JSON document per notification to a subscribed URL, signed with its secret.

For SMS gateways, chat apps and the citizens' super-app: the receiver checks
`X-IOC-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>` and may use
`X-IOC-Delivery` (the same on every retry of one notification) to drop duplicates, since a
message whose answer was lost is sent again. Any 2xx answer is delivery; redirects are not
followed (a POST turned into a GET elsewhere would look delivered and is not).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
from urllib.parse import urlsplit

from engine.notify.channels import Address, DeliveryError, Message, Unreachable
from engine.notify.models import WEBHOOK

SIGNATURE_HEADER, DELIVERY_HEADER = "X-IOC-Signature", "X-IOC-Delivery"
USER_AGENT = "ioc-engine-webhook/1"


def body(message: Message) -> bytes:
    """The JSON document for one message, as UTF-8 bytes (what the signature covers)."""
    doc = {"id": message.id, "kind": message.kind, "subject": message.subject,
           "text": message.text,
           "recipient": {"user_id": message.user_id, "department": message.department_key,
                         "role": message.role},
           "instance_id": message.instance_id, "task_id": message.task_id,
           "created_at": message.created_at.isoformat(), "attempt": message.attempt}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, payload: bytes) -> str:
    """The X-IOC-Signature value: "sha256=" and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()


def verify(secret: str, payload: bytes, signature: str) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return hmac.compare_digest(sign(secret, payload), signature or "")


class WebhookChannel:
    """POSTs signed JSON; 2xx is delivered, anything else raises."""

    name = WEBHOOK

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s

    def route(self, address: Address) -> str:
        """The web server (scheme, host and port) the URL points at."""
        parts = urlsplit(address.value)
        return f"{parts.scheme}://{parts.netloc}"

    def deliver(self, message: Message, address: Address) -> None:
        """POST the message to the URL; raise DeliveryError unless it answers 2xx."""
        if not address.secret:
            raise DeliveryError("the subscription has no secret to sign with", permanent=True)
        parts = urlsplit(address.value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(f"not an http(s) URL: {parts.scheme}://{parts.netloc}",
                                permanent=True)
        payload = body(message)
        # http.client rather than urllib: headers keep the case receivers are told about
        # (urllib sends "X-ioc-signature"), and redirects are not followed.
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   SIGNATURE_HEADER: sign(address.secret, payload),
                   DELIVERY_HEADER: str(message.id), "X-IOC-Event": message.kind}
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        where = self.route(address)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=self.timeout_s,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout_s)
        try:
            try:
                conn.connect()
            except OSError as exc:  # refused, timed out, unknown name, TLS handshake
                raise Unreachable(f"{where}: {type(exc).__name__}: {exc}") from exc
            try:
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                status, reason = response.status, response.reason
                # The start of the answer tells the operator why (a wrong secret, a bad field).
                answer = response.read(300).decode("utf-8", "replace").strip()
            except TimeoutError as exc:  # a server that hangs is as good as gone for this pass
                raise Unreachable(f"{where}: no answer within {self.timeout_s:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        if not 200 <= status < 300:
            raise DeliveryError(f"{where} answered {status} {reason}"
                                + (f": {answer}" if answer else ""))


