"""1022 hotline — Open311 GeoReport v2: citizen apps and call-centre software file and follow tickets.

Why GeoReport v2 (https://wiki.open311.org/GeoReport_v2): it is the open standard for
non-emergency service requests, already spoken by citizen-reporting apps and call-centre tools,
so they can talk to the IOC without an adapter of their own. Only the JSON format is served (the
spec makes XML the default; `.xml` answers 404 here, as any other format).

- `GET services.json`, `GET services/<code>.json`: the hotline categories of the event
  vocabulary, each with a required `ward` attribute listing today's wards and communes.
- `POST requests.json`: a `hotline.ticket.created` CloudEvent stored through `intake`, so it is
  checked, deduplicated and counted like every other event. An `Idempotency-Key` header makes a
  retry return the same `service_request_id` without storing the ticket twice.
- `GET requests.json`, `GET requests/<id>.json`: the status is never stored here; it is read from
  the hotline-ticket process instance whose subject is the ticket id (open while it runs). A
  source reads only the tickets it filed: a citizen app's key ships inside the app, so it must
  not open the call centre's tickets to everyone.

Every route needs the source's token: `Authorization: Bearer`, or the spec's `api_key`
parameter, which is turned into that header so that the one authentication path
(`engine.api.require_source`: token, HMAC signature, rate limit) decides. Errors are RFC 9457
problem+json naming fields by their Open311 names (`attribute[ward]`, `lat`…).
"""
from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
import unicodedata
from datetime import date, datetime, timedelta

from flask import Blueprint, g, jsonify, request
from sqlalchemy import func, select

from engine.api import ApiProblem, moment_arg, require_source, services
from engine.events.models import FAILED, PENDING, Event
from engine.org import service as org
from engine.org.models import OrgUnit
from engine.processes.models import CANCELLED, COMPLETED, ERROR, ProcessInstance
from engine.sla.models import OPEN_STATES, SlaClock
from engine.tasks.models import ACTIVE, CLAIMED, Task
from engine.tasks.models import COMPLETED as TASK_COMPLETED
from integrations import intake

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

TICKET_TYPE = "hotline.ticket.created"
SCENARIO = "hotline-ticket"   # the shipped scenario whose instances carry a ticket's status
ANSWER_TASK = "answer_ticket"  # its user task: the department answering the citizen
EVENT_SOURCE = "/open311/v2"
WARD_KINDS = ("ward", "commune")
CHANNELS = {"phone": "Điện thoại / phone", "app": "Ứng dụng di động / mobile app",
            "web": "Cổng thông tin điện tử / web portal", "chat": "Nhắn tin trực tuyến / chat"}
DEFAULT_CHANNEL = "app"  # what a GeoReport client almost always is
MAX_DESCRIPTION = 4000   # the spec's limit on description
MAX_ADDRESS = 500
MAX_IDEMPOTENCY_KEY = 255
MAX_RESULTS = 1000       # the spec's default cap on GET requests
MAX_SPAN = timedelta(days=90)  # the spec's default (and here maximum) date range
CHUNK = 200              # events read per query while listing
# Written by POST between the citizen's text and the address, so GET can show them apart: the
# vocabulary has no address field, and the department must see the address with the report.
ADDRESS_MARK = "\nĐịa chỉ / Address: "

