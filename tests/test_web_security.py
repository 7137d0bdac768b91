"""The web app's sessions and pages against an attacker: each finding of the security review.

Forged session cookies, cross-site requests to the API, the login's open redirect, password
guessing, sessions that outlived logout or deactivation, and the response headers.
"""
from __future__ import annotations

import json
import re
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select

from engine.app import CSRF_TIME_LIMIT_S, create_app
from engine.audit.models import AuditRecord
from engine.auth import logins, secret_key
from engine.auth import service as auth
from engine.clock import ManualClock
from engine.config import Settings
from engine.tasks.models import Task
from tests.conftest import on_clock
from tests.spine_helpers import auth as bearer
from tests.spine_helpers import dossier, send

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "password-123"
# The login throttle's clock: a fixed moment, whatever today is.
MOMENT = datetime(2026, 11, 27, 9, 0, tzinfo=timezone(timedelta(hours=7)))


@pytest.fixture
def clock():
    return ManualClock(MOMENT)


@pytest.fixture
def app(loaded, clock):
    """The app as `ioc serve` builds it with no IOC_SECRET_KEY, on a hand-driven clock."""
    return create_app(services=on_clock(loaded, clock))


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


def _login(client, username, password=PASSWORD, path="/login"):
    page = client.get(path)
    return client.post(path, data={"username": username, "password": password,
                                   "csrf_token": _csrf(page.get_data(as_text=True))})


def _logged_in(app, username):
    client = app.test_client()
    assert _login(client, username).status_code == 302
    return client


def _session_cookie(client) -> str:
    return client.get_cookie("session").value


def _with_cookie(app, value: str):
    client = app.test_client()
    client.set_cookie("session", value)
    return client


def _signed(key: str, payload: dict) -> str:
    """A session cookie as Flask signs it with `key` (what an attacker who knows it makes)."""
    forger = Flask("forger")
    forger.secret_key = key
    return SecureCookieSessionInterface().get_signing_serializer(forger).dumps(payload)


def _audit(db, *actions) -> list[AuditRecord]:
    with db.read() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.action.in_(actions))
                              .order_by(AuditRecord.seq)))


# -- 1. the secret key --------------------------------------------------------------------------

def test_a_cookie_signed_with_the_old_development_key_is_refused(app, people):
    admin_id = people["admin"][0]
    for user_id in (str(admin_id), f"{admin_id}:0"):  # the old and the new form of the id
        forged = _signed("dev-only-insecure-key", {"_user_id": user_id, "_fresh": True})
        resp = _with_cookie(app, forged).get("/inbox")
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], user_id
        api = _with_cookie(app, forged).get("/api/v1/tasks")
        assert api.status_code == 401
    # The same forgery with the key the app really uses would pass: it is the key that stops it.
    real = _signed(app.secret_key, {"_user_id": f"{admin_id}:0", "_fresh": True})
    assert _with_cookie(app, real).get("/inbox").status_code == 200


@pytest.mark.parametrize("weak", ["change-me", "dev-only-insecure-key", "short-but-not-placeholder",
                                  "a" * 40])
def test_the_app_refuses_to_start_with_a_weak_key(ioc, weak):
    settings = Settings(database_url=ioc.db.url, secret_key=weak)
    with pytest.raises(secret_key.SecretKeyError, match="IOC_SECRET_KEY"):
        create_app(settings, services=ioc)
    # Only an explicit development flag lets it start.
    allowed = Settings(database_url=ioc.db.url, secret_key=weak, allow_weak_secret_key=True)
    assert create_app(allowed, services=ioc).secret_key == weak


