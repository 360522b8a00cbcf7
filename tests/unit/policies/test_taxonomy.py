"""The data-category taxonomy and the coarsening functions the broker will rely on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.taxonomy import (
    AGE_BANDS,
    CATEGORIES,
    INTEREST_TAGS,
    REGIONS,
    age_band,
    categories_of_interests,
    category,
    interest_tag,
    region_for_postcode,
)

SPECIAL = {"health", "religion", "politics", "sexuality", "ethnicity", "biometrics"}


def test_special_categories_are_exactly_art9() -> None:
    assert {key for key, c in CATEGORIES.items() if c.special} == SPECIAL


def test_every_tag_names_a_known_category() -> None:
    assert all(tag.category in CATEGORIES for tag in INTEREST_TAGS.values())
    assert any(CATEGORIES[t.category].special for t in INTEREST_TAGS.values())


def test_unknown_keys_raise_naming_the_key() -> None:
    with pytest.raises(KeyError, match="astrology"):
        interest_tag("astrology")
    with pytest.raises(KeyError, match="dreams"):
        category("dreams")


def test_categories_of_interests_reveals_special_ones() -> None:
    assert categories_of_interests(["books", "faith"]) == {"interests", "religion"}


@pytest.mark.parametrize(
    ("postcode", "region"),
    [
        ("2000", "NSW"),
        ("2600", "ACT"),
        ("2612", "ACT"),
        ("2620", "NSW"),
        ("0800", "NT"),
        ("3000", "VIC"),
        ("4000", "QLD"),
        ("5000", "SA"),
        ("6000", "WA"),
        ("7000", "TAS"),
        ("200", None),
        ("abcd", None),
        ("20000", None),
        ("0100", None),
    ],
)
def test_region_for_postcode(postcode: str, region: str | None) -> None:
    assert region_for_postcode(postcode) == region


@given(st.integers(min_value=0, max_value=9999))
def test_every_valid_postcode_maps_to_a_known_region_or_none(number: int) -> None:
    region = region_for_postcode(f"{number:04d}")
    assert region is None or region in REGIONS


@given(
    birth=st.integers(min_value=1880, max_value=2030),
    year=st.integers(min_value=2000, max_value=2100),
)
def test_age_band_is_total_and_ordered(birth: int, year: int) -> None:
    band = age_band(birth, year)
    if year - birth < 13:
        assert band is None
    else:
        assert band in AGE_BANDS
        older = age_band(birth - 1, year)
        assert older is not None
        assert AGE_BANDS.index(older) >= AGE_BANDS.index(band)


# Each band at both of its edges, and the age below which no profile is kept at all.
AGES = [
    (-1, None),
    (0, None),
    (12, None),
    (13, "13-17"),
    (17, "13-17"),
    (18, "18-24"),
    (24, "18-24"),
    (25, "25-34"),
    (34, "25-34"),
    (35, "35-44"),
    (44, "35-44"),
    (45, "45-54"),
    (54, "45-54"),
    (55, "55-64"),
    (64, "55-64"),
    (65, "65+"),
    (120, "65+"),
]


@pytest.mark.parametrize(("age", "band"), AGES)
def test_age_band_edges(age: int, band: str | None) -> None:
    assert age_band(2026 - age, 2026) == band


def test_no_profile_below_thirteen_whatever_the_year() -> None:
    for year in (1990, 2026, 2100):
        assert age_band(year - 12, year) is None
        assert age_band(year - 13, year) == "13-17"


# Both ends of every range, and the numbers just outside the ranges that end at a gap.
POSTCODE_EDGES = [
    ("0200", "ACT"),
    ("0299", "ACT"),
    ("0300", None),
    ("0799", None),
    ("0800", "NT"),
    ("0999", "NT"),
    ("1000", "NSW"),
    ("2599", "NSW"),
    ("2618", "ACT"),
    ("2619", "NSW"),
    ("2899", "NSW"),
    ("2900", "ACT"),
    ("2920", "ACT"),
    ("2921", "NSW"),
    ("2999", "NSW"),
    ("3999", "VIC"),
    ("4999", "QLD"),
    ("5999", "SA"),
    ("6999", "WA"),
    ("7999", "TAS"),
    ("8000", "VIC"),
    ("8999", "VIC"),
    ("9000", "QLD"),
    ("9999", "QLD"),
    ("0199", None),
    ("0000", None),
    ("12a4", None),
    ("", None),
]


@pytest.mark.parametrize(("postcode", "region"), POSTCODE_EDGES)
def test_region_for_postcode_edges(postcode: str, region: str | None) -> None:
    assert region_for_postcode(postcode) == region
