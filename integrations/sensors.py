"""Environment sensors — MQTT subscriber and HTTP fallback for station readings.

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sensors", __name__, url_prefix="/integrations/sensors")
