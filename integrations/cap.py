"""Emergency alerts — OASIS CAP 1.2 XML, validated against the standard's schema.

Standard: OASIS Common Alerting Protocol Version 1.2 (OASIS Standard, 1 July 2010), namespace
`urn:oasis:names:tc:emergency:cap:1.2`; its XML Schema, as published, is
integrations/schemas/CAP-v1.2.xsd. National agencies (the hydro-meteorological forecasting centre
for storms and floods, health and civil-defence authorities) publish their warnings in CAP.

`POST /integrations/cap/alerts` takes one <alert>. Each <info> block (one per language or
audience) becomes one `emergency.alert` event: the alert's identifier, sender, sent, status and
msgType with the block's event, categories, urgency, severity, certainty, texts, language, expiry
and areas (polygons and circles as numbers, geocodes as name/value pairs; a geocode named "ward"
whose value is an organisation key or alias also names the ward or commune it resolves to).
Event id `<identifier>#<n>` (n counts <info> blocks from 1), so a message sent again is a
duplicate; CloudEvent time = <sent>, subject = identifier, source `/cap/<sender>`.

Why it is built this way: the schema refuses what the standard refuses before anything is
stored, and a message is taken whole or not at all (every event is checked first, then all are
stored in one transaction), so a case never starts from half an alert. The XML is read without
network access, DTDs or entity expansion, and only up to MAX_BYTES: alerts come from outside.
"""
from __future__ import annotations

import math
import re
from datetime import datetime

from flask import Blueprint, g, jsonify, request
from lxml import etree

from engine.api import ApiProblem, require_source, services
from engine.events import service as events_service
from engine.events.models import Source
from engine.events.vocabulary import parse_datetime
from engine.org import service as org
from engine.warnings.cap import NS, schema  # the standard's namespace and XML Schema
from integrations import intake

bp = Blueprint("cap", __name__, url_prefix="/integrations/cap")

_Q = "{" + NS + "}"
EVENT_TYPE = "emergency.alert"
CONTENT_TYPES = ("application/cap+xml", "application/xml", "text/xml")
# Real alerts are a few kilobytes; 1 MiB still leaves room for an embedded <derefUri> image.
MAX_BYTES = 1024 * 1024
# Elements the schema lets repeat: their place in a path carries an index (info[2]) to be exact.
REPEATED = frozenset({"code", "info", "category", "responseType", "eventCode", "parameter",
                      "resource", "area", "polygon", "circle", "geocode"})
# CAP 1.2, 3.2.2: when <language> is absent, "en-US" SHALL be assumed (it is the schema default).
DEFAULT_LANGUAGE = "en-US"
WARD_GEOCODE = "ward"
WARD_KINDS = ("ward", "commune")


class CapRefused(Exception):
    """A message that cannot become events: problems as [{"field", "message"}] and a detail."""

    def __init__(self, problems: list[dict[str, str]], detail: str):
        self.problems, self.detail = problems, detail
        super().__init__(detail)


# ------------------------------------------------------------------------------- reading the XML

def _parser() -> etree.XMLParser:
    # No DTD loading, no entity expansion, no network; libxml2's size guards stay on (huge_tree off).
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False)


def where(el: etree._Element) -> str:
    """An element's place for error fields: 'alert/info[1]/urgency (line 14)'."""
    parts = []
    node = el
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if name in REPEATED and parent is not None:
            same = [child for child in parent if child.tag == node.tag]
            name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/".join(reversed(parts)) + f" (line {el.sourceline})"


_NOT_EXPECTED = re.compile(r"This element is not expected\. Expected is (?:one of )?\( (.+) \)\.")


def _schema_message(message: str) -> str:
    # libxml2 names elements as {namespace}name and repeats the element the field already names.
    text = message.replace(_Q, "")
    text = re.sub(r"^Element '[^']*'(?:, attribute '[^']*')?: ", "", text)
    text = text.replace("[facet 'enumeration'] ", "").replace("[facet 'pattern'] ", "")
    found = _NOT_EXPECTED.search(text)
    if found:
        return (f"not expected here: expected {found.group(1)} (a required element is missing, "
                "or the elements are out of the order CAP 1.2 sets)")
    return text


