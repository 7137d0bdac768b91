"""The pages' words come from the message catalogue (designer/i18n.py): every message the code
and templates use has its Vietnamese, the catalogue holds nothing else, and no Vietnamese is
written by hand outside it."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from markupsafe import Markup

from designer import i18n

DESIGNER = Path(i18n.__file__).parent
# Letters only Vietnamese uses among the pages' languages (đ, ơ, ư, and the tone marks).
VIETNAMESE = re.compile("[ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ]",
                        re.IGNORECASE)


def test_the_catalogue_holds_exactly_the_messages_the_code_uses():
    used = {m.id for m in i18n.extracted() if m.id}
    stored = {m.id for m in i18n.stored() if m.id}
    assert used - stored == set(), "run `make messages` and translate the new messages"
    assert stored - used == set(), "run `make messages`: the catalogue keeps unused messages"


def test_every_message_has_its_vietnamese_with_the_same_placeholders():
    catalog = i18n.stored()
    assert i18n.untranslated(catalog) == []
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog.check()]
    assert problems == []
    for message in catalog:
        if message.id:
            names = set(re.findall(r"%\((\w+)\)s", message.id))
            assert set(re.findall(r"%\((\w+)\)s", message.string)) == names, message.id


def _template_text(path: Path) -> str:
    """A template's own text: what is outside {{ … }}, {% … %} and {# … #}."""
    return re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", " ", path.read_text(), flags=re.DOTALL)


def _python_strings(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.STRING]


def test_no_vietnamese_is_written_outside_the_catalogue():
    found = []
    for path in sorted(DESIGNER.glob("templates/**/*.html")):
        for number, line in enumerate(_template_text(path).splitlines(), 1):
            if VIETNAMESE.search(line):
                found.append(f"{path.relative_to(DESIGNER)}:{number}: {line.strip()[:80]}")
    for path in sorted(DESIGNER.glob("**/*.py")):
        for number, text in _python_strings(path):
            if VIETNAMESE.search(text) and '"""' not in text[:4]:
                found.append(f"{path.relative_to(DESIGNER)}:{number}: {text[:80]}")
    for path in sorted(DESIGNER.glob("static/*.js")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if VIETNAMESE.search(line) and not line.strip().startswith("//"):
                found.append(f"{path.relative_to(DESIGNER)}:{number}: {line.strip()[:80]}")
    assert found == []


def test_bi_shows_vietnamese_first_and_english_beside_escaped():
    assert i18n.bi("Inbox") == Markup("Hộp công việc <small>Inbox</small>")
    assert i18n.both("Inbox") == "Hộp công việc / Inbox"
    assert i18n.vi("Inbox") == "Hộp công việc"
    # A message the catalogue does not know is shown once, in English, never twice.
    assert i18n.both("Not in the catalogue") == "Not in the catalogue"
    assert i18n.bi("<b>not markup</b>") == Markup("&lt;b&gt;not markup&lt;/b&gt;")


def test_values_fill_both_languages_and_are_escaped_unless_markup():
    message = "Held by %(name)s since %(at)s"
    assert message in {m.id for m in i18n.stored()}
    shown = i18n.bi(message, name="<i>an</i>", at=Markup("<time>09:00</time>"))
    assert "&lt;i&gt;an&lt;/i&gt;" in shown and "<time>09:00</time>" in shown
    assert shown.count("&lt;i&gt;") == 2 and "<small>Held by" in shown


def test_a_page_script_gets_the_vietnamese_of_the_messages_it_uses():
    messages = i18n.script_messages("process_editor.js")
    assert messages and all(english in i18n.stored() for english in messages)
    assert messages["Saved"] == i18n.vi("Saved") != "Saved"


def test_a_value_can_be_written_differently_in_each_language():
    # A number (0,5 / 0.5) or a message inside a message gives each language its own side.
    inner = i18n.pair("%(hours)s h of working time", hours=("0,5", "0.5"))
    assert inner[1] == "0.5 h of working time" and "0,5" in inner[0] and "0.5" not in inner[0]
    shown = i18n.both("%(time)s left", time=inner)
    assert shown == f"{i18n.vi('%(time)s left', time=inner[0])} / 0.5 h of working time left"
    assert "<small>0.5 h of working time left</small>" in i18n.bi("%(time)s left", time=inner)
