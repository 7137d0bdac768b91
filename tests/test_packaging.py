"""The install deploys as built: a wheel that runs outside the checkout, the lock file the README's
commands install from, and the Docker image (built where a container engine runs).

The wheel is built from a copy of the sources (nothing is written into the checkout), installed
with `pip install --target` and run from another directory with only that on the path: the
organisation, the calendar, the vocabulary, the migrations and the designer's pages must all come
from the wheel.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "data", "engine", "integrations", "worker",
           "designer"]
NOT_SOURCES = shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc", "*.egg-info")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built (with pip, as `pip install .` would) from a copy of the tree."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=NOT_SOURCES)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "--wheel-dir", str(work / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = (work / "dist").glob("ioc_scenario_engine-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed alone into a directory (its dependencies are this environment's)."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                           "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def test_the_wheel_carries_the_data_the_engine_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("engine/data/organisation/binh-duong.yaml", "engine/data/calendar/calendar.yaml",
                   "engine/data/calendar/2026.yaml", "integrations/vocabulary/public_services.yaml",
                   "engine/migrations/env.py", "engine/migrations/script.py.mako",
                   "designer/templates/base.html", "designer/static/rule_builder.js"):
        assert needed in names, needed
    assert any(n.startswith("engine/migrations/versions/") for n in names)
    # Each data file keeps its licence and source beside it.
    data = {n for n in names if n.startswith("engine/data/")}
    assert {Path(n).name for n in data} >= {p.name for p in (ROOT / "data").rglob("*")
                                            if p.is_file() and p.parent == ROOT / "data"}
    assert not any("node_modules" in n or "/tests/" in n for n in names)


def _run(installed: Path, cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    """A command of the installed engine, from `cwd`, with only the install on the path first."""
    environ = {**os.environ, "PYTHONPATH": str(installed), **env}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=300)


def test_the_installed_engine_runs_outside_the_checkout(installed, tmp_path):
    where = _run(installed, tmp_path, "-c",
                 "import engine, engine.paths as p; print(engine.__file__); print(p.INSTALLED); "
                 "print(p.ORGANISATION_FILE); print(p.VOCABULARY_DIR)")
    assert where.returncode == 0, where.stderr
    module, flag, org, vocabulary = where.stdout.split()
    assert Path(module).is_relative_to(installed) and flag == "True"
    assert Path(org).is_relative_to(installed) and Path(vocabulary).is_relative_to(installed)

    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")  # what an installation points at
    env = {"IOC_DATABASE_URL": f"sqlite:///{tmp_path / 'ioc.sqlite3'}",
           "IOC_SECRET_KEY": secrets.token_urlsafe(48), "IOC_REDIS_URL": ""}
    for argv in (["db", "upgrade"], ["org", "load"], ["scenarios", "load", "scenarios"]):
        done = _run(installed, tmp_path, "-m", "engine.cli", *argv, **env)
        assert done.returncode == 0, f"ioc {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    assert "dossier-violations" in done.stdout

    # The web app from the install: its pages and, from IOC_DESIGNER_ASSETS, bpmn-js.
    page = _run(installed, tmp_path, "-c", """
from engine.app import create_app
client = create_app().test_client()
print(client.get("/login").status_code)
print(client.get("/designer/vendor/bpmn-js/bpmn-modeler.production.min.js").status_code)
""", **env, IOC_DESIGNER_ASSETS=str(ROOT / "designer" / "node_modules"))
    assert page.returncode == 0, page.stderr
    assert page.stdout.split() == ["200", "200"]


def test_the_readme_commands_install_at_the_locked_versions():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install --quiet -c \$\(LOCK\) -e \"\.\[test\]\"", makefile)
    lock = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned"
            lock[name.lower().replace("_", "-")] = version
    # What the tests run with is what the lock says (this environment was made from it).
    from importlib.metadata import version

    for name in ("spiffworkflow", "durable-rules", "flask", "sqlalchemy", "rq", "redis", "wtforms"):
        assert lock[name] == version(name), name


def _docker() -> str | None:
    """Why the image cannot be built here, or None when a container engine answers."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode:
        return f"docker has no running engine here: {info.stderr.strip().splitlines()[-1:]}"
    return None


def test_every_file_the_dockerfile_copies_is_in_the_tree_and_sent():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    copies = re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source
    # The stage that builds the wheels has a compiler (durable-rules has no wheel for 3.11)...
    build = dockerfile.split("AS build", 1)[1].split("\nFROM ", 1)[0]
    assert "build-essential" in build and "-c requirements.lock" in build
    # ...and the image that runs is a fresh one without it.
    assert dockerfile.count("\nFROM ") == 3 and "build-essential" not in \
        dockerfile.rsplit("\nFROM ", 1)[1]


def test_the_image_builds_and_runs_the_engine():
    reason = _docker()
    if reason:
        pytest.skip(f"cannot build the image: {reason}")
    tag = "ioc-scenario-engine:test"
    built = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True,
                           text=True, timeout=3600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    ran = subprocess.run(["docker", "run", "--rm", "-e", "IOC_SECRET_KEY=" + secrets.token_urlsafe(48), tag, "sh",
                          "-c", "ioc db upgrade && ioc org load && ioc scenarios validate "
                          "scenarios/*"], capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
