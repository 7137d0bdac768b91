"""One prefix per namespace in a BPMN file, the prefixes the designer's editor expects.

Other modellers bind prefixes freely: Activiti's namespace under `camunda`, the BPMN model
namespace under both `bpmn` and `bpmn2`, `semantic` for BPMN. bpmn-js reads these, but on save it
cannot write an element of a namespace whose prefix was taken by another ("no namespace uri
given for prefix <ns0>"), so such a file could be imported and never saved. `normalise` rewrites
the prefixes (and the `prefix:name` values of attributes such as `xsi:type`) so that each
namespace has one prefix and the known ones have their usual names; element names, ids, text and
the namespaces themselves do not change, so nothing the engine or the diagram uses changes.
"""
from __future__ import annotations

import copy
import re

from lxml import etree

from engine.xmlsafe import parse

# The usual prefix of each namespace a BPMN file of ours (and bpmn-js with the Camunda moddle)
# uses.
USUAL = {
    "http://www.omg.org/spec/BPMN/20100524/MODEL": "bpmn",
    "http://www.omg.org/spec/BPMN/20100524/DI": "bpmndi",
    "http://www.omg.org/spec/DD/20100524/DC": "dc",
    "http://www.omg.org/spec/DD/20100524/DI": "di",
    "http://camunda.org/schema/1.0/bpmn": "camunda",
    "http://www.w3.org/2001/XMLSchema-instance": "xsi",
}
_PLAIN_WORDS = {"http", "https", "urn", "www", "com", "org", "net", "schema", "schemas", "spec"}
_QNAME_VALUE = re.compile(r"^([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)$")
_NAME_VALUE = re.compile(r"^[A-Za-z_][\w.-]*$")
# An attribute whose value is a QName: unprefixed, it names a type of the default namespace.
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _bindings(root) -> dict[str, set[str]]:
    """Namespace → every prefix the document binds to it (None for a default namespace)."""
    out: dict[str, set[str]] = {}
    for el in root.iter():
        if isinstance(el.tag, str):
            for prefix, uri in el.nsmap.items():
                out.setdefault(uri, set()).add(prefix)
    return out


def qname_value(name: str, value: str, scope: dict) -> tuple[str | None, str] | None:
    """(namespace, local name) of an attribute value that is a QName (`bpmn2:tExpression`, or
    `tExpression` in xsi:type meaning the default namespace); None for any other value."""
    found = _QNAME_VALUE.match(value)
    if found and found.group(1) in scope:
        return scope[found.group(1)], found.group(2)
    if name == _XSI_TYPE and None in scope and _NAME_VALUE.match(value):
        return scope[None], value
    return None


def plan(root) -> dict[str, str]:
    """Namespace → the one prefix it gets; empty when the document needs no change."""
    bindings = _bindings(root)
    # xmlns:ns="" (Modelio, Signavio) binds nothing; XML 1.0 forbids it and lxml cannot write it.
    empty = bindings.pop("", None)
    wanted: dict[str, str] = {}
    # The usual prefixes are the designer's even when a file does not use their namespace: a
    # form field the designer adds is camunda:formField, so `camunda` cannot mean Activiti's.
    taken: set[str] = set(USUAL.values())
    for uri, prefix in USUAL.items():
        if uri in bindings:
            wanted[uri] = prefix
    for uri, prefixes in sorted(bindings.items()):
        if uri in wanted:
            continue
        own = sorted(p for p in prefixes if p and p not in taken)
        prefix = own[0] if own else _free(uri, taken)
        wanted[uri] = prefix
        taken.add(prefix)
    clean = not empty and all(prefixes == {wanted[uri]} for uri, prefixes in bindings.items())
    return {} if clean else wanted


def _free(uri: str, taken: set[str]) -> str:
    """A prefix for a namespace whose own prefixes are taken: its first telling word
    (http://activiti.org/bpmn → activiti)."""
    words = [w for w in re.findall(r"[a-z]+", uri.lower()) if w not in _PLAIN_WORDS]
    base = (words[0] if words else "ns")[:12]
    prefix, n = base, 1
    while prefix in taken:
        n += 1
        prefix = f"{base}{n}"
    return prefix


def normalise(text: str) -> tuple[str, list[str]]:
    """The file with one usual prefix per namespace, and what changed ([] when nothing did;
    the text is then returned as it was)."""
    try:
        root = parse(text)
    except etree.XMLSyntaxError:
        return text, []  # the checks report it with its line
    wanted = plan(root)
    if not wanted:
        return text, []
    changes = sorted({f"{p or '(default)'}:{uri} → {wanted[uri]}" if uri else
                      f"{p}: (empty namespace) → removed"
                      for uri, prefixes in _bindings(root).items() for p in prefixes
                      if p != wanted.get(uri)})
    try:
        new_root = _rebuilt(root, wanted)
    except RecursionError:
        return text, []  # nested past any diagram: left as it is, the checks refuse it
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    body = etree.tostring(new_root, encoding="unicode")
    return head + body + ("\n" if text.endswith("\n") else ""), changes


def _rebuilt(root, wanted: dict[str, str]):
    """A copy of the tree whose every element and attribute uses the wanted prefixes."""
    nsmap = {prefix: uri for uri, prefix in wanted.items()}
    new_root = etree.Element(root.tag, _attributes(root, wanted), nsmap=nsmap)
    _fill(root, new_root, wanted)
    return new_root


def _fill(source, target, wanted: dict[str, str]) -> None:
    target.text = source.text
    for child in source:
        if isinstance(child.tag, str):
            clone = etree.SubElement(target, child.tag, _attributes(child, wanted))
            _fill(child, clone, wanted)
        else:  # a comment or processing instruction, as it was
            clone = copy.deepcopy(child)
            target.append(clone)
        clone.tail = child.tail


def _attributes(el, wanted: dict[str, str]) -> dict[str, str]:
    return {name: _requalified(name, value, el.nsmap, wanted)
            for name, value in el.attrib.items()}


def _requalified(name: str, value: str, scope: dict, wanted: dict[str, str]) -> str:
    """`bpmn2:tFormalExpression` → `bpmn:tFormalExpression` when bpmn2 was renamed (and
    xsi:type `tExpression` of a default namespace that is now `bpmn`)."""
    qname = qname_value(name, value, scope)
    if qname and qname[0] in wanted:
        return f"{wanted[qname[0]]}:{qname[1]}"
    return value
