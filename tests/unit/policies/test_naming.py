"""The engine names the supplier in words, never by its id; a blocked supplier opens nothing;
each purpose has its W3C DPV term."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from infomediary.audit.reasons import Reason, render, verdict_param
from policies.engine import evaluate
from policies.model import (
    PURPOSE_DPV,
    PURPOSES,
    AccessRequest,
    Decision,
    Mode,
    Policy,
    Recipient,
    Rule,
)
from policies.validation import describe_rule

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SUPPLIER_ID = "0e426b19-35e4-44ec-8b32-0dee53afc008"
NAME = "Acme Books (verified)"
ACME = Recipient.supplier(SUPPLIER_ID)
ANYONE = Recipient.anyone()


def ask(*categories: str, mode: Mode = Mode.DIRECT, **extra: object) -> AccessRequest:
    return AccessRequest(
        SUPPLIER_ID,
        "retail",
        "marketing",
        frozenset(categories),
        mode,
        supplier_name=str(extra.get("name", NAME)),
        blocked=bool(extra.get("blocked", False)),
    )


CASES = {
    "no rule applies": ((), ask("interests")),
    "a never rule": ((Rule("interests", "marketing", ANYONE, Mode.NEVER),), ask("interests")),
    "a never rule for this supplier": (
        (Rule("interests", "marketing", ACME, Mode.NEVER),),
        ask("interests"),
    ),
    "allowed by a supplier rule": (
        (Rule("identity", "marketing", ACME, Mode.DIRECT),),
        ask("identity"),
    ),
    "denied by mode": (
        (Rule("identity", "marketing", ANYONE, Mode.PSEUDONYMOUS),),
        ask("identity"),
    ),
    "a special category capped": (
        (Rule("health", "marketing", ANYONE, Mode.DIRECT),),
        ask("health"),
    ),
    "several rules": (
        (
            Rule("interests", "marketing", ACME, Mode.PSEUDONYMOUS),
            Rule("interests", "*", ACME, Mode.PSEUDONYMOUS),
        ),
        ask("interests", mode=Mode.PSEUDONYMOUS),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_sentence_names_the_supplier_by_name_and_never_by_id(case: str) -> None:
    rules, request = CASES[case]
    verdict = evaluate(Policy(rules), request, NOW)
    assert NAME in verdict.reason
    assert SUPPLIER_ID not in verdict.reason
    for item in verdict.categories:
        assert NAME in item.reason, item.reason
        assert SUPPLIER_ID not in item.reason


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_log_renders_the_same_sentence_with_the_name(case: str) -> None:
    rules, request = CASES[case]
    verdict = evaluate(Policy(rules), request, NOW)
    param = verdict_param(verdict, supplier=SUPPLIER_ID, purpose="marketing", mode=request.mode)
    data = Reason("resource.read_refused", {"verdict": json.loads(json.dumps(param))}).to_json()
    shown = render(data, "", lambda sid: NAME if sid == SUPPLIER_ID else "someone else")
    assert shown == verdict.reason


def test_a_rule_for_this_supplier_is_quoted_with_its_name() -> None:
    rules = (Rule("identity", "marketing", ACME, Mode.DIRECT),)
    verdict = evaluate(Policy(rules), ask("identity"), NOW)
    assert f"'Identity, for marketing, by {NAME}: with your name'" in verdict.reason


def test_without_a_name_the_engine_still_names_the_id() -> None:
    request = AccessRequest(SUPPLIER_ID, None, "marketing", frozenset({"interests"}), Mode.DIRECT)
    verdict = evaluate(Policy(()), request, NOW)
    assert SUPPLIER_ID in verdict.reason
    assert request.who == SUPPLIER_ID


def test_describe_rule_names_a_supplier_from_the_mapping() -> None:
    until = NOW + timedelta(days=30)
    rule = Rule("identity", "service", ACME, Mode.DIRECT, until)
    assert describe_rule(rule, {SUPPLIER_ID: NAME}) == (
        f"Identity, for providing the service you asked for, by {NAME}: with your name "
        "(until 1 Jul 2026)"
    )
    assert describe_rule(rule, {"someone-else": "Other"}) == describe_rule(rule)
    assert f"supplier {SUPPLIER_ID}" in describe_rule(rule)


def test_a_blocked_supplier_is_denied_everything_whatever_the_rules_allow() -> None:
    rules = (
        Rule("identity", "marketing", ACME, Mode.DIRECT),
        Rule("interests", "*", ANYONE, Mode.DIRECT),
    )
    open_verdict = evaluate(Policy(rules), ask("identity", "interests"), NOW)
    assert open_verdict.allowed
    assert not open_verdict.blocked
    verdict = evaluate(Policy(rules), ask("identity", "interests", blocked=True), NOW)
    assert verdict.decision is Decision.DENY
    assert verdict.blocked
    assert verdict.allowed_categories() == frozenset()
    for item in verdict.categories:
        assert item.reason.startswith(f"You blocked {NAME}, so {NAME} may not use your ")
        assert item.rules == ()
    assert SUPPLIER_ID not in verdict.reason


def test_a_blocked_verdict_is_logged_as_blocked_and_rendered_as_the_engine_said() -> None:
    verdict = evaluate(Policy(()), ask("identity", blocked=True), NOW)
    param = verdict_param(verdict, supplier=SUPPLIER_ID, purpose="marketing")
    assert param["blocked"] is True
    data = Reason("resource.read_refused", {"verdict": param}).to_json()
    assert render(data, "", lambda _: NAME) == verdict.reason
    assert "blocked" not in verdict_param(
        evaluate(Policy(()), ask("identity"), NOW), supplier=SUPPLIER_ID, purpose="marketing"
    )


def test_every_purpose_has_a_dpv_term() -> None:
    assert set(PURPOSE_DPV) == set(PURPOSES)
    assert PURPOSE_DPV["service"] == "dpv:ServiceProvision"
    assert PURPOSE_DPV["marketing"] == "dpv:Marketing"
    assert PURPOSE_DPV["research"] == "dpv:ResearchAndDevelopment"
    for term in PURPOSE_DPV.values():
        assert re.fullmatch(r"dpv:[A-Z][A-Za-z]+", term), term
