"""Environment sensors — station readings over MQTT, with an HTTP fallback.

Protocol. The automatic monitoring stations (quan trắc tự động: air PM2.5, PM10, CO, NO2, SO2,
O3; water level, pH, DO, COD, TSS) publish JSON to an MQTT broker, and `ioc sensors listen`
subscribes to it with QoS 1. MQTT rather than HTTP because stations sit on cellular links that
drop: a station keeps one cheap connection, and the broker holds what it publishes while the
engine is down or restarting. Stations that cannot speak MQTT POST to the HTTP fallback.

Topic scheme (docs/integrations/sensors.md):

    ioc/sensors/<station_id>/<parameter>   one reading:
        {"value": 61.5, "unit": "µg/m³", "time": "2026-11-27T08:00:00+07:00",
         "aqi": 155, "ward": "phuong-di-an"}            (time required; aqi and ward optional)
    ioc/sensors/<station_id>               a list of such readings, each with its "parameter"

Levels before `ioc/sensors/` are a deployment prefix and are ignored (a broker shared by several
deployments or test runs: `tinh-x/ioc/sensors/BD-AQ-01/pm25` is BD-AQ-01's PM2.5).

Checks. Station ids are short codes; the parameter must be in the vocabulary's enum for
`environment.reading`; units and plausible ranges come from `sensor_parameters.yaml` — a unit
with an exact conversion (mg/m³ → µg/m³) is converted, any other unit, an out-of-range value or a
missing or naive time is refused naming the field (`value`, `unit`, `time`, `parameter`).

Delivery. Each reading becomes one `environment.reading` CloudEvent whose id is
`<station>/<parameter>/<time in UTC>` and whose time is the reading's time, so the rules measure
windows from when the air was measured, and a reading delivered twice (QoS 1 redelivery, a
retained message, the same reading again over HTTP) is stored once. The listener acknowledges a
message only after its readings are committed (manual PUBACK): a crash in between means the
broker sends it again, never a lost reading. An MQTT message cannot be answered with a 4xx: a bad
one is counted as refused on the source (its `refused_count` and `last_errors`) and logged, and
the listener goes on.
"""
from __future__ import annotations

import json
import logging
import math
import re
import signal
import ssl
import sys
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
import yaml
from flask import Blueprint, g
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from engine.api import ApiProblem, json_body, require_source, services
from engine.events import service
from engine.events.models import Source
from engine.events.service import IngestResult, Refusal
from engine.events.vocabulary import DATETIME_RULE, Vocabulary, parse_datetime
from integrations import intake

log = logging.getLogger(__name__)

bp = Blueprint("sensors", __name__, url_prefix="/integrations/sensors")

EVENT_TYPE = "environment.reading"
PARAMETERS_FILE = Path(__file__).with_name("sensor_parameters.yaml")
TOPIC_ROOT = ("ioc", "sensors")
DEFAULT_TOPIC = "ioc/sensors/#"
# Station codes such as BD-AQ-03: they are a topic level and part of event ids, so no '/', '+',
# '#' or spaces, and short enough to keep the event id within its 200 characters.
STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_READINGS = 1000  # per message or request, like a batch of /api/v1/events
# A station's clock may run a little fast; a reading further ahead than this would sit in the
# rules' windows as if it had already happened, so it is refused.
FUTURE_TOLERANCE = timedelta(minutes=15)


# -- parameters: units, conversions, ranges (sensor_parameters.yaml) -----------------------------

@dataclass(frozen=True)
class Parameter:
    """One measured parameter: its unit, the units converted to it, its plausible range."""

    key: str
    unit: str
    low: float
    high: float
    # unit key (see _unit_key) → (unit as written, factor to `unit`); holds `unit` itself, × 1
    factors: dict[str, tuple[str, Decimal]]
    unit_optional: bool = False  # pH: a reading may leave the unit out
    basis: str = ""

    def units(self) -> list[str]:
        """The units accepted for this parameter, its own first."""
        return [written for written, _ in self.factors.values()]


def _unit_key(text: str) -> str:
    # NFKC folds µ (micro sign) and μ (Greek mu) together and ³ into 3; stations write both.
    return unicodedata.normalize("NFKC", text).replace(" ", "").casefold()


