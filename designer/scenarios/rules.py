"""The rule builder's pages: a draft's detection rules as a list, a form for one rule, the raw
YAML of the rules file, and the event vocabulary for the form's script (docs/rules.md).

Every change is saved into the draft through engine.scenarios.drafts, only when the whole
resulting rules file passes the rules parser; otherwise nothing is written.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm.exc import StaleDataError

from designer.i18n import N_, both
from designer.scenarios import (
    bp,
    department_choices,
    design_required,
    draft_or_404,
    manifest_of,
    problem_dicts,
    services,
)
from designer.scenarios import rule_form as rf
from designer.scenarios.forms import ActionForm
from engine.org import service as org
from engine.rules.format import parse_rules
from engine.rules.message import ENVELOPE_TYPES
from engine.scenarios import drafts
from engine.scenarios.problems import Problem, ScenarioInvalid
from engine.scenarios.yamlsource import load_yaml

CHANGED_MEANWHILE = N_("Someone else changed this draft meanwhile: reload the page and try again")


class _Refused(Exception):
    """The change cannot be saved; the reasons are already on the form (or in the message)."""


def _rules_name(files: Mapping[str, str]) -> str:
    """The rules file the manifest names (`rules:`), rules.yaml by default."""
    name = manifest_of(dict(files)).get("rules")
    return name if isinstance(name, str) and name else drafts.RULES_FILE


def _texts(value: Any) -> tuple[str, str]:
    if isinstance(value, Mapping):
        return str(value.get("vi") or ""), str(value.get("en") or "")
    return ("" if value is None else str(value)), ""


def _event_types(when: Any) -> str:
    if not isinstance(when, Mapping):
        return ""
    patterns = [p for mode in ("all", "any") for p in (when.get(mode) or [])
                if isinstance(p, Mapping)] or [when]
    names = [str(p.get("event")) for p in patterns]
    absent = when.get("absent")
    if isinstance(absent, Mapping):
        names.append(f"→ {absent.get('event')}")
    return ", ".join(names)


def _listing(text: str, name: str) -> tuple[list[dict], list[Problem]]:
    """The file's rules as list rows, and the file's problems (with their lines)."""
    try:
        data, _ = load_yaml(text, name)
    except ScenarioInvalid as exc:
        return [], exc.problems
    problems = _problems(text, name)
    items = data.get("rules") if isinstance(data, Mapping) else None
    rows = []
    for rule in items if isinstance(items, list) else []:
        if not isinstance(rule, Mapping):
            continue
        name_vi, name_en = _texts(rule.get("name"))
        key = rule.get("key")
        rows.append({"key": key if isinstance(key, str) else None, "name_vi": name_vi,
                     "name_en": name_en, "events": _event_types(rule.get("when")),
                     "pattern": rf.describe_when(rule.get("when")),
                     "why_not": rf.unsupported(rule)})
    return rows, problems


def _problems(text: str, name: str) -> list[Problem]:
    """What the scenario check would say about this rules file: the parser, and departments."""
    try:
        ruleset = parse_rules(text, name, services().vocabulary.field_types())
    except ScenarioInvalid as exc:
        return exc.problems
    with services().db.read() as s:
        known = org.known_keys(s)
    return [Problem(name, f"rule {rule.key}: notify to {notice.to!r}, which is not a department "
                          "key of the organisation", notice.line)
            for rule in ruleset.rules for notice in rule.then.notify if notice.to not in known]


def _list_page(draft, name: str, text: str, form: rf.RulesFileForm,
               editor_problems: list[Problem] = (), status: int = 200):
    rows, problems = _listing(text, name)
    return render_template("scenarios/rules.html", draft=draft, name=name, rows=rows,
                           problems=problem_dicts(problems), form=form,
                           editor_problems=problem_dicts(editor_problems),
                           action_form=ActionForm()), status


def _read(draft_id: int):
    with services().db.read() as s:
        draft = draft_or_404(s, draft_id)
        return draft, dict(draft.files)


@bp.get("/drafts/<int:draft_id>/rules")
@design_required
def rules(draft_id: int):
    """Quy tắc phát hiện / the draft's rules: the list, the rule builder's links, the YAML."""
    draft, files = _read(draft_id)
    name = _rules_name(files)
    text = files.get(name, "")
    form = rf.RulesFileForm(formdata=None, data={"text": text, "base": rf.digest(text)})
    return _list_page(draft, name, text, form)


@bp.post("/drafts/<int:draft_id>/rules/yaml")
@design_required
def save_rules_yaml(draft_id: int):
    """Lưu YAML / save the rules file as typed, when it has no problem."""
    draft, files = _read(draft_id)
    name = _rules_name(files)
    form = rf.RulesFileForm()
    problems: list[Problem] = []
    if form.validate():
        text = form.text.data.replace("\r\n", "\n")
        problems = _problems(text, name)
        if problems:
            form.text.errors.append(both("The file has problems, so it was not saved"))
        else:
            try:
                with services().db.session() as s:
                    stored = draft_or_404(s, draft_id)  # `draft` stays the page's copy
                    if rf.digest(stored.files.get(name, "")) != form.base.data:
                        raise _Refused(both(CHANGED_MEANWHILE))
                    changed = drafts.save_files(s, stored, {name: text},
                                                actor=current_user.username)
            except (drafts.DraftError, _Refused) as exc:
                form.text.errors.append(str(exc))
            except StaleDataError:
                form.text.errors.append(both(CHANGED_MEANWHILE))
            else:
                flash((both("Saved") if changed else both("No change")) + f": {name}", "ok")
                return redirect(url_for("designer.rules", draft_id=draft_id))
    return _list_page(draft, name, files.get(name, ""), form, problems, 422)


@bp.route("/drafts/<int:draft_id>/rules/new", methods=["GET", "POST"])
@design_required
def new_rule(draft_id: int):
    """Quy tắc mới / write a new rule with the rule builder."""
    return _rule_page(draft_id, None)


@bp.route("/drafts/<int:draft_id>/rules/<key>/edit", methods=["GET", "POST"])
@design_required
def edit_rule(draft_id: int, key: str):
    """Sửa quy tắc / change one rule with the rule builder."""
    return _rule_page(draft_id, key)


def _rule_page(draft_id: int, key: str | None):
    ioc = services()
    with ioc.db.read() as s:
        draft = draft_or_404(s, draft_id)
        files = dict(draft.files)
        departments = department_choices(s)
    name = _rules_name(files)
    text = files.get(name, "")
    try:
        data, _ = load_yaml(text, name)
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            flash(str(problem), "error")
        flash(both("Fix the YAML syntax in the YAML editor first"), "error")
        return redirect(url_for("designer.rules", draft_id=draft_id) + "#yaml")
    formdata = None
    if key is not None:
        items = data.get("rules") if isinstance(data, Mapping) else None
        rule = next((r for r in items or [] if isinstance(r, Mapping) and r.get("key") == key),
                    None)
        if rule is None:
            abort(404)
        why = rf.unsupported(rule)
        if why:
            flash(why, "warn")
            return redirect(url_for("designer.rules", draft_id=draft_id) + "#yaml")
        formdata = rf.rule_to_formdata(rule)
    # On a POST the fields come from the request alone (an omitted field is not the old value).
    form = rf.RuleForm(ioc.vocabulary, departments,
                       data=None if request.method == "POST" else formdata)
    preview, status = None, 200
    if form.is_submitted():
        valid = form.validate()
        if valid and not form.preview.data and _save_rule(draft_id, form, key):
            flash(both("Rule saved") + f": {form.key.data.strip()}", "ok")
            return redirect(url_for("designer.rules", draft_id=draft_id))
        preview = _preview(form, text, name, key)
        status = 200 if valid and form.preview.data else 422
    return render_template("scenarios/rule_edit.html", draft=draft, name=name, form=form,
                           key=key, preview=preview, file_problems=problem_dicts(
                               _problems(text, name))), status


def _preview(form: rf.RuleForm, text: str, name: str, key: str | None) -> dict:
    """The rule as it would be written, and the whole file with it."""
    rule = rf.form_to_rule(form)
    try:
        whole = rf.upsert_rule(text, rule, key, name)
    except ScenarioInvalid as exc:
        whole = "\n".join(str(p) for p in exc.problems)
    return {"rule": rf.rule_yaml(rule), "file": whole}


def _save_rule(draft_id: int, form: rf.RuleForm, old_key: str | None) -> bool:
    """Put the form's rule into the draft's rules file if the whole file then parses."""
    rule = rf.form_to_rule(form)
    try:
        with services().db.session() as s:
            draft = draft_or_404(s, draft_id)
            name = _rules_name(draft.files)
            current = draft.files.get(name, "")
            keys = rf.rule_keys(current, name)
            if old_key is not None and old_key not in keys:
                raise _Refused(both("This rule was removed from the file meanwhile"))
            text = rf.upsert_rule(current, rule, old_key, name)
            index = keys.index(old_key) if old_key is not None else len(keys)
            if not form.check_file(text, name, index):
                raise _Refused()
            drafts.save_files(s, draft, {name: text}, actor=current_user.username)
    except ScenarioInvalid as exc:  # the file in the draft is not YAML (any more)
        form.rule_errors.extend(str(p) for p in exc.problems)
    except (drafts.DraftError, _Refused) as exc:
        if str(exc):
            form.rule_errors.append(str(exc))
    except StaleDataError:
        form.rule_errors.append(both(CHANGED_MEANWHILE))
    else:
        return True
    return False


@bp.post("/drafts/<int:draft_id>/rules/<key>/delete")
@design_required
def delete_rule(draft_id: int, key: str):
    """Xóa quy tắc / remove one rule from the rules file (the other rules stay as written)."""
    try:
        with services().db.session() as s:
            draft = draft_or_404(s, draft_id)
            name = _rules_name(draft.files)
            text = rf.remove_rule(draft.files.get(name, ""), key, name)
            drafts.save_files(s, draft, {name: text}, actor=current_user.username)
    except KeyError:
        abort(404)
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            flash(str(problem), "error")
    except drafts.DraftError as exc:
        flash(str(exc), "error")
    except StaleDataError:
        flash(both(CHANGED_MEANWHILE), "error")
    else:
        flash(both("Rule deleted") + f": {key}", "ok")
    return redirect(url_for("designer.rules", draft_id=draft_id))


@bp.get("/vocabulary.json")
@design_required
def vocabulary_json():
    """Nguồn dữ liệu / sources, their event types and each type's fields, for the form's script."""
    vocab = services().vocabulary

    def describe(event_type: str) -> dict:
        fields = vocab.types[event_type].fields
        return {"type": event_type, "description": vocab.types[event_type].description,
                "fields": {name: spec.type for name, spec in fields.items()},
                "labels": {name: rf.field_label(vocab, event_type, name) for name in fields}}

    kinds = {spec.type for t in vocab.types.values() for spec in t.fields.values()} | {"string"}
    return jsonify(
        sources=[{"key": src.key, "name": src.name, "types": [describe(t) for t in src.types]}
                 for src in rf.sources(vocab)],
        envelope={name: {"type": kind, "label": rf.field_label(vocab, None, name)}
                  for name, kind in ENVELOPE_TYPES.items()},
        ops={kind: list(rf.allowed_ops(kind)) for kind in sorted(kinds)})
