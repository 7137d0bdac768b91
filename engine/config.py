"""Settings, read from IOC_* environment variables: explicit, and nothing else is required."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url


def _var_dir() -> Path:
    return Path(os.environ.get("IOC_VAR_DIR", "var")).resolve()


def _default_database_url() -> str:
    return f"sqlite:///{_var_dir() / 'ioc.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """What the engine needs to run; `from_env()` builds it from the environment."""

    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None
    # Signs web sessions and CSRF tokens. None: a random key generated once and kept in
    # `secret_key_path` (engine/auth/secret_key.py); weak values refuse to start.
    secret_key: str | None = field(default=None, repr=False)
    secret_key_file: str | None = None
    # Development only: start even with a weak IOC_SECRET_KEY (change-me, short…).
    allow_weak_secret_key: bool = False
    # Send the session cookie over HTTPS only; off for the local demo on plain http.
    cookie_secure: bool = False
    # Upper bound on one expression or script run in the restricted evaluator.
    script_timeout_s: float = 1.0
    # The child processes that run scenario code (engine/expressions/isolation.py): how many
    # at once, and how much memory each may allocate beyond its start.
    sandbox_processes: int = 4
    sandbox_memory_mb: int = 256
    # Working-time calendar folder (office hours, holidays per year); None: data/calendar.
    calendar_dir: str | None = None
    # E-mail notifications (SMTP). No host means the e-mail channel is off: nothing is queued
    # for e-mail and people are told in-app (and by webhooks) only.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # never in logs
    smtp_starttls: bool = False
    # The outbox: how often a failed e-mail or webhook is tried, and how long to wait between
    # tries (retry_base_s, then times retry_factor each time: 1 min, 5, 25, 125 by default).
    notify_max_attempts: int = 5
    notify_retry_base_s: float = 60.0
    notify_retry_factor: float = 5.0
    # Bound on one SMTP conversation or webhook POST; the outbox runs in the runner's thread.
    notify_timeout_s: float = 10.0
    # An event whose processing raises is tried again after retry_base_s, then times
    # retry_factor (2 s, 10 s); after max_attempts it is a dead letter (docs/operations.md).
    event_max_attempts: int = 3
    event_retry_base_s: float = 2.0
    event_retry_factor: float = 5.0
    # Redis mode: how long a worker's hold on a partition lasts without renewal (a killed
    # worker's partitions are free again after this), and the rq queue's name.
    partition_lock_s: float = 30.0
    queue_name: str = "ioc"
    # The audit log's signed checkpoints (engine/audit/checkpoints.py): the Ed25519 key that
    # signs them (a PEM file the database never holds; generated once when unset), the folder
    # they are published to (put it on other storage), and how often one is signed.
    audit_key_file: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_minutes: float = 10.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Read IOC_DATABASE_URL, IOC_REDIS_URL, IOC_SECRET_KEY(_FILE), IOC_ALLOW_WEAK_SECRET_KEY,
        IOC_COOKIE_SECURE, IOC_CALENDAR_DIR, IOC_SMTP_*, IOC_NOTIFY_*,
        IOC_EVENT_*, IOC_PARTITION_LOCK_S, IOC_SANDBOX_* and IOC_AUDIT_* (all optional)."""
        env = os.environ if environ is None else environ
        kwargs: dict = {}
        if env.get("IOC_DATABASE_URL"):
            kwargs["database_url"] = env["IOC_DATABASE_URL"]
        if env.get("IOC_REDIS_URL"):
            kwargs["redis_url"] = env["IOC_REDIS_URL"]
        if env.get("IOC_SECRET_KEY"):
            kwargs["secret_key"] = env["IOC_SECRET_KEY"]
        if env.get("IOC_SECRET_KEY_FILE"):
            kwargs["secret_key_file"] = env["IOC_SECRET_KEY_FILE"]
        for name, key in (("IOC_ALLOW_WEAK_SECRET_KEY", "allow_weak_secret_key"),
                          ("IOC_COOKIE_SECURE", "cookie_secure")):
            if env.get(name, "").strip():
                kwargs[key] = _flag(env, name)
        if env.get("IOC_CALENDAR_DIR"):
            kwargs["calendar_dir"] = env["IOC_CALENDAR_DIR"]
        if env.get("IOC_QUEUE"):
            kwargs["queue_name"] = env["IOC_QUEUE"]
        if env.get("IOC_AUDIT_KEY_FILE"):
            kwargs["audit_key_file"] = env["IOC_AUDIT_KEY_FILE"]
        if env.get("IOC_AUDIT_CHECKPOINT_DIR"):
            kwargs["checkpoint_dir"] = env["IOC_AUDIT_CHECKPOINT_DIR"]
        kwargs.update(_smtp_from_env(env))
        for name, key, kind, low in (
                ("IOC_NOTIFY_MAX_ATTEMPTS", "notify_max_attempts", int, 1),
                ("IOC_NOTIFY_RETRY_BASE_S", "notify_retry_base_s", float, 0),
                ("IOC_NOTIFY_RETRY_FACTOR", "notify_retry_factor", float, 1),
                ("IOC_NOTIFY_TIMEOUT_S", "notify_timeout_s", float, 0.1),
                ("IOC_EVENT_MAX_ATTEMPTS", "event_max_attempts", int, 1),
                ("IOC_EVENT_RETRY_BASE_S", "event_retry_base_s", float, 0),
                ("IOC_EVENT_RETRY_FACTOR", "event_retry_factor", float, 1),
                ("IOC_PARTITION_LOCK_S", "partition_lock_s", float, 1),
                ("IOC_SANDBOX_PROCESSES", "sandbox_processes", int, 1),
                ("IOC_SANDBOX_MEMORY_MB", "sandbox_memory_mb", int, 32),
                ("IOC_AUDIT_CHECKPOINT_MINUTES", "checkpoint_minutes", float, 0.1)):
            if env.get(name):
                kwargs[key] = _number(env, name, kind, low)
        return cls(**kwargs)

    @property
    def smtp_enabled(self) -> bool:
        """True when an SMTP server is configured (IOC_SMTP_HOST): e-mail notifications go out."""
        return bool(self.smtp_host)

    def _beside_database(self, name: str) -> Path:
        """`name` next to the SQLite database file, else in var/."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).resolve().parent / name
        return _var_dir() / name

    @property
    def secret_key_path(self) -> Path:
        """Where the generated secret key lives: IOC_SECRET_KEY_FILE, else next to the SQLite
        database file, else var/secret-key."""
        if self.secret_key_file:
            return Path(self.secret_key_file).resolve()
        return self._beside_database("secret-key")

    @property
    def audit_key_path(self) -> Path:
        """The audit signing key: IOC_AUDIT_KEY_FILE, else audit-signing-key.pem beside the
        SQLite database or in var/."""
        if self.audit_key_file:
            return Path(self.audit_key_file).resolve()
        return self._beside_database("audit-signing-key.pem")

    @property
    def checkpoint_path(self) -> Path:
        """Where checkpoints are published: IOC_AUDIT_CHECKPOINT_DIR, else checkpoints/ beside
        the SQLite database or in var/."""
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir).resolve()
        return self._beside_database("checkpoints")

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: everything runs in this process."""
        return not self.redis_url


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env, name: str) -> bool:
    flag = env[name].strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"{name} is true or false, not {env[name]!r}")
    return flag in _TRUE


