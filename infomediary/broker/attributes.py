"""What the broker can be asked about: coarsened attributes and the categories they reveal.

No attribute identifies anyone: ages are bands, places are states, households are sizes.
Interest tags of special categories are queryable only for customers whose policy
releases that special category.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.taxonomy import AGE_BANDS, CATEGORIES, INTEREST_TAGS, REGIONS

HOUSEHOLDS = ("1", "2", "3", "4", "5+")


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    category: str  # the data category a predicate on it reveals
    values: tuple[str, ...]
    description: str


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("age_band", "demographics", AGE_BANDS, "Age band, from the birth year"),
        Attribute("region", "demographics", REGIONS, "State or territory, from the postcode"),
        Attribute(
            "area",
            "demographics",
            tuple(f"{n:02d}" for n in range(100)),
            "Postal district: the first two digits of the postcode",
        ),
        Attribute("household", "demographics", HOUSEHOLDS, "People in the household"),
        Attribute("interests", "interests", tuple(INTEREST_TAGS), "Declared interests"),
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
