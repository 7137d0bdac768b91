"""`ioc`: the one command line of the engine."""
from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import click

from engine import paths
from engine.config import Settings
from engine.ops import garbage

DEFAULT_ORG = paths.ORGANISATION_FILE


def _services():
    from engine.services import Services
    from engine.worktime.calendar import CalendarError

    try:
        return Services(Settings.from_env())
    except CalendarError as exc:
        # A bad calendar folder (IOC_CALENDAR_DIR) is the operator's to fix: say where.
        raise click.ClickException(f"working-time calendar: {exc}") from exc


class _Commands(click.Group):
    """The `ioc` group: a database that is not there or not migrated is one line, not a
    traceback (every command reads the database through SQLAlchemy)."""

    def invoke(self, ctx: click.Context):
        """Run the command; the database's refusals become one line and exit status 1."""
        from sqlalchemy.exc import OperationalError, ProgrammingError

        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(
                f"the database cannot answer ({reason}): is IOC_DATABASE_URL right, and has "
                f"`ioc db upgrade` been run?") from None


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log what the engine does.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="IOC_LOG_FORMAT", show_default=True, show_envvar=True,
              help="Log lines as text or as JSON objects (docs/operations.md).")
def main(verbose: bool, log_format: str) -> None:
    """IOC scenario engine — Trung tâm điều hành thông minh."""
    from engine.ops import logs

    logs.configure(log_format, logging.INFO if verbose else logging.WARNING)


# -- database and organisation -------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from engine import migrate

    url = Settings.from_env().database_url
    migrate.upgrade(url)
    click.echo(f"database is up to date: {_safe_url(url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def org() -> None:
    """The organisation: departments, wards and communes, as dated data."""


@org.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), default=str(DEFAULT_ORG))
def org_load(file: str) -> None:
    """Load (or reload) the organisation file; the work of units that have ended moves to their
    successors now, that of units ending later on the successor's first day."""
    from engine.org import handover
    from engine.org import service as org_service

    ioc = _services()
    try:
        with ioc.db.session() as s:
            count = org_service.load_file(s, file)
            today = org_service.local_time(ioc.clock.now()).date()
            moved = handover.hand_over(s, today, actor="cli")
            days = handover.schedule(s, today)
    except org_service.OrgFileInvalid as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"loaded {count} organisation units from {file}")
    if moved:
        click.echo("handed over to successors: " + ", ".join(
            f"{what} {moved[what]}" for what in ("tasks", "clocks", "users", "webhooks")
            if moved[what]))
    for day in days:
        click.echo(f"successors take over on {day.isoformat()} (00:00): handover scheduled")


# -- scenarios -----------------------------------------------------------------------------------

def _departments(ioc) -> set[str]:
    from engine.org import service as org_service

    with ioc.db.read() as s:
        keys = org_service.known_keys(s)
    if not keys:
        raise click.ClickException("the organisation is not loaded: run `ioc org load` first")
    return keys


def _report_invalid(folder, exc) -> None:
    click.echo(f"invalid     {folder}")
    for problem in exc.problems:
        click.echo(f"  {problem}", err=True)


def _scenario_paths(path: str) -> list[Path]:
    """What PATH holds: itself when it is a zip file, else its scenario folders."""
    from engine.scenarios import service

    return [Path(path)] if Path(path).is_file() else service.folders(path)


def _check_path(path: Path, ioc, departments: set[str]):
    """Read and check a scenario folder or zip; ScenarioInvalid lists every problem."""
    from engine.scenarios import archive, service

    if not path.is_file():
        return service.check_folder(path, ioc.vocabulary, departments)
    with open(path, "rb") as f:
        data = f.read(archive.MAX_TOTAL_BYTES + 1)  # one byte more is enough to refuse it
    return service.check(archive.from_zip(data, str(path)), ioc.vocabulary, departments,
                         str(path))


@main.group()
def scenarios() -> None:
    """Scenario folders and zips: validate, load and export."""


