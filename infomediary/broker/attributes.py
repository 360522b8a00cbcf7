"""What the broker can be asked about: coarsened attributes and the categories they reveal.

No attribute identifies anyone: ages are bands, places are states, households are sizes.
The one finer attribute, ``area`` (the postal district: the first two digits of the
postcode), reveals the explicit category ``district``, which no template and no ``"*"`` rule
releases: it counts only customers who said yes to it. Interest tags of special categories
are queryable only for customers whose policy releases that special category.

Two attributes come from purchases, through the customer's interests derived from them
(:mod:`infomediary.services.derived_interests`): ``bought`` (each interest the customer's
purchases of the last 12 months suggest, and the customer kept) and ``spend`` (per such
interest, a band of what was spent on it in those 12 months, in the broker's currency). They
reveal ``purchases`` and the category of their interest tag (``interests``, or a special one
such as ``health``), so a value counts only customers whose policy releases both (an
eligibility key ``"purchases+interests"`` or ``"purchases+health"``: :func:`categories_of`).

Everything a customer is told about what can be asked (the counting page, the privacy
notice) is generated from :data:`ATTRIBUTES` by :func:`customer_attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.taxonomy import AGE_BANDS, CATEGORIES, INTEREST_TAGS, REGIONS, region_for_postcode

HOUSEHOLDS = ("1", "2", "3", "4", "5+")
#: Bands of a year's spend on one interest, in the broker's currency, as (name, lower bound
#: in minor units); a band runs up to the next one's bound.
SPEND_BANDS: tuple[tuple[str, int], ...] = (
    ("under-50", 1),
    ("50-199", 5_000),
    ("200-499", 20_000),
    ("500-plus", 50_000),
)
#: The currency spend bands are in: lines in another currency count for ``bought``, never
#: for ``spend`` (no exchange rate is guessed).
BROKER_CURRENCY = "AUD"
#: Attributes computed from purchases.
PURCHASE_ATTRIBUTES = frozenset({"bought", "spend"})
#: Joins the categories of an eligibility key that names more than one.
CATEGORY_JOIN = "+"


def spend_band(minor: int) -> str | None:
    """The band of a year's spend of ``minor`` units (``None`` for nothing spent)."""
    found = None
    for name, lower in SPEND_BANDS:
        if minor >= lower:
            found = name
    return found


def spend_value(tag: str, band: str) -> str:
    return f"{tag}:{band}"


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
        Attribute(
            "bought",
            "purchases",
            tuple(INTEREST_TAGS),
            "Interests bought from in the last 12 months, from purchases",
            "each interest your purchases of the last 12 months suggest, unless you removed it "
            "(never a product, a shop or a date)",
        ),
        Attribute(
            "spend",
            "purchases",
            tuple(spend_value(t, band) for t in INTEREST_TAGS for band, _ in SPEND_BANDS),
            "Spend band per interest over the last 12 months ("
            + ", ".join(band for band, _ in SPEND_BANDS)
            + f" {BROKER_CURRENCY}), as interest:band",
            "for each interest your purchases of the last 12 months suggest, a band of what you "
            f"spent on it ({', '.join(band for band, _ in SPEND_BANDS)} {BROKER_CURRENCY}), "
            "never an amount",
        ),
    )
}


def value_category(attribute: str, value: str) -> str:
    """The eligibility key of a single value: the category it reveals (a special one for
    sensitive interest tags), or, for a purchase attribute, ``purchases`` and its tag's
    category (``interests``, or a special one) joined by ``+``: both must be released."""
    if attribute == "interests":
        return INTEREST_TAGS[value].category
    if attribute in PURCHASE_ATTRIBUTES:
        category = INTEREST_TAGS[value.split(":", 1)[0]].category
        return f"purchases{CATEGORY_JOIN}{category}"
    return ATTRIBUTES[attribute].category


def categories_of(key: str) -> frozenset[str]:
    """The categories an eligibility key names."""
    return frozenset(key.split(CATEGORY_JOIN))


def household_bucket(size: int) -> str:
    return str(size) if size < 5 else "5+"


def special(category: str) -> bool:
    """Whether a category (or any category of an eligibility key) is special."""
    return any(CATEGORIES[c].special for c in categories_of(category))


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
                dict.fromkeys(
                    INTEREST_TAGS[v.split(":", 1)[0]].label
                    for v in a.values
                    if a.name in ("interests", *PURCHASE_ATTRIBUTES)
                    and special(value_category(a.name, v))
                )
            ),
        )
        for a in ATTRIBUTES.values()
    ]
