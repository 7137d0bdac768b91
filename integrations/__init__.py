"""Source adapters: each turns one system's native input into events for the event store.

One module per source (its own protocol, its own errors); `intake` is what they share: the
source's credentials, CloudEvents building, storing and the answer. The app factory registers
every adapter that serves HTTP (`register`).
"""
from __future__ import annotations

import importlib

# Modules with a Flask blueprint `bp` (None when the adapter has no HTTP side).
ADAPTERS = ("open311", "sensors", "cap", "cameras", "social", "security", "health", "dossiers")
# Where machines talk to the engine: errors there are problem+json, never HTML.
MACHINE_PREFIXES = ("/api/", "/open311/", "/integrations/")


def register(app, csrf) -> None:
    """Register each adapter's blueprint (token-authenticated, so exempt from CSRF)."""
    for name in ADAPTERS:
        module = importlib.import_module(f"integrations.{name}")
        bp = getattr(module, "bp", None)
        if bp is not None:
            app.register_blueprint(bp)
            csrf.exempt(bp)