def test_the_development_flag_comes_from_the_environment(tmp_path):
    env = {"IOC_SECRET_KEY": "change-me", "IOC_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    assert Settings.from_env(env).allow_weak_secret_key is False
    assert Settings.from_env({**env, "IOC_ALLOW_WEAK_SECRET_KEY": "true"}).allow_weak_secret_key
    with pytest.raises(ValueError, match="IOC_ALLOW_WEAK_SECRET_KEY"):
        Settings.from_env({**env, "IOC_ALLOW_WEAK_SECRET_KEY": "perhaps"})
    assert repr(Settings.from_env(env)).count("change-me") == 0  # never in logs


def test_without_a_key_one_is_generated_once_and_kept(tmp_path, caplog):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ioc.sqlite3'}")
    assert settings.secret_key_path == tmp_path / "secret-key"  # next to the database
    with caplog.at_level("INFO", logger="engine.auth.secret_key"):
        key, origin = secret_key.resolve(settings)
    assert len(key) >= secret_key.MIN_LENGTH and secret_key.weakness(key) is None
    assert stat.S_IMODE((tmp_path / "secret-key").stat().st_mode) == 0o600
    assert "generated into" in origin and str(tmp_path / "secret-key") in caplog.text
    # A restart (or a second process) reads the same key: sessions survive.
    assert secret_key.resolve(settings) == (key, f"read from {tmp_path / 'secret-key'}")
    elsewhere = Settings(database_url=settings.database_url,
                         secret_key_file=str(tmp_path / "keys" / "web"))
    assert secret_key.resolve(elsewhere)[0] != key
    assert (tmp_path / "keys" / "web").exists()


def test_a_configured_key_is_used_and_said_so(ioc, caplog):
    strong = "k3y-" + "0123456789abcdefghijklmnopqrstuvwxyz"
    with caplog.at_level("INFO", logger="engine.auth.secret_key"):
        app = create_app(Settings(database_url=ioc.db.url, secret_key=strong), services=ioc)
    assert app.secret_key == strong
    assert "secret key from IOC_SECRET_KEY" in caplog.text and strong not in caplog.text


def test_compose_ships_no_usable_key():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        value = service.get("environment", {}).get("IOC_SECRET_KEY")
        if value is not None:  # compose stops with the message when the variable is unset
            assert value.startswith("${IOC_SECRET_KEY:?"), (name, value)
    assert compose["services"]["web"]["environment"]["IOC_SECRET_KEY"]


# -- 2. cross-site requests to the API ----------------------------------------------------------

@pytest.fixture
def task_id(app, loaded, source):
    client = app.test_client()
    send(client, source[1], dossier("dossier.supplement_requested", "H07.1"),
         dossier("dossier.supplement_requested", "H07.1"))
    loaded.pipeline.drain()
    with loaded.db.read() as s:
        return s.scalars(select(Task.id)).one()


def _claimed_by(db, task_id):
    with db.read() as s:
        return s.get(Task, task_id).assignee_id


def test_a_cookie_post_to_the_api_without_the_csrf_token_is_refused(app, people, task_id, loaded):
    officer = _logged_in(app, "phvhcc")
    # What a page on another site makes the browser send: the cookie, no token.
    resp = officer.post(f"/api/v1/tasks/{task_id}/claim",
                        headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    assert "X-CSRFToken" in resp.get_json()["detail"]
    wrong = officer.post(f"/api/v1/tasks/{task_id}/claim", headers={"X-CSRFToken": "forged"})
    assert wrong.status_code == 403
    assert _claimed_by(loaded.db, task_id) is None
    # Reading stays possible with the cookie (a browser never lets another site read it).
    assert officer.get(f"/api/v1/tasks/{task_id}").status_code == 200


def test_the_same_request_with_a_bearer_token_works(app, people, task_id, loaded):
    client = app.test_client()
    resp = client.post(f"/api/v1/tasks/{task_id}/claim", headers=bearer(people["phvhcc"][1]))
    assert resp.status_code == 200
    assert _claimed_by(loaded.db, task_id) == people["phvhcc"][0]


def test_our_own_pages_send_the_token_and_may_post(app, people, task_id, loaded):
    officer = _logged_in(app, "phvhcc")
    token = _csrf(officer.get("/inbox").get_data(as_text=True))
    claimed = officer.post(f"/api/v1/tasks/{task_id}/claim", headers={"X-CSRFToken": token})
    assert claimed.status_code == 200
    done = officer.post(f"/api/v1/tasks/{task_id}/complete", headers={"X-CSRFToken": token},
                        json={"data": {"finding": "unfounded", "verification_note": "ok"}})
    assert done.status_code == 200, done.get_json()


def test_a_text_plain_body_is_not_read_as_json(app, people, task_id):
    client = app.test_client()
    answer = json.dumps({"data": {"finding": "unfounded", "verification_note": "n"}})
    assert client.post(f"/api/v1/tasks/{task_id}/claim",
                       headers=bearer(people["phvhcc"][1])).status_code == 200
    for ctype in ("text/plain", "application/x-www-form-urlencoded", ""):
        resp = client.post(f"/api/v1/tasks/{task_id}/complete", data=answer, content_type=ctype,
                           headers=bearer(people["phvhcc"][1]))
        assert resp.status_code == 415, ctype
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["title"] == "Unsupported Media Type"
    ok = client.post(f"/api/v1/tasks/{task_id}/complete", data=answer,
                     content_type="application/json; charset=utf-8",
                     headers=bearer(people["phvhcc"][1]))
    assert ok.status_code == 200


# -- 3. the login's redirect --------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/\t/evil.example/", "//evil.example", "https://evil.example",
                                    "/\\evil.example", "\\\\evil.example", "/\n/evil.example",
                                    " //evil.example", "javascript:alert(1)", "///evil.example"])
