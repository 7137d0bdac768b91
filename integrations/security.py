"""Information security — alerts from network and endpoint monitoring.

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("security", __name__, url_prefix="/integrations/security")