@scenarios.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
def scenarios_validate(paths: tuple[str, ...]) -> None:
    """Check scenario folders (or zips); print every problem with file and line; exit 1 if any."""
    from engine.scenarios.problems import ScenarioInvalid

    ioc = _services()
    departments = _departments(ioc)
    bad = 0
    for folder in [f for p in paths for f in (_scenario_paths(p) or [Path(p)])]:
        try:
            _check_path(folder, ioc, departments)
            click.echo(f"ok          {folder}")
        except ScenarioInvalid as exc:
            bad += 1
            _report_invalid(folder, exc)
    if bad:
        sys.exit(1)


@scenarios.command("load")
@click.argument("path", type=click.Path(exists=True))
@click.option("--actor", default="cli", help="Who loads (recorded in the audit trail).")
def scenarios_load(path: str, actor: str) -> None:
    """Validate and publish every scenario folder under PATH (or PATH itself, or a .zip)."""
    from engine.scenarios import service
    from engine.scenarios.problems import ScenarioInvalid

    ioc = _services()
    departments = _departments(ioc)
    found = _scenario_paths(path)
    if not found:
        raise click.ClickException(f"no scenario folder (with scenario.yaml) at {path}")
    failed = 0
    for folder in found:
        try:
            scenario = _check_path(folder, ioc, departments)
            with ioc.db.session() as s:
                version, created = service.publish(s, scenario, actor=actor)
            state = "published" if created else "unchanged"
            click.echo(f"{state:11} {version.key} v{version.version}")
        except ScenarioInvalid as exc:
            failed += 1
            _report_invalid(folder, exc)
    if failed:
        sys.exit(1)


@scenarios.command("export")
@click.argument("key")
@click.option("--version", "number", type=click.IntRange(min=1), default=None,
              help="Which version (default: the published one, else the highest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="The zip file to write (default KEY-vN.zip; - for standard output).")
def scenarios_export(key: str, number: int | None, output: str | None) -> None:
    """Write a stored scenario version as a zip that `ioc scenarios load` reads back."""
    from engine.scenarios import archive

    with _services().db.read() as s:
        version = archive.stored_version(s, key, number)
        if version is None:
            raise click.ClickException(
                f"không có phiên bản {number} của {key} / no version {number} of {key}" if number
                else f"không có kịch bản {key} / no scenario {key}")
        data, label = archive.to_zip(version.key, version.files), f"{key} v{version.version}"
        target = output or f"{key}-v{version.version}.zip"
    if target == "-":
        click.echo(data, nl=False)  # bytes go to the binary stream
        return
    partial = Path(f"{target}.part")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)  # never leave a half-written zip under the real name
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"không ghi được {target} / cannot write {target}: "
                                   f"{exc.strerror}") from None
    click.echo(f"exported    {label} to {target}")


# -- events --------------------------------------------------------------------------------------

@main.group()
def events() -> None:
    """Send and process events."""


def _read_events(file: str):
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:  # JSON Lines: one event per line
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{file}: not JSON or JSON Lines ({exc})") from None


@events.command("send")
@click.argument("file")
@click.option("--url", default=lambda: os.environ.get("IOC_URL", "http://127.0.0.1:5000"),
              show_default="IOC_URL or http://127.0.0.1:5000", help="The engine's base URL.")
@click.option("--token", default=lambda: os.environ.get("IOC_SOURCE_TOKEN"),
              help="The source's API token (or IOC_SOURCE_TOKEN).")
@click.option("--now", "now", default=None, metavar="ISO",
              help="The moment relative times (${now-P3D}, ${today+P14D}) are filled in at "
                   "(default: now); an ISO 8601 date-time with its offset.")
def events_send(file: str, url: str, token: str | None, now: str | None) -> None:
    """Send CloudEvents from FILE (or - for stdin): one object, an array, or JSON Lines.

    Relative times in the file (`${now-P3D}`, `${today-P7D}T17:00:00+07:00`) are filled in.
    """
    from engine.events import relative

    if not token:
        raise click.ClickException("give the source's API token with --token or "
                                   "IOC_SOURCE_TOKEN (see `ioc sources add`)")
    try:
        moment = datetime.fromisoformat(now) if now else None
        payload = relative.fill(_read_events(file), moment)
    except ValueError as exc:  # a bad --now or placeholder (RelativeTimeError is a ValueError)
        raise click.ClickException(f"{file}: {exc}") from None
    batch = isinstance(payload, list)
    ctype = "application/cloudevents-batch+json" if batch else "application/cloudevents+json"
    req = urllib.request.Request(
        url.rstrip("/") + "/api/v1/events", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": ctype, "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            click.echo(resp.read().decode())
    except urllib.error.HTTPError as exc:
        click.echo(exc.read().decode(), err=True)
        sys.exit(1)
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc.reason}") from None


