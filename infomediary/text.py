"""Strict reading of what people and clients send: text and whole numbers.

- **Control characters** (C0, DEL and C1) are refused in every text field: PostgreSQL cannot
  store NUL at all (SQLite can, so the backends would disagree), and the rest have no place in
  a name or a title. Multi-line fields (an offer's body) keep tab, newline and carriage return.
- **Whole numbers** are ASCII digits only, with a bounded length: Python's ``int()`` also takes
  "١٢" (Arabic-Indic digits), "1_000" and " 12 ", and ``str.isdigit()`` says yes to "²", which
  ``int()`` then refuses; a 4,301-digit string exceeds ``int()``'s limit and raises.

Pure: no Flask, no database.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_INTEGER = re.compile(r"-?[0-9]{1,18}")

CONTROL_MESSAGE = "Control characters (such as NUL) are not allowed here."
MULTILINE_MESSAGE = "Control characters (such as NUL) are not allowed; tabs and line breaks are."


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    """True if ``value`` holds a control character not allowed in its kind of field."""
    pattern = _CONTROL_MULTILINE if multiline else _CONTROL
    return pattern.search(value) is not None


def parse_int(raw: str, *, low: int, high: int) -> int | None:
    """``raw`` as an int if it is written in ASCII digits (optional minus) within bounds."""
    if not _INTEGER.fullmatch(raw):
        return None
    number = int(raw)
    return number if low <= number <= high else None
