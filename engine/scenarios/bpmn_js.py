"""What bpmn-js (its moddle) writes differently from what it read, put back as the engine reads it.

bpmn-js 18 exports a correlation property's `<bpmn:messagePath>` as `<bpmn:formalExpression>`
(measured on every shipped scenario: the name of the type replaces the name of the property).
SpiffWorkflow and our checks read `messagePath`, so the designer repairs each diagram it
receives from the browser before saving or editing it.
"""
from __future__ import annotations

from lxml import etree

from engine.xmlsafe import parse

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def repair(xml: str) -> str:
    """The diagram with bpmn-js's known export differences undone (unchanged if none)."""
    try:
        root = parse(xml)
    except (etree.XMLSyntaxError, ValueError):
        return xml  # not XML: the checks name the problem with its line
    renamed = 0
    for node in root.iter(f"{{{BPMN}}}correlationPropertyRetrievalExpression"):
        for child in node.findall(f"{{{BPMN}}}formalExpression"):
            child.tag = f"{{{BPMN}}}messagePath"
            renamed += 1
    if not renamed:
        return xml
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")
