"""The JSON API's plumbing: the blueprint, RFC 9457 problem+json errors, bearer-token auth."""
from __future__ import annotations

import functools
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Callable

import yaml
from flask import Blueprint, current_app, g, jsonify, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.auth import service as auth
from engine.auth.permissions import allowed
from engine.events import guard
from engine.events.vocabulary import EARLIEST_YEAR, LATEST_YEAR, parse_datetime

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PROBLEM_TYPE = "https://ioc.example/problems/"
OPENAPI = Path(__file__).with_name("openapi.yaml")


class ApiProblem(Exception):
    """Raised by views to answer with a problem+json body."""

    def __init__(self, status: int, title: str, detail: str = "", errors: list | None = None,
                 **extra):
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.extra = errors or [], extra
        super().__init__(detail or title)


def problem(status: int, title: str, detail: str = "", errors: list | None = None, **extra):
    """An RFC 9457 problem details response."""
    body = {"type": PROBLEM_TYPE + title.lower().replace(" ", "-"), "title": title,
            "status": status, "detail": detail or title,
            # A refused path may hold a NUL: never echo one back.
            "instance": request.path.replace("\x00", "\N{REPLACEMENT CHARACTER}")}
    if errors:
        body["errors"] = errors
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    return resp


def answer_problem(exc: ApiProblem):
    """An ApiProblem raised anywhere (API or adapters) as its problem+json response."""
    resp = problem(exc.status, exc.title, exc.detail, exc.errors, **exc.extra)
    if exc.extra.get("retry_after"):
        resp.headers["Retry-After"] = str(exc.extra["retry_after"])
    return resp


bp.register_error_handler(ApiProblem, answer_problem)


def handle_http_error(exc: HTTPException):
    """Any HTTP error under /api becomes problem+json (404s, 405s, bad JSON…)."""
    return problem(exc.code or 500, exc.name, exc.description or "")


def services():
    """The running app's services (database, vocabulary, pipeline…)."""
    return current_app.extensions["ioc"]


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "Unauthorized", "send 'Authorization: Bearer <API token>'")
    return token.strip()


def require_user(permission: str) -> Callable:
    """A view decorator: a user's API token (or web session) with `permission`; sets g.user."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            from flask_login import current_user

            if request.headers.get("Authorization"):
                token = _bearer()
                with services().db.lookup() as s:
                    user = auth.user_by_token(s, token)
                if user is None:
                    raise ApiProblem(401, "Unauthorized", "unknown or disabled user API token")
            elif current_user.is_authenticated:
                _check_csrf()
                user = current_user._get_current_object()
            else:
                raise ApiProblem(401, "Unauthorized", "send 'Authorization: Bearer <API token>'")
            if not allowed(user.role, permission):
                raise ApiProblem(403, "Forbidden", f"a {user.role} may not {permission}")
            g.user = user
            return view(*args, **kwargs)
        return wrapper
    return decorate


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _check_csrf() -> None:
    # A browser sends the session cookie with any request, even one a page on another site
    # makes; only our own pages know the CSRF token (header X-CSRFToken). Bearer tokens are
    # never sent by a browser on its own, so they need no such check.
    if request.method in SAFE_METHODS:
        return
    try:
        current_app.extensions["csrf"].protect()
    except CSRFError as exc:
        raise ApiProblem(403, "Forbidden", f"a request with the web session cookie needs the "
                         f"page's CSRF token in the X-CSRFToken header ({exc.description})",
                         [{"field": "X-CSRFToken", "message": exc.description}]) from None


def require_source(view):
    """A view decorator: a source's API token, its signature and rate limit; sets g.source."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = _bearer()
        with services().db.lookup() as s:
            source = auth.source_by_token(s, token)
        if source is None:
            raise ApiProblem(401, "Unauthorized", "unknown or disabled source API token")
        try:
            guard.check_signature(source, request.get_data(cache=True),
                                  request.headers.get(guard.SIGNATURE_HEADER))
            current_app.extensions["ioc.limiter"].check(source)
        except guard.GuardError as exc:
            title = "Too Many Requests" if exc.status == 429 else "Unauthorized"
            extra = {"retry_after": exc.retry_after} if exc.retry_after else {}
            raise ApiProblem(exc.status, title, exc.message, **extra) from None
        g.source = source
        return view(*args, **kwargs)
    return wrapper


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """A bounded integer query parameter; 400 problem naming it when bad."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiProblem(400, "Bad Request", f"{name} must be a whole number",
                         [{"field": name, "message": "must be a whole number"}]) from None
    if not lo <= value <= hi:
        raise ApiProblem(400, "Bad Request", f"{name} must be between {lo} and {hi}",
                         [{"field": name, "message": f"must be between {lo} and {hi}"}])
    return value


def moment_arg(name: str, default: datetime, tz: tzinfo) -> datetime:
    """A date (YYYY-MM-DD, midnight in `tz`) or aware ISO 8601 date-time query parameter."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = datetime.combine(date.fromisoformat(raw), time(), tz) if len(raw) == 10 \
            else parse_datetime(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ApiProblem(400, "Bad Request", f"{name} must be a date (YYYY-MM-DD) or a date-time "
                         f"with a UTC offset, in the years {EARLIEST_YEAR}–{LATEST_YEAR}",
                         [{"field": name, "message": "not a date"}])
    return value


def is_json(mimetype: str | None) -> bool:
    """True for application/json and its +json kinds (application/cloudevents+json…)."""
    kind = (mimetype or "").lower()
    return kind == "application/json" or (kind.startswith("application/")
                                          and kind.endswith("+json"))


def json_body() -> object:
    """The request's JSON body; 415 problem when it is not sent as JSON, 400 when malformed."""
    # A text/plain or form body is what a page on another site can send without asking first
    # (no CORS preflight): never read one as JSON.
    if not is_json(request.mimetype):
        raise ApiProblem(415, "Unsupported Media Type",
                         f"send the body as application/json, not {request.mimetype or 'nothing'}",
                         [{"field": "Content-Type", "message": "must be application/json"}])
    return parsed_body()


def parsed_body() -> object:
    """The request's body parsed as JSON (engine/inputs.py's rules); 400 saying what is wrong."""
    try:
        return current_app.json.loads(request.get_data())
    except ValueError as exc:  # bad JSON, bad UTF-8, or what engine/inputs.py refuses
        raise ApiProblem(400, "Bad Request", f"the body is not valid JSON: {exc}",
                         [{"field": "body", "message": "not valid JSON"}]) from None


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    """The OpenAPI description of this API and the adapters' (engine/openapi.yaml)."""
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document, for clients and fuzzers; no token needed."""
    return jsonify(openapi_document())
