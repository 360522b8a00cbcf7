"""Pure policy core: the data-category taxonomy and (later) the policy evaluator.

Nothing here imports Flask or :mod:`infomediary`; the web app depends on this package,
never the other way round.
"""

from policies.taxonomy import (
    CATEGORIES,
    INTEREST_TAGS,
    Category,
    InterestTag,
    age_band,
    category,
    interest_tag,
    region_for_postcode,
)

__all__ = [
    "CATEGORIES",
    "INTEREST_TAGS",
    "Category",
    "InterestTag",
    "age_band",
    "category",
    "interest_tag",
    "region_for_postcode",
]
