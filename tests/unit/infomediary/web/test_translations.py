"""The site's languages are complete: no template holds a sentence outside ``_()`` or
``{% trans %}``, and every message the sources hold now (extracted here, in-process, as
``make translations`` does) has a German translation with the same placeholders, compiled.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, nodes

from infomediary.services.site_settings import SITE_LANGUAGES
from infomediary.web.i18n import SERVICE_MESSAGES

ROOT = Path(__file__).resolve().parents[4]
TEMPLATES = ROOT / "infomediary" / "web" / "templates"
TRANSLATIONS = ROOT / "infomediary" / "translations"
TEXT_RULES = ROOT / "infomediary" / "text.py"
KEYWORDS = {"_", "gettext", "ngettext", "pgettext", "npgettext", "lazy_gettext"}

#: Text a template may hold as it is: the brand, symbols, file formats' names, the form of an
#: auditor's pseudonym.
ALLOWED_TEXT = {"Infomediary", "◈", "CSV", "JSON", "aud_…"}
#: Attributes whose values people read (or hear, from a screen reader).
READ_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "label", "aria-description"}
#: Elements whose text is code or data, shown as it is in every language.
VERBATIM = {"code", "pre", "kbd", "samp", "script", "style"}
#: Attributes a macro writes into the tag it is called in (``aria-invalid="true"``).
_ATTRIBUTE = re.compile(r'[\w-]+="[^"]*"')
_ALLOWED = re.compile("|".join(re.escape(t) for t in sorted(ALLOWED_TEXT)))
_WORD = re.compile(r"[^\W\d_]{2,}")
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]|%[sdif]")


#: Templates whose conversion is under way (none: every template is converted).
PENDING: set[str] = set()


def environment() -> Environment:
    return Environment(extensions=["jinja2.ext.i18n"], autoescape=True)


def templates() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.html"))


def converted() -> list[Path]:
    return [p for p in templates() if str(p.relative_to(TEMPLATES)) not in PENDING]


class _Text(HTMLParser):
    """The words of a page's markup people read: text and a few attributes, not code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.verbatim = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VERBATIM:
            self.verbatim += 1
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value:
                self.found.append(value)
        if tag == "input" and dict(attrs).get("type") in ("submit", "button"):
            self.found.append(dict(attrs).get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in VERBATIM and self.verbatim:
            self.verbatim -= 1

    def handle_data(self, data: str) -> None:
        if not self.verbatim:
            self.found.append(data)


def _translated_calls(tree: nodes.Node) -> set[int]:
    """ids of the string constants given to a gettext function (the trans blocks' too)."""
    inside: set[int] = set()
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in KEYWORDS:
            inside.update(id(const) for const in call.find_all(nodes.Const))
    return inside


def untranslated(source: str) -> list[str]:
    """Text of a template outside ``_()`` and ``{% trans %}``: the literal markup's words, and
    string constants in expressions that read as prose (a space between words)."""
    tree = environment().parse(source)
    markup = " ".join(data.data for data in tree.find_all(nodes.TemplateData))
    parser = _Text()
    parser.feed(markup)
    parser.close()
    found = [
        " ".join(text.split())
        for text in parser.found
        if _WORD.search(_ALLOWED.sub(" ", _ATTRIBUTE.sub(" ", text)))
    ]
    translated = _translated_calls(tree)
    # a dict's keys are what a page looks its words up by, never shown themselves
    translated.update(id(pair.key) for pair in tree.find_all(nodes.Pair))
    for const in tree.find_all(nodes.Const):
        value = const.value
        if (
            isinstance(value, str)
            and id(const) not in translated
            and re.search(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}", value)
        ):
            found.append(f"{{{{ {value!r} }}}}")
    return found


def test_the_check_finds_text_outside_the_gettext_calls() -> None:
    source = (
        '{% extends "base.html" %}{% block content %}<h1>Hello there</h1>'
        '<p>{{ _("Fine") }} {% trans %}Also fine{% endtrans %}</p>'
        '<input type="submit" value="Send it"><a title="Go home" href="/">◈</a>'
        "<code>POST /api/profile</code>{{ 'this field' if x else _('that one') }}"
        "{{ url_for('pages.index') }}{% set words = {'Some key': _('A word')} %}{{ words.get(message, message) }}{% endblock %}"
    )
    assert untranslated(source) == ["Hello there", "Send it", "Go home", "{{ 'this field' }}"]


def test_the_pending_templates_exist() -> None:
    names = {str(p.relative_to(TEMPLATES)) for p in templates()}
    assert names >= PENDING


@pytest.mark.parametrize("path", converted(), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_has_text_outside_gettext(path: Path) -> None:
    assert untranslated(path.read_text(encoding="utf-8")) == []


def extracted() -> Iterator[tuple[str, str | tuple[str, ...]]]:
    """(file, message id) of every message in the sources now, as ``make translations`` sees."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "N_": None}
    for filename, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        yield filename, message


def test_the_use_cases_messages_listed_for_translation_are_theirs() -> None:
    """Each message :data:`SERVICE_MESSAGES` lists is still one a use case (or the text rules)
    gives, word for word: a message reworded there would otherwise lose its translation."""
    given: set[str] = set()
    for path in [*sorted((ROOT / "infomediary" / "services").glob("*.py")), TEXT_RULES]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        given.update(
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        )
    assert len(SERVICE_MESSAGES) > 20
    assert [m for m in SERVICE_MESSAGES if m not in given] == []


def placeholders(text: str) -> list[str]:
    return sorted(_PLACEHOLDER.findall(text))


def test_the_sources_have_messages_to_translate() -> None:
    files = {name for name, _ in extracted()}
    assert any(name.endswith(".html") for name in files)
    assert any(name.endswith(".py") for name in files)


@pytest.mark.parametrize("language", sorted(set(SITE_LANGUAGES) - {"en"}))
def test_every_message_is_translated_with_its_placeholders(language: str) -> None:
    po = TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as handle:
        catalogue = read_po(handle)
    problems = []
    for filename, message in extracted():
        ids = (message,) if isinstance(message, str) else message
        found = catalogue.get(ids[0])
        if found is None:
            problems.append(f"{filename}: not in the catalogue: {ids[0]!r}")
            continue
        strings = (found.string,) if isinstance(found.string, str) else tuple(found.string or ())
        if found.fuzzy or not all(s.strip() for s in strings):
            problems.append(f"{filename}: not translated: {ids[0]!r}")
            continue
        for translated in strings:
            if placeholders(translated) != placeholders(ids[-1]) and placeholders(
                translated
            ) != placeholders(ids[0]):
                problems.append(f"{filename}: placeholders differ: {ids[0]!r} / {translated!r}")
    assert problems == []


@pytest.mark.parametrize("language", sorted(set(SITE_LANGUAGES) - {"en"}))
def test_the_compiled_catalogue_is_the_current_one(language: str) -> None:
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as handle:
        po = {_key(m.id): _key(m.string) for m in read_po(handle) if m.id and not m.fuzzy}
    with (folder / "messages.mo").open("rb") as handle:
        mo = {_key(m.id): _key(m.string) for m in read_mo(handle) if m.id}
    assert len(po) > 100
    assert mo == po


def _key(value: Any) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)
