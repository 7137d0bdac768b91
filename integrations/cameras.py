"""Camera analytics — detection webhook.

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cameras", __name__, url_prefix="/integrations/cameras")
