"""Public warnings over HTTP: the commanders' API (draft, publish, list) and the public feed the
citizens' app polls (Atom, each entry linking its CAP 1.2 XML), open to anyone."""
from __future__ import annotations

from flask import Blueprint, Response, abort, g, jsonify, request, url_for
from lxml import etree

from engine.api import ApiProblem, bp, json_body, require_user, services
from engine.playbooks.service import PlaybookError
from engine.warnings import service
from engine.warnings.cap import SENDER, SENDER_NAME, cap_time
from engine.warnings.models import PUBLISHED, PublicWarning
from engine.warnings.service import WarningForm

public = Blueprint("public_warnings", __name__, url_prefix="/public")
TITLES = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 422: "Invalid Warning"}
ATOM = "http://www.w3.org/2005/Atom"


def _as_problem(exc: PlaybookError) -> ApiProblem:
    return ApiProblem(exc.status, TITLES.get(exc.status, "Error"), exc.message, exc.errors)


@bp.post("/instances/<int:instance_id>/warnings")
@require_user("playbooks.run")
def draft_warning(instance_id: int):
    """Draft a public warning of a playbook run (published only once approved)."""
    ioc = services()
    try:
        form = WarningForm.from_json(json_body())
        with ioc.db.session() as s:
            warning = service.draft(s, instance_id, form, actor=f"user:{g.user.username}",
                                    now=ioc.clock.now())
            return jsonify(service.to_dict(warning)), 201
    except PlaybookError as exc:  # a warning's own refusals, and its run's
        raise _as_problem(exc) from None


@bp.post("/warnings/<int:warning_id>/publish")
@require_user("playbooks.run")
def publish_warning(warning_id: int):
    """Approve a drafted warning and publish it (once)."""
    ioc = services()
    try:
        with ioc.db.session() as s:
            warning = service.publish(s, warning_id, actor=f"user:{g.user.username}",
                                      now=ioc.clock.now(), email=ioc.settings.smtp_enabled)
            return jsonify(service.to_dict(warning))
    except PlaybookError as exc:  # a warning's own refusals, and its run's
        raise _as_problem(exc) from None


@bp.get("/warnings")
@require_user("playbooks.run")
def list_warnings():
    """The published warnings, newest first."""
    with services().db.read() as s:
        return jsonify([service.to_dict(w) for w in service.published(s)])


@public.get("/warnings/<path:identifier>.xml")
def alert(identifier: str):
    """One published warning's CAP 1.2 XML, exactly as it was sent."""
    with services().db.read() as s:
        warning = s.query(PublicWarning).filter_by(identifier=identifier,
                                                   status=PUBLISHED).first()
        if warning is None:
            abort(404)
        return Response(warning.xml, mimetype="application/cap+xml")


@public.get("/warnings.atom")
def feed():
    """The published warnings as an Atom feed (newest first), each linking its CAP XML."""
    with services().db.read() as s:
        warnings = service.published(s)
        root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
        for name, text in (("id", f"urn:{SENDER}:warnings"),
                           ("title", f"Cảnh báo công khai – {SENDER_NAME['vi']}"),
                           ("updated", cap_time(warnings[0].sent) if warnings
                            else cap_time(services().clock.now()))):
            etree.SubElement(root, f"{{{ATOM}}}{name}").text = text
        etree.SubElement(root, f"{{{ATOM}}}link", rel="self", href=request.url)
        author = etree.SubElement(root, f"{{{ATOM}}}author")
        etree.SubElement(author, f"{{{ATOM}}}name").text = SENDER_NAME["vi"]
        for warning in warnings:
            entry = etree.SubElement(root, f"{{{ATOM}}}entry")
            etree.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:{warning.identifier}"
            etree.SubElement(entry, f"{{{ATOM}}}title").text = \
                f"{warning.msg_type}: {warning.headline_vi}"
            etree.SubElement(entry, f"{{{ATOM}}}updated").text = cap_time(warning.sent)
            etree.SubElement(entry, f"{{{ATOM}}}summary").text = warning.headline_en
            etree.SubElement(entry, f"{{{ATOM}}}link", rel="alternate",
                             type="application/cap+xml",
                             href=url_for("public_warnings.alert",
                                          identifier=warning.identifier, _external=True))
    return Response(etree.tostring(root, encoding="UTF-8", xml_declaration=True),
                    mimetype="application/atom+xml")
