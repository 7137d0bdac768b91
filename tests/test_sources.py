"""Each source's own guard (token, HMAC signature, rate limit) and what administrators see of it."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from engine.app import create_app
from engine.auth import service as auth
from engine.cli import main
from engine.events.guard import SIGNATURE_HEADER, sign
from tests.spine_helpers import SINGLE, ticket
from tests.spine_helpers import auth as bearer

SECRET = "bi-mat-chia-se-1022-tong-dai"


@pytest.fixture
def client(ioc):
    app = create_app(services=ioc)
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    return app.test_client()


def _source(ioc, name, **kwargs):
    with ioc.db.session() as s:
        source, token = auth.create_source(s, name, **kwargs)
    return source.id, token


def _post(client, token, event, headers=None):
    body = json.dumps(event).encode()
    return client.post("/api/v1/events", data=body, content_type=SINGLE,
                       headers={**bearer(token), **(headers or {})}), body


def test_a_signing_source_needs_the_hmac_of_the_exact_body(ioc, client):
    _, token = _source(ioc, "tong-dai-ky", hmac_secret=SECRET)
    resp, _ = _post(client, token, ticket("1022-S1"))
    assert resp.status_code == 401 and SIGNATURE_HEADER in resp.get_json()["detail"]
    body = json.dumps(ticket("1022-S2")).encode()
    tampered = client.post("/api/v1/events", data=body.replace(b"phuong-di-an", b"phuong-an-phu"),
                           content_type=SINGLE,
                           headers={**bearer(token), SIGNATURE_HEADER: sign(SECRET, body)})
    assert tampered.status_code == 401 and "does not match" in tampered.get_json()["detail"]
    good = client.post("/api/v1/events", data=body, content_type=SINGLE,
                       headers={**bearer(token), SIGNATURE_HEADER: sign(SECRET, body)})
    assert good.status_code == 202, good.get_json()


def test_a_rate_limited_source_gets_429_with_retry_after(ioc, client):
    _, token = _source(ioc, "camera-gioi-han", rate_limit_per_minute=2)
    assert _post(client, token, ticket("1022-R1"))[0].status_code == 202
    assert _post(client, token, ticket("1022-R2"))[0].status_code == 202
    third, _ = _post(client, token, ticket("1022-R3"))
    assert third.status_code == 429
    assert third.mimetype == "application/problem+json"
    assert 1 <= int(third.headers["Retry-After"]) <= 61
    # Another source is not held back by this one's limit.
    _, other = _source(ioc, "nguon-khac")
    assert _post(client, other, ticket("1022-R4"))[0].status_code == 202


def test_administrators_see_counts_and_last_errors_per_source(ioc, client, people):
    _, token = _source(ioc, "mot-cua-thu")
    once = ticket("1022-C1")
    _post(client, token, once)
    _post(client, token, once)  # a duplicate
    bad = dict(ticket("1022-C2"))
    bad["data"] = {**bad["data"], "ward": "quan-9"}
    assert _post(client, token, bad)[0].status_code == 422
    resp = client.get("/api/v1/sources", headers=bearer(people["admin"][1]))
    assert resp.status_code == 200
    [row] = [r for r in resp.get_json() if r["name"] == "mot-cua-thu"]
    assert (row["accepted"], row["duplicates"], row["refused"]) == (1, 1, 1)
    assert row["last_event_at"] is not None and "token" not in json.dumps(row)
    [error] = row["last_errors"]
    assert error["id"] == bad["id"] and error["errors"][0]["field"] == "data.ward"
    # Only administrators see sources.
    assert client.get("/api/v1/sources", headers=bearer(people["inspector"][1])).status_code == 403

    client.post("/login", data={"username": "admin", "password": "password-123"})
    page = client.get("/sources").get_data(as_text=True)
    assert "mot-cua-thu" in page and "data.ward" in page


def test_cli_adds_a_signed_rate_limited_source(ioc, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    out = runner.invoke(main, ["sources", "add", "canh-bao-thu", "--types", "emergency.alert",
                               "--hmac-secret", SECRET, "--rate-limit", "30"])
    assert out.exit_code == 0, out.output
    token = re.search(r"API token \(shown once\): (\S+)", out.output).group(1)
    with ioc.db.read() as s:
        source = auth.source_by_token(s, token)
    assert (source.hmac_secret, source.rate_limit_per_minute) == (SECRET, 30)
    short = runner.invoke(main, ["sources", "add", "ngan", "--hmac-secret", "short"])
    assert short.exit_code != 0 and "16 characters" in short.output