# service_code → (service_name, description, group, keywords). The codes themselves come from
# the vocabulary's category enum, so a category added there is offered (by its code) at once.
CATEGORIES: dict[str, tuple[str, str, str, str]] = {
    "environment": (
        "Môi trường",
        "Ô nhiễm không khí, nước, tiếng ồn; rác thải, xả thải trái phép / pollution, waste, "
        "illegal dumping",
        "Môi trường / Environment", "ô nhiễm,rác thải,khói bụi,mùi hôi,nước thải,tiếng ồn"),
    "traffic": (
        "Giao thông",
        "Hư hỏng mặt đường, đèn tín hiệu, biển báo; ùn tắc / damaged roads, traffic lights, "
        "signs; congestion",
        "Hạ tầng / Infrastructure", "ổ gà,mặt đường,đèn tín hiệu,biển báo,ùn tắc"),
    "urban-order": (
        "Trật tự đô thị",
        "Lấn chiếm vỉa hè, lòng đường; xây dựng không phép; quảng cáo sai quy định / "
        "encroachment, unlicensed building, illegal advertising",
        "Đô thị / Urban order", "lấn chiếm,vỉa hè,xây dựng không phép,quảng cáo"),
    "public-services": (
        "Dịch vụ công, thủ tục hành chính",
        "Hồ sơ, thủ tục hành chính, thái độ phục vụ / administrative procedures and service",
        "Hành chính công / Public administration", "hồ sơ,thủ tục,một cửa,dịch vụ công"),
    "security": (
        "An ninh, trật tự",
        "Gây rối trật tự công cộng, tệ nạn — không khẩn cấp; khẩn cấp gọi 113 / public order, "
        "non-emergency (emergencies: call 113)",
        "An ninh / Security", "gây rối,trộm cắp,tệ nạn,trật tự"),
    "health": (
        "Y tế",
        "An toàn thực phẩm, dịch bệnh, cơ sở khám chữa bệnh / food safety, epidemics, clinics",
        "Y tế / Health", "an toàn thực phẩm,dịch bệnh,bệnh viện"),
    "other": (
        "Khác",
        "Phản ánh, kiến nghị khác; trực ban IOC phân loại / anything else, sorted by the IOC "
        "duty officer",
        "Khác / Other", "khác,kiến nghị"),
}

NOTICE_ACCEPTED = ("Đã tiếp nhận phản ánh, đang chuyển đơn vị có thẩm quyền / received, being "
                   "routed to the competent unit")
NOTICE_RECEIVING = "đang tiếp nhận / being received"
NOTICE_FAILED = ("Lỗi khi tiếp nhận, Trung tâm IOC đang kiểm tra / could not be processed; the "
                 "IOC is looking into it")
NOTICE_HANDLING = "Đã chuyển đơn vị có thẩm quyền xử lý / forwarded to the competent unit"
NOTICE_ANSWERED = "Đơn vị có thẩm quyền đã trả lời / answered by the competent unit"
NOTICE_CALL_CENTRE = "Đã giải quyết tại tổng đài 1022 / resolved at the 1022 call centre"
NOTICE_CANCELLED = "Đã hủy / cancelled"
NOTES_WAITING = "Chờ đơn vị tiếp nhận / waiting for the unit to take it"
NOTES_CLAIMED = "Cán bộ đã nhận xử lý / an officer is handling it"
NOTES_ERROR = "Quy trình xử lý gặp lỗi, Trung tâm IOC đang kiểm tra / the IOC is looking into it"

# Event fields as a refusal names them → the Open311 parameter the client sent.
_FIELD_NAMES = {"data.category": "service_code", "data.ward": "attribute[ward]",
                "data.description": "description", "data.channel": "attribute[channel]",
                "data.location": "lat", "data.location.lat": "lat", "data.location.lon": "long"}


# ------------------------------------------------------------------------------ plumbing


def _api_key() -> str | None:
    """The spec's api_key parameter: in the query, the form or a JSON body."""
    key = None
    if request.method == "POST":
        # Read the raw body first: the signature check needs it after the form has been parsed.
        request.get_data(cache=True)
        if request.is_json:
            body = request.get_json(silent=True)
            key = body.get("api_key") if isinstance(body, dict) else None
        else:
            key = request.form.get("api_key")
    key = key or request.args.get("api_key")
    return key.strip() if isinstance(key, str) and key.strip() else None


def require_token(view):
    """require_source, also taking the token from the spec's `api_key` parameter."""
    guarded = require_source(view)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        # An explicit Authorization header wins; api_key only stands in for a missing one, so
        # token, signature and rate limit are checked by the one code path.
        if not request.headers.get("Authorization"):
            key = _api_key()
            if key:
                request.environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        return guarded(*args, **kwargs)
    return wrapper


def _json_only(fmt: str) -> None:
    if fmt != "json":
        raise ApiProblem(404, "Not Found", f"format {fmt!r} is not served: use .json "
                         "(GeoReport v2 XML is not offered)")


def _categories() -> list[str]:
    """The hotline categories of the event vocabulary, in its order."""
    etype = services().vocabulary.get(TICKET_TYPE)
    spec = etype.fields.get("category") if etype else None
    return list(spec.schema.get("enum", [])) if spec else []


def _service_name(code: str) -> str:
    return CATEGORIES.get(code, (code,))[0]


