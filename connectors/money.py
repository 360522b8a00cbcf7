"""Amounts as integer minor units of an ISO 4217 currency, from the strings retailers write."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

#: ISO 4217 currencies whose minor unit is not a hundredth (the rest have two decimals).
EXPONENTS: dict[str, int] = {
    "BHD": 3, "CLP": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3,
    "LYD": 3, "OMR": 3, "PYG": 0, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
}  # fmt: skip
#: Currency symbols some exports write in place of a code, with the code they stand for.
SYMBOLS: dict[str, str] = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR"}
_CODE = re.compile(r"^[A-Z]{3}$")
_NUMBER = re.compile(r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$")


class AmountError(ValueError):
    """An amount or currency that cannot be read."""


def currency_code(raw: str) -> str:
    code = raw.strip().upper()
    if not _CODE.match(code):
        raise AmountError(f"not an ISO 4217 currency code: {raw!r}")
    return code


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency, 2)


def to_minor(raw: str, currency: str) -> int:
    """``"21.75"``, ``"$21.75"``, ``"'-10.68'"``, ``"1,299.00"`` -> minor units of
    ``currency`` (rounded half-even past its exponent). Raises :class:`AmountError`."""
    text = raw.strip().strip("'\"").strip()
    for symbol in SYMBOLS:
        text = text.replace(symbol, "")
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):  # accounting negatives
        text = "-" + text[1:-1]
    if not _NUMBER.match(text):
        raise AmountError(f"not an amount: {raw!r}")
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise AmountError(f"not an amount: {raw!r}") from exc
    scaled = (value * (10 ** exponent(currency))).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(scaled)
