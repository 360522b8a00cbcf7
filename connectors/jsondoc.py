"""What the JSON formats share: a bounded read, a strict parse, and the folding of keys.

A JSON source (an e-mail's markup, one order's file) is small and read at once, but never
past :data:`MAX_DOCUMENT_BYTES`; numbers are parsed as :class:`~decimal.Decimal`, never as
floats, so a price like ``21.75`` keeps its digits.
"""

from __future__ import annotations

import json
import unicodedata
from decimal import Decimal
from typing import BinaryIO

from connectors.lines import ParseError

#: The largest document a JSON format reads; above it the source is refused unread.
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
#: Decimal exponents past this are no price or quantity (and would be costly to expand).
_MAX_MAGNITUDE = 30


class DocumentError(ValueError):
    """A document that cannot be read as a whole (too large, not UTF-8, not JSON)."""


def read_document(stream: BinaryIO, source: str) -> bytes | ParseError:
    """The source's bytes (without a UTF-8 byte order mark), or a :class:`ParseError` if it
    is larger than :data:`MAX_DOCUMENT_BYTES` (nothing past the bound is read)."""
    data = stream.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        return ParseError(
            source, 1, f"larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB: not read"
        )
    return data.removeprefix(_BOM)


def decode(data: bytes) -> str:
    """UTF-8 text; :class:`DocumentError` otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte {exc.start})") from exc


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def load_json(text: str) -> object:
    """The JSON value of ``text``, with decimals as :class:`Decimal`; :class:`DocumentError`
    for anything that is not JSON (including ``NaN``, and nesting too deep to follow)."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise DocumentError(f"not valid JSON: {exc}") from exc


def fold(text: str) -> str:
    """``text`` with case and spacing normalised, for keys: compatibility-normalised,
    case-folded (through upper case, so a dotless i and ``"I"`` agree), whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = unicodedata.normalize("NFKC", folded.upper()).casefold()
    return " ".join(folded.split())


def key(*parts: str, exact: tuple[str, ...] = ()) -> str:
    """An unambiguous key (a JSON array: no part can run into the next) of ``parts``
    folded, then of ``exact`` as they are (identifiers whose case matters)."""
    return json.dumps([fold(part) for part in parts] + list(exact), ensure_ascii=False)


def text_value(value: object) -> str | None:
    """A string, or a whole number written as a JSON number, stripped; ``None`` when it is
    absent, empty or of another type."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and abs(value.adjusted()) <= _MAX_MAGNITUDE
        and value == value.to_integral_value()
    ):
        return format(value.quantize(Decimal(1)), "f")
    if isinstance(value, str):
        return value.strip() or None
    return None


def decimal_text(value: object) -> str | None:
    """A JSON number or a string, as the decimal text :func:`connectors.money.to_minor`
    reads (``Decimal("1E+1")`` is ``"10"``); ``None`` for other types."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value.adjusted()) > _MAX_MAGNITUDE:
            return None
        return format(value, "f")
    if isinstance(value, str):
        return value
    return None


def whole_number(value: object) -> int | None:
    """A whole number written as a JSON number (``2``, ``2.0``) or a string (``"2"``);
    ``None`` otherwise."""
    raw = decimal_text(value)
    if raw is None:
        return None
    try:
        number = Decimal(raw.strip())
    except ArithmeticError:
        return None
    if not number.is_finite() or abs(number.adjusted()) > _MAX_MAGNITUDE:
        return None
    if number != number.to_integral_value():
        return None
    return int(number)
