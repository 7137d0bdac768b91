"""Scenario folders: validation with file and line, versions, the `ioc scenarios` commands."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.app import create_app
from engine.scenarios import service
from engine.scenarios.models import ScenarioVersion
from engine.scenarios.problems import ScenarioInvalid
from tests.conftest import SCENARIOS, load_scenarios
from tests.spine_helpers import auth, complete, send, tasks_of, ticket


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(Path(SCENARIOS) / name, target)
    return target


def _check(ioc, folder: Path):
    from engine.org import service as org

    with ioc.db.session() as s:
        departments = org.known_keys(s)
    return service.check_folder(folder, ioc.vocabulary, departments)


def test_the_shipped_scenarios_are_valid(ioc):
    versions = load_scenarios(ioc)
    assert sorted(v.key for v in versions) == ["air-quality", "audit-finding", "cyber-incident",
                                                "dossier-overdue",
                                                "dossier-step-held", "dossier-violations",
                                                "epidemic-cluster", "flood-storm", "hot-topic",
                                                "hotline-ticket", "public-order-gathering"]


def test_every_problem_is_reported_with_file_and_line(ioc, tmp_path):
    folder = _copy(tmp_path, "dossier-violations")
    manifest = folder / "scenario.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8")
                        .replace("owner: trung-tam-phvhcc", "owner: so-khong-co")
                        .replace("severity: medium", "severity: urgent"), encoding="utf-8")
    bpmn = folder / "process.bpmn"
    bpmn.write_text(bpmn.read_text(encoding="utf-8")
                    .replace('name="trung-tam-phvhcc"', 'name="phong-khong-co"')
                    .replace('finding == "confirmed"', '__import__("os").system("id")')
                    .replace('outcome = "remedied"', 'import os'), encoding="utf-8")
    rules = folder / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("reason: {empty: true}",
                                                                 "reasons: {empty: true}"),
                     encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as err:
        _check(ioc, folder)
    problems = err.value.problems
    text = "\n".join(str(p) for p in problems)
    assert len(problems) >= 6, text
    by_file = {}
    for p in problems:
        by_file.setdefault(Path(p.file).name, []).append(p)
    assert {p.path for p in by_file["scenario.yaml"]} == {"owner", "severity"}
    lines = manifest.read_text(encoding="utf-8").splitlines()
    for p in by_file["scenario.yaml"]:
        assert lines[p.line - 1].startswith(p.path), p
    bpmn_lines = bpmn.read_text(encoding="utf-8").splitlines()
    bpmn_paths = {p.path: p for p in by_file["process.bpmn"]}
    assert {"lane_center", "confirmed_flow", "close_remedied"} <= set(bpmn_paths)
    assert 'id="lane_center"' in bpmn_lines[bpmn_paths["lane_center"].line - 1]
    assert "reasons" in str(by_file["rules.yaml"][0])
    assert by_file["rules.yaml"][0].line is not None


def test_not_xml_is_reported_with_its_line(ioc, tmp_path):
    folder = _copy(tmp_path, "hotline-ticket")
    (folder / "process.bpmn").write_text(
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">\n<oops',
        encoding="utf-8")
    with pytest.raises(ScenarioInvalid) as err:
        _check(ioc, folder)
    [problem] = err.value.problems
    assert problem.file.endswith("process.bpmn") and problem.line == 2


def test_a_new_version_leaves_running_instances_on_the_old_one(ioc, source, people, tmp_path):
    [v1] = [v for v in load_scenarios(ioc) if v.key == "hotline-ticket"]
    client = create_app(services=ioc).test_client()
    tok = people["nnmt"][1]
    send(client, source[1], ticket("1022-v1"))
    ioc.pipeline.drain()

    folder = _copy(tmp_path, "hotline-ticket")
    manifest = folder / "scenario.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("version: 2", "version: 3"),
                        encoding="utf-8")
    bpmn = folder / "process.bpmn"
    bpmn.write_text(bpmn.read_text(encoding="utf-8").replace(
        "Trả lời phản ánh / Answer the citizen", "Trả lời công dân (v2)"), encoding="utf-8")
    scenario = _check(ioc, folder)
    with ioc.db.session() as s:
        v2, created = service.publish(s, scenario, actor="test")
    assert created
    with ioc.db.session() as s:
        assert s.get(ScenarioVersion, v1.id).status == "retired"
        same, created_again = service.publish(s, scenario, actor="test")
        assert (same.id, created_again) == (v2.id, False)

    send(client, source[1], ticket("1022-v2"))
    ioc.pipeline.drain()
    tasks = {t["context"]["ticket_id"]: t for t in tasks_of(client, tok, status="open")}
    assert tasks["1022-v1"]["name"] == "Trả lời phản ánh / Answer the citizen"
    assert tasks["1022-v2"]["name"] == "Trả lời công dân (v2)"
    # The old instance still runs to its end on version 1.
    assert complete(client, tok, tasks["1022-v1"]["id"], {"answer": "ok"}).status_code == 200
    insts = {i["subject"]: i for i in client.get(
        "/api/v1/instances", headers=auth(people["admin"][1])).get_json()}
    assert insts["1022-v1"]["scenario_version_id"] == v1.id
    assert insts["1022-v1"]["status"] == "completed"
    assert insts["1022-v2"]["scenario_version_id"] == v2.id
    # Only one instance per ticket: the retired version's rules no longer match.
    assert len(insts) == 2

    bpmn.write_text(bpmn.read_text(encoding="utf-8").replace("(v2)", "(v2 bis)"),
                    encoding="utf-8")
    changed = _check(ioc, folder)
    with pytest.raises(ScenarioInvalid, match="raise the version"):
        with ioc.db.session() as s:
            service.publish(s, changed, actor="test")


def test_cli_validate_and_load(ioc, tmp_path, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    runner = CliRunner()
    ok = runner.invoke(main, ["scenarios", "validate", SCENARIOS])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("ok ") == len(service.folders(SCENARIOS)) == 11

    bad = _copy(tmp_path, "hotline-ticket")
    (bad / "rules.yaml").write_text("rules:\n  - key: Bad Key\n", encoding="utf-8")
    result = runner.invoke(main, ["scenarios", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad / 'rules.yaml'}:2" in result.output

    loaded = runner.invoke(main, ["scenarios", "load", SCENARIOS])
    assert loaded.exit_code == 0, loaded.output
    assert "published" in loaded.output
    again = runner.invoke(main, ["scenarios", "load", SCENARIOS])
    assert again.output.count("unchanged") == 11


def test_a_pattern_that_crashed_the_rule_engine_is_refused_in_this_process(ioc, tmp_path,
                                                                            monkeypatch):
    """`"a?" × 127` in `matches:` segfaulted durable-rules while `ioc scenarios validate` (and
    the web's designer) checked it: exit 139, the server dead. Now it is refused by name, in the
    very process that checks it (this test's own: a crash would end the test run)."""
    from engine.cli import main

    monkeypatch.setenv("IOC_DATABASE_URL", ioc.db.url)
    bad = _copy(tmp_path, "hotline-ticket")
    rules = (bad / "rules.yaml").read_text(encoding="utf-8")
    pattern = "a?" * 127
    (bad / "rules.yaml").write_text(rules.replace(
        "      event: hotline.ticket.created\n",
        f'      event: hotline.ticket.created\n      where: {{ward: {{matches: "{pattern}"}}}}\n',
        1),
        encoding="utf-8")
    assert pattern in (bad / "rules.yaml").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["scenarios", "validate", str(bad)])
    assert result.exit_code == 1, result.output
    assert "the pattern is 254 characters long; at most 200" in result.output
