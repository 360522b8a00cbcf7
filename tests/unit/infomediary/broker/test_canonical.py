"""The canonical form of an audience query: rules that hold for every possible customer.

Examples of each rule and of what is not equivalent, then properties: canonicalisation is
idempotent; every spelling generated from a canonical query (values reordered or repeated,
keys reordered, implied predicates added) has its digest; and on a generated population
(any profile, any policy) the canonical query selects exactly the members the original does,
through the broker's own coarsening, eligibility and index.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from infomediary.broker.attributes import AREA_REGIONS, ATTRIBUTES
from infomediary.broker.canonical import (
    DISJOINT,
    IMPLIED_REGION,
    MAX_PREDICATES,
    InvalidQuery,
    canonical_json,
    canonical_where,
)
from infomediary.broker.index import MatchIndex
from infomediary.broker.members import BROKER_CATEGORIES, member_texts, token
from infomediary.services.broker import CountQuery
from infomediary.web.schemas import CountRequestSchema, load
from policies.model import PURPOSES, WILDCARD, Mode, Policy, Recipient, Rule
from policies.taxonomy import REGIONS, region_for_postcode
from policies.templates import TEMPLATES

ALL_REGIONS = list(REGIONS)
ALL_AGES = list(ATTRIBUTES["age_band"].values)

# -- the implication table -------------------------------------------------------------------


def test_implication_table_is_computed_from_every_postcode() -> None:
    expected: dict[str, str] = {}
    for area in (f"{n:02d}" for n in range(100)):
        regions = {region_for_postcode(f"{area}{n:02d}") for n in range(100)} - {None}
        if len(regions) == 1:
            expected[area] = str(regions.pop())
    assert expected == IMPLIED_REGION
    assert IMPLIED_REGION["20"] == "NSW"
    assert IMPLIED_REGION["02"] == "ACT"
    assert IMPLIED_REGION["08"] == "NT"
    assert IMPLIED_REGION["30"] == IMPLIED_REGION["80"] == "VIC"
    assert IMPLIED_REGION["90"] == "QLD"
    for spanning in ("26", "29"):
        assert spanning not in IMPLIED_REGION
        assert AREA_REGIONS[spanning] == {"NSW", "ACT"}


def test_an_area_no_postcode_with_a_state_falls_in_is_no_value() -> None:
    values = ATTRIBUTES["area"].values
    assert not {"00", "01", "05", "07"} & set(values)
    assert {"02", "26", "99"} <= set(values)
    assert set(values) == set(AREA_REGIONS)
    assert len(values) == 93
    with pytest.raises(InvalidQuery, match="unknown value"):
        canonical_where({"area": ["05"]})


# -- the rules, by example -------------------------------------------------------------------

DROPPED = [
    ({"area": ["20"], "region": ["NSW"]}, {"area": ["20"]}),
    ({"region": ["NSW"], "area": ["20"]}, {"area": ["20"]}),
    ({"area": ["20", "30"], "region": ["NSW", "VIC"]}, {"area": ["20", "30"]}),
    ({"area": ["20"], "region": ["VIC", "NSW"]}, {"area": ["20"]}),
    ({"area": ["20"], "region": ALL_REGIONS}, {"area": ["20"]}),
    (
        {"area": ["20"], "region": ["NSW"], "household": ["2"]},
        {"area": ["20"], "household": ["2"]},
    ),
]


@pytest.mark.parametrize(("where", "expected"), DROPPED)
def test_a_region_every_listed_area_lies_in_is_dropped(
    where: dict[str, list[str]], expected: dict[str, list[str]]
) -> None:
    assert canonical_where(where) == expected


KEPT = [
    {"area": ["26"], "region": ["NSW"]},  # 26 is NSW and the ACT: the state still excludes
    {"area": ["29"], "region": ["ACT", "NSW"]},  # spans two states: implies nothing
    {"area": ["20", "26"], "region": ["NSW"]},
    {"area": ["20", "30"], "region": ["NSW"]},  # 30 is VIC, not listed
    {"area": ["20"], "region": ["VIC"]},  # nobody; not a rule's business to say so
]


@pytest.mark.parametrize("where", KEPT)
def test_a_region_some_area_does_not_imply_is_kept(where: dict[str, list[str]]) -> None:
    assert canonical_where(where) == {k: sorted(v) for k, v in sorted(where.items())}


def test_values_are_sorted_and_each_given_once_and_the_input_is_left_alone() -> None:
    where = {"region": ["VIC", "NSW", "VIC"], "age_band": ["35-44", "25-34", "35-44"]}
    copy = json.loads(json.dumps(where))
    assert canonical_where(where) == {"age_band": ["25-34", "35-44"], "region": ["NSW", "VIC"]}
    assert list(canonical_where(where)) == ["age_band", "region"]
    assert where == copy


def test_a_predicate_listing_every_value_is_kept() -> None:
    """It excludes customers without that attribute (or who do not release it)."""
    where = {"region": ["NSW"], "age_band": ALL_AGES}
    assert canonical_where(where) == {"age_band": ALL_AGES, "region": ["NSW"]}
    assert canonical_where({"age_band": ALL_AGES}) == {"age_band": ALL_AGES}
    assert canonical_where(where, "region") == {"age_band": ALL_AGES, "region": ["NSW"]}


def test_every_value_of_the_breakdown_attribute_is_dropped_when_another_predicate_remains() -> None:
    where = {"region": ["NSW"], "age_band": list(reversed(ALL_AGES))}
    assert canonical_where(where, "age_band") == {"region": ["NSW"]}
    # alone, it is the whole query: kept
    assert canonical_where({"age_band": ALL_AGES}, "age_band") == {"age_band": ALL_AGES}
    # some of the values: the other cells are empty, but no other query has these cells
    some = {"region": ["NSW"], "age_band": ALL_AGES[1:]}
    assert canonical_where(some, "age_band") == {"age_band": ALL_AGES[1:], "region": ["NSW"]}


@pytest.mark.parametrize(
    ("where", "breakdown", "words"),
    [
        ({}, None, "at least one attribute"),
        ({"region": []}, None, "non-empty list"),
        ({"region": "NSW"}, None, "non-empty list"),
        ({"region": ["Narnia"]}, None, "unknown value"),
        ({"region": [1]}, None, "unknown value"),
        ({"shoe_size": ["44"]}, None, "unknown attribute"),
        (
            {name: list(ATTRIBUTES[name].values[:1]) for name in ATTRIBUTES} | {"x": ["1"]},
            None,
            "at most",
        ),
        ({"region": ["NSW"]}, "interests", "breakdown"),
    ],
)
def test_what_is_no_query_is_refused(
    where: dict[str, Any], breakdown: str | None, words: str
) -> None:
    with pytest.raises(InvalidQuery, match=words):
        canonical_where(where, breakdown)


def test_the_canonical_json_is_sorted_without_spaces_and_needs_a_purpose() -> None:
    text = canonical_json("marketing", {"region": ["NSW"], "area": ["20"]}, None)
    assert text == '{"breakdown":null,"purpose":"marketing","where":{"area":["20"]}}'
    with pytest.raises(InvalidQuery, match="purpose"):
        canonical_json("harvest", {"region": ["NSW"]}, None)
    with pytest.raises(InvalidQuery, match="purpose"):
        CountQuery("harvest", {"region": ["NSW"]}, None)


def test_every_count_query_is_canonical_from_construction() -> None:
    query = CountQuery("marketing", {"region": ["NSW", "NSW"], "area": ["20"]}, None)
    assert query.where == {"area": ["20"]}
    assert query == CountQuery("marketing", {"area": ["20"]}, None)
    assert query.digest("scope") == CountQuery("marketing", {"area": ["20"]}, None).digest("scope")
    assert query.digest("scope") != query.digest("other")


SPELLINGS = [
    '{"purpose":"marketing","where":{"area":["20"]}}',
    '{ "where" : { "area" : [ "20" ] } , "purpose" : "marketing" }',
    '{"purpose":"marketing","where":{"area":["20","20"]},"breakdown":null}',
    '{"purpose":"marketing","where":{"region":["NSW"],"area":["20"]}}',
    '{"purpose":"marketing","where":{"area":["20"],"region":["QLD","NSW","NSW"]}}',
]


def test_spellings_of_one_request_load_into_one_query() -> None:
    queries = [load(CountRequestSchema(), json.loads(text), CountQuery) for text in SPELLINGS]
    assert {q.canonical() for q in queries} == {queries[0].canonical()}
    assert len({q.digest("s") for q in queries}) == 1


# -- properties ------------------------------------------------------------------------------

ATTRIBUTE_NAMES = list(ATTRIBUTES)
#: Areas worth drawing often: within one state, spanning two, and the ACT's own.
FAVOURITE_AREAS = ["20", "26", "29", "02", "30", "08"]
#: Interests drawn often (a special one among them), so that queries and people meet.
FAVOURITE_TAGS = ["books", "travel", "music", "faith", "diabetes-care"]
FAVOURITE = {"area": FAVOURITE_AREAS, "interests": FAVOURITE_TAGS}


@st.composite
def raw_queries(draw: st.DrawFn) -> tuple[dict[str, list[str]], str | None]:
    """Valid criteria, spelt anyhow: values repeated and unordered, keys in any order, regions
    that the areas imply (or not), every value of an attribute now and then."""
    names = draw(st.lists(st.sampled_from(ATTRIBUTE_NAMES), min_size=1, max_size=5, unique=True))
    where: dict[str, list[str]] = {}
    for name in names:
        values = list(ATTRIBUTES[name].values)
        pool = st.sampled_from(values)
        if name in FAVOURITE:
            pool = st.sampled_from(FAVOURITE[name]) | pool
        if draw(st.integers(0, 5)) == 0:
            chosen = draw(st.permutations(values))
        else:
            chosen = draw(st.lists(pool, min_size=1, max_size=4))
        where[name] = list(chosen)
    if "area" in where and "region" in where and draw(st.booleans()):
        implied = [IMPLIED_REGION.get(a) for a in where["area"]]
        extra = draw(st.lists(st.sampled_from(REGIONS), max_size=2))
        where["region"] = [r for r in implied if r] + extra or ["NSW"]
    breakdown = draw(st.none() | st.sampled_from(DISJOINT))
    return where, breakdown


@given(raw_queries())
def test_canonicalisation_is_idempotent(raw: tuple[dict[str, list[str]], str | None]) -> None:
    where, breakdown = raw
    once = canonical_where(where, breakdown)
    assert canonical_where(once, breakdown) == once
    assert all(values == sorted(set(values)) for values in once.values())
    assert list(once) == sorted(once)


@st.composite
def spellings(draw: st.DrawFn) -> tuple[CountQuery, dict[str, list[str]]]:
    """A canonical query, and a spelling of it that the rules say is the same query."""
    where, breakdown = draw(raw_queries())
    query = CountQuery(draw(st.sampled_from(list(PURPOSES))), where, breakdown)
    spelt: dict[str, list[str]] = {}
    for name, values in query.where.items():
        doubled = values + draw(st.lists(st.sampled_from(values), max_size=3))
        spelt[name] = draw(st.permutations(doubled))
    if "area" in spelt and "region" not in spelt and len(spelt) < MAX_PREDICATES:
        implied = {IMPLIED_REGION.get(a) for a in query.where["area"]}
        if None not in implied and draw(st.booleans()):
            extra = draw(st.lists(st.sampled_from(REGIONS), max_size=3))
            spelt["region"] = sorted(str(r) for r in implied) + extra
    b = query.breakdown
    if b is not None and b not in spelt and len(spelt) < MAX_PREDICATES and draw(st.booleans()):
        spelt[b] = draw(st.permutations(list(ATTRIBUTES[b].values)))
    order = draw(st.permutations(list(spelt)))
    return query, {name: spelt[name] for name in order}


@given(spellings())
def test_every_spelling_of_a_canonical_query_has_its_digest(
    case: tuple[CountQuery, dict[str, list[str]]],
) -> None:
    query, spelt = case
    again = CountQuery(query.purpose, spelt, query.breakdown)
    assert again.where == query.where
    assert again.canonical() == query.canonical()
    assert again.digest("organisation:x") == query.digest("organisation:x")


# a generated population: any profile, any policy

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
KEY = b"\x07" * 32
RULE_CATEGORIES = [*BROKER_CATEGORIES, WILDCARD]
MODES = list(Mode)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    expiry = draw(st.sampled_from([None, None, NOW + timedelta(days=30), NOW - timedelta(days=1)]))
    return Rule(
        category=draw(st.sampled_from(RULE_CATEGORIES)),
        purpose=draw(st.sampled_from([*PURPOSES, WILDCARD])),
        recipient=draw(
            st.sampled_from([Recipient.anyone(), Recipient.anyone(), Recipient.sector("retail")])
        ),
        mode=draw(st.sampled_from(MODES)),
        expires=expiry,
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    base = draw(st.sampled_from([None, *TEMPLATES]))
    own = tuple(draw(st.lists(rules(), max_size=4)))
    if draw(st.booleans()):  # the postal district's yes, for some purposes and modes
        own += (
            Rule(
                "district",
                draw(st.sampled_from([*PURPOSES, WILDCARD])),
                Recipient.anyone(),
                draw(st.sampled_from([Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT])),
            ),
        )
    start = TEMPLATES[base].rules if base else ()
    return Policy(rules=start + own, template=base)


def postcodes() -> st.SearchStrategy[str]:
    favourite = st.sampled_from(FAVOURITE_AREAS).flatmap(
        lambda area: st.sampled_from([f"{area}00", f"{area}10", f"{area}50", f"{area}99"])
    )
    return favourite | favourite | st.integers(0, 9999).map(lambda n: f"{n:04d}")


@st.composite
def located_queries(draw: st.DrawFn) -> tuple[dict[str, list[str]], str | None]:
    """Criteria on postal districts and states, where the implication rule does its work."""
    areas = draw(st.lists(st.sampled_from(FAVOURITE_AREAS), min_size=1, max_size=3))
    implied = [r for a in areas if (r := IMPLIED_REGION.get(a))]
    extra = draw(st.lists(st.sampled_from(REGIONS), max_size=2))
    where = {"area": areas, "region": implied + extra or ["NSW"]}
    if draw(st.booleans()):
        where["age_band"] = draw(st.lists(st.sampled_from(ALL_AGES), min_size=1, max_size=7))
    return where, draw(st.none() | st.sampled_from(DISJOINT))


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    profile: dict[str, Any] = {}
    if draw(st.integers(0, 4)):
        profile["postcode"] = draw(postcodes())
    if draw(st.integers(0, 4)):  # one birth year per age band, mostly
        years = st.sampled_from([2011, 2005, 1995, 1985, 1975, 1965, 1950])
        profile["birth_year"] = draw(years | st.integers(1930, 2015))
    if draw(st.integers(0, 4)):
        profile["household_size"] = draw(st.integers(1, 6))
    tags = st.sampled_from(FAVOURITE_TAGS) | st.sampled_from(list(ATTRIBUTES["interests"].values))
    profile["interests"] = draw(st.lists(tags, max_size=4, unique=True))
    return profile


def index_of(population: list[list[str]]) -> MatchIndex:
    """The broker's index over these members' texts, as ``load`` builds it."""
    index = MatchIndex(KEY)
    for ordinal, texts in enumerate(population, start=1):
        for text in texts:
            index._bitmaps.setdefault(token(KEY, text), BitMap()).add(ordinal)
        if texts:
            index._all.add(ordinal)
    return index


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(profiles(), policies()), min_size=1, max_size=40),
    st.lists(raw_queries() | located_queries(), min_size=1, max_size=6),
)
def test_the_canonical_query_selects_exactly_the_members_the_original_does(
    population: list[tuple[dict[str, Any], Policy]],
    raw: list[tuple[dict[str, list[str]], str | None]],
) -> None:
    index = index_of([member_texts(profile, policy, NOW) for profile, policy in population])
    for where, breakdown in raw:
        canonical = canonical_where(where, breakdown)
        for purpose, mode in itertools.product(PURPOSES, (Mode.AGGREGATE, Mode.PSEUDONYMOUS)):
            original = index.select(where, purpose, mode, "acme", "retail")
            rewritten = index.select(canonical, purpose, mode, "acme", "retail")
            if breakdown is None:
                assert set(rewritten.members) == set(original.members), (where, purpose, mode)
            else:
                values = ATTRIBUTES[breakdown].values
                assert index.cells(rewritten.members, breakdown, values, purpose, mode) == (
                    index.cells(original.members, breakdown, values, purpose, mode)
                ), (where, breakdown, purpose, mode)


def test_the_population_check_can_fail() -> None:
    """Dropping a predicate the rules do not allow (a region that area 26 does not imply)
    changes the members, and the same check sees it."""
    nsw, act = ({"postcode": "2650"}, {"postcode": "2601"})
    yes = Policy(
        rules=(
            *TEMPLATES["balanced"].rules,
            Rule("district", WILDCARD, Recipient.anyone(), Mode.AGGREGATE),
        )
    )
    index = index_of([member_texts(p, yes, NOW) for p in (nsw, act)])
    where = {"area": ["26"], "region": ["NSW"]}
    kept = index.select(where, "analytics", Mode.AGGREGATE, "acme", "retail").members
    wrongly = index.select({"area": ["26"]}, "analytics", Mode.AGGREGATE, "acme", "retail").members
    assert set(kept) == {1}
    assert set(wrongly) == {1, 2}
    assert canonical_where(where) == where


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            {"spend": ["books:50-199"], "bought": ["books"]},
            {"spend": ["books:50-199"]},
        ),
        (
            {"spend": ["books:50-199", "travel:500-plus"], "bought": ["travel", "books", "film"]},
            {"spend": ["books:50-199", "travel:500-plus"]},
        ),
        (  # a band of an interest not listed: bought still excludes
            {"spend": ["books:50-199", "travel:500-plus"], "bought": ["books"]},
            {"bought": ["books"], "spend": ["books:50-199", "travel:500-plus"]},
        ),
        ({"bought": ["books"]}, {"bought": ["books"]}),
    ],
)
def test_bought_is_dropped_when_every_spend_band_implies_it(
    where: dict[str, list[str]], expected: dict[str, list[str]]
) -> None:
    assert canonical_where(where) == expected
