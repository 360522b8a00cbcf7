"""What the broker can be asked about: coarsened attributes and the categories they reveal.

No attribute identifies anyone: ages are bands, places are states, households are sizes.
The one finer attribute, ``area`` (the postal district: the first two digits of the
postcode), reveals the explicit category ``district``, which no template and no ``"*"`` rule
releases: it counts only customers who said yes to it. Interest tags of special categories
are queryable only for customers whose policy releases that special category.

Everything a customer is told about what can be asked (the counting page, the privacy
notice) is generated from :data:`ATTRIBUTES` by :func:`customer_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.taxonomy import AGE_BANDS, CATEGORIES, INTEREST_TAGS, REGIONS, region_for_postcode

HOUSEHOLDS = ("1", "2", "3", "4", "5+")


def area_of(postcode: str) -> str | None:
    """The postal district of a postcode that has a state or territory (else ``None``)."""
    return postcode[:2] if region_for_postcode(postcode) else None


def _area_regions() -> dict[str, frozenset[str]]:
    """Postal district -> the states and territories of its postcodes, over 0000-9999."""
    found: dict[str, set[str]] = {}
    for number in range(10_000):
        postcode = f"{number:04d}"
        area, region = area_of(postcode), region_for_postcode(postcode)
        if area is not None and region is not None:
            found.setdefault(area, set()).add(region)
    return {area: frozenset(regions) for area, regions in sorted(found.items())}


#: Every postal district some postcode with a state falls in, and the states it spans
#: (areas 26 and 29 span NSW and the ACT). A district no such postcode falls in ("00",
#: "05") is no value at all: no customer can hold it.
AREA_REGIONS: dict[str, frozenset[str]] = _area_regions()


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    category: str  # the data category a predicate on it reveals
    values: tuple[str, ...]
    description: str
    #: What a customer is told is counted, in plain words (the granularity, never the raw value).
    granularity: str


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute(
            "age_band",
            "demographics",
            AGE_BANDS,
            "Age band, from the birth year",
            "your age band (" + ", ".join(AGE_BANDS) + "), worked out from your birth year, "
            "never the year itself",
        ),
        Attribute(
            "region",
            "demographics",
            REGIONS,
            "State or territory, from the postcode",
            "your state or territory, worked out from your postcode, never the postcode itself",
        ),
        Attribute(
            "area",
            "district",
            tuple(AREA_REGIONS),
            "Postal district: the first two digits of the postcode; counts only customers "
            "who allowed it",
            "your postal district, the first two digits of your postcode",
        ),
        Attribute(
            "household",
            "demographics",
            HOUSEHOLDS,
            "People in the household",
            "the size of your household (1, 2, 3, 4, or 5 and more people)",
        ),
        Attribute(
            "interests",
            "interests",
            tuple(INTEREST_TAGS),
            "Declared interests",
            "each interest you listed",
        ),
    )
}


def value_category(attribute: str, value: str) -> str:
    """The category a single value reveals (a special one for sensitive interest tags)."""
    if attribute == "interests":
        return INTEREST_TAGS[value].category
    return ATTRIBUTES[attribute].category


def household_bucket(size: int) -> str:
    return str(size) if size < 5 else "5+"


def special(category: str) -> bool:
    return CATEGORIES[category].special


@dataclass(frozen=True, slots=True)
class CustomerAttribute:
    """One queryable attribute as a customer reads it."""

    name: str
    granularity: str
    needs_yes: bool  # counted only if the customer said yes to its category by name
    sensitive: tuple[str, ...]  # labels of its values that count only if the policy allows


def customer_attributes() -> list[CustomerAttribute]:
    """Every queryable attribute and its granularity, in :data:`ATTRIBUTES` order."""
    return [
        CustomerAttribute(
            a.name,
            a.granularity,
            CATEGORIES[a.category].explicit,
            tuple(
                INTEREST_TAGS[v].label
                for v in a.values
                if a.name == "interests" and special(value_category(a.name, v))
            ),
        )
        for a in ATTRIBUTES.values()
    ]
