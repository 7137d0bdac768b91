"""Emergency alerts — OASIS CAP 1.2 XML, validated against the standard's schema.

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cap", __name__, url_prefix="/integrations/cap")
