"""The commands the README and docker-compose.yml name, run as a newcomer would."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main


def test_demo_sets_up_a_fresh_database(tmp_path, monkeypatch):
    monkeypatch.setenv("IOC_DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(main, ["demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "published   dossier-violations v1" in first.output
    assert "phvhcc.minh" in first.output and "ioc-demo-2025" in first.output
    tokens = json.loads((tmp_path / "var" / "demo-tokens.json").read_text())
    assert set(tokens) == {"mot-cua", "tong-dai-1022", "quan-trac", "giam-sat-mxh", "camera",
                           "an-ninh-mang", "canh-bao", "y-te"}
    # Running it again changes nothing and keeps the tokens.
    again = runner.invoke(main, ["demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert again.output.count("unchanged") == 6
    assert json.loads((tmp_path / "var" / "demo-tokens.json").read_text()) == tokens
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ioc_serve_answers(tmp_path):
    env = {**os.environ, "IOC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    ioc = str(Path(sys.executable).parent / "ioc")
    subprocess.run([ioc, "db", "upgrade"], env=env, check=True, capture_output=True)
    port = _free_port()
    proc = subprocess.Popen([ioc, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "ioc serve did not answer in 20 s"
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
            assert "Đăng nhập" in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
