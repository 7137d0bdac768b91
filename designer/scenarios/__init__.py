"""The scenario designer: drafts, the BPMN editor and its side panels, the rule builder,
validation, dry runs, versions and diffs, zip import and export (docs/designer.md).

Every POST carries its CSRF token (a form field, or the X-CSRFToken header of the editor's
script): the app-wide CSRFProtect refuses it otherwise, before any view runs."""
from __future__ import annotations

import functools

from flask import Blueprint, Flask, abort, current_app
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

from engine.auth.permissions import allowed
from engine.org import service as org
from engine.scenarios import drafts
from engine.scenarios.models import ScenarioDraft
from engine.scenarios.problems import ScenarioInvalid
from engine.scenarios.service import MANIFEST
from engine.scenarios.yamlsource import load_yaml

bp = Blueprint("designer", __name__, url_prefix="/designer")


def design_required(view):
    """Only signed-in people allowed to design scenarios (inspectors, admins) get through."""
    @functools.wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not allowed(current_user.role, "scenarios.design"):
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def services():
    """The running app's engine services."""
    return current_app.extensions["ioc"]


def draft_or_404(session, draft_id: int) -> ScenarioDraft:
    """The draft, or a 404 page."""
    draft = drafts.get(session, draft_id)
    if draft is None:
        abort(404)
    return draft


def manifest_of(files: dict[str, str]) -> dict:
    """A draft's manifest as data; {} while it does not parse (its problems say why)."""
    try:
        data, _ = load_yaml(files.get(MANIFEST, ""), MANIFEST)
    except ScenarioInvalid:
        return {}
    return data if isinstance(data, dict) else {}


def problem_dicts(problems) -> list[dict]:
    """Problems as the pages and the editor's script show them."""
    return [{"file": p.file, "line": p.line, "path": p.path, "message": p.message}
            for p in problems]


def department_choices(session) -> list[SelectChoice]:
    """Every unit of the organisation in force, by name in Vietnamese alphabetical order, for a
    drop-down (the key is the option's value, not shown)."""
    units = sorted(org.units(session), key=lambda u: org.vi_sort_key(org.display_name(u)))
    return [SelectChoice(u.key, org.display_name(u)) for u in units]


def register(app: Flask) -> None:
    """Attach the designer's pages to the app."""
    from designer.scenarios import panels, rules, views  # noqa: F401 - routes on bp

    app.register_blueprint(bp)
