"""Environment sensors: readings over MQTT (a real Mosquitto broker) and the HTTP fallback."""
from __future__ import annotations

import getpass
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest
import trustme
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from engine.app import create_app
from engine.events.models import Event, Source
from engine.violations.models import Violation
from integrations import sensors
from integrations.sensors import BrokerAuth, Listener, handle_message
from tests.conftest import IN_CI

MQTT_BROKER = os.environ.get("IOC_TEST_MQTT_BROKER", "127.0.0.1:1883")
T = "2026-11-27T08:00:00+07:00"  # in the past, as readings are
_clients = itertools.count(1)


# -- helpers -------------------------------------------------------------------------------------

def _events(ioc) -> list[Event]:
    with ioc.db.read() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def _source(ioc, source_id: int) -> Source:
    with ioc.db.read() as s:
        return s.get(Source, source_id)


def _wait(predicate, what: str, timeout: float = 15.0):
    """Poll until `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _reading(**fields) -> bytes:
    return json.dumps({"value": 61.5, "unit": "µg/m³", "time": T, **fields}).encode()


def _handle(ioc, source, suffix: str, payload: bytes):
    return handle_message(ioc, source[0], f"ioc/sensors/{suffix}", payload)


# -- handle_message: the checks, without a broker ------------------------------------------------

def test_the_parameter_file_covers_the_vocabulary(ioc):
    table = sensors.parameter_table()
    enum = ioc.vocabulary.get("environment.reading").fields["parameter"].schema["enum"]
    assert set(table.parameters) == set(enum)
    for spec in table.parameters.values():
        assert spec.low < spec.high and spec.unit and spec.basis
    assert table.parameters["co"].unit == "µg/m³"  # QCVN 05:2023, not mg/m³


def test_a_reading_becomes_one_event_with_a_stable_id(ioc, source):
    result = _handle(ioc, source, "BD-AQ-03/pm25", _reading(aqi=155, ward="phuong-di-an"))
    assert (len(result.accepted), result.refused) == (1, [])
    [event] = _events(ioc)
    assert event.ce_id == "BD-AQ-03/pm25/2026-11-27T01:00:00Z"
    assert event.type == "environment.reading" and event.subject == "BD-AQ-03"
    assert event.time == datetime(2026, 11, 27, 1, tzinfo=timezone.utc)  # the reading's time
    assert event.data == {"station_id": "BD-AQ-03", "parameter": "pm25", "value": 61.5,
                          "unit": "µg/m³", "aqi": 155, "ward": "phuong-di-an"}
    # The same moment written in UTC is the same reading: a duplicate, not a second event.
    again = _handle(ioc, source, "BD-AQ-03/pm25", _reading(time="2026-11-27T01:00:00Z"))
    assert (again.accepted, again.duplicates) == ([], [event.ce_id])
    assert len(_events(ioc)) == 1


def test_a_station_topic_takes_a_list_converting_units(ioc, source):
    payload = json.dumps([
        {"parameter": "co", "value": 1.25, "unit": "mg/m3", "time": T},
        {"parameter": "pm25", "value": 40, "unit": "ug/m3", "time": T},
        {"parameter": "water_level", "value": 235, "unit": "cm", "time": T},
        {"parameter": "ph", "value": 7.2, "time": T},
        {"parameter": "do", "value": 6.1, "unit": "mg/l", "time": T},
    ]).encode()
    result = _handle(ioc, source, "BD-MT-01", payload)
    assert (len(result.accepted), result.refused) == (5, [])
    stored = {e.data["parameter"]: (e.data["value"], e.data["unit"]) for e in _events(ioc)}
    assert stored == {"co": (1250.0, "µg/m³"), "pm25": (40, "µg/m³"), "water_level": (2.35, "m"),
                      "ph": (7.2, "pH"), "do": (6.1, "mg/L")}


@pytest.mark.parametrize("suffix, payload, field", [
    ("BD-AQ-01/pm25", _reading(unit="ppm"), "unit"),
    ("BD-AQ-01/pm25", _reading(unit=None), "unit"),
    ("BD-AQ-01/pm25", _reading(value=1500), "value"),
    ("BD-AQ-01/pm25", _reading(value=2, unit="mg/m³"), "value"),  # 2,000 µg/m³ once converted
    ("BD-AQ-01/pm25", _reading(value="61.5"), "value"),
    ("BD-AQ-01/ph", _reading(value=15, unit="pH"), "value"),
    ("BD-AQ-01/benzene", _reading(), "parameter"),
    ("BD-AQ-01/pm25", _reading(parameter="pm10"), "parameter"),
    ("BD-AQ-01/pm25", _reading(time="2026-11-27T08:00:00"), "time"),
    ("BD-AQ-01/pm25", _reading(time=None), "time"),
    ("BD-AQ-01/pm25", _reading(time="hôm qua"), "time"),
    ("BD-AQ-01/pm25", _reading(time=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat()),
     "time"),
    ("BD-AQ-01/pm25", _reading(ward="quan-9"), "ward"),  # the vocabulary's check, renamed
    ("BD-AQ-01/pm25", _reading(aqi=900), "aqi"),
    ("BD-AQ-01", json.dumps([json.loads(_reading(parameter="pm25")),
                             json.loads(_reading(parameter="so2", unit="ppb"))]).encode(),
     "[1].unit"),
])
def test_a_bad_reading_is_counted_with_its_field_and_not_stored(ioc, source, suffix, payload,
                                                                field):
    result = _handle(ioc, source, suffix, payload)
    [refusal] = result.refused
    assert field in {p["field"] for p in refusal.problems}
    good = len(result.accepted)
    assert len(_events(ioc)) == good  # only the good reading of a list, never a bad one
    src = _source(ioc, source[0])
    assert src.refused_count == 1
    assert field in {e["field"] for e in src.last_errors[0]["errors"]}


@pytest.mark.parametrize("topic, payload, field", [
    ("ioc/sensors/BD-AQ-01/pm25", b"{not json", "payload"),
    ("ioc/sensors/BD-AQ-01/pm25", b'{"value": NaN, "unit": "ug/m3", "time": "%s"}' % T.encode(),
     "payload"),
    ("ioc/sensors/BD-AQ-01/pm25", b"\xff\xfe", "payload"),
    ("ioc/sensors/BD-AQ-01/pm25", b"[]", "payload"),
    ("ioc/sensors/BD-AQ-01", b"42", "payload"),
    ("ioc/cameras/CAM-1", _reading(), "topic"),
    ("ioc/sensors/BD-AQ-01/pm25/extra", _reading(), "topic"),
    ("ioc/sensors/BD AQ 01/pm25", _reading(), "station_id"),
])
def test_a_message_without_readings_is_counted_as_refused(ioc, source, topic, payload, field):
    assert handle_message(ioc, source[0], topic, payload) is None
    assert _events(ioc) == []
    src = _source(ioc, source[0])
    assert src.refused_count == 1
    assert src.last_errors[0]["errors"][0]["field"] == field


def test_an_empty_payload_only_clears_a_retained_message(ioc, source):
    assert _handle(ioc, source, "BD-AQ-01/pm25", b"") is None
    assert _source(ioc, source[0]).refused_count == 0


def test_a_disabled_source_stores_nothing(ioc, source):
    with ioc.db.session() as s:
        s.get(Source, source[0]).disabled = True
    assert _handle(ioc, source, "BD-AQ-01/pm25", _reading()) is None
    assert _events(ioc) == []


def test_a_deployment_prefix_before_ioc_sensors_is_ignored():
    assert sensors.parse_topic("tinh-x/ioc/sensors/BD-AQ-01/pm25") == ("BD-AQ-01", "pm25")
    assert sensors.parse_topic("ioc/sensors/BD-AQ-01") == ("BD-AQ-01", None)


def test_a_listener_without_a_broker_retries_and_stops_cleanly(ioc, source):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = Listener(ioc, source[0], "127.0.0.1", port, "ioc/sensors/#",
                        client_id=f"ioc-test-{uuid.uuid4().hex[:8]}", persistent=False).start()
    assert not listener.wait_subscribed(0.3)
    assert listener.is_alive()  # still trying, not crashed
    started = time.monotonic()
    listener.stop()
    assert not listener.is_alive() and time.monotonic() - started < 5


# -- the real broker -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def broker() -> tuple[str, int]:
    """The Mosquitto broker's (host, port): skipped when unreachable, a failure in CI."""
    host, _, port = MQTT_BROKER.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"the MQTT broker is required in CI and is not reachable at "
                        f"{MQTT_BROKER}: {exc}")
        pytest.skip(f"MQTT broker not reachable at {MQTT_BROKER} (set IOC_TEST_MQTT_BROKER): {exc}")
    return host, int(port)


