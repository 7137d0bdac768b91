"""What a source's request must pass before its events are read: signature and rate limit.

A source may have an HMAC secret: the request then carries `X-IOC-Signature: sha256=<hex>`, the
HMAC-SHA256 of the exact body bytes, so a leaked token alone cannot send events. A source may
have a rate limit: requests over it in a sliding minute get 429 with Retry-After. The window is
kept per process (each web process limits on its own).
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import defaultdict, deque

from engine.events.models import Source

SIGNATURE_HEADER = "X-IOC-Signature"
WINDOW_S = 60.0


class GuardError(Exception):
    """A request refused by a source's guard; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        self.status, self.message, self.retry_after = status, message, retry_after
        super().__init__(message)


def sign(secret: str, body: bytes) -> str:
    """The signature header value a source sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(source: Source, body: bytes, header: str | None) -> None:
    """Refuse (401) a request of a signing source whose body does not carry its signature."""
    if not source.hmac_secret:
        return
    if not header:
        raise GuardError(401, f"source {source.name} signs its requests: send {SIGNATURE_HEADER}:"
                              " sha256=<HMAC-SHA256 of the body>")
    if not hmac.compare_digest(header.strip(), sign(source.hmac_secret, body)):
        raise GuardError(401, f"{SIGNATURE_HEADER} does not match the body")


class RateLimiter:
    """Sliding one-minute windows of request times, per source."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._seen: dict[int, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, source: Source) -> None:
        """Count this request; GuardError 429 if the source is over its limit."""
        limit = source.rate_limit_per_minute
        if not limit:
            return
        now = self._clock()
        with self._lock:
            seen = self._seen[source.id]
            while seen and seen[0] <= now - WINDOW_S:
                seen.popleft()
            if len(seen) >= limit:
                retry = max(1, int(seen[0] + WINDOW_S - now) + 1)
                raise GuardError(429, f"source {source.name} may send {limit} requests a minute",
                                 retry_after=retry)
            seen.append(now)
