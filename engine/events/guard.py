"""What a source's request must pass before its events are read: signature and rate limit.

A source may have an HMAC secret: the request then carries `X-IOC-Signature: sha256=<hex>`, the
HMAC-SHA256 of the exact body bytes, so a leaked token alone cannot send events. A source may
have a rate limit: requests over it in a sliding minute get 429 with Retry-After. In Redis mode
the window is kept in Redis (`SharedRateLimiter`), so every web process counts the same requests
(two gunicorn workers do not double a limit); embedded, the one process keeps it (`RateLimiter`).
"""
from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
import uuid
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


def _over(source: Source, retry_after: int) -> GuardError:
    """The 429 of a source over its rate limit, to try again after `retry_after` seconds."""
    return GuardError(429, f"source {source.name} may send {source.rate_limit_per_minute} "
                           "requests a minute", retry_after=retry_after)


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
                raise _over(source, max(1, int(seen[0] + WINDOW_S - now) + 1))
            seen.append(now)


# One sliding window per source in a sorted set of request times (Redis's own clock, so web
# processes on several machines agree), counted and added atomically.
_WINDOW_SCRIPT = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - t)
end
redis.call('ZADD', KEYS[1], t, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(window))
return ''
"""


class SharedRateLimiter:
    """The same sliding windows, kept in Redis for every web process."""

    def __init__(self, redis, prefix: str = "ioc:rate:"):
        self._script = redis.register_script(_WINDOW_SCRIPT)
        self._prefix = prefix

    def check(self, source: Source) -> None:
        """Count this request; GuardError 429 if the source is over its limit."""
        limit = source.rate_limit_per_minute
        if not limit:
            return
        wait = self._script(keys=[f"{self._prefix}{source.id}"],
                            args=[WINDOW_S, limit, uuid.uuid4().hex])
        if wait:
            raise _over(source, max(1, math.ceil(float(wait))))
