"""The Flask application factory: JSON API, web app, and (embedded mode) the pipeline thread."""
from __future__ import annotations

import logging

from flask import Flask, request
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

import integrations
from engine import api, inputs, ops
from engine.auth import secret_key
from engine.auth import service as auth
from engine.config import Settings
from engine.events.guard import RateLimiter, SharedRateLimiter
from engine.services import Services

log = logging.getLogger(__name__)


def _register_api(app: Flask) -> None:
    # Each domain adds its routes to the one API blueprint when its views module is imported.
    from engine.audit import views as _audit  # noqa: F401
    from engine.events import views as _events  # noqa: F401
    from engine.incidents import views as _incidents  # noqa: F401
    from engine.notify import views as _notify  # noqa: F401
    from engine.playbooks import views as _playbooks  # noqa: F401
    from engine.processes import views as _processes  # noqa: F401
    from engine.scenarios import views as _scenarios  # noqa: F401
    from engine.sla import views as _sla  # noqa: F401
    from engine.tasks import views as _tasks  # noqa: F401
    from engine.violations import views as _violations  # noqa: F401
    from engine.warnings import views as _warnings  # noqa: F401

    app.register_blueprint(api.bp)
    app.register_blueprint(_warnings.public)  # the public feed: no login, GET only


# A leaked CSRF token is good for one working day at most; a page left open longer is reloaded.
CSRF_TIME_LIMIT_S = 8 * 3600
# Scripts only from this site (the designer's bpmn-js is served from it; its JSON config blocks
# are data, not scripts). bpmn-js sets inline styles on the diagram, hence 'unsafe-inline' for
# styles only; its icons and fonts may come as data: URLs.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:", "font-src 'self' data:", "connect-src 'self'", "object-src 'none'",
    "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"))
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY"}


def _security_headers(response):
    """Every response, pages, API and errors alike, carries the security headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               start_runner: bool = False) -> Flask:
    """Build the app; `start_runner` starts the embedded pipeline thread (for `ioc serve`)."""
    settings = settings or (services.settings if services else Settings.from_env())
    key, _ = secret_key.resolve(settings)  # refuses a weak key before anything starts
    app = Flask(__name__)
    app.config.update(SECRET_KEY=key, MAX_CONTENT_LENGTH=5 * 1024 * 1024,
                      WTF_CSRF_TIME_LIMIT=CSRF_TIME_LIMIT_S, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.cookie_secure,
                      REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax",
                      REMEMBER_COOKIE_SECURE=settings.cookie_secure)
    ioc = services or Services(settings)
    app.extensions["ioc"] = ioc
    # Request windows per source: in Redis when configured, so all web processes share them.
    app.extensions["ioc.limiter"] = SharedRateLimiter(ioc.redis) if ioc.redis else RateLimiter()

    inputs.install(app)  # before the routes: their <int:…> ids use its converter
    _register_api(app)
    csrf = CSRFProtect(app)
    # Exempt from the blanket check because bearer tokens need none; api.require_user checks
    # the token itself when a request comes with the web session cookie instead.
    csrf.exempt(api.bp)
    app.register_error_handler(api.ApiProblem, api.answer_problem)
    integrations.register(app, csrf)

    from designer import admin, command, i18n
    from designer import scenarios as designer
    from designer.web import LOGIN_NEEDED, error_page
    from designer.web import bp as web_bp

    login = LoginManager(app)
    login.login_view = "web.login"
    login.login_message = LOGIN_NEEDED

    @login.user_loader
    def _load_user(session_user_id: str):
        with ioc.db.lookup() as s:
            return auth.user_for_session(s, session_user_id)

    i18n.install(app)
    app.register_blueprint(web_bp)
    designer.register(app)
    admin.register(app)
    command.register(app)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith(integrations.MACHINE_PREFIXES):
            return api.handle_http_error(exc)
        if exc.code is None or exc.code < 400:
            return exc  # a redirect (a missing slash) goes on as it is
        return error_page(exc.code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        if request.path.startswith(integrations.MACHINE_PREFIXES):
            return api.problem(500, "Internal Server Error",
                               "an unexpected error occurred; it was logged")
        return error_page(500)

    ops.register(app)  # /healthz, /readyz, /metrics (docs/operations.md)
    app.after_request(_security_headers)

    if start_runner:
        ioc.start_runner()
    return app
