"""Administration in the web app: people (role, unit, state, password, API token) and source
systems (event types, HMAC secret, rate limit, state, token). Every change goes through
engine/auth/service.py, which audits it; the views only map forms onto it."""
from __future__ import annotations

import functools

from flask import Blueprint, Flask, abort
from flask_login import current_user, login_required

from engine.auth.permissions import allowed

bp = Blueprint("admin", __name__, url_prefix="/admin")


def manage_required(permission: str):
    """Only signed-in people holding `permission` (users.manage, sources.manage) get through."""
    def decorate(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not allowed(current_user.role, permission):
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def register(app: Flask) -> None:
    """Attach the administration pages to the app."""
    from designer.admin import views  # noqa: F401 - routes on bp

    app.register_blueprint(bp)
