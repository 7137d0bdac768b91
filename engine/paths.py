"""Where the files the engine ships live, in a checkout and in an installed wheel: asked here only.

A checkout (and an editable install of one) reads them where they are kept: `data/` at the top
of the repository, the vocabulary in `integrations/vocabulary/`, the designer's npm packages in
`designer/node_modules/`, the sample scenarios in `scenarios/`. A wheel carries `data/` inside the
engine package as `engine/data/` (setup.py) and the vocabulary as package data; npm packages and
sample scenarios are not Python packages, so an installation points at them (the Docker image
keeps the npm packages in IOC_DESIGNER_ASSETS and the scenarios in its working directory).
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

_ENGINE = Path(__file__).resolve().parent
_PACKAGED_DATA = _ENGINE / "data"
# A checkout never has engine/data: only a wheel's copy of data/ does.
INSTALLED = _PACKAGED_DATA.is_dir()

DATA_DIR = _PACKAGED_DATA if INSTALLED else _ENGINE.parent / "data"
# Messages name data files relative to this, "data/calendar/2026.yaml" in either layout.
DATA_ROOT = DATA_DIR.parent
ORGANISATION_FILE = DATA_DIR / "organisation" / "binh-duong.yaml"
CALENDAR_DIR = DATA_DIR / "calendar"
FONTS_DIR = DATA_DIR / "fonts"  # the evidence PDF's font (Vietnamese glyphs)
VOCABULARY_DIR = Path(files("integrations") / "vocabulary")
CAP_SCHEMA = Path(files("integrations") / "schemas" / "CAP-v1.2.xsd")  # OASIS CAP 1.2
# What `ioc demo` loads; an installation has no checkout, so the folder of the working directory.
SAMPLE_SCENARIOS = Path("scenarios") if INSTALLED else _ENGINE.parent / "scenarios"


def designer_assets() -> Path:
    """The designer's npm packages (bpmn-js): IOC_DESIGNER_ASSETS, else designer/node_modules."""
    configured = os.environ.get("IOC_DESIGNER_ASSETS", "").strip()
    return Path(configured) if configured else Path(files("designer") / "node_modules")