@events.command("process")
def events_process() -> None:
    """Process every pending event and fire every due timer now (no server needed)."""
    done, fired = _services().run_pending()
    click.echo(f"processed {done} events, fired {fired} timers")


# -- rules ---------------------------------------------------------------------------------------

@main.group()
def rules() -> None:
    """Detection rules."""


@rules.command("rebuild")
@click.option("--days", type=click.IntRange(min=1), default=30, show_default=True,
              help="How far back to read processed events.")
def rules_rebuild(days: int) -> None:
    """Once, after upgrading past migration 0010: put the open correlations of `all:` rules,
    which the engine used to keep in memory, into the database."""
    from datetime import timedelta

    from engine.rules.rebuild import rebuild

    ioc = _services()
    counts = rebuild(ioc.pipeline, ioc.clock.now() - timedelta(days=days))
    if not counts:
        click.echo("no published `all:` rule is without its rows: nothing to rebuild")
    for name, read in sorted(counts.items()):
        click.echo(f"{name}: {read} events read into its open correlations")


# -- audit ---------------------------------------------------------------------------------------

@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.option("--checkpoints", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A folder of kept checkpoints (default: the published folder, "
                                 "IOC_AUDIT_CHECKPOINT_DIR).")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The auditor's copy of the public key (PEM; default: the "
                                 "public half of the engine's signing key).")
def audit_verify(folder: Path | None, key_file: Path | None) -> None:
    """Check the hash chain and prove the records against every kept checkpoint; name the
    first broken record or the checkpoint they no longer match; exit 1 if broken."""
    from engine.audit import service as audit_service

    ioc = _services()
    result, _, refused = audit_service.verify_published(ioc.settings, ioc.db, folder, key_file)
    if refused:
        click.echo(f"audit checkpoints REFUSED: {refused}", err=True)
        sys.exit(1)
    if result.ok:
        click.echo(f"audit log intact: {result.checked} records verified, proved against "
                   f"{result.proved} signed checkpoint(s); tree head {result.root}")
    else:
        click.echo(f"audit log BROKEN at record {result.broken_seq}: {result.reason} "
                   f"({result.checked} records verified before it)", err=True)
        sys.exit(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign and publish a checkpoint of the log now (the engine also does it on its timer)."""
    ioc = _services()
    with ioc.db.session() as s:
        signed = ioc.publisher.checkpoint(s)
    if signed is None:
        click.echo("no record since the last checkpoint: nothing to sign")
    else:
        click.echo(f"checkpoint signed: {signed.size} records, root {signed.root}, in "
                   f"{ioc.settings.checkpoint_path}")


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the public key that verifies the checkpoints (PEM): give it to auditors."""
    from engine.audit import checkpoints

    ioc = _services()
    click.echo(checkpoints.public_pem(checkpoints.signing_key(ioc.settings.audit_key_path)),
               nl=False)


@audit.command("prove")
@click.argument("seq", type=click.IntRange(min=1))
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The checkpoint to prove against (default: the newest kept one "
                                 "that holds the record).")
def audit_prove(seq: int, checkpoint_file: Path | None) -> None:
    """Print the inclusion proof of record SEQ in a signed checkpoint (JSON): log2(n) hashes
    that, with the record, give the checkpoint's root."""
    from sqlalchemy import select

    from engine.audit import checkpoints
    from engine.audit import service as audit_service
    from engine.audit.models import AuditRecord

    ioc = _services()
    try:
        if checkpoint_file:
            checkpoint = checkpoints.parse(checkpoint_file.read_text(encoding="utf-8"),
                                           str(checkpoint_file))
        else:
            holding = [c for _, c in checkpoints.kept(ioc.settings.checkpoint_path)
                       if c.size >= seq]
            if not holding:
                raise checkpoints.CheckpointError(f"no kept checkpoint holds record {seq} yet: "
                                                  "run `ioc audit checkpoint`")
            checkpoint = holding[-1]
    except (OSError, checkpoints.CheckpointError) as exc:
        raise click.ClickException(str(exc)) from exc
    with ioc.db.read() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).first()
        if record is None or seq > checkpoint.size:
            raise click.ClickException(f"record {seq} is not in the checkpoint of "
                                       f"{checkpoint.size} records")
        path = audit_service.inclusion(s, seq, checkpoint.size)
        click.echo(json.dumps({"record": audit_service.to_dict(record), "leaf_index": seq - 1,
                               "leaf_hash": audit_service.leaf(record).hex(),
                               "path": [node.hex() for node in path],
                               "checkpoint": json.loads(checkpoint.to_json())},
                              indent=2, ensure_ascii=False))


