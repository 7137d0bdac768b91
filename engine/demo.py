"""Sample people and sources of the demo province (idempotent), and how to reach them."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import click
from sqlalchemy import select

from engine.auth import service as auth
from engine.auth.models import User
from engine.events.models import Source

DEMO_PASSWORD = "ioc-demo-2025"


def tokens_file() -> Path:
    """Where the demo keeps its sources' tokens (they are shown only once otherwise)."""
    return Path(os.environ.get("IOC_VAR_DIR", "var")) / "demo-tokens.json"


# (username, full name, role, department key)
PEOPLE = [
    ("thanhtra.lan", "Nguyễn Thị Lan", "inspector", "thanh-tra"),
    ("phvhcc.minh", "Trần Văn Minh", "civil_servant", "trung-tam-phvhcc"),
    ("phvhcc.hoa", "Lê Thị Hoa", "department_head", "trung-tam-phvhcc"),
    ("thudaumot.an", "Phạm Văn An", "civil_servant", "phuong-thu-dau-mot"),
    ("thudaumot.binh", "Cao Thanh Bình", "department_head", "phuong-thu-dau-mot"),
    ("dian.thao", "Đặng Thị Thảo", "civil_servant", "phuong-di-an"),
    ("dian.phuc", "Mai Hồng Phúc", "department_head", "phuong-di-an"),
    ("nnmt.ha", "Võ Thị Hà", "civil_servant", "so-nong-nghiep-moi-truong"),
    ("nnmt.son", "Lâm Trường Sơn", "department_head", "so-nong-nghiep-moi-truong"),
    ("khcn.vy", "Hồ Tường Vy", "civil_servant", "so-khoa-hoc-cong-nghe"),
    ("khcn.quang", "Tạ Minh Quang", "department_head", "so-khoa-hoc-cong-nghe"),
    ("vpubnd.long", "Châu Hoàng Long", "department_head", "van-phong-ubnd"),
    ("xaydung.tuan", "Huỳnh Minh Tuấn", "civil_servant", "so-xay-dung"),
    ("congan.hung", "Bùi Quốc Hùng", "civil_servant", "cong-an"),
    ("yte.nga", "Ngô Thị Nga", "civil_servant", "so-y-te"),
    ("ioc.trucban", "Đỗ Văn Khoa", "civil_servant", "ioc"),
    ("ioc.truong", "Dương Thị Trâm", "department_head", "ioc"),
    ("chihuy.dung", "Trương Tấn Dũng", "commander", "van-phong-ubnd"),
    ("kiemtra.mai", "Lý Thị Mai", "auditor", "thanh-tra"),
    ("admin", "Quản trị hệ thống", "admin", "ioc"),
]
SOURCES = [
    ("mot-cua", ["dossier.received", "dossier.step_started", "dossier.step_completed",
                 "dossier.supplement_requested", "dossier.returned", "dossier.completed"]),
    ("tong-dai-1022", ["hotline.ticket.created", "hotline.ticket.resolved"]),
    ("quan-trac", ["environment.reading"]),
    ("giam-sat-mxh", ["social.post"]),
    ("camera", ["camera.detection"]),
    ("an-ninh-mang", ["security.alert"]),
    ("canh-bao", ["emergency.alert"]),
    ("y-te", ["health.case_report"]),
]


def ensure_people(ioc) -> dict:
    """Create the sample users and sources that do not exist yet; return what to print."""
    path = tokens_file()
    tokens = json.loads(path.read_text()) if path.exists() else {}
    with ioc.db.session() as s:
        for username, name, role, dept in PEOPLE:
            if s.scalars(select(User).where(User.username == username)).first() is None:
                auth.create_user(s, username, role, dept, full_name=name, password=DEMO_PASSWORD,
                                 actor="demo")
        for name, types in SOURCES:
            if s.scalars(select(Source).where(Source.name == name)).first() is None:
                _, tokens[name] = auth.create_source(s, name, types, actor="demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2))
    path.chmod(0o600)
    return tokens


def print_access(tokens: dict, host: str, port: int) -> None:
    """Print the sample users, their password and the sources' tokens."""
    click.echo(f"\nWeb app: http://{host}:{port}/   password of every sample user: {DEMO_PASSWORD}")
    for username, name, role, dept in PEOPLE:
        click.echo(f"  {username:14} {name:20} {role:16} {dept}")
    click.echo(f"\nSource API tokens (also in {tokens_file()}):")
    for name, token in tokens.items():
        click.echo(f"  {name:14} {token}")
    click.echo("")


def start_simulator(url: str, tokens: dict) -> threading.Thread:
    """Play a simulated day through the served app, in a daemon thread, once it answers."""
    from integrations import simulator

    def play() -> None:
        if not simulator.wait_for_engine(url):
            click.echo("simulator: the engine did not answer; no simulated events", err=True)
            return
        try:
            simulator.run(url, tokens, simulator.DEFAULT_SEED, simulator.parse_start("auto"),
                          simulator.DEFAULT_HOURS, simulator.DEFAULT_SPEED,
                          echo=lambda text: click.echo(f"simulator: {text}", err=True))
        except simulator.SimulatorError as exc:
            click.echo(f"simulator stopped: {exc}", err=True)

    thread = threading.Thread(target=play, name="ioc-simulator", daemon=True)
    thread.start()
    click.echo(f"Simulator: a day of the province at {simulator.DEFAULT_SPEED:g}x "
               "(a day in ten minutes); `make demo` keeps serving after it ends.")
    return thread
