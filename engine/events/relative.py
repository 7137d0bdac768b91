"""Relative times in event files: `${now-P3D}` and `${today+P14D}` filled in when sent.

The example events (examples/events/) describe situations: "a dossier whose due date passed a
week ago", "readings of the last forty minutes". Written with fixed dates they would change
meaning as the calendar moves on (a due date in the future becomes overdue), so they say when
relative to the moment they are sent, and `ioc events send` fills the moment in:

- `${now}`, `${now-PT40M}`, `${now+P2DT3H}`: that moment as an ISO 8601 date-time with the
  province's offset (`2026-12-07T10:15:00+07:00`);
- `${today-P7D}`: that day's local date (`2026-11-30`), to be followed by a time of day, as in
  `"${today-P7D}T17:00:00+07:00"`.

A placeholder may stand anywhere inside a JSON string; a malformed one is refused by name.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

PROVINCE_TZ: tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_EXPRESSION = re.compile(r"^(now|today)\s*(?:([+-])\s*(P.+))?$")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class RelativeTimeError(ValueError):
    """A `${…}` placeholder that is not `now` or `today` with an optional ISO 8601 duration."""


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise RelativeTimeError(f"{text!r} is not an ISO 8601 duration in weeks, days, hours, "
                                "minutes or seconds (such as P3D, PT40M or P1DT2H)")
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


def resolve(expression: str, now: datetime, zone: tzinfo = PROVINCE_TZ) -> str:
    """The text of one placeholder's expression (`now-P3D`, `today`) at moment `now`."""
    match = _EXPRESSION.match(expression.strip())
    if not match:
        raise RelativeTimeError(f"${{{expression}}} is not a relative time: write ${{now}}, "
                                "${now-P3D} or ${today+P14D}")
    anchor, sign, duration = match.groups()
    moment = now.astimezone(zone)
    if duration:
        step = _duration(duration.strip())
        moment = moment + step if sign == "+" else moment - step
    if anchor == "today":
        return moment.date().isoformat()
    return moment.replace(microsecond=0).isoformat()


def fill(value: object, now: datetime | None = None, zone: tzinfo = PROVINCE_TZ) -> object:
    """`value` (parsed JSON) with every `${…}` placeholder in its strings filled in at `now`
    (default: the current time); raises RelativeTimeError naming the JSON path of a bad one."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise RelativeTimeError("the moment to fill relative times at needs a UTC offset")
    return _fill(value, now, zone, "$")


def _fill(value: object, now: datetime, zone: tzinfo, path: str) -> object:
    if isinstance(value, str):
        try:
            return _PLACEHOLDER.sub(lambda m: resolve(m.group(1), now, zone), value)
        except RelativeTimeError as exc:
            raise RelativeTimeError(f"{path}: {exc}") from None
    if isinstance(value, list):
        return [_fill(item, now, zone, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _fill(item, now, zone, f"{path}.{key}") for key, item in value.items()}
    return value