def read(body: bytes) -> etree._Element:
    """The <alert> root of a CAP 1.2 message, or CapRefused naming where it is wrong."""
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 1
        raise CapRefused([{"field": f"body (line {line})", "message": exc.msg}],
                         f"the body is not well-formed XML: {exc.msg}") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        line = body[:max(body.find(b"<!DOCTYPE"), 0)].count(b"\n") + 1
        raise CapRefused(
            [{"field": f"body (line {line})", "message": "a DOCTYPE is not accepted"}],
            "the message has a DOCTYPE: CAP messages need no DTD, and DTDs (with their entity "
            "declarations) are refused for safety")
    qname = etree.QName(root)
    if qname.namespace != NS or qname.localname != "alert":
        got = f"<{qname.localname}> in " + (f"namespace {qname.namespace}" if qname.namespace
                                            else "no namespace")
        hint = " (only CAP 1.2 is accepted)" if qname.localname == "alert" else ""
        raise CapRefused(
            [{"field": f"{qname.localname} (line {root.sourceline})",
              "message": f"the root element must be <alert> in namespace {NS}; got {got}{hint}"}],
            f"not a CAP 1.2 message: the root element must be <alert> in namespace {NS}")
    validator = schema()
    if not validator.validate(tree):
        problems = []
        for error in validator.error_log:
            try:
                located = tree.xpath(error.path) if error.path else []
            except etree.XPathError:
                located = []
            field = (where(located[0]) if located and isinstance(located[0], etree._Element)
                     else f"alert (line {error.line})")
            problems.append({"field": field, "message": _schema_message(error.message)})
        first = problems[0]
        raise CapRefused(problems, f"the message breaks the CAP 1.2 schema in {len(problems)} "
                                   f"place(s); first at {first['field']}: {first['message']}")
    return root


# ------------------------------------------------------------------------- CAP → emergency.alert


def _value(el: etree._Element | None) -> str | None:
    # The XPath string value ignores comments inside the text; CAP texts carry no markup.
    return None if el is None else str(el.xpath("string()")).strip()