@audit.command("export-case")
@click.argument("instance_id", type=click.IntRange(min=1))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the zip (default: ho-so-<id>.zip).")
@click.option("--actor", default="cli", help="Who exports (in the bundle and the audit trail).")
def audit_export_case(instance_id: int, output: Path | None, actor: str) -> None:
    """Xuất hồ sơ: write one case's evidence bundle (records, proofs, PDF, signed manifest)."""
    from engine.cases import bundle

    ioc = _services()
    output = output or Path(f"ho-so-{instance_id}.zip")
    try:
        data = ioc.export_case(instance_id, actor=f"cli:{actor}")
    except bundle.BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    output.write_bytes(data)
    click.echo(f"evidence bundle of case {instance_id}: {output} ({len(data):,} bytes)")


@audit.command("verify-bundle")
@click.argument("bundle_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The auditor's copy of the public key (PEM).")
def audit_verify_bundle(bundle_file: Path, key_file: Path) -> None:
    """Verify an evidence bundle offline, without the database; name what was changed; exit 1
    if anything was."""
    from engine.audit import checkpoints
    from engine.cases import bundle

    try:
        public = checkpoints.read_public_key(key_file)
    except checkpoints.CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    verdict = bundle.verify(bundle_file.read_bytes(), public)
    if verdict.ok:
        click.echo(f"bundle intact: case {verdict.case}, {verdict.records} audit records proved "
                   f"against the signed checkpoint of {verdict.checkpoint_size} records; every "
                   "file as signed")
        return
    click.echo(f"bundle CHANGED ({len(verdict.problems)} problem(s)):", err=True)
    for problem in verdict.problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


# -- users and sources ---------------------------------------------------------------------------

@main.group()
def users() -> None:
    """People who use the product."""


def _account(run):
    """Run `run(session, ioc)` in one transaction; the service's refusal is one line."""
    from engine.auth import service as auth

    ioc = _services()
    try:
        with ioc.db.session() as s:
            return run(s, ioc)
    except auth.AuthError as exc:
        raise click.ClickException(str(exc)) from None


@users.command("create")
@click.argument("username")
@click.option("--role", required=True, help="inspector, civil_servant, department_head, "
                                            "commander, auditor or admin")
@click.option("--department", default=None, help="Organisation unit key, e.g. trung-tam-phvhcc.")
@click.option("--name", "full_name", default="", help="Full name (Vietnamese).")
@click.option("--password", default=None, help="Password for the web app (8+ characters).")
@click.option("--token", "with_token", is_flag=True, help="Also print a personal API token.")
@click.option("--email", default=None, help="E-mail address for notifications.")
def users_create(username, role, department, full_name, password, with_token, email) -> None:
    """Create a user with a role and a department."""
    from engine.auth import service as auth

    user, token = _account(lambda s, ioc: auth.create_user(
        s, username, role, department, full_name=full_name, password=password,
        with_token=with_token, departments=_departments(ioc), email=email))
    click.echo(f"created user {user.username} ({user.role}, {user.department_key or '-'})")
    if token:
        click.echo(f"API token (shown once): {token}")


def _said(name: str, changes: dict) -> None:
    """Print what a change did: "name: field before -> after; …"."""
    click.echo(f"{name}: " + ("; ".join(
        f"{field} {'-' if before in (None, '') else before} -> "
        f"{'-' if after in (None, '') else after}" for field, (before, after) in changes.items())
        if changes else "nothing to change"))