@pytest.fixture
def prefix() -> str:
    """A topic prefix (and client id stem) no other test run shares on the broker."""
    return f"ioc-test-{uuid.uuid4().hex[:12]}"


def _listener(ioc, source_id, broker, prefix, **options) -> Listener:
    listener = Listener(ioc, source_id, broker[0], broker[1], f"{prefix}/ioc/sensors/#",
                        client_id=f"{prefix}-listener", **options).start()
    if not listener.wait_subscribed(10):
        listener.stop()
        pytest.fail("the broker did not confirm the listener's subscription within 10 s")
    return listener


@pytest.fixture
def listening(ioc, source, broker, prefix):
    """A Listener subscribed to this test's topics (a clean session, so nothing lingers)."""
    listener = _listener(ioc, source[0], broker, prefix, persistent=False)
    yield listener
    listener.stop()
    assert not listener.is_alive()


def publish(broker, prefix: str, *messages: tuple[str, bytes],
            auth: BrokerAuth = BrokerAuth()) -> None:
    """Publish (topic under `<prefix>/ioc/sensors/`, payload) messages with QoS 1, in order."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"{prefix}-publisher-{next(_clients)}")
    auth.apply(client)  # a station logs in as the listener does
    client.connect(broker[0], broker[1])
    client.loop_start()
    try:
        for suffix, payload in messages:
            info = client.publish(f"{prefix}/ioc/sensors/{suffix}", payload, qos=1)
            info.wait_for_publish(10)
            assert info.is_published(), f"the broker did not acknowledge {suffix}"
    finally:
        client.disconnect()
        client.loop_stop()


def test_readings_published_over_mqtt_are_stored(ioc, source, broker, prefix, listening):
    publish(broker, prefix,
            ("BD-AQ-03/pm25", _reading(aqi=155, ward="phuong-di-an")),
            ("BD-AQ-03", json.dumps([
                {"parameter": "pm10", "value": 0.09, "unit": "mg/m³", "time": T},
                {"parameter": "co", "value": 2100, "unit": "µg/m³", "time": T}]).encode()))
    events = _wait(lambda: len(_events(ioc)) == 3 and _events(ioc), "3 stored readings")
    assert [e.ce_id for e in events] == [f"BD-AQ-03/{p}/2026-11-27T01:00:00Z"
                                         for p in ("pm25", "pm10", "co")]
    assert events[1].data["value"] == 90.0 and events[1].data["unit"] == "µg/m³"
    assert all(e.time == datetime(2026, 11, 27, 1, tzinfo=timezone.utc) for e in events)
    assert _source(ioc, source[0]).accepted_count == 3


def test_a_reading_published_twice_is_stored_once(ioc, source, broker, prefix, listening):
    publish(broker, prefix, ("BD-AQ-04/pm25", _reading()), ("BD-AQ-04/pm25", _reading()))
    _wait(lambda: _source(ioc, source[0]).duplicate_count == 1, "the second copy")
    assert len(_events(ioc)) == 1
    assert _source(ioc, source[0]).accepted_count == 1


def test_bad_messages_are_counted_and_the_listener_goes_on(ioc, source, broker, prefix,
                                                          listening):
    publish(broker, prefix,
            ("BD-AQ-05/pm25", b'{"value": 61.5,'),
            ("BD-AQ-05/pm25", _reading(unit="ppm")),
            ("BD-AQ-05/pm25", _reading(value=-3)),
            ("BD-AQ-05/benzene", _reading()),
            ("BD-AQ-05/pm10", _reading(value=80)))  # a good one after the bad ones
    src = _wait(lambda: (s := _source(ioc, source[0])).refused_count == 4 and s,
                "4 refused messages")
    assert {e["errors"][0]["field"] for e in src.last_errors} == \
        {"payload", "unit", "value", "parameter"}
    [event] = _wait(lambda: _events(ioc), "the good reading")
    assert event.data["parameter"] == "pm10"
    assert listening.is_alive()


def test_sustained_pm25_over_mqtt_opens_the_air_quality_incident(loaded, source, broker, prefix,
                                                                 listening):
    # Four readings over 50 µg/m³, ten minutes apart, ending now: 30 minutes sustained.
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    publish(broker, prefix, *[
        ("BD-AQ-07/pm25", _reading(value=value, aqi=160, ward="phuong-di-an",
                                   time=(start + timedelta(minutes=10 * i)).isoformat()))
        for i, value in enumerate([58.2, 61.5, 64.0, 66.3])])
    _wait(lambda: len(_events(loaded)) == 4, "4 stored readings")
    loaded.run_pending()
    with loaded.db.read() as s:
        violations = list(s.scalars(select(Violation)))
    [incident] = violations  # the station is not silent: only the exceedance
    assert (incident.kind, incident.rule_key, incident.subject, incident.severity) == \
        ("incident", "pm25-sustained", "BD-AQ-07", "high")
    assert incident.instance_id is not None


def test_a_reading_that_could_not_be_stored_is_delivered_again(ioc, source, broker, prefix,
                                                               monkeypatch):
    calls = []

    def flaky(*args):
        calls.append(args[2])
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return handle_message(*args)

    monkeypatch.setattr(sensors, "handle_message", flaky)
    # A persistent session: the unacknowledged reading waits on the broker for the reconnect.
    listener = _listener(ioc, source[0], broker, prefix, persistent=True)
    try:
        publish(broker, prefix, ("BD-AQ-08/pm25", _reading()))
        [event] = _wait(lambda: _events(ioc), "the reading, delivered again")
        assert event.ce_id == "BD-AQ-08/pm25/2026-11-27T01:00:00Z"
        assert len(calls) == 2 and _source(ioc, source[0]).refused_count == 0
    finally:
        listener.stop()
        # Forget the persistent session so the shared broker keeps nothing of this test.
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-listener",
                              clean_session=True)
        cleaner.connect(broker[0], broker[1])
        cleaner.loop(timeout=2)  # the CONNACK: the broker has dropped the old session
        cleaner.disconnect()
    assert not listener.is_alive()


# -- a broker with accounts and TLS --------------------------------------------------------------

USER, PASSWORD = "ioc-listener", "mật-khẩu-trạm-quan-trắc-2026"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory):
    """Our own Mosquitto: TLS only, with a certificate from a test authority, and a password
    file; yields (host, port, the BrokerAuth that gets in). Skipped without the mosquitto
    program, a failure in CI."""
    program, passwd_tool = shutil.which("mosquitto") or "/usr/sbin/mosquitto", \
        shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not (os.access(program, os.X_OK) and os.access(passwd_tool, os.X_OK)):
        if IN_CI:
            pytest.fail("mosquitto and mosquitto_passwd are required in CI (Debian: mosquitto)")
        pytest.skip("mosquitto / mosquitto_passwd not installed (Debian: mosquitto)")
    folder = tmp_path_factory.mktemp("mosquitto")
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = authority.issue_cert("127.0.0.1", "localhost")
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    subprocess.run([passwd_tool, "-b", "-c", str(folder / "passwd"), USER, PASSWORD],
                   check=True, capture_output=True)
    port = _free_port()
    (folder / "mosquitto.conf").write_text(
        f"user {getpass.getuser()}\npersistence false\nlog_dest stderr\n"
        f"allow_anonymous false\npassword_file {folder / 'passwd'}\n"
        f"listener {port} 127.0.0.1\ncafile {folder / 'ca.pem'}\n"
        f"certfile {folder / 'server.pem'}\nkeyfile {folder / 'server.key'}\n")
    log_path = folder / "mosquitto.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([program, "-c", str(folder / "mosquitto.conf")],
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not start: {log_path.read_text()}")
                time.sleep(0.05)
        yield "127.0.0.1", port, BrokerAuth(USER, PASSWORD, ca_file=str(folder / "ca.pem"))
    finally:
        process.terminate()
        process.wait(10)


def _secured_listener(ioc, source_id, secured_broker, prefix, auth) -> Listener:
    host, port, _ = secured_broker
    return Listener(ioc, source_id, host, port, f"{prefix}/ioc/sensors/#",
                    client_id=f"{prefix}-listener", persistent=False, auth=auth).start()


def test_readings_over_tls_with_a_password_are_stored(ioc, source, secured_broker, prefix):
    host, port, auth = secured_broker
    listener = _listener(ioc, source[0], (host, port), prefix, persistent=False, auth=auth)
    try:
        assert listener.last_error is None
        publish((host, port), prefix, ("BD-AQ-09/pm25", _reading()), auth=auth)
        [event] = _wait(lambda: _events(ioc), "the reading sent over TLS")
        assert event.ce_id == "BD-AQ-09/pm25/2026-11-27T01:00:00Z"
    finally:
        listener.stop()


@pytest.mark.parametrize("change, said", [
    ({"password": "sai-mật-khẩu"}, "refused: "),
    ({"username": None, "password": None}, "refused: "),
])
def test_a_broker_that_refuses_the_login_is_said_and_retried(ioc, source, secured_broker, prefix,
                                                             change, said):
    auth = replace(secured_broker[2], **change)
    listener = _secured_listener(ioc, source[0], secured_broker, prefix, auth)
    try:
        error = _wait(lambda: listener.last_error, "the broker's refusal")
        assert error.startswith(said) and ("authori" in error.lower() or "password" in error)
        assert not listener.subscribed.is_set()
        assert listener.is_alive()  # keeps trying with backoff: accounts can be fixed
    finally:
        listener.stop()
    assert _events(ioc) == []


def test_a_broker_certificate_from_another_authority_is_not_trusted(ioc, source, secured_broker,
                                                                    prefix, tmp_path):
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    auth = replace(secured_broker[2], ca_file=str(stranger))
    listener = _secured_listener(ioc, source[0], secured_broker, prefix, auth)
    try:
        error = _wait(lambda: listener.last_error, "the certificate check")
        assert "certificate verify failed" in error
        assert not listener.subscribed.is_set()
    finally:
        listener.stop()


@pytest.mark.parametrize("fields, message", [
    ({"password": "s3cret"}, "password was given without a user name"),
    ({"username": "u", "cert_file": __file__}, "both its certificate and its key file"),
    ({"ca_file": "/khong/co/ca.pem"}, "ca file '/khong/co/ca.pem' is not a readable file"),
])
def test_broker_login_settings_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        BrokerAuth(**fields)
    assert "s3cret" not in repr(BrokerAuth("u", "s3cret"))  # never in logs


@pytest.mark.parametrize("args, env, said", [
    (["--broker", "127.0.0.1:mqtt"], {}, "--broker"),
    (["--cert-file", __file__], {}, "both its certificate and its key file"),
    (["--ca-file", "/khong/co/ca.pem"], {}, "/khong/co/ca.pem"),
    ([], {"IOC_MQTT_PASSWORD": "s3cret"}, "password was given without a user name"),
])
def test_the_listen_command_names_a_bad_option(args, env, said, monkeypatch):
    from engine.cli import main

    monkeypatch.delenv("IOC_MQTT_USERNAME", raising=False)
    result = CliRunner().invoke(main, ["sensors", "listen", "--source", "quan-trac", *args],
                                env=env)
    assert result.exit_code == 2, result.output
    assert said in result.output and "s3cret" not in result.output


# -- HTTP fallback -------------------------------------------------------------------------------

@pytest.fixture
def client(ioc):
    return create_app(services=ioc).test_client()


def _post(client, token: str | None, body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/integrations/sensors/readings", json=body, headers=headers)


def test_readings_over_http_are_stored(client, ioc, source):
    body = {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", "value": 61.5, "unit": "µg/m³", "time": T, "aqi": 155,
         "ward": "phuong-di-an"},
        {"parameter": "no2", "value": 48, "unit": "µg/m³", "time": T}]}
    resp = _post(client, source[1], body)
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["accepted_ids"] == ["BD-AQ-03/pm25/2026-11-27T01:00:00Z",
                                               "BD-AQ-03/no2/2026-11-27T01:00:00Z"]
    again = _post(client, source[1], body)  # a resend, as after a timeout
    assert (again.status_code, again.get_json()["duplicates"]) == (202, 2)
    assert len(_events(ioc)) == 2


def test_http_and_mqtt_readings_share_their_ids(client, ioc, source):
    _handle(ioc, source, "BD-AQ-03/pm25", _reading())
    resp = _post(client, source[1], {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", **json.loads(_reading())}]})
    assert resp.get_json()["duplicate_ids"] == ["BD-AQ-03/pm25/2026-11-27T01:00:00Z"]


def test_mg_per_cubic_metre_is_converted_over_http(client, ioc, source):
    resp = _post(client, source[1], {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", "value": 0.0615, "unit": "mg/m³", "time": T}]})
    assert resp.status_code == 202, resp.get_json()
    [event] = _events(ioc)
    assert (event.data["value"], event.data["unit"]) == (61.5, "µg/m³")


def test_refused_readings_over_http_name_their_fields(client, ioc, source):
    resp = _post(client, source[1], {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", "value": 61.5, "unit": "ppm", "time": T},
        {"parameter": "pm25", "value": 5000, "unit": "µg/m³", "time": T},
        {"parameter": "pm25", "value": 61.5, "unit": "µg/m³", "time": "2026-11-27 08:00"},
        {"parameter": "lead", "value": 1, "unit": "µg/m³", "time": T}]})
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert {e["field"] for e in body["errors"]} == {
        "readings[0].unit", "readings[1].value", "readings[2].time", "readings[3].parameter"}
    assert _events(ioc) == []
    assert _source(ioc, source[0]).refused_count == 4


def test_nan_is_not_a_value_over_http_either(client, ioc, source):
    # Python's JSON reader takes NaN; JSON has none, so the body is refused at the door
    # (engine/inputs.py), naming where it was.
    resp = client.post("/integrations/sensors/readings", headers={
        "Authorization": f"Bearer {source[1]}", "Content-Type": "application/json"},
        data='{"station_id": "BD-AQ-03", "readings": [{"parameter": "pm25", "value": NaN, '
             '"unit": "µg/m³", "time": "%s"}]}' % T)
    assert resp.status_code == 400
    assert "$.readings[0].value: NaN is not a JSON number" in resp.get_json()["detail"]
    with ioc.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_a_batch_stores_its_good_readings_and_names_the_bad(client, ioc, source):
    resp = _post(client, source[1], {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", "value": 61.5, "unit": "µg/m³", "time": T},
        {"parameter": "pm25", "value": 61.5, "unit": "µg/m³", "time": T, "ward": "quan-9"}]})
    assert resp.status_code == 202
    body = resp.get_json()
    assert (body["accepted"], body["refused"]) == (1, 1)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["errors"][0]["field"] == "readings[1].ward"


@pytest.mark.parametrize("body, field", [
    ({"readings": [{"parameter": "pm25"}]}, "station_id"),
    ({"station_id": "BD/AQ", "readings": [{"parameter": "pm25"}]}, "station_id"),
    ({"station_id": "BD-AQ-03"}, "readings"),
    ({"station_id": "BD-AQ-03", "readings": []}, "readings"),
    ([{"parameter": "pm25"}], ""),
])
def test_a_bad_request_body_is_refused_naming_the_field(client, ioc, source, body, field):
    resp = _post(client, source[1], body)
    assert resp.status_code == 422
    assert field in {e["field"] for e in resp.get_json()["errors"]}
    assert _source(ioc, source[0]).refused_count == 1


def test_readings_over_http_need_a_source_token(client, ioc):
    body = {"station_id": "BD-AQ-03", "readings": [
        {"parameter": "pm25", "value": 61.5, "unit": "µg/m³", "time": T}]}
    assert _post(client, None, body).status_code == 401
    assert _post(client, "not-a-token", body).status_code == 401
    assert _events(ioc) == []
