"""The key that signs web sessions and CSRF tokens: from IOC_SECRET_KEY, or generated once.

Anyone who knows the key can sign a session cookie for any user, an administrator included.
So a published value (the old development key, compose's `change-me`) or a short one refuses
to start; with no key configured, a random one is generated once and kept in a file readable
by its owner only, so the local demo needs no set-up and keeps its sessions across restarts.
"""
from __future__ import annotations

import logging
import secrets
from pathlib import Path

from engine import private_files
from engine.config import Settings

log = logging.getLogger(__name__)

MIN_LENGTH = 32
# Values that have been published with this project or are typical placeholders.
KNOWN_WEAK = frozenset({"dev-only-insecure-key", "change-me", "changeme", "change_me", "secret",
                        "bench-load", "development", "dev", "test", "ioc"})


class SecretKeyError(RuntimeError):
    """The configured secret key is unsafe; the message names IOC_SECRET_KEY and the fix."""


def weakness(key: str) -> str | None:
    """Why `key` is unsafe to sign sessions with, or None."""
    if key.strip().lower() in KNOWN_WEAK:
        return "is a published placeholder value"
    if len(key) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < 8:
        return "repeats too few characters to be random"
    return None


def resolve(settings: Settings) -> tuple[str, str]:
    """The key to use and where it came from; SecretKeyError when it is weak (unless allowed)."""
    if settings.secret_key:
        key, origin = settings.secret_key, "IOC_SECRET_KEY"
    else:
        path = settings.secret_key_path
        key, created = _read_or_create(path)
        origin = f"{'generated into' if created else 'read from'} {path}"
    problem = weakness(key)
    if problem and not settings.allow_weak_secret_key:
        raise SecretKeyError(
            f"IOC_SECRET_KEY ({origin}) {problem}: anyone could sign a session cookie. Set "
            f"IOC_SECRET_KEY to a random value of {MIN_LENGTH}+ characters (python -c 'import "
            "secrets; print(secrets.token_urlsafe(48))'), or unset it to use a generated key "
            "file; IOC_ALLOW_WEAK_SECRET_KEY=true allows it for development only")
    if problem:
        log.warning("secret key %s; weak key (%s) allowed by IOC_ALLOW_WEAK_SECRET_KEY: for "
                    "development only", origin, problem)
    elif settings.secret_key:
        log.info("secret key from IOC_SECRET_KEY")
    else:
        # Visible by default: several web servers must share one key (set IOC_SECRET_KEY).
        log.warning("secret key %s (IOC_SECRET_KEY is unset)", origin)
    return key, origin


def _read_or_create(path: Path) -> tuple[str, bool]:
    """The key in `path`, generating it first if the file is missing; (key, created)."""
    data, created = private_files.read_or_create(
        path, lambda: (secrets.token_urlsafe(48) + "\n").encode("utf-8"))
    return data.decode("utf-8").strip(), created
