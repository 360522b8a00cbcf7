"""Supplier names a customer can trust: normalised, visible, and distinct from every other.

The consent screen says who is asking, so a name that merely *looks* like another supplier's
lends one supplier another's standing: "Demo Books" spelt with U+0435 CYRILLIC SMALL LETTER
IE for its "e", with a U+200B ZERO WIDTH SPACE inside, or behind a U+202E RIGHT-TO-LEFT
OVERRIDE that reorders what is shown. A name is

- normalised to NFKC (UAX #15), with runs of white space collapsed to one space;
- refused if it holds a control (Cc), format (Cf: every bidi control and the zero-width
  characters), surrogate, private-use or unassigned code point, a line or paragraph
  separator, or a ``Default_Ignorable_Code_Point`` (UAX #44, DerivedCoreProperties.txt);
- refused if it starts with a combining mark, or has a run of more than four nonspacing
  marks or the same mark twice in a run (UTS #39 §5.4, "Optional Detection");
- refused if it is confusable with a registered supplier's name: UTS #39 §4 skeletons are
  compared, also case-folded, so "DEMO BOOKS", "demo books" and "Dem0 B00ks" collide with
  "Demo Books".

Pure: no Flask, no database. The prototypes come from Unicode's confusables.txt, compiled
into :mod:`infomediary.confusables_table` by ``python -m infomediary.supplier_names FILE``.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from functools import cache

MAX_LENGTH = 120
MAX_MARK_RUN = 4
#: General categories a visible name never needs (UAX #44 §5.7.1).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Default_Ignorable_Code_Point, DerivedCoreProperties.txt (Unicode 15.0): drawn as
#: nothing, or not at all, by default; several are letters or marks, not Cf.
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)


class NameRejected(ValueError):
    """Why a text cannot be a supplier's name, as a sentence for whoever chose it."""


def is_default_ignorable(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in DEFAULT_IGNORABLE)


def is_refused(char: str) -> bool:
    """Invisible, formatting or undefined: nothing a reader could see or check."""
    return unicodedata.category(char) in REFUSED_CATEGORIES or is_default_ignorable(char)


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: how an error names a character it cannot show."""
    name = unicodedata.name(char, "") or f"<{unicodedata.category(char)}>"
    return f"U+{ord(char):04X} {name}"


def _refuse_invisible(text: str) -> None:
    bad = list(dict.fromkeys(ch for ch in text if is_refused(ch)))
    if bad:
        shown = ", ".join(describe(ch) for ch in bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise NameRejected(
            "Must not contain control, formatting, bidirectional or invisible characters "
            f"({shown})."
        )


def _refuse_mark_runs(text: str) -> None:
    decomposed = unicodedata.normalize("NFD", text)
    if unicodedata.category(decomposed[0]).startswith("M"):
        raise NameRejected("Must not start with a combining mark.")
    run: list[str] = []
    for char in decomposed + " ":
        if unicodedata.category(char) == "Mn":
            if char in run:
                raise NameRejected(f"Must not repeat a combining mark ({describe(char)}).")
            run.append(char)
            if len(run) > MAX_MARK_RUN:
                raise NameRejected(
                    f"Must not stack more than {MAX_MARK_RUN} combining marks on a letter."
                )
        else:
            run = []


def _collapse_spaces(text: str) -> str:
    return " ".join(text.split())


def normalise_name(raw: str) -> str:
    """The name to store and show, or :class:`NameRejected` saying what is wrong with it."""
    _refuse_invisible(raw)
    name = unicodedata.normalize("NFKC", raw)
    _refuse_invisible(name)  # a compatibility character never decomposes to one, but be sure
    name = _collapse_spaces(name)
    if not name:
        raise NameRejected("A name is required.")
    if len(name) > MAX_LENGTH:
        raise NameRejected(f"At most {MAX_LENGTH} characters (after normalisation).")
    if not any(unicodedata.category(ch).startswith("L") for ch in name):
        raise NameRejected("Must contain at least one letter.")
    _refuse_mark_runs(name)
    return name


@cache
def prototypes() -> dict[str, str]:
    """confusables.txt as a mapping from a character to its prototype string."""
    from infomediary.confusables_table import TABLE

    return parse_table(TABLE)


def parse_table(table: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for line in table.splitlines():
        if line:
            source, _, target = line.partition(";")
            mapping[chr(int(source, 16))] = "".join(chr(int(h, 16)) for h in target.split())
    return mapping


def skeleton(text: str) -> str:
    """UTS #39 §4: NFD, drop default-ignorables, map each character to its prototype, NFD.

    Two strings are confusable exactly when their skeletons are equal. (Dropping
    default-ignorable code points is step 2 in current revisions of the report.)
    """
    table = prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    mapped = "".join(table.get(ch, ch) for ch in decomposed if not is_default_ignorable(ch))
    return unicodedata.normalize("NFD", mapped)


def comparison_keys(name: str) -> frozenset[str]:
    """Skeletons under which two names count as the same name.

    UTS #39 skeletons are case-sensitive (``O`` and ``0`` share one, ``o`` does not), and
    names on a consent screen are not read case-sensitively. So a name has two keys: the
    skeleton of its case fold, and the case-folded skeleton's skeleton (which joins
    "Dem0 Books", whose ``0`` becomes ``O``, with "demo books"). Names sharing a key are
    confusable. Keys are taken over the NFKC, space-collapsed form, so a name stored before
    these rules is compared as it would be normalised now.
    """
    base = _collapse_spaces(unicodedata.normalize("NFKC", name))
    return frozenset({_settled(base.casefold()), _settled(_settled(base).casefold())})


def _settled(text: str) -> str:
    """The skeleton, re-taken until it stops changing: for a few characters (U+01C4, U+FE81,
    ...) confusables.txt gives a prototype whose NFD has a prototype of its own."""
    for _ in range(8):
        again = skeleton(text)
        if again == text:
            break
        text = again
    return text


def confusable(first: str, second: str) -> bool:
    return bool(comparison_keys(first) & comparison_keys(second))


def first_confusable(name: str, others: Iterable[str]) -> str | None:
    """The first of ``others`` that ``name`` could be mistaken for, if any."""
    keys = comparison_keys(name)
    return next((other for other in others if keys & comparison_keys(other)), None)


# -- generating infomediary/confusables_table.py ---------------------------------------------

UNICODE_NOTICE = """\
COPYRIGHT AND PERMISSION NOTICE

