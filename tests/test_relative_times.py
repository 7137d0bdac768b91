"""Relative times in event files (`${now-P3D}`): the examples mean the same on any day."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.events.relative import RelativeTimeError, fill

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "events").glob("*.json"))
VN = timezone(timedelta(hours=7))
MOMENT = datetime(2026, 11, 27, 10, 0, tzinfo=VN)


def _times(value, found=None) -> list[str]:
    """Every string of `value` that reads as an ISO date-time with an offset."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for item in value.values():
            _times(item, found)
    elif isinstance(value, list):
        for item in value:
            _times(item, found)
    elif isinstance(value, str):
        try:
            if datetime.fromisoformat(value).tzinfo is not None:
                found.append(value)
        except ValueError:
            pass
    return found


def test_placeholders_are_filled_in_the_province_time():
    filled = fill({"time": "${now-P3D}", "due": "${today+P14D}T17:00:00+07:00",
                   "note": "sent at ${now} from the hotline", "n": 3,
                   "list": ["${now+PT1H30M}", "${now-P1W}"]}, MOMENT)
    assert filled == {"time": "2026-11-24T10:00:00+07:00", "due": "2026-12-11T17:00:00+07:00",
                      "note": "sent at 2026-11-27T10:00:00+07:00 from the hotline", "n": 3,
                      "list": ["2026-11-27T11:30:00+07:00", "2026-11-20T10:00:00+07:00"]}
    # `today` is the province's date: 20:00 UTC is already the next day in Hồ Chí Minh City.
    late = datetime(2026, 11, 27, 20, 0, tzinfo=timezone.utc)
    assert fill("${today}", late) == "2026-11-28"


@pytest.mark.parametrize("text, message", [
    ("${yesterday}", "$.data.at: ${yesterday} is not a relative time"),
    ("${now-3D}", "$.data.at: ${now-3D} is not a relative time"),
    ("${now-P3X}", "$.data.at: 'P3X' is not an ISO 8601 duration"),
    ("${now+PT}", "$.data.at: 'PT' is not an ISO 8601 duration"),
])
def test_a_bad_placeholder_is_refused_with_its_path(text, message):
    with pytest.raises(RelativeTimeError) as caught:
        fill({"data": {"at": text}}, MOMENT)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_means_the_same_on_any_day(path):
    """Filled in a year and a day apart, every time in the file moves by exactly that much:
    nothing in it is a fixed date that would turn from future to past as days go by."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    later = MOMENT + timedelta(days=366, hours=5)
    first, second = _times(fill(raw, MOMENT)), _times(fill(raw, later))
    assert first, f"{path.name} has no times"
    for a, b in zip(first, second, strict=True):
        shift = datetime.fromisoformat(b) - datetime.fromisoformat(a)
        # `${today…}` moves by whole days (its time of day is written in the file).
        assert shift in (later - MOMENT, timedelta(days=366), timedelta(days=367)), (a, b)


def test_events_send_refuses_a_bad_placeholder_or_moment_before_sending(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"specversion": "1.0", "time": "${now-P3X}"}', encoding="utf-8")
    args = ["events", "send", "--url", "http://127.0.0.1:9", "--token", "x"]
    out = CliRunner().invoke(main, args + [str(bad)])
    assert out.exit_code != 0 and "$.time: 'P3X' is not an ISO 8601 duration" in out.output
    naive = CliRunner().invoke(main, args + ["--now", "2026-11-27T10:00", str(EXAMPLES[0])])
    assert naive.exit_code != 0 and "needs a UTC offset" in naive.output
    assert "cannot reach" not in naive.output  # refused before anything was sent