@users.command("list")
@click.option("--role", default="", help="Only this role.")
@click.option("--department", default="", help="Only this unit key.")
@click.option("--inactive", is_flag=True, help="Only deactivated users.")
def users_list(role: str, department: str, inactive: bool) -> None:
    """List users: username, role, department, active, API token."""
    from engine.auth import service as auth

    with _services().db.read() as s:
        found = auth.users(s, role=role, department_key=department,
                           active=False if inactive else None)
        for user in found:
            click.echo(f"{user.username:<24} {user.role:<16} {user.department_key or '-':<36} "
                       f"{'active' if user.active else 'INACTIVE':<8} "
                       f"{'token' if user.token_hash else '-'}  {user.full_name}")


@users.command("change")
@click.argument("username")
@click.option("--role", default=None, help="A new role.")
@click.option("--department", default=None, help="A new unit key ('' for none).")
@click.option("--name", "full_name", default=None, help="A new full name.")
@click.option("--email", default=None, help="A new e-mail address ('' for none).")
def users_change(username, role, department, full_name, email) -> None:
    """Change a user's role, department, name or e-mail (audited)."""
    from engine.auth import service as auth

    def run(s, ioc):
        user = auth.user_named(s, username)
        return auth.change_user(
            s, user.id, role=role or user.role,
            department_key=user.department_key if department is None else (department or None),
            full_name=user.full_name if full_name is None else full_name,
            email=user.email if email is None else (email or None),
            departments=_departments(ioc))
    _said(username, _account(run))


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Deactivate a user: their sessions end at once, they can no longer log in (audited)."""
    from engine.auth import service as auth

    _account(lambda s, _: auth.set_active(s, auth.user_named(s, username).id, False))
    click.echo(f"deactivated {username}")


@users.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    """Let a deactivated user log in again (audited)."""
    from engine.auth import service as auth

    _account(lambda s, _: auth.set_active(s, auth.user_named(s, username).id, True))
    click.echo(f"activated {username}")


@users.command("password")
@click.argument("username")
@click.password_option("--password", prompt="New password", help="8 characters or more "
                       "(asked for when not given).")
def users_password(username: str, password: str) -> None:
    """Set a new password; the user's sessions end (audited, without the password)."""
    from engine.auth import service as auth

    _account(lambda s, _: auth.set_password(s, auth.user_named(s, username).id, password))
    click.echo(f"new password set for {username}")


@users.command("token")
@click.argument("username")
def users_token(username: str) -> None:
    """Issue a personal API token (shown once), replacing any earlier one (audited)."""
    from engine.auth import service as auth

    token = _account(lambda s, _: auth.issue_user_token(s, auth.user_named(s, username).id))
    click.echo(f"API token (shown once): {token}")


@users.command("revoke-token")
@click.argument("username")
def users_revoke_token(username: str) -> None:
    """Revoke the user's API token (audited)."""
    from engine.auth import service as auth

    revoked = _account(lambda s, _: auth.revoke_user_token(s, auth.user_named(s, username).id))
    click.echo(f"revoked the API token of {username}" if revoked else
               f"{username} had no API token")


@main.group()
def sources() -> None:
    """Source systems that send events."""


def _types(ioc, types: str) -> tuple[list[str], set[str]]:
    """The comma-separated event types given, and every type of the vocabulary."""
    return [t.strip() for t in types.split(",") if t.strip()], set(ioc.vocabulary.types)


@sources.command("add")
@click.argument("name")
@click.option("--types", default="", help="Comma-separated event types it may send (default all).")
@click.option("--hmac-secret", default=None,
              help="Require X-IOC-Signature: sha256=<HMAC-SHA256 of the body> with this secret.")
@click.option("--rate-limit", type=click.IntRange(min=1), default=None,
              help="At most this many requests a minute.")
def sources_add(name: str, types: str, hmac_secret: str | None, rate_limit: int | None) -> None:
    """Register a source system and print its API token (shown once)."""
    from engine.auth import service as auth

    def run(s, ioc):
        allowed, known = _types(ioc, types)
        return auth.create_source(s, name, allowed, hmac_secret=hmac_secret,
                                  rate_limit_per_minute=rate_limit, known_types=known)
    source, token = _account(run)
    click.echo(f"created source {source.name}")
    click.echo(f"API token (shown once): {token}")


