"""One query, one answer: the canonical form of an audience query.

Two spellings of a query that select the same customers, whoever the customers are, must be
one query: the same cache key, one charge, one noisy answer replayed. Otherwise a supplier
could ask the same thing in twenty spellings, get twenty independent noise samples and
average them. Every rule below therefore holds **for every possible customer** (any profile,
any policy), by the way the broker coarsens profiles and decides eligibility; none is learnt
from the data. An equivalence that holds only for today's customers (nobody lives in area
99, so "every area but 99" selects the same people as "every area") is *not* applied: a
replayed answer would itself tell the supplier that nobody lives there.

The canonical form (:func:`canonical_where`, :func:`canonical_json`):

1. **Spelling.** The query is its parsed value: key order and whitespace of the JSON mean
   nothing; an absent ``breakdown`` is ``null``. The canonical JSON (sorted keys, no spaces)
   is the cache key.
2. **Values.** The values of one attribute are OR-ed, so their order and repetitions mean
   nothing: sorted, each once.
3. **Implied predicates.** A ``region`` predicate is dropped when every listed ``area``
   lies wholly in a listed state (:data:`IMPLIED_REGION`, computed from
   :func:`policies.taxonomy.region_for_postcode` over every postcode 0000-9999: area ``20``
   implies ``NSW``; areas ``26`` and ``29`` span NSW and the ACT and imply nothing). It holds
   for everyone: a customer's area and state come from one postcode, and an area counts a
   customer for a purpose only where their policy releases both the postal district and
   demographics (``district`` refines ``demographics``), which is exactly what the state needs.
   Likewise a ``bought`` predicate is dropped when every listed ``spend`` band's interest is
   among its values: a band is derived from the same record as ``bought``, under the same
   eligibility key, so whoever has a band of an interest has bought from it.
4. **The breakdown's own attribute.** With a ``breakdown``, a ``where`` predicate on the same
   attribute listing *every* value is dropped (when another predicate remains): each cell
   already requires its own value, so the predicate removes only customers who are in no
   cell, and the total is the sum of the noisy cells.

What is *not* equivalent, and stays a distinct query (charged as such):

- A predicate listing every value of an attribute (without a breakdown on it): it still
  excludes customers who have no value for it (no birth year, no postcode) or whose policy
  does not release it.
- An empty list of values is not "everything": it is invalid, and rejected for free.
- Every area of a state is not the state: an area counts only customers who said yes to the
  postal district.
- A breakdown on an attribute whose ``where`` predicate lists some of its values: the other
  cells are empty, but no other query has the same cells.
- The same criteria for another purpose: eligibility is per purpose.

Queries that differ in meaning select different sets, and each is answered fresh: they
compose within the organisation's budget and each customer's cap (docs/ARCHITECTURE.md, "What
the broker's noise can and cannot do").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infomediary.broker.attributes import AREA_REGIONS, ATTRIBUTES
from policies.model import PURPOSES

MAX_PREDICATES = 5
#: Attributes a breakdown may use: each customer holds at most one of their values.
DISJOINT = ("age_band", "region", "area", "household")

#: Postal district -> the one state or territory every postcode of it lies in. Districts that
#: span two (26, 29) are absent: they imply nothing.
IMPLIED_REGION: dict[str, str] = {
    area: next(iter(regions)) for area, regions in AREA_REGIONS.items() if len(regions) == 1
}


class InvalidQuery(ValueError):
    """Criteria the broker cannot answer (the edge's schema rejects them first, with a code)."""


def canonical_where(where: Mapping[str, Any], breakdown: str | None = None) -> dict[str, list[str]]:
    """The canonical ``where`` of a query (rules 2-4 of the module's docstring)."""
    if breakdown is not None and breakdown not in DISJOINT:
        raise InvalidQuery(f"breakdown: {breakdown!r} is not one of {', '.join(DISJOINT)}")
    if not isinstance(where, Mapping) or not where:
        raise InvalidQuery("where: name at least one attribute")
    if len(where) > MAX_PREDICATES:
        raise InvalidQuery(f"where: at most {MAX_PREDICATES} attributes")
    clean: dict[str, list[str]] = {}
    for attribute, values in where.items():
        known = ATTRIBUTES.get(attribute) if isinstance(attribute, str) else None
        if known is None:
            raise InvalidQuery(f"where: unknown attribute {attribute!r}")
        if isinstance(values, str | bytes) or not isinstance(values, list | tuple) or not values:
            raise InvalidQuery(f"where.{attribute}: give a non-empty list of values")
        unknown = [v for v in values if not isinstance(v, str) or v not in known.values]
        if unknown:
            raise InvalidQuery(f"where.{attribute}: unknown value(s) {unknown[:3]!r}")
        clean[attribute] = sorted(set(values))
    if "area" in clean and "region" in clean:
        regions = set(clean["region"])
        if all(IMPLIED_REGION.get(area) in regions for area in clean["area"]):
            del clean["region"]
    # a spend band of a tag implies the tag was bought (one record, one eligibility key):
    # when every band's tag is among the bought ones, ``bought`` selects no one fewer
    if (
        "spend" in clean
        and "bought" in clean
        and {value.split(":", 1)[0] for value in clean["spend"]} <= set(clean["bought"])
    ):
        del clean["bought"]
    if (
        breakdown is not None
        and len(clean) > 1
        and clean.get(breakdown) == sorted(ATTRIBUTES[breakdown].values)
    ):
        del clean[breakdown]
    return dict(sorted(clean.items()))


def check_purpose(purpose: object) -> None:
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise InvalidQuery(f"purpose: {purpose!r} is not a purpose")


def canonical_json(purpose: str, where: Mapping[str, Any], breakdown: str | None) -> str:
    """The cache key's text: the canonical query as sorted-key JSON without spaces."""
    check_purpose(purpose)
    return json.dumps(
        {"purpose": purpose, "where": canonical_where(where, breakdown), "breakdown": breakdown},
        sort_keys=True,
        separators=(",", ":"),
    )
