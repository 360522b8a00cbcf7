"""The policy evaluator, step by step, and the invariants the rest of the app relies on."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.codec import policy_from_dict, policy_to_dict
from policies.engine import evaluate, restrict
from policies.model import (
    PURPOSES,
    AccessRequest,
    CategoryVerdict,
    Decision,
    Mode,
    Policy,
    Recipient,
    RecipientKind,
    Rule,
    Verdict,
)
from policies.taxonomy import CATEGORIES
from policies.validation import describe_rule, validate_policy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)
LATER = NOW + timedelta(days=30)
ANYONE = Recipient.anyone()
ACME = Recipient.supplier("acme")
RETAIL = Recipient.sector("retail")

ALLOW, DENY, NA = Decision.ALLOW, Decision.DENY, Decision.NOT_APPLICABLE
NEVER, AGG, PSEUDO, DIRECT = Mode.NEVER, Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT


def rule(
    category: str = "interests",
    purpose: str = "marketing",
    recipient: Recipient = ANYONE,
    mode: Mode = PSEUDO,
    expires: datetime | None = None,
) -> Rule:
    return Rule(category, purpose, recipient, mode, expires)


def request(
    *categories: str,
    mode: Mode = PSEUDO,
    supplier: str = "acme",
    sector: str | None = "retail",
    purpose: str = "marketing",
) -> AccessRequest:
    return AccessRequest(supplier, sector, purpose, frozenset(categories or ("interests",)), mode)


def decide(rules: list[Rule] | tuple[Rule, ...], req: AccessRequest | None = None) -> Verdict:
    return evaluate(Policy(tuple(rules)), req or request(), NOW)


def only(verdict: Verdict) -> CategoryVerdict:
    (single,) = verdict.categories
    return single


# -- modes ----------------------------------------------------------------------------------


def test_modes_order_from_least_to_most_identifying() -> None:
    assert sorted([DIRECT, NEVER, PSEUDO, AGG]) == [NEVER, AGG, PSEUDO, DIRECT]
    assert [m.rank for m in Mode] == [0, 1, 2, 3]
    assert NEVER < AGG < PSEUDO < DIRECT
    assert DIRECT >= PSEUDO > AGG >= AGG
    assert min(DIRECT, AGG) is AGG
    # Plain strings naming a mode compare by rank too, never alphabetically.
    assert AGG < "direct"
    assert DIRECT > "never"


def test_modes_refuse_to_compare_with_strings_that_are_not_modes() -> None:
    with pytest.raises(TypeError, match="sometimes"):
        _ = DIRECT < "sometimes"
    with pytest.raises(TypeError):
        _ = DIRECT < 3


# -- step 1: which rules apply -----------------------------------------------------------------

APPLICABILITY = [
    ("exact category", rule(), request(), ALLOW),
    ("other category", rule(category="purchases"), request(), NA),
    ("* covers a non-special category", rule(category="*"), request(), ALLOW),
    ("* never covers a special category", rule(category="*"), request("health"), NA),
    ("* purpose", rule(purpose="*"), request(), ALLOW),
    ("other purpose", rule(purpose="research"), request(), NA),
    ("sector matches", rule(recipient=RETAIL), request(), ALLOW),
    ("other sector", rule(recipient=Recipient.sector("travel")), request(), NA),
    ("sector rule, supplier with no sector", rule(recipient=RETAIL), request(sector=None), NA),
    ("supplier matches", rule(recipient=ACME), request(), ALLOW),
    ("other supplier", rule(recipient=ACME), request(supplier="globex"), NA),
    (
        "supplier rule naming nobody",
        rule(recipient=Recipient(RecipientKind.SUPPLIER)),
        request(),
        NA,
    ),
    ("expires later", rule(expires=LATER), request(), ALLOW),
    ("expired", rule(expires=EARLIER), request(), NA),
    ("expires this instant", rule(expires=NOW), request(), NA),
    (
        "expires later, other offset",
        rule(expires=LATER.astimezone(timezone(timedelta(hours=10)))),
        request(),
        ALLOW,
    ),
]


@pytest.mark.parametrize(
    ("the_rule", "req", "expected"),
    [case[1:] for case in APPLICABILITY],
    ids=[case[0] for case in APPLICABILITY],
)
def test_step1_applicable_rules(the_rule: Rule, req: AccessRequest, expected: Decision) -> None:
    verdict = only(decide([the_rule], req))
    assert verdict.decision is expected
    assert verdict.rules == ((the_rule,) if expected is ALLOW else ())


# -- step 2: default deny -------------------------------------------------------------------


def test_step2_no_rule_is_not_applicable_and_denies() -> None:
    verdict = decide([])
    assert verdict.decision is NA
    assert not verdict.allowed
    assert only(verdict).permitted_mode is NEVER
    assert verdict.allowed_categories() == frozenset()
    assert "None of your rules lets acme use your interests for marketing" in verdict.reason


# -- step 3: deny overrides -----------------------------------------------------------------

DENY_OVERRIDES = [
    ("never beats a more specific grant", [rule(mode=NEVER), rule(recipient=ACME, mode=DIRECT)]),
    ("* never beats an exact grant", [rule(category="*", mode=NEVER), rule(mode=DIRECT)]),
    ("* purpose never beats exact", [rule(purpose="*", mode=NEVER), rule(mode=DIRECT)]),
    (
        "sector never beats supplier grant",
        [rule(recipient=RETAIL, mode=NEVER), rule(recipient=ACME)],
    ),
]


@pytest.mark.parametrize(
    "rules", [case[1] for case in DENY_OVERRIDES], ids=[case[0] for case in DENY_OVERRIDES]
)
def test_step3_deny_overrides(rules: list[Rule]) -> None:
    for order in (rules, rules[::-1]):
        verdict = only(decide(order, request(mode=AGG)))
        assert verdict.decision is DENY
        assert verdict.permitted_mode is NEVER
        assert verdict.rules == (rules[0],)
        assert "says never" in verdict.reason


@pytest.mark.parametrize(
    "denial",
    [
        rule(mode=NEVER, expires=EARLIER),
        rule(mode=NEVER, recipient=Recipient.sector("travel")),
        rule(mode=NEVER, purpose="research"),
    ],
    ids=["expired", "other sector", "other purpose"],
)
def test_step3_a_never_rule_that_does_not_apply_denies_nothing(denial: Rule) -> None:
    assert decide([denial, rule()]).decision is ALLOW


# -- step 4: specificity --------------------------------------------------------------------

SPECIFICITY = [
    ("supplier beats any", [rule(recipient=ACME, mode=AGG), rule(mode=DIRECT)], AGG, 0),
    (
        "supplier beats any, upwards too",
        [rule(recipient=ACME, mode=DIRECT), rule(mode=AGG)],
        DIRECT,
        0,
    ),
    ("sector beats any", [rule(recipient=RETAIL, mode=PSEUDO), rule(mode=DIRECT)], PSEUDO, 0),
    ("supplier beats sector", [rule(recipient=ACME, mode=AGG), rule(recipient=RETAIL)], AGG, 0),
    ("exact category beats *", [rule(mode=AGG), rule(category="*", mode=DIRECT)], AGG, 0),
    (
        "exact category beats *, upwards",
        [rule(mode=DIRECT), rule(category="*", mode=AGG)],
        DIRECT,
        0,
    ),
    ("exact purpose beats *", [rule(mode=AGG), rule(purpose="*", mode=DIRECT)], AGG, 0),
    (
        "recipient before category",
        [rule(category="*", recipient=ACME, mode=AGG), rule(mode=DIRECT)],
        AGG,
        0,
    ),
    (
        "category before purpose",
        [rule(purpose="*", mode=AGG), rule(category="*", mode=DIRECT)],
        AGG,
        0,
    ),
    ("a tie goes to the least identifying", [rule(mode=DIRECT), rule(mode=AGG)], AGG, 1),
]


@pytest.mark.parametrize(
    ("rules", "permitted", "decider"),
    [case[1:] for case in SPECIFICITY],
    ids=[case[0] for case in SPECIFICITY],
)
def test_step4_most_specific_rules_decide(rules: list[Rule], permitted: Mode, decider: int) -> None:
    for order in (rules, rules[::-1]):
        verdict = only(decide(order, request(mode=AGG)))
        assert verdict.decision is ALLOW
        assert verdict.permitted_mode is permitted
        assert verdict.rules == (rules[decider],)


def test_step4_names_every_rule_that_tied() -> None:
    twins = [rule(mode=AGG), rule(mode=AGG, expires=LATER)]
    verdict = only(decide(twins, request(mode=AGG)))
    assert set(verdict.rules) == set(twins)
    assert verdict.reason.startswith("Your rules ")


# -- step 5: special categories -------------------------------------------------------------

HEALTH_DIRECT_ACME = rule("health", recipient=ACME, mode=DIRECT)
SPECIAL = [
    ("any supplier, direct: capped", [rule("health", mode=DIRECT)], DIRECT, DENY, PSEUDO),
    ("capped still allows pseudonymous", [rule("health", mode=DIRECT)], PSEUDO, ALLOW, PSEUDO),
    (
        "sector, direct: capped",
        [rule("health", recipient=RETAIL, mode=DIRECT)],
        DIRECT,
        DENY,
        PSEUDO,
    ),
    ("named supplier, direct", [HEALTH_DIRECT_ACME], DIRECT, ALLOW, DIRECT),
    (
        "named supplier beats any",
        [HEALTH_DIRECT_ACME, rule("health", mode=AGG)],
        DIRECT,
        ALLOW,
        DIRECT,
    ),
    (
        "named supplier but a tie",
        [HEALTH_DIRECT_ACME, rule("health", recipient=ACME, mode=PSEUDO)],
        DIRECT,
        DENY,
        PSEUDO,
    ),
    (
        "named supplier, but exact purpose says less",
        [rule("health", "*", ACME, DIRECT), rule("health", recipient=ACME, mode=AGG)],
        DIRECT,
        DENY,
        AGG,
    ),
    ("not special: no cap", [rule("interests", mode=DIRECT)], DIRECT, ALLOW, DIRECT),
]


@pytest.mark.parametrize(
    ("rules", "asked", "expected", "permitted"),
    [case[1:] for case in SPECIAL],
    ids=[case[0] for case in SPECIAL],
)
def test_step5_special_categories(
    rules: list[Rule], asked: Mode, expected: Decision, permitted: Mode
) -> None:
    category = rules[0].category
    verdict = only(decide(rules, request(category, mode=asked)))
    assert verdict.decision is expected
    assert verdict.permitted_mode is permitted


def test_step5_reason_says_why_a_special_category_is_capped() -> None:
    verdict = only(decide([rule("health", mode=DIRECT)], request("health", mode=DIRECT)))
    assert "Health is a special category" in verdict.reason
    assert "none of your rules names acme" in verdict.reason


def test_step5_a_rule_for_another_supplier_does_not_count() -> None:
    verdict = decide([HEALTH_DIRECT_ACME], request("health", mode=DIRECT, supplier="globex"))
    assert verdict.decision is NA


# -- step 6: requested mode against permitted mode -------------------------------------------


@pytest.mark.parametrize("permitted", [AGG, PSEUDO, DIRECT])
@pytest.mark.parametrize("asked", [AGG, PSEUDO, DIRECT])
def test_step6_allowed_up_to_the_permitted_mode(permitted: Mode, asked: Mode) -> None:
    verdict = only(decide([rule(mode=permitted)], request(mode=asked)))
    assert verdict.permitted_mode is permitted
    assert verdict.decision is (ALLOW if asked <= permitted else DENY)
    assert verdict.rules == (rule(mode=permitted),)
    assert ("does not allow" in verdict.reason) is (asked > permitted)


# -- the whole request ----------------------------------------------------------------------


def request_of(*categories: str) -> AccessRequest:
    return AccessRequest("acme", "retail", "marketing", frozenset(categories), PSEUDO)


def test_empty_request_is_denied() -> None:
    verdict = evaluate(Policy((rule(category="*", purpose="*", mode=DIRECT),)), request_of(), NOW)
    assert verdict.decision is DENY
    assert verdict.categories == ()
    assert verdict.reason == "The request names no data, so nothing is shared."


OVERALL = [
    ("all allowed", ["interests", "demographics"], ALLOW),
    ("one not covered", ["interests", "purchases"], NA),
    ("one denied", ["interests", "purchases", "identity"], DENY),
]


@pytest.mark.parametrize(
    ("categories", "expected"), [c[1:] for c in OVERALL], ids=[c[0] for c in OVERALL]
)
def test_overall_decision(categories: list[str], expected: Decision) -> None:
    rules = [rule("interests"), rule("demographics"), rule("identity", mode=NEVER)]
    verdict = decide(rules, request(*categories))
    assert verdict.decision is expected
    assert [v.category for v in verdict.categories] == sorted(categories)
    assert verdict.allowed_categories() == {"interests", "demographics"} & set(categories)
    assert verdict.allowed is (expected is ALLOW)


def test_overall_reason_explains_what_was_refused() -> None:
    verdict = decide([rule(), rule("identity", mode=NEVER)], request("interests", "identity"))
    assert "Identity, for marketing, by any supplier: never" in verdict.reason
    assert "Interests" not in verdict.reason


def test_deciding_rules_are_named_once() -> None:
    wide = rule(category="*")
    verdict = decide([wide], request("interests", "demographics"))
    assert verdict.decision is ALLOW
    assert verdict.deciding_rules() == (wide,)
    assert describe_rule(wide) in verdict.reason


FAIL_CLOSED = [
    (
        "unknown category",
        [rule("horoscope", mode=DIRECT)],
        request("horoscope"),
        "not a data category",
    ),
    ("unknown purpose", [rule("*", "*", mode=DIRECT)], request(purpose="harvest"), "not a purpose"),
    ("asking for never", [rule(mode=DIRECT)], request(mode=NEVER), "some kind of access"),
]


@pytest.mark.parametrize(
    ("rules", "req", "words"), [c[1:] for c in FAIL_CLOSED], ids=[c[0] for c in FAIL_CLOSED]
)
def test_what_the_engine_does_not_understand_is_denied(
    rules: list[Rule], req: AccessRequest, words: str
) -> None:
    verdict = decide(rules, req)
    assert verdict.decision is DENY
    assert words in verdict.reason


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(Policy(()), request(), NOW.replace(tzinfo=None))


def test_a_naive_expiry_can_deny_but_never_allows() -> None:
    naive = LATER.replace(tzinfo=None)
    assert decide([rule(expires=naive)]).decision is NA
    assert decide([rule(mode=NEVER, expires=naive), rule(recipient=ACME)]).decision is DENY


# -- describe, validate, serialise ---------------------------------------------------------

DESCRIPTIONS = [
    (
        rule(mode=AGG, expires=datetime(2027, 1, 1, tzinfo=UTC)),
        "Interests, for marketing, by any supplier: only in anonymous counts (until 1 Jan 2027)",
    ),
    (
        rule("*", "*", Recipient.sector("travel"), NEVER),
        "All your data except special categories, for any purpose, by suppliers in the travel "
        "sector: never",
    ),
    (
        rule("identity", "service", ACME, DIRECT),
        "Identity, for providing the service you asked for, by supplier acme: with your name",
    ),
    (
        rule("health", "research", ANYONE, PSEUDO),
        "Health, for research, by any supplier: only under a pseudonym, never with your name",
    ),
]


@pytest.mark.parametrize(("the_rule", "words"), DESCRIPTIONS)
def test_describe_rule(the_rule: Rule, words: str) -> None:
    assert describe_rule(the_rule) == words


def test_describe_rule_copes_with_invalid_rules() -> None:
    odd = Rule("horoscope", "harvest", Recipient(RecipientKind.SUPPLIER), DIRECT)
    assert (
        describe_rule(odd) == "'horoscope', for 'harvest', by an unnamed supplier: with your name"
    )


PROBLEMS = [
    (rule("horoscope"), "'horoscope' is not a data category"),
    (rule(purpose="harvest"), "'harvest' is not a purpose"),
    (Rule("interests", "marketing", ANYONE, "sometimes"), "'sometimes' is not a mode"),  # type: ignore[arg-type]
    (rule(recipient=Recipient(RecipientKind.SUPPLIER)), "must say which supplier"),
    (rule(recipient=Recipient(RecipientKind.SUPPLIER, " ")), "must say which supplier"),
    (rule(recipient=Recipient(RecipientKind.SECTOR)), "must say which sector"),
    (rule(recipient=Recipient(RecipientKind.ANY, "acme")), "cannot also name 'acme'"),
    (rule(recipient=Recipient("someone", None)), "'someone' is not a kind of recipient"),  # type: ignore[arg-type]
    (rule(expires=LATER.replace(tzinfo=None)), "has no time zone"),
]


@pytest.mark.parametrize(("bad", "words"), PROBLEMS)
def test_validate_policy_names_each_problem(bad: Rule, words: str) -> None:
    problems = validate_policy(Policy((rule(), bad)))
    assert len(problems) == 1
    assert problems[0].startswith("Rule 2: ")
    assert words in problems[0]


def test_a_sound_policy_has_no_problems() -> None:
    sound = Policy(
        (rule(), rule("*", "*", RETAIL, NEVER, LATER), rule("health", "*", ACME, DIRECT))
    )
    assert validate_policy(sound) == []


def test_policy_to_dict_is_json_safe() -> None:
    policy = Policy((rule(recipient=ACME, expires=datetime(2027, 1, 1, tzinfo=UTC)),), "balanced")
    data = policy_to_dict(policy)
    assert json.loads(json.dumps(data)) == {
        "version": 1,
        "template": "balanced",
        "rules": [
            {
                "category": "interests",
                "purpose": "marketing",
                "recipient": {"kind": "supplier", "value": "acme"},
                "mode": "pseudonymous",
                "expires": "2027-01-01T00:00:00+00:00",
            }
        ],
    }
    assert policy_from_dict(data) == policy


def test_policy_from_dict_accepts_the_short_form() -> None:
    short = {
        "rules": [{"category": "*", "purpose": "*", "recipient": {"kind": "any"}, "mode": "never"}]
    }
    assert policy_from_dict(short) == Policy((rule("*", "*", ANYONE, NEVER),))


GOOD_RULE: dict[str, Any] = {
    "category": "interests",
    "purpose": "marketing",
    "recipient": {"kind": "any", "value": None},
    "mode": "aggregate",
    "expires": None,
}
BAD_INPUT: list[tuple[object, str]] = [
    ([], "policy: expected a mapping, not list"),
    ({}, "policy: missing rules"),
    ({"rules": [], "owner": 1}, "policy: unknown field"),
    ({"rules": [], "version": 2}, "policy.version: 2 is not supported"),
    ({"rules": [], "template": 3}, "policy.template: expected a string or null, not int"),
    ({"rules": "all"}, "policy.rules: expected a list of rules, not str"),
    ({"rules": [None]}, "rules[0]: expected a mapping, not null"),
    ({"rules": [{**GOOD_RULE, "mode": None}]}, "rules[0].mode: expected a string, not null"),
    ({"rules": [{**GOOD_RULE, "mode": "often"}]}, "rules[0].mode: 'often' is not one of never"),
    ({"rules": [{**GOOD_RULE, "category": 7}]}, "rules[0].category: expected a string"),
    ({"rules": [{k: v for k, v in GOOD_RULE.items() if k != "purpose"}]}, "missing purpose"),
    ({"rules": [{**GOOD_RULE, "recipient": "any"}]}, "rules[0].recipient: expected a mapping"),
    ({"rules": [{**GOOD_RULE, "recipient": {"kind": "me"}}]}, "recipient.kind: 'me' is not one of"),
    ({"rules": [{**GOOD_RULE, "recipient": {"kind": "any", "value": 1}}]}, "recipient.value"),
    ({"rules": [{**GOOD_RULE, "expires": "soon"}]}, "rules[0].expires: 'soon' is not an ISO 8601"),
    ({"rules": [{**GOOD_RULE, "expires": "2027-01-01T00:00:00"}]}, "has no time zone offset"),
    ({"rules": [{**GOOD_RULE, "expires": 2027}]}, "expected an ISO 8601 string or null, not int"),
]


@pytest.mark.parametrize(("data", "words"), BAD_INPUT)
def test_policy_from_dict_rejects_bad_input_clearly(data: object, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        policy_from_dict(data)


# -- invariants (hypothesis) ----------------------------------------------------------------

SUPPLIERS = ("acme", "globex")
SECTORS = ("retail", "travel")
SOME_CATEGORIES = ("interests", "identity", "health", "religion")
SOME_PURPOSES = ("marketing", "service")
ASKABLE = (AGG, PSEUDO, DIRECT)
EXPIRIES = (None, None, EARLIER, NOW, LATER, LATER.astimezone(timezone(timedelta(hours=-5))))

recipients = st.one_of(
    st.just(ANYONE),
    st.sampled_from(SECTORS).map(Recipient.sector),
    st.sampled_from(SUPPLIERS).map(Recipient.supplier),
)
rules = st.builds(
    Rule,
    category=st.sampled_from((*SOME_CATEGORIES, "*")),
    purpose=st.sampled_from((*SOME_PURPOSES, "*")),
    recipient=recipients,
    mode=st.sampled_from(Mode),
    expires=st.sampled_from(EXPIRIES),
)
policies = st.lists(rules, max_size=8).map(lambda rs: Policy(tuple(rs)))
requests = st.builds(
    AccessRequest,
    supplier=st.sampled_from(SUPPLIERS),
    sector=st.sampled_from((*SECTORS, None)),
    purpose=st.sampled_from(SOME_PURPOSES),
    categories=st.frozensets(st.sampled_from(SOME_CATEGORIES), min_size=1, max_size=3),
    mode=st.sampled_from(ASKABLE),
)
modest = settings(max_examples=100, deadline=None)


def by_category(verdict: Verdict) -> dict[str, CategoryVerdict]:
    return {v.category: v for v in verdict.categories}


@modest
@given(policy=policies, req=requests, data=st.data())
def test_an_applicable_never_rule_always_denies_its_category(
    policy: Policy, req: AccessRequest, data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(sorted(req.categories)))
    matching = [ANYONE, Recipient.supplier(req.supplier)]
    if req.sector is not None:
        matching.append(Recipient.sector(req.sector))
    never = Rule(
        target,
        data.draw(st.sampled_from((req.purpose, "*"))),
        data.draw(st.sampled_from(matching)),
        NEVER,
        data.draw(st.sampled_from((None, LATER))),
    )
    at = data.draw(st.integers(0, len(policy.rules)))
    before = evaluate(policy, req, NOW)
    after = evaluate(Policy((*policy.rules[:at], never, *policy.rules[at:])), req, NOW)
    assert after.decision is DENY
    assert by_category(after)[target].decision is DENY
    assert never in by_category(after)[target].rules
    others = {c: v for c, v in by_category(before).items() if c != target}
    assert others == {c: v for c, v in by_category(after).items() if c != target}


@modest
@given(policy=policies, req=requests, data=st.data())
def test_removing_an_expired_rule_changes_nothing(
    policy: Policy, req: AccessRequest, data: st.DataObject
) -> None:
    expired = data.draw(
        rules.map(lambda r: Rule(r.category, r.purpose, r.recipient, r.mode, EARLIER))
    )
    at = data.draw(st.integers(0, len(policy.rules)))
    with_it = Policy((*policy.rules[:at], expired, *policy.rules[at:]))
    assert evaluate(with_it, req, NOW) == evaluate(policy, req, NOW)


@modest
@given(policy=policies, req=requests)
def test_granted_modes_are_monotone(policy: Policy, req: AccessRequest) -> None:
    verdicts = {
        mode: evaluate(
            policy, AccessRequest(req.supplier, req.sector, req.purpose, req.categories, mode), NOW
        )
        for mode in ASKABLE
    }
    for higher in ASKABLE:
        for lower in ASKABLE:
            if lower <= higher:
                assert verdicts[lower].allowed_categories() >= verdicts[higher].allowed_categories()
                if verdicts[higher].allowed:
                    assert verdicts[lower].allowed
    # What is permitted does not depend on what was asked.
    permitted = {m: [v.permitted_mode for v in verdicts[m].categories] for m in ASKABLE}
    assert permitted[AGG] == permitted[PSEUDO] == permitted[DIRECT]


def _names_supplier_directly(r: Rule, req: AccessRequest, category: str) -> bool:
    return (
        r.recipient == Recipient.supplier(req.supplier)
        and r.category == category
        and r.mode is DIRECT
        and r.purpose in (req.purpose, "*")
        and (r.expires is None or r.expires > NOW)
    )


@modest
@given(policy=policies, req=requests)
def test_special_categories_go_direct_only_under_a_rule_naming_the_supplier(
    policy: Policy, req: AccessRequest
) -> None:
    direct = AccessRequest(req.supplier, req.sector, req.purpose, req.categories, DIRECT)
    for verdict in evaluate(policy, direct, NOW).categories:
        if CATEGORIES[verdict.category].special and verdict.decision is ALLOW:
            assert verdict.rules
            assert all(_names_supplier_directly(r, req, verdict.category) for r in verdict.rules)
            assert any(_names_supplier_directly(r, req, verdict.category) for r in policy.rules)


any_text = st.text(max_size=12)
any_rules = st.builds(
    Rule,
    category=any_text,
    purpose=any_text,
    recipient=st.builds(Recipient, st.sampled_from(RecipientKind), st.none() | any_text),
    mode=st.sampled_from(Mode),
    expires=st.none()
    | st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=10)), timezone(-timedelta(hours=3, minutes=30))]
        )
    ),
)


@modest
@given(rules=st.lists(any_rules, max_size=6), template=st.none() | any_text)
def test_policy_dict_round_trip(rules: list[Rule], template: str | None) -> None:
    policy = Policy(tuple(rules), template)
    assert policy_from_dict(policy_to_dict(policy)) == policy
    assert policy_from_dict(json.loads(json.dumps(policy_to_dict(policy)))) == policy


@modest
@given(policy=policies, req=requests, data=st.data())
def test_evaluate_ignores_rule_order(
    policy: Policy, req: AccessRequest, data: st.DataObject
) -> None:
    shuffled = Policy(tuple(data.draw(st.permutations(policy.rules))))
    assert evaluate(shuffled, req, NOW) == evaluate(policy, req, NOW)


def test_purposes_include_the_documented_keys() -> None:
    assert {"service", "marketing", "personalisation", "analytics", "research", "rewards"} <= set(
        PURPOSES
    )


# -- exact words of validation and parsing errors --------------------------------------------


def test_validate_policy_reports_every_problem_of_a_rule_in_full() -> None:
    hopeless = Rule(
        "horoscope",
        "harvest",
        Recipient(RecipientKind.SECTOR),
        "often",  # type: ignore[arg-type]
        datetime(2027, 1, 1),  # noqa: DTZ001 (the problem under test)
    )
    assert validate_policy(Policy((hopeless,))) == [
        "Rule 1: 'horoscope' is not a data category (expected '*' or one of identity, "
        "demographics, district, interests, purchases, preferences, account, health, religion, politics, "
        "sexuality, ethnicity, biometrics).",
        "Rule 1: 'harvest' is not a purpose (expected '*' or one of service, marketing, "
        "personalisation, analytics, research, rewards, ai_training).",
        "Rule 1: 'often' is not a mode (expected one of never, aggregate, pseudonymous, direct).",
        "Rule 1: a rule for a sector must say which sector.",
        "Rule 1: the expiry 2027-01-01T00:00:00 has no time zone, so we cannot tell when it "
        "passes.",
    ]


RECIPIENT_PROBLEMS = [
    (Recipient(RecipientKind.SUPPLIER), "a rule for one supplier must say which supplier."),
    (Recipient(RecipientKind.SUPPLIER, ""), "a rule for one supplier must say which supplier."),
    (Recipient(RecipientKind.SECTOR, " "), "a rule for a sector must say which sector."),
    (
        Recipient(RecipientKind.ANY, "acme"),
        "a rule for any supplier cannot also name 'acme'; make it a supplier or sector rule "
        "instead.",
    ),
    (
        Recipient("someone", "acme"),  # type: ignore[arg-type]
        "'someone' is not a kind of recipient (expected one of any, sector, supplier).",
    ),
]


@pytest.mark.parametrize(("recipient", "words"), RECIPIENT_PROBLEMS)
def test_validate_policy_says_what_is_wrong_with_a_recipient(
    recipient: Recipient, words: str
) -> None:
    assert validate_policy(Policy((rule(), rule(recipient=recipient)))) == [f"Rule 2: {words}"]


def test_named_recipients_are_sound() -> None:
    named = (Recipient.anyone(), Recipient.sector("travel"), Recipient.supplier("acme"))
    assert validate_policy(Policy(tuple(rule(recipient=r) for r in named))) == []


BAD_INPUT_WORDS: list[tuple[object, str]] = [
    ({"rules": [{"category": "interests"}]}, "rules[0]: missing mode, purpose, recipient"),
    ({"rules": [], "owner": 1, "colour": 2}, "policy: unknown field(s) colour, owner"),
    ({"rules": [{**GOOD_RULE, "category": 7}]}, "rules[0].category: expected a string, not int"),
    ({"rules": [{**GOOD_RULE, "purpose": 7}]}, "rules[0].purpose: expected a string, not int"),
    (
        {"rules": [GOOD_RULE, {**GOOD_RULE, "recipient": {"kind": "any", "value": 1}}]},
        "rules[1].recipient.value: expected a string or null, not int",
    ),
    (
        {"rules": [{**GOOD_RULE, "mode": "often"}]},
        "rules[0].mode: 'often' is not one of never, aggregate, pseudonymous, direct",
    ),
    (
        {"rules": [{**GOOD_RULE, "recipient": {"kind": "me"}}]},
        "rules[0].recipient.kind: 'me' is not one of any, sector, supplier",
    ),
]


@pytest.mark.parametrize(("data", "words"), BAD_INPUT_WORDS)
def test_policy_from_dict_error_messages_in_full(data: object, words: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        policy_from_dict(data)


def test_a_naive_now_is_refused_with_an_example() -> None:
    with pytest.raises(
        ValueError, match=r"^now must be timezone-aware, for example datetime\.now\(UTC\)$"
    ):
        evaluate(Policy(()), request(), datetime(2026, 6, 1))  # noqa: DTZ001 (under test)


def test_describe_rule_names_what_it_cannot_read() -> None:
    odd = Rule("interests", "*", Recipient(RecipientKind.SECTOR), "often")  # type: ignore[arg-type]
    assert (
        describe_rule(odd)
        == "Interests, for any purpose, by suppliers in the unnamed sector: 'often'"
    )


# -- time zones that give no offset ----------------------------------------------------------


class _NoOffset(tzinfo):
    """A tzinfo whose utcoffset is None: Python counts such a datetime as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "nowhere"