@sources.command("list")
def sources_list() -> None:
    """List sources: name, state, guard, counts."""
    from sqlalchemy import select

    from engine.events import service as events
    from engine.events.models import Source

    with _services().db.read() as s:
        for source in s.scalars(select(Source).order_by(Source.name)):
            row = events.source_to_dict(source)
            click.echo(f"{row['name']:<24} {'DISABLED' if row['disabled'] else 'enabled':<8} "
                       f"{'hmac' if row['signed'] else 'token':<5} "
                       f"{row['rate_limit_per_minute'] or '-':>6}/min "
                       f"accepted {row['accepted']} refused {row['refused']}  "
                       f"{','.join(row['allowed_types']) or 'all types'}")


@sources.command("change")
@click.argument("name")
@click.option("--types", default=None, help="Comma-separated event types it may send ('' for "
                                            "all).")
@click.option("--rate-limit", type=click.IntRange(min=0), default=None,
              help="At most this many requests a minute (0: no limit).")
@click.option("--hmac-secret", default=None, help="A new HMAC secret ('' to stop requiring "
                                                  "signatures).")
@click.option("--disable/--enable", "disabled", default=None, help="Refuse or accept its "
                                                                   "events.")
def sources_change(name, types, rate_limit, hmac_secret, disabled) -> None:
    """Change a source's event types, rate limit, HMAC secret or state (audited)."""
    from engine.auth import service as auth

    def run(s, ioc):
        source = auth.source_named(s, name)
        allowed, known = _types(ioc, types) if types is not None else \
            (source.allowed_types, set(ioc.vocabulary.types))
        return auth.change_source(
            s, source.id, allowed_types=allowed, known_types=known,
            rate_limit_per_minute=source.rate_limit_per_minute if rate_limit is None
            else (rate_limit or None),
            disabled=source.disabled if disabled is None else disabled,
            hmac_secret=auth.KEEP if hmac_secret is None else (hmac_secret or None))
    _said(name, _account(run))


@sources.command("rotate-token")
@click.argument("name")
def sources_rotate_token(name: str) -> None:
    """Give the source a new API token (shown once); the old one stops working (audited)."""
    from engine.auth import service as auth

    token = _account(lambda s, _: auth.rotate_source_token(s, auth.source_named(s, name).id))
    click.echo(f"API token (shown once): {token}")


# -- integrations --------------------------------------------------------------------------------
# Each command hands over to its adapter in integrations/; the adapter owns the protocol.


@main.group("import")
def import_() -> None:
    """Bulk imports from source systems (back-filling)."""


def _source_id(ioc, name: str) -> int:
    from engine.auth import service as auth

    try:
        with ioc.db.read() as s:
            return auth.source_named(s, name).id
    except auth.AuthError:
        raise click.ClickException(f"--source: no source named {name!r} (see `ioc sources add`)"
                                   ) from None


def _print_result(result) -> None:
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    if result.refused and not result.accepted:
        raise click.ClickException("nothing was accepted")


def _import(adapter: str, file: str, source_name: str) -> None:
    import importlib

    ioc = _services()
    module = importlib.import_module(f"integrations.{adapter}")
    _print_result(module.import_file(ioc, _source_id(ioc, source_name), file))


@import_.command("dossiers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", "source_name", required=True, help="The dossier system's source name.")
def import_dossiers(file: str, source_name: str) -> None:
    """Import a day's dossier log (CSV or JSON) as dossier events."""
    _import("dossiers", file, source_name)


@import_.command("health")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", "source_name", required=True, help="The health system's source name.")
def import_health(file: str, source_name: str) -> None:
    """Import epidemic case reports (CSV) as health.case_report events."""
    _import("health", file, source_name)


@main.group()
def sensors() -> None:
    """Environment sensor stations."""


@sensors.command("listen")
@click.option("--source", "source_name", required=True, help="The sensor network's source name.")
@click.option("--broker", default="127.0.0.1:1883", show_default=True, help="MQTT host:port.")
@click.option("--topic", default="ioc/sensors/#", show_default=True,
              help="Topic filter (see integrations/sensors.py for the scheme).")
@click.option("--username", envvar="IOC_MQTT_USERNAME",
              help="Log in to the broker as this user (or IOC_MQTT_USERNAME); the password is "
                   "read from IOC_MQTT_PASSWORD, never from the command line.")
