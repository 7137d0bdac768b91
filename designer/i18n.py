"""The pages' words: each written once, in English, as a gettext message id; its Vietnamese in
the catalogue designer/translations/vi/LC_MESSAGES/messages.po (read with Babel). The pages
show Vietnamese first with the English beside it: `bi` in HTML, `both` in plain text.

`python -m designer.i18n` (or `make messages`) brings the catalogue up to date with the code:
it adds the new message ids, drops the ones no longer used and lists what has no Vietnamese
yet; tests/test_i18n.py fails while any message lacks its translation.
"""
from __future__ import annotations

import sys
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations
from markupsafe import Markup, escape

HERE = Path(__file__).parent
CATALOGUE = HERE / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
MAPPING = HERE / "babel.cfg"
# The functions whose first argument is a message id, in the code and in the templates.
KEYWORDS = {"bi": None, "both": None, "vi": None, "N_": None, "_": None, "gettext": None,
            "pboth": ((1, "c"), 2)}


@cache
def translations() -> Translations:
    """The Vietnamese catalogue, compiled in memory: no .mo file to build, ship or keep."""
    with CATALOGUE.open("rb") as po:
        catalog = read_po(po, locale="vi")
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out: they are not translations yet
    compiled.seek(0)
    return Translations(compiled)


def N_(message: str) -> str:
    """Mark a message id for the catalogue where it is defined; translate where it is shown."""
    return message


def _side(values: dict, index: int) -> dict:
    """The values for one language (0 Vietnamese, 1 English): a (Vietnamese, English) pair gives
    each its own side (0,5 / 0.5; a message inside a message), any other value is shared."""
    return {key: value[index] if isinstance(value, tuple) else value
            for key, value in values.items()}


def _filled(text: str, values: dict) -> str:
    return text % values if values else text


def vi(message: str, **values) -> str:
    """The message in Vietnamese (the English itself if the catalogue has no translation)."""
    return _filled(translations().gettext(message), _side(values, 0))


def pair(message: str, **values) -> tuple[str, str]:
    """The message in Vietnamese and in English: a value for a message inside another."""
    return vi(message, **values), _filled(message, _side(values, 1))


def _joined(vietnamese: str, english: str) -> str:
    return vietnamese if vietnamese == english else f"{vietnamese} / {english}"


def both(message: str, **values) -> str:
    """'Vietnamese / English' as plain text (one of them when they are the same)."""
    return _joined(*pair(message, **values))


def pboth(context: str, message: str) -> str:
    """`both` for a word whose Vietnamese depends on what it describes (gettext's context):
    an event "pending" is waiting to be handled, a notification "pending" to be sent."""
    return _joined(translations().pgettext(context, message), message)


def bi(message: str, **values) -> Markup:
    """Vietnamese, with the English beside it in small type (HTML). Values are escaped unless
    they are markup themselves (a name in bold, a link)."""
    def filled(text: str, index: int) -> Markup:
        return escape(text) % _side(values, index) if values else escape(text)
    vietnamese = filled(translations().gettext(message), 0)
    english = filled(message, 1)
    return vietnamese if vietnamese == english else Markup("{} <small>{}</small>").format(
        vietnamese, english)


@cache
def script_messages(*scripts: str) -> dict[str, str]:
    """The Vietnamese of the message ids the page's scripts (designer/static/…) pass to
    `both` (static/i18n.js), read from the scripts themselves: {English: Vietnamese}."""
    found: dict[str, str] = {}
    for script in scripts:
        with (HERE / "static" / script).open("rb") as source:
            for _, message, _, _ in extract("javascript", source, keywords={"both": None}):
                found[message] = translations().gettext(message)
    return found


def install(app) -> None:
    """Give the app's templates the catalogue: bi, both, vi, script_messages, and Jinja's own
    _ and gettext."""
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_translations(translations(), newstyle=True)
    app.jinja_env.globals.update(bi=bi, both=both, vi=vi, script_messages=script_messages)


# -- keeping the catalogue up to date ----------------------------------------------------------

def extracted() -> Catalog:
    """Every message id the code and the templates use, with where they are used."""
    with MAPPING.open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    catalog = Catalog(locale="vi", project="ioc-scenario-engine")
    for filename, lineno, message, comments, context in extract_from_dir(
            HERE, method_map, options_map, keywords=KEYWORDS,
            directory_filter=lambda path: Path(path).name not in ("node_modules", "__pycache__")):
        catalog.add(message, locations=[(f"designer/{filename}", lineno)],
                    auto_comments=comments, context=context)
    return catalog


def stored() -> Catalog:
    """The catalogue as the repository holds it."""
    with CATALOGUE.open("rb") as po:
        return read_po(po, locale="vi")


def untranslated(catalog: Catalog) -> list[str]:
    """The message ids of a catalogue with no Vietnamese yet (or only a fuzzy guess)."""
    return [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]


def update() -> list[str]:
    """Bring the stored catalogue up to date with the code; the ids still to translate."""
    catalog = stored()
    catalog.update(extracted(), no_fuzzy_matching=True, update_creation_date=False)
    with CATALOGUE.open("wb") as po:
        write_po(po, catalog, width=100, sort_output=True, include_lineno=False,
                 ignore_obsolete=True)
    return untranslated(catalog)


if __name__ == "__main__":
    missing = update()
    for message in missing:
        print(f"no Vietnamese yet: {message!r}")
    print(f"{CATALOGUE.relative_to(HERE.parent)}: {len(stored())} messages, "
          f"{len(missing)} to translate")
    sys.exit(1 if missing else 0)