@dataclass(frozen=True)
class ParameterTable:
    """The parameters of sensor_parameters.yaml and the unit spellings stations use."""

    parameters: dict[str, Parameter]
    aliases: dict[str, str]  # unit key → unit key

    def resolve_unit(self, parameter: Parameter, text: str) -> tuple[str, Decimal] | None:
        """(the parameter's unit, factor) for a unit as sent, or None when it is not accepted."""
        key = _unit_key(text)
        key = self.aliases.get(key, key)
        if key not in parameter.factors:
            return None
        return parameter.unit, parameter.factors[key][1]


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: must be a number")
    return Decimal(str(value))


@lru_cache(maxsize=None)
def parameter_table(path: str = str(PARAMETERS_FILE)) -> ParameterTable:
    """The units and ranges, read once; a malformed file raises ValueError naming the entry."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    out: dict[str, Parameter] = {}
    for key, spec in (doc.get("parameters") or {}).items():
        where = f"{path}: parameters.{key}"
        if not isinstance(spec, dict) or not isinstance(spec.get("unit"), str):
            raise ValueError(f"{where}: needs a unit")
        bounds = spec.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ValueError(f"{where}.range: must be [lowest, highest]")
        low, high = (_number(b, f"{where}.range") for b in bounds)
        if low >= high:
            raise ValueError(f"{where}.range: the lowest value must be below the highest")
        factors = {_unit_key(spec["unit"]): (spec["unit"], Decimal(1))}
        for unit, factor in (spec.get("convert") or {}).items():
            factors[_unit_key(str(unit))] = (str(unit), _number(factor, f"{where}.convert.{unit}"))
        out[key] = Parameter(key, spec["unit"], float(low), float(high), factors,
                             bool(spec.get("unit_optional")), str(spec.get("basis", "")))
    aliases = {_unit_key(str(a)): _unit_key(str(u)) for a, u in (doc.get("aliases") or {}).items()}
    return ParameterTable(out, aliases)


def _parameter_enum(vocabulary: Vocabulary) -> list[str]:
    return list(vocabulary.get(EVENT_TYPE).fields["parameter"].schema.get("enum", []))


# -- one reading → one CloudEvent ----------------------------------------------------------------

def event_id(station_id: str, parameter: str, time: datetime) -> str:
    """The reading's stable event id: `<station>/<parameter>/<time in UTC>`."""
    utc = time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return f"{station_id}/{parameter}/{utc}"


def _join(prefix: str, name: str) -> str:
    if not prefix:
        return name
    return f"{prefix}.{name}" if name else prefix