@click.option("--tls", is_flag=True, help="Connect over TLS, trusting the system's authorities.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
              help="The authority that signed the broker's certificate (implies --tls).")
@click.option("--cert-file", type=click.Path(exists=True, dir_okay=False),
              help="A client certificate for brokers that ask for one (with --key-file).")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False),
              help="The client certificate's private key.")
def sensors_listen(source_name: str, broker: str, topic: str, username: str | None, tls: bool,
                   ca_file: str | None, cert_file: str | None, key_file: str | None) -> None:
    """Subscribe to the stations' MQTT topics and store their readings as events."""
    from integrations import sensors as sensor_adapter

    host, _, port = broker.rpartition(":") if ":" in broker else (broker, "", "")
    if not host or not (port or "1883").isdigit():
        raise click.BadParameter(f"{broker!r}: expected host:port", param_hint="--broker")
    try:
        auth = sensor_adapter.BrokerAuth(username or None, os.environ.get("IOC_MQTT_PASSWORD")
                                         or None, tls, ca_file, cert_file, key_file)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    ioc = _services()
    sensor_adapter.listen(ioc, _source_id(ioc, source_name), host, int(port or 1883), topic,
                          auth)


@main.group()
def notify() -> None:
    """The notification outbox."""


@notify.command("deliver")
def notify_deliver() -> None:
    """Deliver every due notification now (e-mail, webhooks), in this process."""
    outbox = _services().outbox
    total = 0
    while (n := outbox.run_once()):
        total += n
    click.echo(f"handled {total} notifications")


@notify.group("webhook")
def notify_webhook() -> None:
    """Webhook subscriptions: signed POSTs to SMS gateways, chat apps, the citizens' app."""


@notify_webhook.command("add")
@click.argument("url")
@click.option("--secret", required=True,
              help="Signs every body: X-IOC-Signature: sha256=<HMAC-SHA256> (16+ characters).")
@click.option("--department", default=None,
              help="Only this department's notifications (default: every department).")
@click.option("--role", default=None,
              help="Only what a member of this role sees, e.g. department_head (default: all).")
def notify_webhook_add(url: str, secret: str, department: str | None, role: str | None) -> None:
    """Subscribe URL to notifications; each is POSTed as JSON, retried until it answers 2xx."""
    from engine.notify import service as notify_service

    ioc = _services()
    try:
        with ioc.db.session() as s:
            sub = notify_service.add_webhook(
                s, url, secret, department_key=department, role=role,
                departments=_departments(ioc) if department else None)
    except notify_service.WebhookInvalid as exc:
        where = "URL" if exc.field == "url" else f"--{exc.field}"
        raise click.ClickException(f"{where}: {exc.message}") from None
    click.echo(f"webhook {sub.id}: {sub.url} ({sub.department_key or 'every department'}, "
               f"{sub.role or 'every role'})")


@notify_webhook.command("list")
def notify_webhook_list() -> None:
    """Every subscription: id, state, department, role, URL (secrets are not shown)."""
    from engine.notify import service as notify_service

    with _services().db.read() as s:
        subs = notify_service.webhooks(s)
    if not subs:
        click.echo("no webhook subscriptions")
    for sub in subs:
        click.echo(f"{sub.id:>4}  {'active  ' if sub.active else 'inactive'}  "
                   f"{sub.department_key or '*':<28} {sub.role or '*':<16} {sub.url}")


@notify_webhook.command("disable")
@click.argument("webhook_id", type=int)
def notify_webhook_disable(webhook_id: int) -> None:
    """Stop a subscription; its queued notifications are not sent."""
    from engine.notify import service as notify_service

    try:
        with _services().db.session() as s:
            notify_service.deactivate_webhook(s, webhook_id)
    except notify_service.WebhookInvalid as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webhook {webhook_id} disabled")


# -- Redis mode: workers and the scheduler -----------------------------------------------------