def _number(text: str, lo: float, hi: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and lo <= value <= hi else None


def _point(pair: str) -> list[float] | None:
    lat, sep, lon = pair.partition(",")
    if not sep:
        return None
    point = [_number(lat, -90, 90), _number(lon, -180, 180)]
    return None if None in point else point


_PAIR = "'latitude,longitude' (WGS 84 degrees, latitude -90..90, longitude -180..180)"


def _polygon(el: etree._Element) -> list[list[float]]:
    # CAP 1.2, 3.3.2.2: at least four "lat,lon" pairs (WGS 84), the first and last the same.
    pairs = (_value(el) or "").split()
    points = [_point(pair) for pair in pairs]
    if None in points:
        n = points.index(None)
        message = f"pair {n + 1} ({pairs[n]!r}) is not {_PAIR}"
    elif len(points) < 4:
        message = f"has {len(points)} pair(s); a polygon needs at least 4"
    elif points[0] != points[-1]:
        message = "is not closed: the first and the last pair must be the same"
    else:
        return points
    raise CapRefused([{"field": where(el), "message": message}],
                     f"a polygon is not in CAP 1.2 form: {message}")


def _circle(el: etree._Element) -> dict:
    # CAP 1.2, 3.3.2.3: "lat,lon radius", the radius in kilometres.
    parts = (_value(el) or "").split()
    point = _point(parts[0]) if len(parts) == 2 else None
    radius = _number(parts[1], 0, 40075) if point else None
    if point is None or radius is None:
        message = (f"{(_value(el) or '')!r} is not {_PAIR} followed by a space and a radius in "
                   "kilometres (not negative)")
        raise CapRefused([{"field": where(el), "message": message}],
                         f"a circle is not in CAP 1.2 form: {message}")
    return {"lat": point[0], "lon": point[1], "radius_km": radius}


def _area(el: etree._Element) -> dict:
    return {"desc": _value(el.find(_Q + "areaDesc")),
            "polygons": [_polygon(p) for p in el.iterfind(_Q + "polygon")],
            "circles": [_circle(c) for c in el.iterfind(_Q + "circle")],
            "geocodes": [{"name": _value(gc.find(_Q + "valueName")),
                          "value": _value(gc.find(_Q + "value"))}
                         for gc in el.iterfind(_Q + "geocode")]}


def to_events(root: etree._Element) -> tuple[list[dict], list[dict[str, str]]]:
    """One emergency.alert CloudEvent per <info>, and per event where each field came from."""
    header = {name: root.find(_Q + name) for name in
              ("identifier", "sender", "sent", "status", "msgType")}
    infos = root.findall(_Q + "info")
    if not infos:
        raise CapRefused(
            [{"field": where(root), "message": "has no <info> block"}],
            "the message has no <info> block, so it carries no alert to act on (one "
            f"{EVENT_TYPE} event is made per <info>)")
    identifier, sender, sent = (_value(header[n]) for n in ("identifier", "sender", "sent"))
    raws, places = [], []
    for n, info in enumerate(infos, start=1):
        texts = {name: info.find(_Q + name) for name in
                 ("language", "event", "urgency", "severity", "certainty", "headline",
                  "description", "instruction", "expires")}
        data = {"identifier": identifier, "sender": sender, "sent": sent,
                "status": _value(header["status"]), "msg_type": _value(header["msgType"]),
                "event": _value(texts["event"]),
                "category": [_value(c) for c in info.iterfind(_Q + "category")],
                "urgency": _value(texts["urgency"]), "severity": _value(texts["severity"]),
                "certainty": _value(texts["certainty"]),
                "language": _value(texts["language"]) or DEFAULT_LANGUAGE}
        for name in ("headline", "description", "instruction", "expires"):
            if _value(texts[name]):  # absent or empty optional texts are left out
                data[name] = _value(texts[name])
        data["areas"] = [_area(a) for a in info.iterfind(_Q + "area")]
        raws.append(intake.cloud_event(EVENT_TYPE, f"{identifier}#{n}", f"/cap/{sender}", data,
                                       subject=identifier, time=sent))
        place = {"id": where(header["identifier"]), "subject": where(header["identifier"]),
                 "source": where(header["sender"]), "time": where(header["sent"]),
                 "data.msg_type": where(header["msgType"]), "data": where(info),
                 "data.category": where(info.find(_Q + "category"))}
        place.update({f"data.{name}": where(header[name])
                      for name in ("identifier", "sender", "sent", "status")})
        place.update({f"data.{name}": where(el) for name, el in texts.items() if el is not None})
        places.append(place)
    return raws, places


# ----------------------------------------------------------------------------------------- wards


def resolve_wards(session, raws: list[dict]) -> None:
    """Name the ward or commune of each "ward" geocode whose value is an organisation key or alias."""
    for raw in raws:
        sent = parse_datetime(raw["data"]["sent"] or "")
        # The organisation as it stood when the alert was sent (old keys follow their successor).
        on = org.local_time(sent).date() if isinstance(sent, datetime) else None
        for area in raw["data"]["areas"]:
            for geocode in area["geocodes"]:
                if (geocode["name"] or "").casefold() != WARD_GEOCODE or not geocode["value"]:
                    continue
                unit = org.resolve(session, geocode["value"], on)
                if unit is not None and unit.kind in WARD_KINDS:
                    geocode["ward"] = unit.key


# ------------------------------------------------------------------------------------------ HTTP


def _located(field: str, place: dict[str, str]) -> str:
    # A vocabulary problem names a CloudEvent field (data.areas.0.desc); say where it is in the XML.
    parts = field.split(".")
    for end in range(len(parts), 0, -1):
        found = place.get(".".join(parts[:end]))
        if found:
            return found
    return field


def _problems(session, raws: list[dict], places: list[dict[str, str]]) -> list[dict[str, str]]:
    """What the event store would refuse in these events, located in the XML."""
    ioc = services()
    source = session.get(Source, g.source.id)
    problems: list[dict[str, str]] = []
    for raw, place in zip(raws, places):
        for problem in events_service.validate(session, raw, source, ioc.vocabulary):
            message = problem["message"]
            if problem["field"] == "id":  # the limit is on the event id, not on CAP's identifier
                message += " (the event id is '<identifier>#<info number>')"
            located = {"field": _located(problem["field"], place), "message": message}
            if located not in problems:  # a header problem repeats in every <info>'s event
                problems.append(located)
    return problems


@bp.post("/alerts")
@require_source
def post_alert():
    """Take one CAP 1.2 message: one emergency.alert event per <info>; 202 once all are stored."""
    if (request.mimetype or "").lower() not in CONTENT_TYPES:
        raise ApiProblem(415, "Unsupported Media Type",
                         f"send one CAP 1.2 message as {', '.join(CONTENT_TYPES)}")
    body = request.get_data(cache=True)
    if len(body) > MAX_BYTES:
        problems = [{"field": "body", "message": f"{len(body)} bytes; at most {MAX_BYTES}"}]
        events_service.refuse(services().db, g.source.id, problems)
        raise ApiProblem(413, "Content Too Large",
                         f"a CAP message may be at most {MAX_BYTES} bytes", problems)
    try:
        raws, places = to_events(read(body))
    except CapRefused as exc:
        intake.refuse(exc.problems, exc.detail)  # counted for the source, then 422
    with services().db.read() as session:
        resolve_wards(session, raws)
        problems = _problems(session, raws, places)
    if problems:
        # The whole message or nothing: a case must not start from half an alert.
        first = problems[0]
        intake.refuse(problems, f"the alert cannot become {EVENT_TYPE} events; first at "
                                f"{first['field']}: {first['message']}")
    answer, status = intake.answer(intake.store(raws), single=len(raws) == 1)
    return jsonify(answer), status