def test_next_never_leaves_the_site(app, people, target):
    resp = _login(app.test_client(), "phvhcc", path=f"/login?next={quote(target, safe='')}")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/inbox"


def test_the_reported_redirect_stays_home(app, people):
    resp = _login(app.test_client(), "phvhcc", path="/login?next=/%09/evil.example/")
    assert resp.headers["Location"] == "/inbox"


def test_a_local_next_is_followed(app, people):
    resp = _login(app.test_client(), "phvhcc", path="/login?next=" + quote("/tasks/7?tab=a"))
    assert resp.headers["Location"] == "/tasks/7?tab=a"


# -- 4. password guessing -----------------------------------------------------------------------

def test_six_wrong_passwords_lock_the_name_until_the_window_passes(app, people, clock):
    client = app.test_client()
    codes = [_login(client, "phvhcc", "wrong-password").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    refused = _login(client, "phvhcc")
    assert refused.status_code == 429
    page = refused.get_data(as_text=True)
    assert "thử lại sau 15 phút" in page and "try again in 15 min" in page
    assert int(refused.headers["Retry-After"]) == 15 * 60
    clock.advance(minutes=14)
    assert _login(client, "phvhcc").status_code == 429
    clock.advance(minutes=1)
    assert _login(client, "phvhcc").status_code == 302
    # Success starts the count again.
    assert _login(app.test_client(), "phvhcc", "wrong-password").status_code == 401


def test_the_lock_holds_in_every_process(app, people, loaded, clock):
    for _ in range(5):
        _login(app.test_client(), "phvhcc", "wrong-password")
    # Another web process (its own app and services) on the same database.
    other = create_app(services=on_clock(loaded, clock))
    assert _login(other.test_client(), "phvhcc").status_code == 429
    # Other people are not locked out by one name's failures.
    assert _login(other.test_client(), "phvhcc2").status_code == 302


def test_many_names_from_one_address_are_throttled(app, people):
    client = app.test_client()
    for i in range(logins.MAX_PER_ADDRESS):
        assert _login(client, f"guess-{i}", "wrong-password").status_code == 401
    assert _login(client, "phvhcc").status_code == 429
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert _login(elsewhere, "phvhcc").status_code == 302


def test_an_unknown_name_costs_one_password_check_like_a_known_one(app, people, monkeypatch):
    checked = []
    real = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash",
                        lambda h, p: checked.append(h) or real(h, p))
    for name in ("phvhcc", "nobody-here"):
        checked.clear()
        assert _login(app.test_client(), name, "wrong-password").status_code == 401
        assert len(checked) == 1, name
    with app.extensions["ioc"].db.session() as s:
        auth.set_active(s, people["phvhcc2"][0], False, actor="test")
    checked.clear()
    assert _login(app.test_client(), "phvhcc2").status_code == 401
    assert len(checked) == 1


def test_logins_failures_and_logouts_are_audited(app, people, loaded):
    wrong = "a-secret-guess-42"
    _login(app.test_client(), "phvhcc", wrong)
    _login(app.test_client(), "no-such-user", wrong)
    client = _logged_in(app, "phvhcc")
    token = _csrf(client.get("/inbox").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    records = _audit(loaded.db, "auth.login", "auth.login_failed", "auth.logout")
    assert [(r.action, r.details.get("reason")) for r in records] == [
        ("auth.login_failed", "wrong_password"), ("auth.login_failed", "unknown_user"),
        ("auth.login", None), ("auth.logout", None)]
    assert records[0].subject_id == str(people["phvhcc"][0])
    assert records[1].details["username"] == "no-such-user"
    assert records[2].actor == records[3].actor == "user:phvhcc"
    assert all(wrong not in json.dumps(r.details) and PASSWORD not in json.dumps(r.details)
               for r in records)


# -- 5. sessions end on logout, new password and deactivation -----------------------------------

def test_a_cookie_saved_before_logout_no_longer_works(app, people):
    client = _logged_in(app, "phvhcc")
    saved = _session_cookie(client)
    assert _with_cookie(app, saved).get("/inbox").status_code == 200
    token = _csrf(client.get("/inbox").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token})
    replay = _with_cookie(app, saved)
    assert replay.get("/inbox").status_code == 302
    assert replay.get("/api/v1/tasks").status_code == 401
    # Logging in again gives a new session that works.
    assert _logged_in(app, "phvhcc").get("/inbox").status_code == 200


