"""Read a scenario folder, check everything in it, and publish it as a new version.

A folder holds `scenario.yaml` (the manifest), `rules.yaml` (detection rules), one BPMN process
and optional DMN tables. Every problem in every file is reported at once, with file and line.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.audit import service as audit
from engine.events.vocabulary import Vocabulary
from engine.playbooks import definitions as playbooks
from engine.processes import spiff
from engine.rules.compiler import compile_ruleset
from engine.rules.format import RuleSet, parse_rules
from engine.scenarios.bpmn_checks import check_bpmn
from engine.scenarios.dmn_checks import check_decision_refs, check_dmn
from engine.scenarios.models import PUBLISHED, RETIRED, ScenarioVersion
from engine.scenarios.names import check_names, decision_outputs, start_data
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import load_yaml
from engine.sla.definitions import SLA_FILE, parse_slas
from engine.xmlsafe import parse

MANIFEST = "scenario.yaml"
SEVERITIES = ("low", "medium", "high", "critical")
KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MANIFEST_KEYS = {"key", "version", "name", "owner", "severity", "process", "process_id", "rules",
                 "sla", "description", "kind", "playbook"}
SOURCE_SUFFIXES = (".yaml", ".yml", ".bpmn", ".dmn", ".md")
MAX_FILE_BYTES = 1_000_000


@dataclass
class Scenario:
    """A checked scenario folder, ready to be stored as a version."""

    manifest: dict
    files: dict[str, str]
    rules_data: dict
    ruleset: RuleSet
    process_id: str
    spec: dict

    @property
    def key(self) -> str:
        """The scenario's stable key."""
        return self.manifest["key"]

    @property
    def content_hash(self) -> str:
        """A hash of every file, to recognise a reload of the same content."""
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return digest.hexdigest()


