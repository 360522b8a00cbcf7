"""Explicit categories (the postal district): only a rule naming them releases them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from policies.engine import evaluate
from policies.model import (
    PURPOSES,
    WILDCARD,
    AccessRequest,
    Decision,
    Mode,
    Policy,
    Recipient,
    Rule,
)
from policies.taxonomy import CATEGORIES
from policies.templates import TEMPLATES, load_template
from policies.validation import describe_rule

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ASKABLE = (Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT)
EXPLICIT = sorted(key for key, c in CATEGORIES.items() if c.explicit)
ANYONE = Recipient.anyone()


def decide(policy: Policy, category: str, purpose: str = "analytics", mode: Mode = Mode.AGGREGATE):
    request = AccessRequest("acme", "retail", purpose, frozenset({category}), mode)
    return evaluate(policy, request, NOW)


def test_the_postal_district_is_explicit_refines_demographics_and_is_not_special() -> None:
    assert EXPLICIT == ["district"]
    district = CATEGORIES["district"]
    assert district.refines == "demographics"
    assert not district.special
    assert all(c.refines in CATEGORIES for c in CATEGORIES.values() if c.refines)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_no_template_releases_an_explicit_category(name: str) -> None:
    for purpose, category, mode in itertools.product(PURPOSES, EXPLICIT, ASKABLE):
        verdict = decide(load_template(name), category, purpose, mode)
        assert verdict.decision is not Decision.ALLOW, (name, purpose, category, mode)


def test_a_star_rule_never_releases_it_but_may_deny_it() -> None:
    star = Rule(WILDCARD, WILDCARD, ANYONE, Mode.DIRECT)
    assert decide(Policy((star,)), "district").decision is Decision.NOT_APPLICABLE
    assert decide(Policy((star,)), "demographics").decision is Decision.ALLOW
    yes = Rule("district", WILDCARD, ANYONE, Mode.AGGREGATE)
    assert decide(Policy((yes,)), "district").decision is Decision.ALLOW
    assert decide(Policy((yes,)), "district", mode=Mode.PSEUDONYMOUS).decision is Decision.DENY
    never = Rule(WILDCARD, "analytics", ANYONE, Mode.NEVER)
    denied = decide(Policy((yes, never)), "district")
    assert denied.decision is Decision.DENY
    assert denied.categories[0].rules == (never,)
    assert decide(Policy((yes, never)), "district", "research").decision is Decision.ALLOW


def test_a_star_rule_says_in_words_what_it_leaves_out() -> None:
    allow = Rule(WILDCARD, "analytics", ANYONE, Mode.AGGREGATE)
    assert describe_rule(allow) == (
        "All your data except special categories and your postal district, for analytics, "
        "by any supplier: only in anonymous counts"
    )
    never = Rule(WILDCARD, "analytics", ANYONE, Mode.NEVER)
    assert describe_rule(never) == (
        "All your data except special categories, for analytics, by any supplier: never"
    )
