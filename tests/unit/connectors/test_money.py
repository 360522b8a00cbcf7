"""Amounts in minor units, from the strings retailers write."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.money import AmountError, currency_code, to_minor


@pytest.mark.parametrize(
    ("raw", "currency", "minor"),
    [
        ("21.75", "USD", 2175),
        ("$21.75", "USD", 2175),
        ("'-10.68'", "USD", -1068),
        ("1,299.00", "AUD", 129900),
        ("(4.50)", "GBP", -450),
        ("1500", "JPY", 1500),
        ("0.105", "USD", 10),  # half-even past the exponent
        ("0.115", "USD", 12),
        ("1.2345", "KWD", 1234),
    ],
)
def test_amounts(raw: str, currency: str, minor: int) -> None:
    assert to_minor(raw, currency) == minor


@pytest.mark.parametrize("raw", ["", "Not Available", "12.3.4", "1,23", "abc", "--1"])
def test_what_is_not_an_amount_is_refused(raw: str) -> None:
    with pytest.raises(AmountError):
        to_minor(raw, "USD")


def test_currency_codes() -> None:
    assert currency_code(" usd ") == "USD"
    with pytest.raises(AmountError):
        currency_code("US$")


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False))
def test_two_decimal_amounts_round_trip(value: Decimal) -> None:
    assert to_minor(f"{value:.2f}", "EUR") == int(value * 100)
