"""Bad input gets 4xx naming what is wrong, never a 500 (the security review's 68 requests, by
kind): NUL characters in any string that reaches the database, years 1 and 9999, JSON nested
100,000 deep, NaN and lone surrogates, path ids past a database integer, a 200,000-term
expression, a malformed DMN file in a draft, and the CLI before `ioc db upgrade`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.app import create_app
from engine.cli import main
from tests.conftest import SCENARIOS
from tests.spine_helpers import auth


@pytest.fixture
def client(loaded):
    return create_app(services=loaded).test_client()


def _event(**fields) -> dict:
    data = {"ticket_id": "1022-1", "category": "environment", "ward": "phuong-di-an",
            "description": "Khói", **fields.pop("data", {})}
    return {"specversion": "1.0", "id": fields.pop("id", "bad-1"), "source": "/test/1022",
            "type": "hotline.ticket.created", "data": data, **fields}


def _problem(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    return resp.get_json()


@pytest.mark.parametrize("body, says", [
    (json.dumps(_event(data={"description": "a\x00b"})), "$.data.description: contains a NUL"),
    (json.dumps(_event(id="a\x00")), "$.id: contains a NUL"),
    (json.dumps({**_event(), "k\x00": 1}), "a key contains a NUL"),
    ('{"specversion": "1.0", "id": "s", "data": {"description": "\\ud800"}}', "lone surrogate"),
    ('{"specversion": "1.0", "id": "n", "data": {"level": NaN}}', "$.data.level: NaN is not"),
    ('{"specversion": "1.0", "id": "i", "data": {"level": -Infinity}}', "-Infinity"),
    ("[" * 100_000 + "]" * 100_000, "nested more than 64 levels"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nested more than 64 levels"),
])
def test_event_bodies_that_cannot_be_stored_are_400_naming_the_place(client, source, body, says):
    resp = client.post("/api/v1/events", data=body, headers=auth(source[1]),
                       content_type="application/cloudevents+json")
    assert says in _problem(resp, 400)["detail"]


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-07:00"])
def test_event_times_outside_the_years_the_engine_keeps_are_422(client, source, time):
    resp = client.post("/api/v1/events", json=_event(time=time), headers=auth(source[1]),
                       content_type="application/cloudevents+json")
    body = _problem(resp, 422)
    assert "1900–2199" in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize("path", [
    "/api/v1/events?type=a%00b", "/api/v1/violations?scenario=a%00",
    "/api/v1/instances?scenario=%00", "/api/v1/sla?department=%00",
    "/api/v1/tasks?assignee=%00", "/api/v1/tasks?department=%00",
    "/api/v1/scenarios/a%00/versions", "/open311/v2/services/%00.json",
    "/open311/v2/requests.json?service_request_id=%00",
])
def test_nul_in_a_parameter_or_path_is_400(client, people, path):
    assert "NUL" in _problem(client.get(path, headers=auth(people["admin"][1])), 400)["detail"]


def test_nul_in_a_form_field_is_400(client, source):
    resp = client.post("/open311/v2/requests.json", headers=auth(source[1]), data={
        "service_code": "environment", "description": "x\x00", "lat": "10.9", "long": "106.7"})
    assert "'description' contains a NUL" in _problem(resp, 400)["detail"]


@pytest.mark.parametrize("path", ["/api/v1/instances/99999999999", "/api/v1/tasks/3000000000",
                                  "/api/v1/scenarios/x/versions/99999999999",
                                  "/api/v1/process-incidents/2147483648"])
def test_ids_past_a_database_integer_are_not_found(client, people, path):
    _problem(client.get(path, headers=auth(people["admin"][1])), 404)


@pytest.mark.parametrize("query", ["since=0001-01-01", "until=9999-12-31",
                                   "since=0001-01-01T00:00:00%2B07:00"])
def test_dates_outside_the_years_the_engine_keeps_are_400(client, people, query):
    resp = client.get(f"/api/v1/sla?{query}", headers=auth(people["admin"][1]))
    assert "1900–2199" in _problem(resp, 400)["detail"]


def _draft(client, people) -> tuple[int, dict]:
    import yaml

    version = yaml.safe_load(open(f"{SCENARIOS}/hotline-ticket/scenario.yaml"))["version"]
    headers = auth(people["inspector"][1])
    resp = client.post("/api/v1/scenarios/drafts",
                       json={"from": {"key": "hotline-ticket", "version": version}},
                       headers=headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"], headers


def _put(client, draft: int, headers: dict, name: str, text: str):
    etag = client.get(f"/api/v1/scenarios/drafts/{draft}", headers=headers).headers["ETag"]
    return client.put(f"/api/v1/scenarios/drafts/{draft}/files/{name}", data=text.encode(),
                      headers={**headers, "If-Match": etag}, content_type="text/plain")


@pytest.mark.parametrize("dmn, says", [
    ("not xml", "the file is not well-formed XML (Start tag expected"),
    ("<x/>", "the file is not DMN (its root is x)"),
])
def test_a_malformed_dmn_file_is_a_problem_and_the_draft_still_opens(client, people, dmn, says):
    draft, headers = _draft(client, people)
    assert _put(client, draft, headers, "routing.dmn", dmn).status_code == 200
    assert client.get(f"/api/v1/scenarios/drafts/{draft}", headers=headers).status_code == 200
    resp = client.get(f"/api/v1/scenarios/drafts/{draft}/problems", headers=headers)
    assert resp.status_code == 200
    problems = resp.get_json()["problems"]
    assert any(p["file"] == "routing.dmn" and says in p["message"] for p in problems), problems


def test_a_draft_file_with_a_nul_is_refused_with_its_line(client, people):
    draft, headers = _draft(client, people)
    resp = _put(client, draft, headers, "rules.yaml", "rules:\n  - key: a\x00\n")
    body = resp.get_json()
    assert resp.status_code == 422 and "NUL character (line 2)" in json.dumps(body), body


def test_a_200000_term_expression_is_refused_not_crashed():
    from engine.expressions import ExpressionError, check_expression

    with pytest.raises(ExpressionError, match="too long"):
        check_expression("1" + "+1" * 200_000)


def test_the_cli_before_the_schema_exists_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    done = CliRunner().invoke(main, ["scenarios", "validate", f"{SCENARIOS}/hot-topic"])
    assert done.exit_code == 1
    assert "ioc db upgrade" in done.output and "Traceback" not in done.output


def test_the_cli_names_the_file_and_line_of_a_nul_and_a_malformed_dmn(ioc, tmp_path,
                                                                      monkeypatch):
    import shutil

    folder = tmp_path / "hotline-ticket"
    shutil.copytree(f"{SCENARIOS}/hotline-ticket", folder)
    (folder / "routing.dmn").write_text("not xml", encoding="utf-8")
    with open(folder / "rules.yaml", "a", encoding="utf-8") as rules:
        rules.write("  - key: a\x00\n")
    line = (folder / "rules.yaml").read_text(encoding="utf-8").count("\n")
    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    done = CliRunner().invoke(main, ["scenarios", "validate", str(folder)])
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert f"rules.yaml:{line}: YAML: ký tự không được phép / character #x0000" in done.output
    assert "routing.dmn:1: Tệp không phải XML hợp lệ / the file is not well-formed XML" \
        in done.output
