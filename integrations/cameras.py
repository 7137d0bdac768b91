"""Camera analytics — detection webhook.

The video analytics platform (AI at the edge of the province's traffic and security cameras)
calls `POST /integrations/cameras/detections` with one detection as a JSON object, or a list of
them, each as the vendor writes it:

    {"detection_id": "det-88121", "camera_id": "CAM-DA-0142", "type": "traffic_violation",
     "confidence": 87.5, "location": {"lat": 10.9046, "lon": 106.7698}, "ward": "Phường Dĩ An",
     "people_count": 0, "snapshot_url": "https://vms.example/snap/88121.jpg",
     "detected_at": "2026-11-27T08:15:02+07:00"}

Each becomes one `camera.detection` event. The vendor's snake_case types (`crowd`,
`traffic_violation`, `fire_smoke`, `wrong_way`; hyphens and capitals accepted too) map to the
vocabulary's enum (`traffic-violation`…). `confidence` is a fraction 0–1 or a percentage: a value
above 1 (up to 100), or text ending in "%", is divided by 100. `ward` is a key, an old key or the
Vietnamese name, stored as today's key. `detected_at` is required with its UTC offset and is the
event's time. The event id is `detection_id`, or — for firmware that sends none — one made from
camera, moment (in UTC, so the same instant written with another offset is the same detection)
and type: a detection delivered again is a duplicate, not a second crowd.
"""
from __future__ import annotations

from datetime import timezone
from typing import Any

from flask import Blueprint

from engine.api import json_body, require_source, services
from integrations import intake
from integrations import native as feed

bp = Blueprint("cameras", __name__, url_prefix="/integrations/cameras")

SOURCE = "/integrations/cameras"
# The vendor's names (snake_case) → the vocabulary's enum (integrations/vocabulary/cameras.yaml).
TYPES = {"crowd": "crowd", "traffic_violation": "traffic-violation",
         "fire_smoke": "fire-smoke", "wrong_way": "wrong-way"}
# What the vocabulary calls the vendor's field, to name it back in the engine's refusals.
RENAMES = {"detection_type": "type"}


def _type(item: dict, problems: feed.Problems) -> str | None:
    value = feed.text_field(item, "type", problems)
    if value is None:
        return None
    vendor = value.lower().replace("-", "_").replace(" ", "_")
    if vendor not in TYPES:
        problems.append(("type", f"must be one of {', '.join(TYPES)}, not {value!r}"))
    return TYPES.get(vendor)


def _confidence(item: dict, problems: feed.Problems) -> float | None:
    value = item.get("confidence")
    percent = isinstance(value, str) and value.strip().endswith("%")
    number = feed.number_field({"confidence": value.strip()[:-1]} if percent else item,
                               "confidence", problems)
    if number is None:
        return None
    if percent or number > 1:
        number /= 100
    if not 0 <= number <= 1:
        problems.append(("confidence", f"must be 0–1 or a percentage 0–100, not {value!r}"))
        return None
    return round(number, 6)


def _location(item: dict, problems: feed.Problems) -> dict | None:
    value = item.get("location")
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(("location", "must be an object {lat, lon}"))
        return None
    out = {}
    for name, limit in (("lat", 90), ("lon", 180)):
        coordinate = value.get(name)
        if isinstance(coordinate, bool) or not isinstance(coordinate, (int, float)):
            problems.append((f"location.{name}", "is required: a number (WGS84 degrees)"))
        elif not -limit <= coordinate <= limit:
            problems.append((f"location.{name}", f"must be between -{limit} and {limit}"))
        else:
            out[name] = coordinate
    return out


def detection_event(item: Any, wards: feed.WardLookup
                    ) -> tuple[list[dict], feed.Problems, str | None]:
    """One detection's camera.detection event, or its problems; and its id if known."""
    problems = feed.not_an_object(item)
    if problems:
        return [], problems, None
    given_id = feed.text_field(item, "detection_id", problems, required=False)
    camera = feed.text_field(item, "camera_id", problems)
    kind = _type(item, problems)
    confidence = _confidence(item, problems)
    moment = feed.moment_field(item, "detected_at", problems)
    location = _location(item, problems)
    ward = feed.ward_field(item, "ward", problems, wards, required=False)
    people = feed.count_field(item, "people_count", problems, required=False)
    snapshot = feed.text_field(item, "snapshot_url", problems, required=False)
    if problems:
        return [], problems, given_id
    detection_id = given_id or (f"{camera}/{moment.astimezone(timezone.utc).isoformat()}/"
                                f"{kind}")
    data = {"detection_id": detection_id, "camera_id": camera, "detection_type": kind,
            "confidence": confidence}
    optional = {"ward": ward, "location": location, "people_count": people,
                "snapshot_url": snapshot}
    data.update({k: v for k, v in optional.items() if v is not None})
    return [intake.cloud_event("camera.detection", detection_id, SOURCE, data, subject=camera,
                               time=moment)], [], detection_id


@bp.post("/detections")
@require_source
def detections():
    """Store camera detections (one JSON object or a list) as camera.detection events."""
    items, single = feed.json_items(json_body(), "detection")
    batch = feed.Batch(renames=RENAMES)
    with services().db.read() as s:
        wards = feed.WardLookup(s)
        for index, item in enumerate(items):
            events, problems, detection_id = detection_event(item, wards)
            batch.take(index, events, problems, detection_id)
    return feed.deliver(batch, single)