Copyright (c) 1991-2020 Unicode, Inc. All rights reserved.
Distributed under the Terms of Use in https://www.unicode.org/copyright.html.

Permission is hereby granted, free of charge, to any person obtaining a copy of the Unicode
data files and any associated documentation (the "Data Files") or Unicode software and any
associated documentation (the "Software") to deal in the Data Files or Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, and/or sell copies of the Data Files or Software, and to permit persons to whom
the Data Files or Software are furnished to do so, provided that either (a) this copyright
and permission notice appear with all copies of the Data Files or Software, or (b) this
copyright and permission notice appear in associated Documentation.

THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
PARTICULAR PURPOSE AND NONINFRINGEMENT OF THIRD PARTY RIGHTS. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS NOTICE BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL
INDIRECT OR CONSEQUENTIAL DAMAGES, OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE,
DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THE DATA FILES OR SOFTWARE.

Except as contained in this notice, the name of a copyright holder shall not be used in
advertising or otherwise to promote the sale, use or other dealings in these Data Files or
Software without prior written authorization of the copyright holder.
"""


def compile_confusables(text: str) -> tuple[str, list[str]]:
    """confusables.txt -> (its ``Version:``, ``SOURCE;TARGET TARGET`` lines in hex)."""
    version = "unknown"
    lines: list[str] = []
    for raw in text.lstrip("\ufeff").splitlines():
        data, _, comment = raw.partition("#")
        if not data.strip():
            if comment.strip().startswith("Version:"):
                version = comment.split(":", 1)[1].strip()
            continue
        source, target = (field.strip() for field in data.split(";")[:2])
        lines.append(f"{int(source, 16):04X};{' '.join(target.split())}")
    return version, sorted(lines, key=lambda line: int(line.split(";")[0], 16))


def render_table_module(text: str) -> str:
    version, lines = compile_confusables(text)
    body = "\n".join(lines)
    return (
        f'"""Prototypes of Unicode\'s confusables.txt, version {version} (UTS #39 §4).\n\n'
        "Generated by ``python -m infomediary.supplier_names confusables.txt``; do not edit.\n"
        "One line per character: its code point, ``;``, its prototype's code points (hex).\n"
        "The data is Unicode's, redistributed under this notice:\n\n"
        f'{UNICODE_NOTICE}"""\n\nVERSION = "{version}"\n\nTABLE = """\\\n{body}\n"""\n'
    )


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    with open(sys.argv[1], encoding="utf-8-sig") as source:
        sys.stdout.write(render_table_module(source.read()))
