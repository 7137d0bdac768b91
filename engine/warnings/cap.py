"""A public warning as an OASIS CAP 1.2 alert: one <info> in Vietnamese and one in English, the
area as the wards' names with a `ward` geocode each (as integrations/cap.py reads them), checked
against the standard's XML Schema before anything is published. The namespace and the schema
are the standard's, here once for both directions: integrations/cap.py validates alerts it
receives with the same `schema()`."""
from __future__ import annotations

import threading
from datetime import datetime

from lxml import etree

from engine import paths
from engine.org.service import local_time

NS = "urn:oasis:names:tc:emergency:cap:1.2"
# Who the alerts say they are from: the IOC's CAP sender id and name.
SENDER = "ioc.binhduong.hochiminhcity.gov.vn"
SENDER_NAME = {"vi": "Trung tâm Giám sát, điều hành đô thị thông minh",
               "en": "Smart City Monitoring and Operations Center (IOC)"}
LANGUAGES = (("vi", "vi-VN"), ("en", "en-US"))
_local = threading.local()


class CapInvalid(ValueError):
    """The alert does not pass the CAP 1.2 schema (a bug here, never sent)."""


def cap_time(moment: datetime) -> str:
    """A moment as CAP writes it: local time with its offset, whole seconds."""
    return local_time(moment).replace(microsecond=0).isoformat()


def schema() -> etree.XMLSchema:
    """The CAP 1.2 XML Schema, loaded once per thread (a validator keeps its own error log)."""
    loaded = getattr(_local, "schema", None)
    if loaded is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        loaded = _local.schema = etree.XMLSchema(etree.parse(str(paths.CAP_SCHEMA), parser))
    return loaded


def _add(parent, name: str, text: str | None = None):
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def alert_xml(warning, *, identifier: str, sent: datetime, references: str | None,
              ward_names: dict[str, str]) -> str:
    """The warning's CAP 1.2 XML (UTF-8 text), valid against the schema, or CapInvalid."""
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    for name, text in (("identifier", identifier), ("sender", SENDER), ("sent", cap_time(sent)),
                       ("status", "Actual"), ("msgType", warning.msg_type),
                       ("scope", "Public")):
        _add(root, name, text)
    if references:
        _add(root, "references", references)
    for lang, language in LANGUAGES:
        info = _add(root, "info")
        _add(info, "language", language)
        _add(info, "category", warning.category)
        _add(info, "event", warning.event)
        for name in ("urgency", "severity", "certainty"):
            _add(info, name, getattr(warning, name))
        _add(info, "expires", cap_time(warning.expires))
        _add(info, "senderName", SENDER_NAME[lang])
        for name in ("headline", "description", "instruction"):
            text = getattr(warning, f"{name}_{lang}")
            if text:
                _add(info, name, text)
        area = _add(info, "area")
        _add(area, "areaDesc", "; ".join(ward_names.get(w, w) for w in warning.wards))
        for ward in warning.wards:
            code = _add(area, "geocode")
            _add(code, "valueName", "ward")
            _add(code, "value", ward)
    validator = schema()
    if not validator.validate(root):
        raise CapInvalid("; ".join(str(e.message) for e in validator.error_log))
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True).decode("utf-8")
