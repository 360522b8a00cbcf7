"""Supplier names: NFKC, refused invisible characters, UTS #39 skeletons. Pure, no database.

Table-driven cases pin the rules down; hypothesis properties check that they hold for any
text: normalisation is idempotent and never lets a refused character through, any refused
character anywhere is refused, and any homoglyph substitution from confusables.txt or any
change of case leaves a name confusable with the original.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infomediary.confusables_table import TABLE, VERSION
from infomediary.supplier_names import (
    MAX_LENGTH,
    NameRejected,
    comparison_keys,
    compile_confusables,
    confusable,
    first_confusable,
    is_refused,
    normalise_name,
    parse_table,
    prototypes,
    render_table_module,
    skeleton,
)

# -- normalisation ---------------------------------------------------------------------------

ACCEPTED = {
    "plain": ("Demo Books", "Demo Books"),
    "outer and inner spaces": ("  Demo   Books ", "Demo Books"),
    "no-break space": ("Demo\u00a0Books", "Demo Books"),
    "em space": ("Demo\u2003Books", "Demo Books"),
    "fullwidth letters": ("\uff24\uff45\uff4d\uff4f Books", "Demo Books"),
    "ligature": ("\ufb01ne Foods", "fine Foods"),
    "mathematical bold": ("\U0001d403emo Books", "Demo Books"),
    "decomposed accent is composed": ("Cafe\u0301 Noir", "Caf\u00e9 Noir"),
    "hebrew": ("\u05e1\u05e4\u05e8\u05d9\u05dd", "\u05e1\u05e4\u05e8\u05d9\u05dd"),
    "arabic": ("\u0643\u062a\u0628", "\u0643\u062a\u0628"),
    "japanese": ("\u672c\u5c4b", "\u672c\u5c4b"),
    "digits and punctuation": ("Books & Co. 24/7", "Books & Co. 24/7"),
    "two marks": ("A\u0301\u0302b", "\u00c1\u0302b"),
}

REFUSED = {
    "empty": ("", "required"),
    "only spaces": ("   ", "required"),
    "no letter": ("1234 !!", "letter"),
    "too long": ("a" * (MAX_LENGTH + 1), "At most"),
    "long after NFKC": ("\ufdfa" * 7, "At most"),  # one character, 18 after NFKC
    "right-to-left override": ("Demo \u202eskooB", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "left-to-right embedding": ("\u202aDemo Books", "U+202A"),
    "right-to-left isolate": ("Demo \u2067Books", "U+2067"),
    "pop directional isolate": ("Demo Books\u2069", "U+2069"),
    "right-to-left mark": ("Demo\u200fBooks", "U+200F"),
    "arabic letter mark": ("Demo\u061cBooks", "U+061C"),
    "zero width space": ("Demo\u200bBooks", "U+200B ZERO WIDTH SPACE"),
    "zero width joiner": ("Demo\u200dBooks", "U+200D"),
    "zero width non-joiner": ("Demo\u200cBooks", "U+200C"),
    "word joiner": ("Demo\u2060Books", "U+2060"),
    "byte order mark": ("\ufeffDemo Books", "U+FEFF"),
    "soft hyphen": ("Demo\u00adBooks", "U+00AD"),
    "combining grapheme joiner": ("Demo\u034fBooks", "U+034F"),
    "variation selector": ("Demo Books\ufe0f", "U+FE0F"),
    "hangul filler": ("Demo\u3164Books", "U+3164"),
    "halfwidth hangul filler": ("Demo\uffa0Books", "U+FFA0"),
    "mongolian vowel separator": ("Demo\u180eBooks", "U+180E"),
    "tag character": ("Demo Books\U000e0041", "U+E0041"),
    "tab": ("Demo\tBooks", "U+0009"),
    "newline": ("Demo\nBooks", "U+000A"),
    "nul": ("Demo\x00Books", "U+0000"),
    "delete": ("Demo\x7fBooks", "U+007F"),
    "c1 control": ("Demo\x85Books", "U+0085"),
    "line separator": ("Demo\u2028Books", "U+2028"),
    "paragraph separator": ("Demo\u2029Books", "U+2029"),
    "private use": ("Demo\ue000Books", "U+E000"),
    "unassigned": ("Demo\U0003fffeBooks", "U+3FFFE"),
    "lone surrogate": ("Demo\ud800Books", "U+D800"),
    "leading combining mark": ("\u0301Demo Books", "start with a combining mark"),
    "five stacked marks": ("Demo\u0300\u0301\u0302\u0303\u0304 Books", "more than 4"),
    "repeated mark": ("Demo\u0301\u0301 Books", "repeat a combining mark"),
}


@pytest.mark.parametrize(("raw", "stored"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_names_are_stored_normalised(raw: str, stored: str) -> None:
    assert normalise_name(raw) == stored
    assert unicodedata.is_normalized("NFKC", stored)


@pytest.mark.parametrize(("raw", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_names_say_why(raw: str, reason: str) -> None:
    with pytest.raises(NameRejected) as caught:
        normalise_name(raw)
    assert reason in str(caught.value)


def test_many_invisible_characters_are_listed_briefly() -> None:
    with pytest.raises(NameRejected) as caught:
        normalise_name("D\u200be\u200cm\u200do\u2060 B\ufeffooks")
    message = str(caught.value)
    assert message.count("U+") == 3
    assert message.endswith(", ...).")


# -- skeletons and confusability -------------------------------------------------------------

CONFUSABLE = {
    "case": ("Demo Books", "demo books"),
    "all capitals": ("Demo Books", "DEMO BOOKS"),
    "cyrillic e": ("Demo Books", "D\u0435mo Books"),
    "cyrillic o": ("Demo Books", "Dem\u043e B\u043e\u043eks"),
    "greek omicron": ("Demo Books", "Dem\u03bf Books"),
    "zero for o": ("Demo Books", "Dem0 B00ks"),
    "capital zero for O": ("DEMO BOOKS", "DEM0 BOOKS"),
    "rn for m": ("Demo Books", "Dern\u043e Books"),
    "one for l": ("Hello Travel", "He11o Trave1"),
    "capital I for l": ("Hello Travel", "HeIIo TraveI"),
    "fullwidth": ("Demo Books", "\uff24\uff45\uff4d\uff4f Books"),
    "extra space": ("Demo Books", "Demo   Books"),
    "dotless i": ("Zenith Travel", "Zen\u0131th Travel"),
    "cyrillic a in paypal": ("paypal", "p\u0430yp\u0430l"),
    "same name": ("Acme Books", "Acme Books"),
}

DISTINCT = {
    "different word": ("Demo Books", "Demo Records"),
    "longer": ("Acme Books", "Acme Books again"),
    "different shop": ("Acme Books", "Other Shop"),
    "no space": ("Demo Books", "DemoBooks"),
    "different script": ("Demo Books", "\u672c\u5c4b"),
}


@pytest.mark.parametrize(("first", "second"), CONFUSABLE.values(), ids=CONFUSABLE.keys())
def test_confusable_names_collide(first: str, second: str) -> None:
    assert confusable(first, second)
    assert confusable(second, first)
    assert first_confusable(second, ["Unrelated", first]) == first


@pytest.mark.parametrize(("first", "second"), DISTINCT.values(), ids=DISTINCT.keys())
def test_distinct_names_do_not_collide(first: str, second: str) -> None:
    assert not confusable(first, second)
    assert first_confusable(second, [first]) is None


SKELETONS = {
    # UTS #39 §4's own example: "paypal" with U+0430 (Cyrillic a) has the skeleton "paypal".
    "p\u0430yp\u0430l": "paypal",
    "D\u0435mo": "Derno",  # e -> e, m -> rn: skeletons are not meant to be read
    "0": "O",
    "1": "l",
    "I": "l",
    "\u0131": "i",
    "\u00e9": "e\u0301",  # NFD first
    "a\u200bb": "ab",  # default-ignorable code points are dropped
}


@pytest.mark.parametrize(("text", "expected"), SKELETONS.items(), ids=SKELETONS.keys())
def test_skeleton_follows_uts39(text: str, expected: str) -> None:
    assert skeleton(text) == expected


def test_vendored_table_is_unicodes_confusables() -> None:
    table = prototypes()
    assert VERSION.count(".") == 2
    assert len(table) > 6000
    assert table["\u0430"] == "a"  # CYRILLIC SMALL LETTER A
    assert table["m"] == "rn"
    assert table["\u0410"] == "A"  # CYRILLIC CAPITAL LETTER A
    assert all(len(source) == 1 and target for source, target in table.items())
    assert parse_table(TABLE) == table


def test_generator_reads_confusables_txt() -> None:
    sample = (
        "\ufeff# confusables.txt\n"
        "# Version: 99.0.0\n"
        "#\n"
        "05AD ;\t0596 ;\tMA\t# ( \u05ad \u2192 \u0596 ) HEBREW ACCENT DEHI\t# \n"
        "\n"
        "006D ;\t0072 006E ;\tMA\t# ( m \u2192 rn ) LATIN SMALL LETTER M\t# \n"
        "0031 ;\t006C ;\tMA\t# ( 1 \u2192 l ) DIGIT ONE\t# \n"
    )
    version, lines = compile_confusables(sample)
    assert version == "99.0.0"
    assert lines == ["0031;006C", "006D;0072 006E", "05AD;0596"]
    module = render_table_module(sample)
    namespace: dict[str, object] = {}
    exec(compile(module, "<generated>", "exec"), namespace)  # noqa: S102 - our own output
    assert namespace["VERSION"] == "99.0.0"
    assert parse_table(str(namespace["TABLE"])) == {"1": "l", "m": "rn", "\u05ad": "\u0596"}
    assert "Unicode, Inc." in str(namespace["__doc__"])


# -- properties ------------------------------------------------------------------------------

REFUSED_POINTS = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x180B, 0x180E, 0x3164),
    *range(0x200B, 0x2010),
    *range(0x2028, 0x202F),
    *range(0x2060, 0x2070),
    *(0xFE00, 0xFE0F, 0xFEFF, 0xFFA0, 0xFFF0, 0xE000, 0x1BCA0, 0x1D173),
    *(0xE0001, 0xE0020, 0xE0100, 0xF0000, 0x10FFFD, 0xD800, 0xDFFF),
)
REFUSED_CHARS = st.sampled_from([chr(cp) for cp in REFUSED_POINTS])
LETTERS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
ASCII_NAMES = st.lists(st.text(LETTERS, min_size=1, max_size=10), min_size=1, max_size=4).map(
    " ".join
)


def _homoglyphs() -> dict[str, list[str]]:
    """Letters a stored (NFKC, accepted) name can hold in place of each ASCII letter."""
    by_skeleton: dict[str, list[str]] = {}
    for source in prototypes():
        if (
            unicodedata.normalize("NFKC", source) == source
            and not is_refused(source)
            and unicodedata.category(source).startswith("L")
        ):
            by_skeleton.setdefault(skeleton(source), []).append(source)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return {letter: sorted(by_skeleton.get(skeleton(letter), [])) for letter in letters}


HOMOGLYPHS = _homoglyphs()


@given(st.text(max_size=40))
def test_normalisation_is_idempotent_and_lets_nothing_invisible_through(raw: str) -> None:
    try:
        name = normalise_name(raw)
    except NameRejected:
        return
    assert normalise_name(name) == name
    assert not any(is_refused(ch) for ch in name)
    assert name == name.strip()
    assert "  " not in name
    assert 1 <= len(name) <= MAX_LENGTH
    assert comparison_keys(name) == comparison_keys(raw)


@given(ASCII_NAMES, REFUSED_CHARS, st.integers(min_value=0))
def test_a_refused_character_anywhere_is_refused(name: str, bad: str, where: int) -> None:
    at = where % (len(name) + 1)
    with pytest.raises(NameRejected):
        normalise_name(name[:at] + bad + name[at:])


@given(ASCII_NAMES, st.data())
def test_any_homoglyph_substitution_stays_confusable(name: str, data: st.DataObject) -> None:
    chars = list(name)
    for index, char in enumerate(chars):
        if char != " " and HOMOGLYPHS[char] and data.draw(st.booleans()):
            chars[index] = data.draw(st.sampled_from(HOMOGLYPHS[char]))
    spoof = "".join(chars)
    assert confusable(name, spoof)
    assert first_confusable(spoof, ["Something Else", name]) == name


@given(ASCII_NAMES, st.data())
def test_any_change_of_case_stays_confusable(name: str, data: st.DataObject) -> None:
    recased = "".join(ch.swapcase() if data.draw(st.booleans()) else ch for ch in name)
    assert confusable(name, recased)


@given(st.text(max_size=20), st.text(max_size=20))
def test_confusability_is_symmetric(first: str, second: str) -> None:
    assert confusable(first, second) == confusable(second, first)
    assert confusable(first, first)
