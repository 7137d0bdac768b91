"""Parsing XML that comes from outside (scenario files, diagrams from a browser, DMN tables):
no entities resolved, no DTD loaded, nothing fetched from the network."""
from __future__ import annotations

from lxml import etree


def xml_parser() -> etree.XMLParser:
    """A parser for outside XML (a new one per use: lxml parsers are not shared between
    threads)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def parse(text: str | bytes) -> etree._Element:
    """The root of an XML document (str is encoded as UTF-8); raises etree.XMLSyntaxError."""
    return etree.fromstring(text.encode("utf-8") if isinstance(text, str) else text,
                            parser=xml_parser())
