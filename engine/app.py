"""The Flask application factory: JSON API, web app, and (embedded mode) the pipeline thread."""
from __future__ import annotations

import logging

from flask import Flask, request
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

import integrations
from engine import api, ops
from engine.auth.models import User
from engine.config import Settings
from engine.events.guard import RateLimiter
from engine.services import Services

log = logging.getLogger(__name__)


def _register_api(app: Flask) -> None:
    # Each domain adds its routes to the one API blueprint when its views module is imported.
    from engine.audit import views as _audit  # noqa: F401
    from engine.events import views as _events  # noqa: F401
    from engine.incidents import views as _incidents  # noqa: F401
    from engine.notify import views as _notify  # noqa: F401
    from engine.processes import views as _processes  # noqa: F401
    from engine.scenarios import views as _scenarios  # noqa: F401
    from engine.sla import views as _sla  # noqa: F401
    from engine.tasks import views as _tasks  # noqa: F401
    from engine.violations import views as _violations  # noqa: F401

    app.register_blueprint(api.bp)


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               start_runner: bool = False) -> Flask:
    """Build the app; `start_runner` starts the embedded pipeline thread (for `ioc serve`)."""
    settings = settings or (services.settings if services else Settings.from_env())
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key, MAX_CONTENT_LENGTH=5 * 1024 * 1024,
                      WTF_CSRF_TIME_LIMIT=None, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    ioc = services or Services(settings)
    app.extensions["ioc"] = ioc
    # Request windows per source, for this process's rate limits.
    app.extensions["ioc.limiter"] = RateLimiter()

    _register_api(app)
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # the API authenticates with bearer tokens, not cookies
    app.register_error_handler(api.ApiProblem, api.answer_problem)
    integrations.register(app, csrf)

    login = LoginManager(app)
    login.login_view = "web.login"
    login.login_message = "Vui lòng đăng nhập / Please log in."

    @login.user_loader
    def _load_user(user_id: str):
        with ioc.db.lookup() as s:
            return s.get(User, int(user_id)) if user_id.isdigit() else None

    from designer import scenarios as designer
    from designer.web import bp as web_bp

    app.register_blueprint(web_bp)
    designer.register(app)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith(integrations.MACHINE_PREFIXES):
            return api.handle_http_error(exc)
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        if request.path.startswith(integrations.MACHINE_PREFIXES):
            return api.problem(500, "Internal Server Error",
                               "an unexpected error occurred; it was logged")
        return "Lỗi hệ thống / Internal error", 500

    ops.register(app)  # /healthz, /readyz, /metrics (docs/operations.md)

    if start_runner:
        ioc.start_runner()
    return app
