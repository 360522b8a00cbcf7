"""Interests from purchases: the packaged mapping, whole-word matching and the evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.interests import Evidence, derive, load_rules
from connectors.lines import LineStatus, PurchaseLine
from policies.taxonomy import CATEGORIES, INTEREST_TAGS

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
SMALL = """
[[rule]]
interest = "books"
categories = ["Books", "Kindle Store"]
keywords = ["novel", "paperback"]

[[rule]]
interest = "faith"
keywords = ["bible", "quran"]

[[rule]]
interest = "cooking"
categories = ["Kitchen & Dining"]
"""


def line(
    name: str,
    *,
    category: str | None = None,
    status: LineStatus = LineStatus.SHIPPED,
    key: str = "1",
    at: datetime = T0,
    retailer: str = "Corner Books",
) -> PurchaseLine:
    return PurchaseLine(
        retailer=retailer,
        order_id=f"order-{key}",
        line_key=key,
        ordered_at=at,
        product_name=name,
        product_id=None,
        category=category,
        quantity=1,
        unit_price_minor=1999,
        currency="AUD",
        status=status,
        source="orders.csv",
        line_number=2,
    )


def interests_of(*lines: PurchaseLine) -> set[str]:
    return set(derive(load_rules(SMALL), lines))


# The packaged mapping


def test_the_packaged_mapping_loads_and_names_only_tags_of_the_taxonomy() -> None:
    rules = load_rules()
    assert rules.interests
    assert rules.interests <= set(INTEREST_TAGS), rules.interests - set(INTEREST_TAGS)


def test_the_packaged_mapping_covers_every_ordinary_interest_and_some_special_ones() -> None:
    interests = load_rules().interests
    ordinary = {key for key, tag in INTEREST_TAGS.items() if not CATEGORIES[tag.category].special}
    assert ordinary - interests == set()
    special = {INTEREST_TAGS[key].category for key in interests} & {
        key for key, category in CATEGORIES.items() if category.special
    }
    assert {"health", "religion"} <= special


@pytest.mark.parametrize(
    ("name", "category", "interest"),
    [
        ("Holy Bible, King James Version", None, "faith"),
        ("Blood Glucose Test Strips x50", "Health & Household", "diabetes-care"),
        ("Prenatal Multivitamin, 60 tablets", None, "pregnancy"),
        ("The Left Hand of Darkness: A Novel", None, "books"),
        ("Stainless Steel Saucepan 20cm", None, "cooking"),
        ("Anything at all", "Home & Garden > Kitchen & Dining", "cooking"),
    ],
)
def test_the_packaged_mapping_derives(name: str, category: str | None, interest: str) -> None:
    assert interest in derive(load_rules(), [line(name, category=category)])


def test_a_special_category_rule_derives_its_tag_so_the_app_can_treat_it_as_special() -> None:
    evidence = derive(load_rules(), [line("Quran with English translation", category="Books")])
    assert set(evidence) == {"books", "faith"}
    revealed = {INTEREST_TAGS[key].category for key in evidence}
    assert revealed == {"interests", "religion"}
    assert CATEGORIES["religion"].special


# Matching


def test_categories_match_case_insensitively_as_a_whole_or_one_level_of_a_path() -> None:
    assert interests_of(line("x", category="kindle STORE")) == {"books"}
    assert interests_of(line("x", category="  Kindle   Store ")) == {"books"}
    assert interests_of(line("x", category="Media > Books > Fiction")) == {"books"}
    assert interests_of(line("x", category="Bookshelves")) == set()
    assert interests_of(line("x", category="Kindle")) == set()


def test_keywords_match_whole_words_only() -> None:
    assert interests_of(line("A Novel")) == {"books"}
    assert interests_of(line("novel, paperback (2nd ed.)")) == {"books"}
    assert interests_of(line("Novelty Mug")) == set()
    assert interests_of(line("Graphic-novel-ish poster")) == {"books"}
    assert interests_of(line("Bibles")) == set()
    assert interests_of(line("Unnovel")) == set()


def test_matching_folds_unicode_case_and_compatibility_forms() -> None:
    rules = load_rules('[[rule]]\ninterest = "art"\nkeywords = ["straße", "café"]\n')
    assert set(derive(rules, [line("STRASSE map")])) == {"art"}
    assert set(derive(rules, [line("CAFE\u0301 poster")])) == {"art"}  # decomposed é
    assert set(derive(rules, [line("CAFÉ poster")])) == {"art"}
    assert set(derive(rules, [line("Cafe poster")])) == set()
    assert interests_of(line("\uff2e\uff2f\uff36\uff25\uff2c")) == {"books"}  # full-width letters


def test_a_line_may_be_evidence_of_several_interests() -> None:
    assert interests_of(line("Bible study novel", category="Kitchen & Dining")) == {
        "books",
        "faith",
        "cooking",
    }


# Evidence


@pytest.mark.parametrize("status", [LineStatus.CANCELLED, LineStatus.REFUNDED, LineStatus.RETURNED])
def test_lines_not_kept_derive_nothing(status: LineStatus) -> None:
    assert derive(load_rules(), [line("Holy Bible paperback", status=status)]) == {}


@pytest.mark.parametrize("status", [LineStatus.ORDERED, LineStatus.SHIPPED])
def test_lines_kept_derive(status: LineStatus) -> None:
    assert set(derive(load_rules(SMALL), [line("A Novel", status=status)])) == {"books"}


def test_evidence_counts_lines_once_each_and_keeps_the_latest_time() -> None:
    later = T0 + timedelta(days=40)
    evidence = derive(
        load_rules(SMALL),
        [
            line("A Novel", key="1", at=T0),
            line("A Novel", key="1", at=T0),  # the same line seen twice
            line("Paperback", key="2", at=later),
            line("Paperback", key="2", retailer="Other Shop", at=T0),
            line("A novel", key="3", at=later + timedelta(days=1), status=LineStatus.CANCELLED),
            line("Bible", key="4", at=T0),
        ],
    )
    assert evidence == {
        "books": Evidence(lines=3, latest=later),
        "faith": Evidence(lines=1, latest=T0),
    }
    assert list(evidence) == sorted(evidence)


def test_no_lines_no_evidence() -> None:
    assert derive(load_rules(), []) == {}


# Bad mappings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\n", "not TOML"),
        ("", r"no \[\[rule\]\] tables"),
        ('title = "x"\n', "unknown key 'title'"),
        ('[[rule]]\ninterest = "books"\n', r"rule 1 \(books\): empty"),
        ('[[rule]]\ninterest = "books"\ncategories = []\nkeywords = []\n', "empty"),
        ('[[rule]]\ninterest = "books"\nkeyword = ["novel"]\n', "unknown key 'keyword'"),
        ('[[rule]]\nkeywords = ["novel"]\n', r"rule 1: interest: .* not None"),
        ('[[rule]]\ninterest = "Books!"\nkeywords = ["novel"]\n', "interest"),
        ('[[rule]]\ninterest = "books"\nkeywords = ["graphic novel"]\n', "not a single word"),
        ('[[rule]]\ninterest = "books"\nkeywords = ["e-book"]\n', "'e-book' is not a single"),
        ('[[rule]]\ninterest = "books"\nkeywords = [""]\n', "not a single word"),
        ('[[rule]]\ninterest = "books"\nkeywords = "novel"\n', "keywords: a list of strings"),
        ('[[rule]]\ninterest = "books"\ncategories = [1]\n', "categories: a list of strings"),
        ('[[rule]]\ninterest = "books"\ncategories = ["  "]\n', "a category is blank"),
        (
            '[[rule]]\ninterest = "books"\nkeywords = ["novel"]\n'
            '[[rule]]\ninterest = "film"\nkeywords = ["dvd"]\n'
            '[[rule]]\ninterest = "books"\nkeywords = ["paperback"]\n',
            r"rule 3 \(books\): the interest already has rule 1",
        ),
        ('rule = ["books"]\n', r"rule 1: a table \(\[\[rule\]\]\)"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_rule(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_rules(text)


def test_the_rule_named_is_the_one_at_fault() -> None:
    text = (
        '[[rule]]\ninterest = "books"\nkeywords = ["novel"]\n'
        '[[rule]]\ninterest = "film"\nkeywords = ["blu ray"]\n'
    )
    with pytest.raises(ValueError, match=r"^rule 2 \(film\): keywords: 'blu ray'"):
        load_rules(text)


# Properties

NAMES = st.sampled_from(
    [
        "A Novel",
        "Novelty Mug",
        "Holy Bible",
        "Quran",
        "Saucepan",
        "Paperback Bible",
        "USB cable",
        "",
    ]
)
CATEGORY_VALUES = st.sampled_from([None, "Books", "Kitchen & Dining", "Garden", "kindle store"])
LINES = st.builds(
    line,
    NAMES,
    category=CATEGORY_VALUES,
    status=st.sampled_from(list(LineStatus)),
    key=st.sampled_from(["1", "2", "3", "4"]),
    at=st.datetimes(
        min_value=(T0 - timedelta(days=1500)).replace(tzinfo=None),
        max_value=(T0 + timedelta(days=1500)).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    retailer=st.sampled_from(["Corner Books", "Other Shop"]),
)


@given(st.lists(LINES, max_size=12), st.randoms(use_true_random=False))
def test_derivation_is_independent_of_line_order(lines: list[PurchaseLine], rnd) -> None:
    rules = load_rules(SMALL)
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert derive(rules, shuffled) == derive(rules, lines)


@given(st.lists(LINES, max_size=12), LINES)
def test_adding_a_line_never_removes_an_interest(lines: list[PurchaseLine], extra) -> None:
    rules = load_rules(SMALL)
    before = derive(rules, lines)
    after = derive(rules, [*lines, extra])
    assert set(before) <= set(after)
    for interest, evidence in before.items():
        assert after[interest].lines >= evidence.lines
        assert after[interest].latest >= evidence.latest