def _iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the province's offset, as the spec asks (+07:00)."""
    return org.local_time(moment).isoformat(timespec="seconds") if moment else None


def _csv(name: str) -> list[str]:
    raw = request.args.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def _bad_request(field: str, message: str):
    raise ApiProblem(400, "Bad Request", f"{field} {message}", [{"field": field, "message": message}])


# ------------------------------------------------------------------------------ services


def _service(code: str) -> dict:
    name, description, group, keywords = CATEGORIES.get(code, (code, code, "Khác / Other", code))
    return {"service_code": code, "service_name": name, "description": description,
            "metadata": True, "type": "realtime", "keywords": keywords, "group": group}


@bp.get("/services.<fmt>")
@require_token
def list_services(fmt: str):
    """GeoReport GET services: the hotline categories."""
    _json_only(fmt)
    return jsonify([_service(code) for code in _categories()])


@bp.get("/services/<code>.<fmt>")
@require_token
def service_definition(code: str, fmt: str):
    """GeoReport GET service definition: the ward (required) and channel attributes."""
    _json_only(fmt)
    if code not in _categories():
        raise ApiProblem(404, "Not Found", f"unknown service_code {code!r}")
    with services().db.read() as s:
        wards = [{"key": u.key, "name": u.name_vi} for u in org.units(s, kinds=WARD_KINDS)]
    return jsonify({"service_code": code, "attributes": [
        {"variable": True, "code": "ward", "datatype": "singlevaluelist", "required": True,
         "datatype_description": "Mã hoặc tên phường, xã / the key or the Vietnamese name of "
                                 "the ward or commune",
         "order": 1, "description": "Phường, xã nơi phản ánh / ward or commune concerned",
         "values": wards},
        {"variable": True, "code": "channel", "datatype": "singlevaluelist", "required": False,
         "datatype_description": f"Mặc định / default: {DEFAULT_CHANNEL}", "order": 2,
         "description": "Kênh tiếp nhận / channel the report came through",
         "values": [{"key": k, "name": v} for k, v in CHANNELS.items()]},
    ]})


# ------------------------------------------------------------------------------ POST requests


def _params() -> dict:
    """The request's GeoReport parameters, form-encoded (the spec) or a JSON object."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiProblem(400, "Bad Request", "the body must be a JSON object of GeoReport "
                                                 "parameters")
        params = {}
        for key, value in body.items():
            if key == "attribute" and isinstance(value, dict):
                params.update({f"attribute[{code}]": v for code, v in value.items()})
            else:
                params[key] = value
        return params
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data") \
            or not request.get_data(cache=True):
        return request.form.to_dict()
    raise ApiProblem(415, "Unsupported Media Type", "send application/x-www-form-urlencoded "
                                                    "(GeoReport v2) or application/json")


def _text(params: dict, name: str, problems: list, limit: int, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.append({"field": name, "message": "is required"})
        return None
    if not isinstance(value, str):
        problems.append({"field": name, "message": "must be text"})
        return None
    value = value.strip()
    if len(value) > limit:
        problems.append({"field": name, "message": f"must be at most {limit} characters"})
        return None
    return value


def _coordinate(params: dict, name: str, bound: float, problems: list) -> float | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        problems.append({"field": name, "message": "must be a decimal number (WGS84 degrees)"})
        return None
    if not -bound <= number <= bound:
        problems.append({"field": name, "message": f"must be between -{bound:g} and {bound:g}"})
        return None
    return number


def _name_key(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip().casefold()


def _ward(session, value: str) -> OrgUnit | None:
    """Today's ward or commune for a key, an old key or alias, or its Vietnamese name."""
    unit = org.resolve(session, value)
    if unit is not None and unit.kind in WARD_KINDS:
        return unit
    wanted = _name_key(value)
    return next((u for u in org.units(session, kinds=WARD_KINDS)
                 if _name_key(u.name_vi) == wanted), None)