def _number(env, name: str, kind: type, low: float):
    try:
        value = kind(env[name])
    except ValueError:
        raise ValueError(f"{name} must be a number, not {env[name]!r}") from None
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {env[name]!r}")
    return value


def _smtp_from_env(env) -> dict:
    # A half-configured mail server fails at start with the variable to fix, not at the first
    # escalation hours later.
    host = env.get("IOC_SMTP_HOST", "").strip()
    if not host:
        stray = [n for n in ("IOC_SMTP_FROM", "IOC_SMTP_USER", "IOC_SMTP_PASSWORD")
                 if env.get(n)]
        if stray:
            raise ValueError(f"{', '.join(stray)} given without IOC_SMTP_HOST; set the host, "
                             "or unset them (e-mail stays off)")
        return {}
    out: dict = {"smtp_host": host}
    if env.get("IOC_SMTP_PORT"):
        out["smtp_port"] = _number(env, "IOC_SMTP_PORT", int, 1)
        if out["smtp_port"] > 65535:
            raise ValueError(f"IOC_SMTP_PORT must be a port number, not {env['IOC_SMTP_PORT']!r}")
    sender = env.get("IOC_SMTP_FROM", "").strip()
    if "@" not in sender:
        raise ValueError("IOC_SMTP_FROM (the sender address, e.g. ioc@binhduong.gov.vn) is "
                         "required with IOC_SMTP_HOST")
    out["smtp_from"] = sender
    user, password = env.get("IOC_SMTP_USER"), env.get("IOC_SMTP_PASSWORD")
    if bool(user) != bool(password):
        raise ValueError("IOC_SMTP_USER and IOC_SMTP_PASSWORD go together")
    if user:
        out["smtp_user"], out["smtp_password"] = user, password
    flag = env.get("IOC_SMTP_STARTTLS", "").strip().lower()
    if flag:
        if flag not in _TRUE + _FALSE:
            raise ValueError(f"IOC_SMTP_STARTTLS is true or false, not {env['IOC_SMTP_STARTTLS']!r}")
        out["smtp_starttls"] = flag in _TRUE
    return out
