"""Which fields of a caught message reach the instance's data: only those its process declares.

A message is an event from outside (a dossier completed, a ticket resolved); merged whole, its
fields would overwrite the instance's own (`ward`, `category`, a form's answer). A catch event
declares what it takes with Camunda's output mapping, which Camunda Modeler and our designer
edit, one parameter per field:

    <bpmn:intermediateCatchEvent id="wait_completed">
      <bpmn:extensionElements><camunda:inputOutput>
        <camunda:outputParameter name="completed_by">${officer}</camunda:outputParameter>
      </camunda:inputOutput></bpmn:extensionElements>
      <bpmn:messageEventDefinition messageRef="msg_completed"/>

The value is a field of the event (`${field}`, a sub-field `${location.ward}`); nothing else is
evaluated. The correlation field is always taken: it equals the instance's value already.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from engine.xmlsafe import parse

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
FIELD_REF = re.compile(r"^\s*\$\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\s*$")
TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MappingProblem(ValueError):
    """An output parameter that is not `name` ← `${field}`; `element` is the parameter."""

    def __init__(self, message: str, element):
        super().__init__(message)
        self.element = element


def outputs_of(event) -> dict[str, str]:
    """The declared mapping of one catch event element: {data name: event field}."""
    out: dict[str, str] = {}
    for param in event.iterfind("bpmn:extensionElements/camunda:inputOutput/"
                                "camunda:outputParameter", NS):
        name, text = param.get("name") or "", param.text or ""
        if not TARGET.match(name):
            raise MappingProblem(f"tên biến {name!r} không hợp lệ / output parameter name "
                                 f"{name!r} is not a variable name", param)
        found = FIELD_REF.match(text)
        if found is None:
            raise MappingProblem(f"giá trị của {name!r} phải là ${{trường}} / the value of "
                                 f"{name!r} must be a field of the event, written ${{field}}, "
                                 f"not {text.strip()!r}", param)
        out[name] = found.group(1)
    return out


@lru_cache(maxsize=256)
def declared(bpmn: str) -> dict[str, dict[str, str]]:
    """Every catch event's mapping in a BPMN document, by element id (a checked file)."""
    root = parse(bpmn)
    out = {}
    for definition in root.iterfind(".//bpmn:messageEventDefinition", NS):
        event = definition.getparent()
        out[event.get("id")] = outputs_of(event)
    return out


def take(mapping: Mapping[str, str], correlation: str | None, payload: Mapping[str, Any]) \
        -> dict[str, Any]:
    """What of `payload` the instance's data receives: the declared fields, renamed, and the
    correlation field; a declared field the event lacks is None."""
    out = {name: _field(payload, source) for name, source in mapping.items()}
    if correlation and correlation in payload:
        out.setdefault(correlation, payload[correlation])
    return out


def _field(payload: Mapping[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
