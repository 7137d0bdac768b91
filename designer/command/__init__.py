"""Command support in the web app (chỉ huy, điều hành): the commander's board of suggestions
and playbook runs, the start form, dismissals. Every decision goes through
engine/playbooks/service.py, which validates and audits; the views only map forms onto it."""
from __future__ import annotations

import functools

from flask import Blueprint, Flask, abort
from flask_login import current_user, login_required

from engine.auth.permissions import allowed

bp = Blueprint("command", __name__, url_prefix="/command")


def commander_required(view):
    """Only signed-in people who may run playbooks get through."""
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not allowed(current_user.role, "playbooks.run"):
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def register(app: Flask) -> None:
    """Attach the command pages to the app."""
    from designer.command import views  # noqa: F401 - routes on bp

    app.register_blueprint(bp)