def _reading(item: Any, station_id: str, topic_parameter: str | None, enum: list[str],
             now: datetime) -> tuple[dict | None, str | None, list[dict[str, str]]]:
    """(CloudEvent, its id, []) for a valid reading, else (None, id if known, problems)."""
    if not isinstance(item, dict):
        return None, None, [{"field": "", "message": "a reading must be a JSON object"}]
    problems: list[dict[str, str]] = []

    def refuse(name: str, message: str) -> None:
        problems.append({"field": name, "message": message})

    table = parameter_table()
    parameter = item.get("parameter", topic_parameter)
    spec: Parameter | None = None
    if topic_parameter is not None and parameter != topic_parameter:
        refuse("parameter", f"{parameter!r} does not match the topic's {topic_parameter!r}")
    elif parameter is None:
        refuse("parameter", "is required")
    elif not isinstance(parameter, str) or parameter not in enum:
        refuse("parameter", f"unknown parameter {parameter!r}; one of {', '.join(enum)}")
    elif parameter not in table.parameters:
        refuse("parameter", f"{parameter} has no unit and range in {PARAMETERS_FILE.name}")
    else:
        spec = table.parameters[parameter]
    if item.get("station_id", station_id) != station_id:
        refuse("station_id", f"{item['station_id']!r} does not match the station {station_id!r}")

    value = item.get("value")
    if value is None:
        refuse("value", "is required")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse("value", "must be a number")
        value = None
    elif isinstance(value, float) and not math.isfinite(value):
        refuse("value", "must be a finite number")  # NaN and Infinity pass Python's JSON reader
        value = None
    elif isinstance(value, int) and abs(value) > 2 ** 53:
        value = math.inf  # JSON integers are unbounded; no instrument is: out of range below

    unit, factor = None, None
    raw_unit = item.get("unit")
    if spec is not None:
        if raw_unit is None or raw_unit == "":
            if spec.unit_optional:  # pH has no unit: nothing to get wrong
                unit, factor = spec.unit, Decimal(1)
            else:
                # A bare number could be mg/m³ (CO analysers often show it) and be 1,000× off.
                refuse("unit", f"is required ({' or '.join(spec.units())})")
        elif not isinstance(raw_unit, str):
            refuse("unit", "must be a string")
        else:
            resolved = table.resolve_unit(spec, raw_unit)
            if resolved is None:
                refuse("unit", f"{raw_unit!r} is not accepted for {spec.key}: send "
                               f"{' or '.join(spec.units())}")
            else:
                unit, factor = resolved
    if value is not None and factor is not None and spec is not None:
        if factor != 1:
            try:
                value = float(Decimal(str(value)) * factor)
            except (InvalidOperation, OverflowError):
                value = math.inf
        if not spec.low <= value <= spec.high:
            shown = f"{value:g} {unit}" + (f" (converted from {raw_unit})" if factor != 1 else "")
            refuse("value", f"{shown} is outside the plausible range {spec.low:g}–{spec.high:g} "
                            f"{unit} of {spec.key}")

    raw_time = item.get("time")
    time = None
    if raw_time is None:
        refuse("time", "is required: when the value was measured")
    elif not isinstance(raw_time, str) or (time := parse_datetime(raw_time)) is None:
        refuse("time", f"{DATETIME_RULE}, e.g. 2026-11-27T08:00:00+07:00")
    elif time > now + FUTURE_TOLERANCE:
        refuse("time", f"is more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes "
                       "in the future: check the station's clock")
        time = None

    known = spec is not None and isinstance(parameter, str)
    ce_id = event_id(station_id, parameter, time) if known and time is not None else None
    if problems:
        return None, ce_id, problems
    data = {"station_id": station_id, "parameter": parameter, "value": value, "unit": unit}
    for name in ("aqi", "ward"):  # checked by the vocabulary (VN_AQI 0–500, an org unit)
        if item.get(name) is not None:
            data[name] = item[name]
    event = intake.cloud_event(EVENT_TYPE, ce_id, f"/integrations/sensors/{station_id}", data,
                               subject=station_id, time=time)
    return event, ce_id, []


@dataclass
class _Batch:
    """Readings sorted into CloudEvents for the store and readings refused before it."""

    prefix: Callable[[int], str]
    raws: list[dict]
    positions: list[int]  # the reading index of each raw
    refused: list[Refusal]

    def settle(self, stored: IngestResult) -> IngestResult:
        """The store's result in terms of the readings: their indexes, their field names."""
        # The store refuses nothing _sort let through, unless the organisation or the source
        # changed in between; such a refusal is still reported against its reading.
        out = IngestResult(accepted=stored.accepted, duplicates=stored.duplicates,
                           refused=list(self.refused))
        for refusal in stored.refused:
            index = self.positions[refusal.index]
            out.refused.append(Refusal(index, refusal.id, [
                {"field": _join(self.prefix(index), _reading_field(p["field"])),
                 "message": p["message"]} for p in refusal.problems]))
        out.refused.sort(key=lambda r: r.index)
        return out


def _reading_field(field: str) -> str:
    # The vocabulary names `data.ward`; the station wrote `ward`.
    return field.removeprefix("data.")


def _sort(db, source: Source, items: list, station_id: str, topic_parameter: str | None,
          vocabulary: Vocabulary, now: datetime, prefix: Callable[[int], str]) -> _Batch:
    enum = _parameter_enum(vocabulary)
    batch = _Batch(prefix, [], [], [])
    with db.read() as session:
        for index, item in enumerate(items):
            event, ce_id, problems = _reading(item, station_id, topic_parameter, enum, now)
            if event is not None:
                # The store's own checks (ward, aqi, the source's types) run here too, so that
                # every refusal names the field as the station wrote it, also in last_errors.
                problems = [{"field": _reading_field(p["field"]), "message": p["message"]}
                            for p in service.validate(session, event, source, vocabulary)]
            if problems:
                batch.refused.append(Refusal(index, ce_id, [
                    {"field": _join(prefix(index), p["field"]), "message": p["message"]}
                    for p in problems]))
            else:
                batch.raws.append(event)
                batch.positions.append(index)
    return batch


