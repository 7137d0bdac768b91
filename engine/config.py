"""Settings, read from IOC_* environment variables: explicit, and nothing else is required."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_database_url() -> str:
    var = Path(os.environ.get("IOC_VAR_DIR", "var")).resolve()
    return f"sqlite:///{var / 'ioc.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    """What the engine needs to run; `from_env()` builds it from the environment."""

    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None
    secret_key: str = "dev-only-insecure-key"
    # Upper bound on one expression or script run in the restricted evaluator.
    script_timeout_s: float = 1.0
    # How far back the rule engine replays the event store on start to rebuild open correlations.
    rule_replay_days: int = 30
    # Working-time calendar folder (office hours, holidays per year); None: data/calendar.
    calendar_dir: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        """Read IOC_DATABASE_URL, IOC_REDIS_URL, IOC_SECRET_KEY, IOC_RULE_REPLAY_DAYS and
        IOC_CALENDAR_DIR (all optional)."""
        env = os.environ if environ is None else environ
        kwargs: dict = {}
        if env.get("IOC_DATABASE_URL"):
            kwargs["database_url"] = env["IOC_DATABASE_URL"]
        if env.get("IOC_REDIS_URL"):
            kwargs["redis_url"] = env["IOC_REDIS_URL"]
        if env.get("IOC_SECRET_KEY"):
            kwargs["secret_key"] = env["IOC_SECRET_KEY"]
        if env.get("IOC_RULE_REPLAY_DAYS"):
            kwargs["rule_replay_days"] = int(env["IOC_RULE_REPLAY_DAYS"])
        if env.get("IOC_CALENDAR_DIR"):
            kwargs["calendar_dir"] = env["IOC_CALENDAR_DIR"]
        return cls(**kwargs)

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: everything runs in this process."""
        return not self.redis_url