def test_a_time_zone_without_an_offset_counts_as_none() -> None:
    nowhere = LATER.replace(tzinfo=_NoOffset())
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(Policy(()), request(), NOW.replace(tzinfo=_NoOffset()))
    # Such an expiry can deny but never allows, like any naive one.
    assert decide([rule(expires=nowhere)]).decision is NA
    assert decide([rule(mode=NEVER, expires=nowhere), rule(recipient=ACME)]).decision is DENY
    assert validate_policy(Policy((rule(expires=nowhere),))) == [
        f"Rule 1: the expiry {nowhere.isoformat()} has no time zone, so we cannot tell when it "
        "passes."
    ]
    with pytest.raises(ValueError, match="has no time zone offset"):
        policy_from_dict({"rules": [{**GOOD_RULE, "expires": nowhere}]})


# -- names that mean two things --------------------------------------------------------------


@pytest.mark.parametrize(
    "impostor",
    [Recipient.sector("acme"), Recipient(RecipientKind.ANY, "acme")],
    ids=["a sector named like the supplier", "an any-supplier rule naming it"],
)
def test_only_a_supplier_rule_names_the_supplier_for_a_special_category(
    impostor: Recipient,
) -> None:
    req = AccessRequest("acme", "acme", "marketing", frozenset({"health"}), DIRECT)
    verdict = only(decide([rule("health", recipient=impostor, mode=DIRECT)], req))
    assert verdict.decision is DENY
    assert verdict.permitted_mode is PSEUDO
    allowed = only(decide([rule("health", recipient=Recipient.supplier("acme"), mode=DIRECT)], req))
    assert allowed.decision is ALLOW