def _count_refused(db, source_id: int, refusals: list[Refusal]) -> None:
    # The store counts what it refuses itself; these never reached it.
    for refusal in refusals:
        service.refuse(db, source_id, refusal.problems, refusal.id)


# -- MQTT ----------------------------------------------------------------------------------------

class MessageProblem(ValueError):
    """A message that holds no reading at all (bad topic, not JSON…), with its problems."""

    def __init__(self, field: str, message: str):
        self.problems = [{"field": field, "message": message}]
        super().__init__(f"{field}: {message}")


def parse_topic(topic: str) -> tuple[str, str | None]:
    """(station id, parameter or None) of a topic `[prefix/]ioc/sensors/<station>[/<param>]`."""
    levels = topic.split("/")
    for i in range(len(levels) - 1):
        if tuple(levels[i:i + 2]) == TOPIC_ROOT:
            rest = levels[i + 2:]
            break
    else:
        raise MessageProblem("topic", f"{topic!r} is not under ioc/sensors/")
    if len(rest) not in (1, 2):
        raise MessageProblem("topic", f"{topic!r}: expected ioc/sensors/<station_id> or "
                                      "ioc/sensors/<station_id>/<parameter>")
    if not STATION_ID.match(rest[0]):
        raise MessageProblem("station_id", f"{rest[0]!r} is not a station code (letters, digits, "
                                           "'.', '_', '-'; at most 64)")
    return rest[0], (rest[1] if len(rest) == 2 else None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_payload(payload: bytes, single: bool) -> tuple[list, bool]:
    """(readings, sent as a list) of a message: one object on a parameter topic, else a list."""
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise MessageProblem("payload", "is not UTF-8 text") from None
    except ValueError as exc:
        raise MessageProblem("payload", f"is not JSON: {exc}") from None
    if single:
        if not isinstance(doc, dict):
            raise MessageProblem("payload", "must be one reading, a JSON object, on a "
                                            "ioc/sensors/<station_id>/<parameter> topic")
        return [doc], False
    items = [doc] if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise MessageProblem("payload", "must be a JSON list of readings, each with its parameter")
    if len(items) > MAX_READINGS:
        raise MessageProblem("payload", f"holds {len(items)} readings; at most {MAX_READINGS}")
    return items, isinstance(doc, list)


def handle_message(ioc, source_id: int, topic: str, payload: bytes) -> IngestResult | None:
    """Store the readings of one MQTT message; None when it held no reading at all.

    Bad readings are counted as refused on the source and logged, never raised: there is
    nobody to answer. Database errors are raised (the message is then not acknowledged).
    """
    if not payload:
        return None  # an empty payload only clears a retained message on the broker
    with ioc.db.read() as session:
        source = session.get(Source, source_id)
    if source is None or source.disabled:
        log.warning("sensors: source %s is unknown or disabled; message on %s dropped",
                    source_id, topic)
        return None
    try:
        station_id, parameter = parse_topic(topic)
        items, many = parse_payload(payload, single=parameter is not None)
    except MessageProblem as exc:
        service.refuse(ioc.db, source_id, exc.problems)
        log.warning("sensors: refused message on %s: %s", topic, exc)
        return None

    def prefix(i: int) -> str:
        return f"[{i}]" if many else ""

    batch = _sort(ioc.db, source, items, station_id, parameter, ioc.vocabulary, ioc.clock.now(),
                  prefix)
    stored = (service.ingest(ioc.db, source_id, batch.raws, ioc.vocabulary, ioc.clock)
              if batch.raws
              else IngestResult())
    _count_refused(ioc.db, source_id, batch.refused)
    result = batch.settle(stored)
    if result.accepted:
        ioc.wake()
    for refusal in result.refused:
        log.warning("sensors: refused reading on %s: %s", topic, "; ".join(
            f"{p['field'] or 'reading'} {p['message']}" for p in refusal.problems))
    return result


# Database unreachable or busy: worth trying the message again later (other errors would fail the
# same way forever).
STORAGE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0
LOOP_S = 0.5  # how long one network pass waits: the longest stop() waits for the thread


def default_client_id(ioc, source_id: int) -> str:
    """`ioc-sensors-<source name>`: the same after a restart, so the broker keeps the session."""
    with ioc.db.read() as session:
        source = session.get(Source, source_id)
    return f"ioc-sensors-{source.name if source is not None else source_id}"


@dataclass(frozen=True)
class BrokerAuth:
    """How the listener logs in to the broker (MQTT user name and password) and checks it (TLS).

    `tls` with no `ca_file` trusts the system's certificate authorities; `ca_file` (a private
    authority, as a province's own broker usually has) implies TLS; `cert_file` and `key_file`
    present a client certificate where the broker asks for one.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __post_init__(self):
        if self.password and not self.username:
            raise ValueError("an MQTT password was given without a user name")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("a client certificate needs both its certificate and its key file")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name.replace('_', ' ')} {path!r} is not a readable file")

    @property
    def secure(self) -> bool:
        """Whether the connection uses TLS."""
        return self.tls or bool(self.ca_file or self.cert_file)

    def apply(self, client: mqtt.Client) -> None:
        """Set the credentials and TLS on a paho client before it connects."""
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.secure:
            # The broker's certificate and host name are always checked: a reading from a
            # broker nobody verified could open incidents.
            client.tls_set(ca_certs=self.ca_file, certfile=self.cert_file,
                           keyfile=self.key_file, cert_reqs=ssl.CERT_REQUIRED)


class Listener:
    """A QoS 1 subscription storing the stations' readings, run by a background thread.

    The thread alone touches the MQTT client (paho's clients are not thread-safe): it connects,
    reconnects with backoff when the broker goes away, and notices stop() between passes.
    `persistent` keeps a broker session under a stable client id, so QoS 1 readings published
    while the listener is down are kept by the broker and delivered when it comes back. Run one
    listener per client id: the broker disconnects a client when another connects with its id.
    """

    def __init__(self, ioc, source_id: int, host: str = "127.0.0.1", port: int = 1883,
                 topic: str = DEFAULT_TOPIC, *, client_id: str | None = None,
                 persistent: bool = True, keepalive: int = 60, auth: BrokerAuth = BrokerAuth()):
        self.ioc, self.source_id = ioc, source_id
        self.host, self.port, self.topic, self.keepalive = host, port, topic, keepalive
        self.client_id = client_id or default_client_id(ioc, source_id)
        self.subscribed = threading.Event()
        self.messages = 0  # messages handled, acknowledged or not
        # Why the last attempt to connect failed (unreachable, refused, certificate not
        # trusted), or None once connected.
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._redeliver = False
        self._delay = RETRY_MIN_S
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=not persistent, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        auth.apply(client)
        self._client = client

    def start(self) -> Listener:
        """Connect and subscribe in a background thread; returns at once."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.client_id}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect and end the thread (waits at most `timeout` seconds)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the broker confirmed the subscription; False on timeout."""
        return self.subscribed.wait(timeout)

    def is_alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    # The thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        connected = False
        while not self._stopping.is_set():
            try:
                if not connected:
                    self._client.connect(self.host, self.port, keepalive=self.keepalive)
                    connected = True
                rc = self._client.loop(timeout=LOOP_S)
            except OSError as exc:  # ssl's errors too: a certificate we do not trust
                self.last_error = str(exc)
                log.warning("sensors: MQTT broker %s:%s unreachable (%s); retrying in %.0f s",
                            self.host, self.port, exc, self._delay)
                connected = self._pause()
                continue
            except Exception:  # noqa: BLE001 - the listener must outlive any surprise
                log.exception("sensors: MQTT client error; reconnecting in %.0f s", self._delay)
                connected = self._pause()
                continue
            if self._redeliver:
                # A reading could not be stored and was not acknowledged: drop the connection
                # so that the broker sends it again when we are back (persistent session).
                self._redeliver = False
                self._client.disconnect()
                connected = self._pause()
            elif rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("sensors: lost the MQTT broker %s:%s (%s); reconnecting in %.0f s",
                            self.host, self.port, mqtt.error_string(rc), self._delay)
                connected = self._pause()
        if connected:
            try:
                self._client.disconnect()
            except Exception:  # noqa: BLE001 - already going away
                log.debug("sensors: disconnect failed", exc_info=True)
        self.subscribed.clear()

    def _pause(self) -> bool:
        self.subscribed.clear()
        self._stopping.wait(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX_S)
        return False

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # Kept trying with backoff: the broker's accounts may be fixed without restarting us.
            self.last_error = f"refused: {reason_code}"
            log.error("sensors: MQTT broker %s:%s refused the connection: %s",
                      self.host, self.port, reason_code)
            return
        self.last_error = None
        self._delay = RETRY_MIN_S
        log.info("sensors: connected to %s:%s as %s (session kept: %s); subscribing to %s",
                 self.host, self.port, self.client_id, flags.session_present, self.topic)
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("sensors: the broker refused the subscription to %s: %s", self.topic,
                      failed[0])
        else:
            self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.info("sensors: disconnected from %s:%s (%s)", self.host, self.port, reason_code)

    def _on_message(self, client, userdata, message) -> None:
        if self._redeliver:
            return  # reconnecting anyway: leave it unacknowledged, it comes again
        self.messages += 1
        try:
            handle_message(self.ioc, self.source_id, message.topic, message.payload)
        except STORAGE_UNAVAILABLE as exc:
            log.error("sensors: could not store the message on %s (%s); not acknowledged, the "
                      "broker will send it again", message.topic, exc)
            self._redeliver = True
            return
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the listener
            # Taking it again would fail again: count it, log it, acknowledge it.
            log.exception("sensors: could not handle the message on %r", message.topic)
            try:
                service.refuse(self.ioc.db, self.source_id, [
                    {"field": "payload", "message": f"could not be handled: {type(exc).__name__}"}])
            except Exception:  # noqa: BLE001
                log.exception("sensors: could not count the refusal either")
        client.ack(message.mid, message.qos)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def listen(ioc, source_id: int, host: str, port: int, topic: str,
           auth: BrokerAuth = BrokerAuth()) -> None:
    """Store readings from the broker in the foreground until Ctrl-C (`ioc sensors listen`)."""
    listener = Listener(ioc, source_id, host, port, topic, auth=auth)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # A service manager stops with SIGTERM: disconnect cleanly as for Ctrl-C.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    scheme = "mqtts" if auth.secure else "mqtt"
    login = f"{auth.username}@" if auth.username else ""
    print(f"Listening on {scheme}://{login}{host}:{port} to {topic} as {listener.client_id} "
          "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    listener.start()
    try:
        while listener.is_alive():
            listener.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"Stopped after {listener.messages} messages", file=sys.stderr, flush=True)


# -- HTTP fallback -------------------------------------------------------------------------------

@bp.post("/readings")
@require_source
def post_readings():
    """Readings of one station over HTTP: 202 with what was stored, or 422 naming the fields."""
    body = json_body()
    if not isinstance(body, dict):
        intake.refuse([{"field": "", "message": "the body must be a JSON object"}],
                      'send {"station_id": ..., "readings": [...]}')
    problems = []
    station_id = body.get("station_id")
    if station_id is None:
        problems.append({"field": "station_id", "message": "is required"})
    elif not isinstance(station_id, str) or not STATION_ID.match(station_id):
        problems.append({"field": "station_id", "message": "must be a station code (letters, "
                                                           "digits, '.', '_', '-'; at most 64)"})
    readings = body.get("readings")
    if readings is None:
        problems.append({"field": "readings", "message": "is required"})
    elif not isinstance(readings, list) or not readings:
        problems.append({"field": "readings", "message": "must be a non-empty list of readings"})
    elif len(readings) > MAX_READINGS:
        problems.append({"field": "readings", "message": f"at most {MAX_READINGS} readings"})
    if problems:
        intake.refuse(problems, "; ".join(f"{p['field']} {p['message']}" for p in problems))

    ioc = services()
    batch = _sort(ioc.db, g.source, readings, station_id, None, ioc.vocabulary, ioc.clock.now(),
                  lambda i: f"readings[{i}]")
    stored = intake.store(batch.raws) if batch.raws else IngestResult()
    _count_refused(ioc.db, g.source.id, batch.refused)
    result = batch.settle(stored)
    if not result.accepted and not result.duplicates:
        errors = [p for refusal in result.refused for p in refusal.problems]
        raise ApiProblem(422, "Invalid Reading", "; ".join(
            f"{e['field']} {e['message']}" for e in errors), errors)
    return intake.answer(result, single=False)