def test_a_deactivated_users_cookie_no_longer_works(app, people, loaded):
    client = _logged_in(app, "phvhcc")
    with loaded.db.session() as s:
        auth.set_active(s, people["phvhcc"][0], False, actor="test")
    assert client.get("/inbox").status_code == 302
    assert client.get("/api/v1/tasks").status_code == 401
    # Reactivated, the old cookie stays dead: the person logs in again.
    with loaded.db.session() as s:
        auth.set_active(s, people["phvhcc"][0], True, actor="test")
    assert client.get("/inbox").status_code == 302
    assert _logged_in(app, "phvhcc").get("/inbox").status_code == 200


def test_an_inactive_user_is_never_loaded_even_with_a_current_cookie(app, people, loaded):
    client = _logged_in(app, "phvhcc")
    with loaded.db.session() as s:  # deactivated behind the service's back: no version change
        s.get(auth.User, people["phvhcc"][0]).active = False
    assert client.get("/inbox").status_code == 302


def test_a_new_password_ends_the_sessions(app, people, loaded):
    client = _logged_in(app, "phvhcc")
    with loaded.db.session() as s:
        auth.set_password(s, people["phvhcc"][0], "another-password-9", actor="test")
    assert client.get("/inbox").status_code == 302
    assert _login(app.test_client(), "phvhcc", "another-password-9").status_code == 302
    assert [r.details for r in _audit(loaded.db, "user.password_changed")] == [
        {"username": "phvhcc"}]


# -- 6. cookies and headers ---------------------------------------------------------------------

def test_every_response_carries_the_security_headers(app, people):
    client = app.test_client()
    for path in ("/login", "/inbox", "/api/v1/tasks", "/healthz", "/no-such-page",
                 "/static/designer/ioc.css"):
        headers = client.get(path).headers
        csp = headers.get("Content-Security-Policy", "")
        for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'",
                          "script-src 'self'"):
            assert directive in csp, (path, directive)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path


def test_session_cookie_flags_and_csrf_lifetime(loaded, people):
    app = create_app(services=loaded)
    assert app.config["WTF_CSRF_TIME_LIMIT"] == CSRF_TIME_LIMIT_S == 8 * 3600
    cookie = _login(app.test_client(), "phvhcc").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = Settings(database_url=loaded.db.url, cookie_secure=True)
    app = create_app(secure, services=loaded)
    cookie = _login(app.test_client(), "phvhcc").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert Settings.from_env({"IOC_COOKIE_SECURE": "true"}).cookie_secure is True
    assert Settings.from_env({}).cookie_secure is False


def test_the_designer_runs_under_the_content_security_policy(server, loaded, people, page):
    """bpmn-js draws, and confirmations still ask, with no script the policy blocks."""
    from engine.scenarios import drafts
    from engine.scenarios.models import ScenarioVersion
    from tests.browser import log_in

    blocked = []
    page.on("console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text))
    with loaded.db.session() as s:
        version = s.scalars(select(ScenarioVersion).order_by(ScenarioVersion.id)).first()
        draft_id = drafts.from_version(s, version, actor="test").id
        viewer = f"/designer/scenarios/{version.key}/versions/{version.version}"
    log_in(page, server, "inspector")
    page.goto(server + viewer)
    page.wait_for_selector("svg .djs-element")
    page.goto(f"{server}/designer/drafts/{draft_id}/rules")
    page.goto(f"{server}/designer/drafts/{draft_id}")
    page.wait_for_selector("body[data-editor-ready=true]")
    # The discard form asks first (no inline onsubmit: the policy would skip the question).
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#discard")
    page.wait_for_timeout(300)
    assert asked == ["Hủy bản nháp này? / Discard this draft?"]
    assert page.url.endswith(f"/designer/drafts/{draft_id}")
    assert blocked == []