def _redis_services():
    settings = Settings.from_env()
    if not settings.redis_url:
        raise click.ClickException("IOC_REDIS_URL is not set: without Redis, `ioc serve` "
                                   "processes events itself (embedded mode)")
    if not settings.database_url.startswith("postgresql"):
        raise click.ClickException("Redis mode needs PostgreSQL (IOC_DATABASE_URL): workers, "
                                   "the scheduler and the web write at once")
    return _services()


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (tests, catching up).")
@click.option("--name", default=None, help="The worker's name in rq (default: host and pid).")
def worker(burst: bool, name: str | None) -> None:
    """Run an rq worker: drains the event store's partitions (Redis mode)."""
    from rq import SimpleWorker

    from worker import jobs

    ioc = _redis_services()
    jobs.use(ioc)
    with ioc.db.session() as s:
        ioc.pipeline.refresh_rules(s)  # load and replay the rules before taking jobs
    garbage.settle()
    rq_worker = SimpleWorker([ioc.relay.queue], connection=ioc.redis, name=name)
    click.echo(f"worker {rq_worker.name} on queue {ioc.relay.queue.name}")
    rq_worker.work(burst=burst, logging_level="WARNING")


@main.command()
@click.option("--once", is_flag=True, help="One pass, then stop.")
@click.option("--interval", default=0.5, show_default=True, type=float,
              help="Seconds between passes when there is nothing to do.")
def scheduler(once: bool, interval: float) -> None:
    """Fire due timers and SLA levels, deliver notifications, relay pending events (Redis mode)."""
    import signal
    import threading

    from worker import scheduler as loop

    ioc = _redis_services()
    if once:
        fired, sent, relayed = loop.run_pass(ioc)
        click.echo(f"timers fired: {fired}, notifications sent: {sent}, "
                   f"partitions enqueued: {relayed}")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo("scheduler running (timers, notifications, relay)")
    try:
        loop.run(ioc, stop, interval)
    except KeyboardInterrupt:
        pass


# -- serving -------------------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app and API; in embedded mode also process events in-process."""
    from waitress import serve as waitress_serve

    from engine.app import create_app

    settings = Settings.from_env()
    app = create_app(settings, services=_services(), start_runner=settings.embedded)
    if settings.embedded:
        garbage.settle()  # this process runs batches too
    click.echo(f"IOC engine on http://{host}:{port} "
               f"({'embedded' if settings.embedded else 'Redis'} mode, "
               f"database {_safe_url(settings.database_url)})")
    waitress_serve(app, host=host, port=port, threads=threads)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Set up only; do not start the server.")
@click.option("--simulate/--no-simulate", default=True, show_default=True,
              help="While serving, play a simulated day of the province (docs/simulator.md).")
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, no_serve: bool, simulate: bool) -> None:
    """Set up a demo province (schema, organisation, scenarios, users, sources), then serve."""
    from engine import demo as demo_setup

    ctx.invoke(db_upgrade)
    ctx.invoke(org_load, file=str(DEFAULT_ORG))
    ctx.invoke(scenarios_load, path=str(paths.SAMPLE_SCENARIOS), actor="demo")
    tokens = demo_setup.ensure_people(_services())
    demo_setup.print_access(tokens, host, port)
    if no_serve:
        return
    if simulate:
        demo_setup.start_simulator(f"http://{host}:{port}", tokens)
    ctx.invoke(serve, host=host, port=port)


@main.command()
@click.option("--url", default=lambda: os.environ.get("IOC_URL", "http://127.0.0.1:5000"),
              show_default="IOC_URL or http://127.0.0.1:5000")
@click.option("--seed", type=int, default=2025, show_default=True)
@click.option("--speed", type=click.FloatRange(min=0), default=144.0, show_default=True,
              help="144 = a day in ten minutes; 0 = as fast as possible.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=24.0,
              show_default=True)
@click.option("--start", default="auto", show_default=True,
              help="auto (now in office time, else the next working morning) | now | today | "
                   "yesterday | an ISO date-time (Asia/Ho_Chi_Minh without offset).")
@click.option("--tokens-file", default=None, help="Source tokens (default var/demo-tokens.json).")
def simulate(url: str, seed: int, speed: float, hours: float, start: str,
             tokens_file: str | None) -> None:
    """Send a realistic, reproducible stream of the province's events (docs/simulator.md)."""
    from engine import demo as demo_setup
    from integrations import simulator

    try:
        result = simulator.run(url, simulator.load_tokens(tokens_file or demo_setup.tokens_file()),
                               seed, simulator.parse_start(start), hours, speed,
                               echo=lambda text: click.echo(text, err=True))
    except simulator.SimulatorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
