"""Health — epidemic case reports by ward or commune (CSV import or API).

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__, url_prefix="/integrations/health")
