"""The words a customer reads in their access log, for every path through the evaluator.

Each reason is checked whole: it is the engine's explanation to the customer (which rules
decided, in what words, singular or plural), so a changed word is a changed product.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policies.engine import evaluate
from policies.model import (
    AccessRequest,
    CategoryVerdict,
    Decision,
    Mode,
    Policy,
    Recipient,
    Rule,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)  # 1 Jul 2026
LATEST = NOW + timedelta(days=400)  # 6 Jul 2027
NEVER, AGG, PSEUDO, DIRECT = Mode.NEVER, Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT
ALLOW, DENY, NA = Decision.ALLOW, Decision.DENY, Decision.NOT_APPLICABLE

ANY_PSEUDO = (
    "'Interests, for marketing, by any supplier: only under a pseudonym, never with your name'"
)
ANY_AGG = "'Interests, for marketing, by any supplier: only in anonymous counts'"
ANY_AGG_JULY = (
    "'Interests, for marketing, by any supplier: only in anonymous counts (until 1 Jul 2026)'"
)
ANY_DIRECT = "'Interests, for marketing, by any supplier: with your name'"
HEALTH_DIRECT = "'Health, for marketing, by any supplier: with your name'"
PSEUDONYM = "only under a pseudonym, never with your name"


def rule(category: str = "interests", mode: Mode = PSEUDO, expires: datetime | None = None) -> Rule:
    return Rule(category, "marketing", Recipient.anyone(), mode, expires)


def ask(*categories: str, mode: Mode = PSEUDO, purpose: str = "marketing") -> AccessRequest:
    return AccessRequest("acme", "retail", purpose, frozenset(categories or ("interests",)), mode)


# (name, rules, request, decision, reason)
REASONS: list[tuple[str, list[Rule], AccessRequest, Decision, str]] = [
    (
        "allowed by one rule, pseudonymously",
        [rule()],
        ask(),
        ALLOW,
        f"Your rule {ANY_PSEUDO} allows acme to use your interests for offers without learning "
        "who you are.",
    ),
    (
        "allowed by two rules, in counts",
        [rule(mode=AGG), rule(mode=AGG, expires=LATER)],
        ask(mode=AGG),
        ALLOW,
        f"Your rules {ANY_AGG} and {ANY_AGG_JULY} allow acme to count your interests in "
        "anonymous totals.",
    ),
    (
        "allowed by three rules, with a name",
        [rule(mode=DIRECT), rule(mode=DIRECT, expires=LATER), rule(mode=DIRECT, expires=LATEST)],
        ask(mode=DIRECT),
        ALLOW,
        f"Your rules {ANY_DIRECT}, "
        "'Interests, for marketing, by any supplier: with your name (until 1 Jul 2026)' and "
        "'Interests, for marketing, by any supplier: with your name (until 6 Jul 2027)' "
        "allow acme to see your interests, knowing it is you.",
    ),
    (
        "one rule allows less",
        [rule(mode=AGG)],
        ask(mode=DIRECT),
        DENY,
        f"Your rule {ANY_AGG} does not allow acme to see your interests, knowing it is you: "
        "it allows use only in anonymous counts.",
    ),
    (
        "two rules allow less",
        [rule(mode=AGG), rule(mode=AGG, expires=LATER)],
        ask(mode=PSEUDO),
        DENY,
        f"Your rules {ANY_AGG} and {ANY_AGG_JULY} do not allow acme to use your interests for "
        "offers without learning who you are: they allow use only in anonymous counts.",
    ),
    (
        "special category capped under one rule",
        [rule("health", DIRECT)],
        ask("health", mode=DIRECT),
        DENY,
        "Health is a special category and none of your rules names acme for it, so acme may "
        f"not see your health, knowing it is you: your rule {HEALTH_DIRECT} allows use "
        f"{PSEUDONYM}.",
    ),
    (
        "special category capped under two rules",
        [rule("health", DIRECT), rule("health", DIRECT, LATER)],
        ask("health", mode=DIRECT),
        DENY,
        "Health is a special category and none of your rules names acme for it, so acme may "
        f"not see your health, knowing it is you: your rules {HEALTH_DIRECT} and "
        "'Health, for marketing, by any supplier: with your name (until 1 Jul 2026)' allow use "
        f"{PSEUDONYM}.",
    ),
    (
        "one rule says never",
        [rule(mode=NEVER), rule(mode=DIRECT)],
        ask(),
        DENY,
        "Your rule 'Interests, for marketing, by any supplier: never' says never, so acme may "
        "not use your interests for marketing, whatever your other rules allow.",
    ),
    (
        "two rules say never",
        [rule(mode=NEVER), rule("*", NEVER)],
        ask(),
        DENY,
        "Your rules 'All your data except special categories, for marketing, by any supplier: "
        "never' and 'Interests, for marketing, by any supplier: never' say never, so acme may "
        "not use your interests for marketing, whatever your other rules allow.",
    ),
    (
        "no rule applies",
        [rule("purchases")],
        ask(),
        NA,
        "None of your rules lets acme use your interests for marketing, so it is not shared.",
    ),
    (
        "a request for never",
        [rule(mode=DIRECT)],
        ask(mode=NEVER),
        DENY,
        "A request must ask for some kind of access, not 'never'.",
    ),
    (
        "an unknown category",
        [rule("*", DIRECT)],
        ask("horoscope"),
        DENY,
        "'horoscope' is not a data category we know, so it is not shared.",
    ),
    (
        "an unknown purpose",
        [Rule("*", "*", Recipient.anyone(), DIRECT)],
        ask(purpose="harvest"),
        DENY,
        "'harvest' is not a purpose we know, so your interests is not shared.",
    ),
]


@pytest.mark.parametrize(
    ("rules", "req", "decision", "reason"),
    [case[1:] for case in REASONS],
    ids=[case[0] for case in REASONS],
)
def test_each_verdict_explains_itself(
    rules: list[Rule], req: AccessRequest, decision: Decision, reason: str
) -> None:
    verdict = evaluate(Policy(tuple(rules)), req, NOW)
    (single,) = verdict.categories
    assert single.decision is decision
    assert single.reason == reason
    assert verdict.reason == reason


FAIL_CLOSED = [
    ("horoscope", ask("horoscope", "interests")),
    ("interests", ask("interests", purpose="harvest")),
    ("interests", ask("interests", mode=NEVER)),
]


@pytest.mark.parametrize(("category", "req"), FAIL_CLOSED, ids=["category", "purpose", "never"])
def test_what_is_not_understood_is_denied_outright(category: str, req: AccessRequest) -> None:
    """Such a verdict names its category, permits nothing and cites no rule."""
    policy = Policy((Rule("*", "*", Recipient.anyone(), DIRECT),))
    verdict = evaluate(policy, req, NOW)
    assert verdict.decision is DENY
    denied = {v.category: v for v in verdict.categories}[category]
    assert denied == CategoryVerdict(category, DENY, NEVER, (), denied.reason)


def test_the_overall_reason_names_each_refusal_once_in_category_order() -> None:
    never = rule("identity", NEVER)
    verdict = evaluate(
        Policy((never, rule("purchases"))),
        ask("identity", "purchases", "interests", "demographics"),
        NOW,
    )
    assert verdict.decision is DENY
    assert verdict.reason == (
        "None of your rules lets acme use your demographics for marketing, so it is not shared. "
        "Your rule 'Identity, for marketing, by any supplier: never' says never, so acme may not "
        "use your identity for marketing, whatever your other rules allow. "
        "None of your rules lets acme use your interests for marketing, so it is not shared."
    )


def test_an_allowed_request_gives_every_category_its_reason() -> None:
    verdict = evaluate(
        Policy((rule(), rule("demographics"))), ask("interests", "demographics"), NOW
    )
    assert verdict.decision is ALLOW
    assert verdict.reason == (
        "Your rule 'Demographics, for marketing, by any supplier: only under a pseudonym, never "
        "with your name' allows acme to use your demographics for offers without learning who "
        f"you are. Your rule {ANY_PSEUDO} allows acme to use your interests for offers without "
        "learning who you are."
    )


def test_a_reason_shared_by_several_categories_is_said_once() -> None:
    verdict = evaluate(Policy(()), ask("interests", "demographics", mode=NEVER), NOW)
    assert verdict.reason == "A request must ask for some kind of access, not 'never'."
    # Different words for different categories are all said.
    verdict = evaluate(Policy(()), ask("horoscope", "astrology"), NOW)
    assert verdict.reason == (
        "'astrology' is not a data category we know, so it is not shared. "
        "'horoscope' is not a data category we know, so it is not shared."
    )
