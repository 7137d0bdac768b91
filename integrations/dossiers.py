"""Public-service dossier system — bulk import of a day's dossier log (CSV/JSON).

(Adapter being written: this module only declares its blueprint so far.)
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("dossiers", __name__, url_prefix="/integrations/dossiers")