def read_folder(folder: str | Path) -> dict[str, str]:
    """The scenario's source files by name (UTF-8 text); raises ScenarioInvalid if unreadable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScenarioInvalid([Problem(str(folder), "is not a scenario folder")])
    files, problems = {}, []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in SOURCE_SUFFIXES:
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(Problem(str(path), f"larger than {MAX_FILE_BYTES} bytes"))
            continue
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(str(path), f"is not UTF-8 text ({exc.reason})"))
    if problems:
        raise ScenarioInvalid(problems)
    return files


def _check_manifest(data, locator, filename: str, departments: set[str]) -> list[Problem]:
    out: list[Problem] = []

    def bad(path: tuple, message: str) -> None:
        out.append(Problem(filename, message, locator.line(path),
                           ".".join(str(p) for p in path)))

    if not isinstance(data, dict):
        return [Problem(filename, "the manifest must be a mapping of fields", 1)]
    for name in data:
        if name not in MANIFEST_KEYS:
            bad((name,), f"unknown field (known: {', '.join(sorted(MANIFEST_KEYS))})")
    for name in ("key", "version", "name", "owner", "severity"):
        if name not in data:
            out.append(Problem(filename, f"{name} is required", 1, name))
    if "key" in data and not (isinstance(data["key"], str) and KEY.match(data["key"])):
        bad(("key",), "must be lower-case words joined by '-', e.g. dossier-overdue")
    if "version" in data and not (isinstance(data["version"], int) and data["version"] >= 1
                                  and not isinstance(data["version"], bool)):
        bad(("version",), "must be a whole number, 1 or more")
    name = data.get("name")
    if "name" in data:
        if not isinstance(name, dict):
            bad(("name",), "must have vi and en")
        else:
            for lang in ("vi", "en"):
                if not isinstance(name.get(lang), str) or not name[lang].strip():
                    bad(("name",), f"name.{lang} is required")
    if "owner" in data and data["owner"] not in departments:
        bad(("owner",), f"{data['owner']!r} is not a department key of the organisation")
    if "severity" in data and data["severity"] not in SEVERITIES:
        bad(("severity",), f"must be one of {', '.join(SEVERITIES)}")
    return out + playbooks.check(data, locator, filename)


def check(files: dict[str, str], vocabulary: Vocabulary, departments: set[str],
          folder: str = "") -> Scenario:
    """Check every file of a scenario; raise ScenarioInvalid listing all problems."""
    def fname(name: str) -> str:
        return str(Path(folder) / name) if folder else name

    problems: list[Problem] = []
    if MANIFEST not in files:
        raise ScenarioInvalid([Problem(fname(MANIFEST), "missing: every scenario needs one")])
    manifest, locator = load_yaml(files[MANIFEST], fname(MANIFEST))
    problems += _check_manifest(manifest, locator, fname(MANIFEST), departments)
    if not isinstance(manifest, dict):
        raise ScenarioInvalid(problems)

    rules_name = manifest.get("rules", "rules.yaml")
    ruleset, rules_data = None, {}
    if rules_name not in files:
        problems.append(Problem(fname(rules_name), "missing: the manifest names it"))
    else:
        try:
            ruleset = parse_rules(files[rules_name], fname(rules_name), vocabulary.field_types())
            rules_data, _ = load_yaml(files[rules_name], fname(rules_name))
        except ScenarioInvalid as exc:
            problems += exc.problems
        problems += playbooks.rule_problems(manifest, ruleset, fname(rules_name))
        for rule in ruleset.rules if ruleset else ():
            for notice in rule.then.notify:
                if notice.to not in departments:
                    problems.append(Problem(fname(rules_name), f"rule {rule.key}: notify to "
                                            f"{notice.to!r}, which is not a department key of "
                                            "the organisation", notice.line))

    process_name = manifest.get("process", "process.bpmn")
    process_id, spec = "", {}
    if process_name not in files:
        problems.append(Problem(fname(process_name), "missing: the manifest names it"))
    else:
        bpmn_problems, ids = check_bpmn(fname(process_name), files[process_name].encode(),
                                        departments, vocabulary.field_types())
        problems += bpmn_problems
        # Not part of bpmn_problems: a misnamed variable should not hide SpiffWorkflow's own
        # findings below.
        problems += check_names(fname(process_name), files[process_name].encode(),
                                playbooks.START_FIELDS if playbooks.is_playbook(manifest)
                                else start_data(ruleset), decision_outputs(files))
        dmn_problems, decisions = check_dmn(files, fname)
        dmn_problems += check_decision_refs(fname(process_name), files[process_name], decisions)
        problems += dmn_problems
        first = next(iter(ids), "")
        process_id = manifest.get("process_id") or (first if len(ids) == 1 else "")
        if not process_id and not bpmn_problems and ids:
            listed = ", ".join(f"{i} (line {line})" for i, line in ids.items())
            problems.append(Problem(
                fname(MANIFEST), f"{process_name} có {len(ids)} quy trình chạy được / "
                f"{process_name} has {len(ids)} executable processes ({listed}): say which one "
                f"runs with `process_id: {first}` in {MANIFEST}, or set isExecutable=\"false\" "
                "on the others", 1, "process_id"))
        elif process_id and ids and process_id not in ids:
            problems.append(Problem(
                fname(MANIFEST), f"{process_name} không có quy trình chạy được {process_id!r} / "
                f"{process_name} has no executable process {process_id!r} (it has "
                f"{', '.join(ids)}): fix process_id, or set isExecutable=\"true\" on it",
                locator.line(("process_id",)), "process_id"))
        if not bpmn_problems and not dmn_problems and process_id in ids:
            try:
                spec = _parse_spec(files, process_name, process_id, fname)
            except ScenarioInvalid as exc:
                problems += exc.problems
        sla_name = manifest.get("sla", SLA_FILE)
        if sla_name in files:
            try:
                parse_slas(files[sla_name], fname(sla_name),
                           _elements(files[process_name].encode()), departments)
            except ScenarioInvalid as exc:
                problems += exc.problems
        elif "sla" in manifest:
            problems.append(Problem(fname(sla_name), "missing: the manifest names it"))
    if problems:
        raise ScenarioInvalid(problems)
    return Scenario(manifest, files, rules_data, ruleset, process_id, spec)


def _line_of(text: str, element_id: str | None) -> int | None:
    """The line of the element with this id in an XML text, or None."""
    if not element_id:
        return None
    try:
        root = parse(text)
    except etree.XMLSyntaxError:
        return None
    found = root.xpath("//*[@id=$i]", i=element_id)
    return found[0].sourceline if found else None


def _elements(bpmn: bytes) -> dict[str, str] | None:
    """Every element of a BPMN file that has an id: id → tag (None if it is not XML)."""
    try:
        root = parse(bpmn)
    except etree.XMLSyntaxError:
        return None  # reported by the BPMN check; SLA names cannot be checked against it
    return {el.get("id"): etree.QName(el).localname for el in root.iter()
            if isinstance(el.tag, str) and el.get("id")}


def check_folder(folder: str | Path, vocabulary: Vocabulary, departments: set[str]) -> Scenario:
    """Read and check one scenario folder; raise ScenarioInvalid listing all problems."""
    return check(read_folder(folder), vocabulary, departments, str(folder))


def _parse_spec(files: dict[str, str], process_name: str, process_id: str, fname) -> dict:
    parser = spiff.ScenarioParser()
    current = process_name
    try:
        parser.add_bpmn_str(files[process_name].encode(), filename=fname(process_name))
        for name in sorted(files):
            if name.endswith(".dmn"):
                current = name
                parser.add_dmn_str(files[name].encode(), filename=fname(name))
        current = process_name
        top = parser.get_spec(process_id)
        subs = parser.get_subprocess_specs(process_id)
    except ValidationException as exc:
        # The workflow library's refusal: what our own checks did not foresee. Its words, with
        # the element and its line found here (it gives neither for most refusals).
        line = exc.line_number or _line_of(files.get(current, ""), exc.id)
        raise ScenarioInvalid([Problem(
            exc.file_name or fname(current),
            f"bộ máy quy trình không nạp được phần tử {exc.id or '?'} / the workflow engine "
            f"cannot load the element {exc.id or '?'}: {exc.args[0]}", line, exc.id or "")]
        ) from exc
    except etree.LxmlError as exc:
        # Not XML, or XML the parser's queries cannot read (a DMN file without its namespace).
        line = getattr(exc, "lineno", None) or None
        raise ScenarioInvalid([Problem(fname(current), f"không đọc được tệp / cannot be read as "
                                       f"{'DMN' if current.endswith('.dmn') else 'BPMN'}: {exc}",
                                       line)]) from exc
    except (SpiffWorkflowException, ValueError, KeyError, AttributeError, TypeError,
            IndexError) as exc:
        # Python's own errors inside the workflow library, on a shape no check here foresaw.
        raise ScenarioInvalid([Problem(
            fname(current), f"bộ máy quy trình không nạp được tệp / the workflow engine cannot "
            f"load this file ({type(exc).__name__}: {exc}); check the element the message names, "
            "or simplify the diagram around it")]) from exc
    return spiff.spec_to_dict(top, subs)


def publish(session: Session, scenario: Scenario, *, actor: str) -> tuple[ScenarioVersion, bool]:
    """Store a checked scenario as a published version; older versions retire (their running
    instances stay on them). Reloading identical content changes nothing: (version, False)."""
    m = scenario.manifest
    existing = session.scalars(select(ScenarioVersion).where(
        ScenarioVersion.key == m["key"], ScenarioVersion.version == m["version"])).first()
    if existing is not None:
        if existing.content_hash == scenario.content_hash:
            return existing, False
        raise ScenarioInvalid([Problem(MANIFEST, f"version {m['version']} of {m['key']} is "
                                       "already loaded with other content: raise the version",
                                       None, "version")])
    newer = session.scalars(select(ScenarioVersion).where(
        ScenarioVersion.key == m["key"], ScenarioVersion.version > m["version"])).first()
    if newer is not None:
        raise ScenarioInvalid([Problem(MANIFEST, f"version {newer.version} of {m['key']} is "
                                       "already loaded: a new version must be higher",
                                       None, "version")])
    version = ScenarioVersion(
        key=m["key"], version=m["version"], name_vi=m["name"]["vi"], name_en=m["name"]["en"],
        owner_department=m["owner"], severity=m["severity"], manifest=m,
        rules=scenario.rules_data,
        ruleset=compile_ruleset(scenario.ruleset, f"{m['key']}@{m['version']}"),
        files=scenario.files, process_id=scenario.process_id, spec=scenario.spec,
        content_hash=scenario.content_hash, loaded_by=actor, status=PUBLISHED)
    for old in session.scalars(select(ScenarioVersion).where(
            ScenarioVersion.key == m["key"], ScenarioVersion.status == PUBLISHED)):
        old.status = RETIRED
        audit.record(session, "scenario.retired", actor=actor, subject_type="scenario",
                     subject_id=f"{old.key}@{old.version}", details={"by_version": m["version"]})
    session.add(version)
    session.flush()
    audit.record(session, "scenario.published", actor=actor, subject_type="scenario",
                 subject_id=f"{version.key}@{version.version}",
                 details={"hash": version.content_hash, "files": sorted(scenario.files)})
    return version, True


def published(session: Session) -> list[ScenarioVersion]:
    """The scenario versions whose rules are live."""
    return list(session.scalars(select(ScenarioVersion).where(
        ScenarioVersion.status == PUBLISHED).order_by(ScenarioVersion.key)))


def folders(path: str | Path) -> list[Path]:
    """The scenario folders at `path`: itself if it has a manifest, else its subfolders that do."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    return sorted(p for p in path.iterdir() if (p / MANIFEST).is_file()) if path.is_dir() else []


def to_dict(version: ScenarioVersion) -> dict:
    """A scenario version as the API shows it."""
    return {"id": version.id, "key": version.key, "version": version.version,
            "name": {"vi": version.name_vi, "en": version.name_en},
            "owner": version.owner_department, "severity": version.severity,
            "status": version.status, "loaded_at": version.loaded_at.isoformat(),
            "loaded_by": version.loaded_by, "content_hash": version.content_hash}
