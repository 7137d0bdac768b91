"""Social-media and news monitoring — feed of posts with matched keywords.

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("social", __name__, url_prefix="/integrations/social")