def _ticket_data(params: dict) -> tuple[dict, list[dict]]:
    """The hotline.ticket.created data (without ticket_id) and every problem, Open311-named."""
    problems: list[dict] = []
    code = _text(params, "service_code", problems, 100, required=True)
    if code is not None and code not in _categories():
        problems.append({"field": "service_code", "message": f"unknown service_code {code!r}; "
                         "see services.json"})
    description = _text(params, "description", problems, MAX_DESCRIPTION, required=True)
    lat = _coordinate(params, "lat", 90, problems)
    lon = _coordinate(params, "long", 180, problems)
    address = _text(params, "address_string", problems, MAX_ADDRESS)
    given = {p["field"] for p in problems}
    if (lat is None) != (lon is None) and not {"lat", "long"} & given:
        missing = "long" if lon is None else "lat"
        problems.append({"field": missing, "message": "lat and long go together"})
    elif lat is None and lon is None and address is None and not {"lat", "long", "address_string"} & given:
        problems.append({"field": "lat", "message": "lat and long, or address_string, is required"})
    ward_value = _text(params, "attribute[ward]", problems, 255, required=True)
    ward = None
    if ward_value is not None:
        with services().db.read() as s:
            unit = _ward(s, ward_value)
            ward = unit.key if unit is not None else None
        if ward is None:
            problems.append({"field": "attribute[ward]", "message": f"unknown ward or commune "
                             f"{ward_value!r}; see the values in services/<code>.json"})
    channel = _text(params, "attribute[channel]", problems, 20) or DEFAULT_CHANNEL
    if channel not in CHANNELS:
        problems.append({"field": "attribute[channel]",
                         "message": f"must be one of {', '.join(CHANNELS)}"})
    for name in params:
        if name.startswith("attribute[") and name not in ("attribute[ward]", "attribute[channel]"):
            problems.append({"field": name, "message": "unknown attribute of this service"})
    if problems:
        return {}, problems
    if address:
        description = f"{description}{ADDRESS_MARK}{address}"
    data = {"category": code, "ward": ward, "description": description, "channel": channel}
    if lat is not None:
        data["location"] = {"lat": lat, "lon": lon}
    # email, names, phone, device_id, account_id and media_url are left out on purpose: the
    # event vocabulary holds no personal data of the citizen.
    return data, []


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip().strip('"')  # the IETF draft sends it as a quoted string; accept both
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        _bad_request("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def _new_ticket_id() -> str:
    today = org.local_time(services().clock.now())
    return f"1022-{today:%Y%m%d}-{secrets.token_hex(4).upper()}"


def _store(data: dict, ce_id: str | None) -> str:
    """Store the ticket once; return its id (the earlier one when ce_id was already used)."""
    for _ in range(3):
        ticket_id = _new_ticket_id()
        event = intake.cloud_event(TICKET_TYPE, ce_id or ticket_id, EVENT_SOURCE,
                                   {"ticket_id": ticket_id, **data}, subject=ticket_id,
                                   time=services().clock.now())
        result = intake.store([event])
        try:
            intake.answer(result, single=True)
        except ApiProblem as exc:
            # The vocabulary speaks CloudEvents; the client spoke Open311.
            exc.errors = [{**e, "field": _FIELD_NAMES.get(e.get("field"), e.get("field"))}
                          for e in exc.errors]
            raise
        if result.accepted:
            return ticket_id
        if ce_id is not None:
            return _replayed(ce_id, data)
        # Without a key a duplicate can only be a clash of random ids: draw another.
    raise ApiProblem(503, "Service Unavailable", "could not draw a free ticket number; retry")


def _replayed(ce_id: str, data: dict) -> str:
    """The ticket id stored under this idempotency key, if it was for the same request."""
    with services().db.read() as s:
        stored = s.scalars(select(Event).where(Event.source_id == g.source.id,
                                               Event.ce_id == ce_id)).one()
        earlier = dict(stored.data)
    ticket_id = earlier.pop("ticket_id")
    if earlier != data:
        raise ApiProblem(422, "Unprocessable Content", "this Idempotency-Key was already used "
                         "for a different request", [{"field": "Idempotency-Key",
                                                      "message": "already used for a different "
                                                                 "request"}])
    return ticket_id


@bp.post("/requests.<fmt>")
@require_token
def create_request(fmt: str):
    """GeoReport POST service request: a hotline.ticket.created event; 201 with its id."""
    _json_only(fmt)
    if g.source.allowed_types and TICKET_TYPE not in g.source.allowed_types:
        raise ApiProblem(403, "Forbidden", f"source {g.source.name!r} may not file hotline "
                                           "tickets")
    key = _idempotency_key()
    data, problems = _ticket_data(_params())
    if problems:
        intake.refuse(problems, "; ".join(f"{p['field']} {p['message']}" for p in problems))
    ce_id = None
    if key is not None:
        # Hashed: the key is the client's text (any length, any characters); the event store's
        # unique (source, id) then makes a retry a duplicate, even when two race.
        ce_id = "open311-idem-" + hashlib.sha256(key.encode()).hexdigest()
    ticket_id = _store(data, ce_id)
    return jsonify([{"service_request_id": ticket_id, "service_notice": NOTICE_ACCEPTED,
                     "account_id": None}]), 201


# ------------------------------------------------------------------------------ GET requests


def _agency(session, key: str | None, on: date, cache: dict) -> str | None:
    """The department's Vietnamese name as it was on `on`."""
    if not key:
        return None
    if (key, on) not in cache:
        unit = org.resolve(session, key, on)
        cache[(key, on)] = unit.name_vi if unit is not None else key
    return cache[(key, on)]


def _describe(session, events: list[Event]) -> list[dict]:
    """GeoReport service requests for ticket events, their status read from the process."""
    ticket_ids = [e.data.get("ticket_id") for e in events]
    instances: dict[str, ProcessInstance] = {}
    for inst in session.scalars(select(ProcessInstance).where(
            ProcessInstance.scenario_key == SCENARIO,
            ProcessInstance.subject.in_([t for t in ticket_ids if t])).order_by(ProcessInstance.id)):
        instances[inst.subject] = inst  # the latest instance of a ticket wins
    ids = [i.id for i in instances.values()]
    tasks: dict[int, list[Task]] = {}
    due: dict[int, datetime] = {}
    if ids:
        for task in session.scalars(select(Task).where(Task.instance_id.in_(ids),
                                                       Task.bpmn_id == ANSWER_TASK)
                                    .order_by(Task.id)):
            tasks.setdefault(task.instance_id, []).append(task)
        for clock in session.scalars(select(SlaClock).where(
                SlaClock.instance_id.in_(ids), SlaClock.task_id.is_(None),
                SlaClock.status.in_(OPEN_STATES), SlaClock.due_at.is_not(None))):
            due[clock.instance_id] = min(clock.due_at, due.get(clock.instance_id, clock.due_at))
    names: dict = {}
    return [_request(session, e, instances.get(t), tasks, due, names)
            for e, t in zip(events, ticket_ids)]


def _request(session, event: Event, instance: ProcessInstance | None,
             tasks: dict[int, list[Task]], due: dict[int, datetime], names: dict) -> dict:
    data = event.data
    description, address = data.get("description") or "", None
    if ADDRESS_MARK in description:
        description, _, address = description.rpartition(ADDRESS_MARK)
    location = data.get("location") or {}
    code = data.get("category")
    out = {"service_request_id": event.subject, "status": "open", "status_notes": None,
           "service_name": _service_name(code), "service_code": code,
           "description": description, "agency_responsible": None,
           "service_notice": NOTICE_RECEIVING,
           "requested_datetime": _iso(event.time or event.received_at),
           "updated_datetime": _iso(event.processed_at or event.received_at),
           "expected_datetime": None, "address": address, "address_id": None,
           "zipcode": None, "lat": location.get("lat"), "long": location.get("lon"),
           "media_url": None}
    if instance is None:
        if event.status == FAILED:
            out["service_notice"] = NOTICE_FAILED
        elif event.status != PENDING:
            out["service_notice"] = "đã tiếp nhận / received"
        return out
    answers = tasks.get(instance.id, [])
    # The open answer task if there is one, else the last one: that department is responsible.
    task = next((t for t in reversed(answers) if t.status in ACTIVE),
                answers[-1] if answers else None)
    if task is not None:
        on = org.local_time(task.created_at).date()
        out["agency_responsible"] = _agency(session, task.department_key, on, names)
    else:
        on = org.local_time(instance.started_at).date()
        out["agency_responsible"] = _agency(session, instance.data.get("department"), on, names)
    moments = [instance.started_at, instance.ended_at, event.received_at]
    for t in answers:
        moments += [t.created_at, t.claimed_at, t.completed_at]
    out["updated_datetime"] = _iso(max(m for m in moments if m is not None))
    if instance.status in (COMPLETED, CANCELLED):
        out["status"] = "closed"
        answered = next((t for t in reversed(answers)
                         if t.status == TASK_COMPLETED and (t.result or {}).get("answer")), None)
        if instance.status == CANCELLED:
            out["service_notice"] = NOTICE_CANCELLED
        elif answered is not None:
            out["service_notice"] = NOTICE_ANSWERED
        else:
            out["service_notice"] = NOTICE_CALL_CENTRE
        out["status_notes"] = (answered.result["answer"] if answered is not None
                               else instance.data.get("answer")) or out["service_notice"]
    elif instance.status == ERROR:
        out["service_notice"], out["status_notes"] = NOTICE_HANDLING, NOTES_ERROR
    else:  # RUNNING
        out["service_notice"] = NOTICE_HANDLING
        out["status_notes"] = NOTES_CLAIMED if task is not None and task.status == CLAIMED \
            else NOTES_WAITING
        out["expected_datetime"] = _iso(due.get(instance.id))
    return out


def _by_ids(session, ids: list[str]) -> list[dict]:
    """The caller's requests with these ids, in the order asked; unknown ids are left out."""
    found: dict[str, Event] = {}
    for event in session.scalars(select(Event).where(Event.source_id == g.source.id,
                                                     Event.type == TICKET_TYPE,
                                                     Event.subject.in_(ids)).order_by(Event.id)):
        found.setdefault(event.subject, event)  # a resent ticket: its first event
    events = [found[i] for i in dict.fromkeys(ids) if i in found]
    return _describe(session, events) if events else []


@bp.get("/requests/<request_id>.<fmt>")
@require_token
def get_request(request_id: str, fmt: str):
    """GeoReport GET service request: one request (as a one-element list, per the spec)."""
    _json_only(fmt)
    with services().db.read() as s:
        found = _by_ids(s, [request_id])
    if not found:
        raise ApiProblem(404, "Not Found", f"unknown service_request_id {request_id!r}")
    return jsonify(found)


def _window() -> tuple[datetime, datetime]:
    """[start, end] from start_date/end_date: the last 90 days by default, 90 days at most."""
    tz = org.TIMEZONE
    now = services().clock.now()
    start = moment_arg("start_date", None, tz)
    end = moment_arg("end_date", None, tz)
    if end is not None and len(request.args["end_date"]) == 10:
        end += timedelta(days=1)  # a date alone means the whole of that day
    if start is None and end is None:
        end = now
    if start is None:
        start = end - MAX_SPAN
    if end is None:
        end = start + MAX_SPAN
    if end < start:
        _bad_request("end_date", "must not be before start_date")
    if end - start > MAX_SPAN:
        _bad_request("end_date", "must be at most 90 days after start_date")
    return start, end


@bp.get("/requests.<fmt>")
@require_token
def list_requests(fmt: str):
    """GeoReport GET service requests, by ids, or by service_code, status and requested time."""
    _json_only(fmt)
    ids = _csv("service_request_id")
    if ids:  # the spec: with ids, the other filters are ignored
        if len(ids) > MAX_RESULTS:
            _bad_request("service_request_id", f"at most {MAX_RESULTS} ids")
        with services().db.read() as s:
            return jsonify(_by_ids(s, ids))
    codes = set(_csv("service_code"))
    unknown = codes - set(_categories())
    if unknown:
        _bad_request("service_code", f"unknown service_code {', '.join(sorted(unknown))}")
    statuses = set(_csv("status"))
    if statuses - {"open", "closed"}:
        _bad_request("status", "must be open, closed or both (comma-separated)")
    start, end = _window()
    requested = func.coalesce(Event.time, Event.received_at)
    query = (select(Event).where(Event.source_id == g.source.id, Event.type == TICKET_TYPE,
                                 Event.subject.is_not(None),
                                 requested >= start, requested <= end)
             .order_by(requested.desc(), Event.id.desc()))
    out: list[dict] = []
    seen: set[str] = set()
    offset = 0
    with services().db.read() as s:
        while len(out) < MAX_RESULTS:
            chunk = list(s.scalars(query.limit(CHUNK).offset(offset)))
            offset += CHUNK
            events = []
            for event in chunk:
                if event.subject in seen or (codes and event.data.get("category") not in codes):
                    continue
                seen.add(event.subject)
                events.append(event)
            if events:
                out += [r for r in _describe(s, events) if not statuses or r["status"] in statuses]
            if len(chunk) < CHUNK:
                break
    return jsonify(out[:MAX_RESULTS])