TIES = [
    (
        "a sector and a supplier of the same name",
        [rule(recipient=Recipient.sector("acme"), mode=NEVER), rule(recipient=ACME, mode=NEVER)],
        AccessRequest("acme", "acme", "marketing", frozenset({"interests"}), PSEUDO),
    ),
    (
        "any-supplier rules with different stray names",
        [
            rule(recipient=Recipient(RecipientKind.ANY, "x"), mode=AGG),
            rule(recipient=Recipient(RecipientKind.ANY, "y"), mode=AGG),
        ],
        request(mode=AGG),
    ),
    (
        "an any-supplier rule with and without a stray name",
        [rule(mode=AGG), rule(recipient=Recipient(RecipientKind.ANY, "x"), mode=AGG)],
        request(mode=AGG),
    ),
    (
        "twins but for their expiry",
        [rule(expires=LATER), rule(expires=NOW + timedelta(days=60))],
        request(),
    ),
    ("twins, one without expiry", [rule(), rule(expires=LATER)], request()),
    (
        "never rules differing in purpose and category",
        [rule(purpose="*", mode=NEVER), rule(category="*", mode=NEVER), rule(mode=NEVER)],
        request(),
    ),
]


@pytest.mark.parametrize(("rules", "req"), [c[1:] for c in TIES], ids=[c[0] for c in TIES])
def test_rules_that_decide_together_are_named_in_one_order_whatever_the_policy_says(
    rules: list[Rule], req: AccessRequest
) -> None:
    verdicts = {order: evaluate(Policy(order), req, NOW) for order in itertools.permutations(rules)}
    first = next(iter(verdicts.values()))
    assert set(first.deciding_rules()) == set(rules)
    assert all(v == first for v in verdicts.values())


_CATEGORY_NAMES = sorted(CATEGORIES)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*_CATEGORY_NAMES, "*"]),
            st.sampled_from([NEVER, AGG, PSEUDO, DIRECT]),
            st.sampled_from([ANYONE, ACME, RETAIL]),
        ),
        max_size=6,
    ),
    st.sets(st.sampled_from(_CATEGORY_NAMES), min_size=1),
    st.sets(st.sampled_from(_CATEGORY_NAMES)),
)
def test_restricting_a_verdict_equals_deciding_the_smaller_request(
    rules: list[tuple[str, Mode, Recipient]], asked: set[str], kept: set[str]
) -> None:
    """One evaluation answers a request for part of its categories exactly as its own would."""
    policy = [rule(category, mode=mode, recipient=who) for category, mode, who in rules]
    whole = decide(policy, request(*sorted(asked)))
    part = sorted(asked & kept)
    restricted = restrict(whole, frozenset(kept))
    if part:
        assert restricted == decide(policy, request(*part))
    else:
        assert restricted.decision is DENY
        assert restricted.categories == ()
