"""Structured reasons: the catalogue, construction, JSON, and rendering when shown.

A reason is what a format-2 entry commits to, so its code must exist and its parameters must
fill its template when it is made; rendering turns supplier ids into names and policy
verdicts into the engine's own sentences, and never cuts anything.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infomediary.audit.reasons import (
    CATALOGUE,
    Reason,
    describe_rules,
    describe_verdict,
    fields_of,
    reason_of,
    render,
    rule_param,
    supplier_ids,
    verdict_param,
)
from policies.engine import evaluate
from policies.model import AccessRequest, Mode, Policy, Recipient, Rule
from tests.unit.policies.test_reasons import REASONS

SOURCE = Path(__file__).resolve().parents[4] / "infomediary"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NAMES = {"acme": "Acme Books", "globex": "Globex (verified)"}


def name_of(supplier_id: str) -> str:
    return NAMES.get(supplier_id, "a supplier no longer registered")


def _reason_calls() -> list[tuple[str, int, str, frozenset[str] | None]]:
    """Every ``Reason("code", {...})`` in the package: file, line, code and, when the
    parameters are a dict literal, their names (None when they are built otherwise)."""
    found: list[tuple[str, int, str, frozenset[str] | None]] = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Reason"
                and node.args
            ):
                continue
            first = node.args[0]
            # a code, or one of two codes (``Reason("a.on" if on else "a.off")``)
            branches = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
            codes = [b.value for b in branches if isinstance(b, ast.Constant)]
            if len(codes) == len(branches) and all(isinstance(c, str) for c in codes):
                names: frozenset[str] | None = frozenset()
                if len(node.args) > 1:
                    params = node.args[1]
                    if isinstance(params, ast.Dict) and all(
                        isinstance(k, ast.Constant) for k in params.keys
                    ):
                        names = frozenset(str(k.value) for k in params.keys)  # type: ignore[union-attr]
                    else:
                        names = None
                found.extend((path.name, node.lineno, str(code), names) for code in codes)
    return found


def test_the_package_makes_reasons_with_codes_of_the_catalogue_only() -> None:
    calls = _reason_calls()
    assert len(calls) > 60  # every family of use cases writes structured reasons
    unknown = [(f, line, code) for f, line, code, _ in calls if code not in CATALOGUE]
    assert unknown == []


def test_each_reason_made_in_the_package_gives_every_parameter_its_template_needs() -> None:
    """(A reason may carry more than its English sentence says, for a machine to read.)"""
    wrong = [
        (f, line, code, sorted(names), sorted(fields_of(CATALOGUE[code])))
        for f, line, code, names in _reason_calls()
        if names is not None and not fields_of(CATALOGUE[code]) <= names
    ]
    assert wrong == []


def test_every_catalogue_code_is_used_somewhere() -> None:
    used = {code for _, _, code, _ in _reason_calls()} | {"text"}
    ours = {code for code in CATALOGUE if not code.startswith("auditor.")}  # auditors' own
    assert sorted(ours - used) == []


def test_no_use_case_writes_a_rendered_sentence_to_the_log() -> None:
    """A ``reason=`` given to the log is a Reason (or a variable holding one), never an
    f-string or a literal sentence."""
    sentences = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.parent.name in ("audit", "tlog"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "reason"
                and isinstance(node.value, ast.Constant | ast.JoinedStr | ast.BinOp)
            ):
                sentences.append((path.name, node.value.lineno))
    assert sentences == []


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_template_renders_with_its_parameters(code: str) -> None:
    params = {name: f"<{name}>" for name in fields_of(CATALOGUE[code])}
    if "epsilon" in params:
        params["epsilon"] = 0.25  # type: ignore[assignment]
    if "verdict" in params:
        verdict = evaluate(Policy(()), _ask("acme"), NOW)
        params["verdict"] = verdict_param(verdict, supplier="acme", purpose="marketing")  # type: ignore[assignment]
    if "cause" in params:
        params["cause"] = Reason("token.refused").param()  # type: ignore[assignment]
    shown = render(Reason(code, params).to_json(), "", name_of)
    assert shown
    assert "{" not in shown
    assert "}" not in shown
    for name, value in params.items():
        if isinstance(value, str) and name != "supplier" and not name.endswith("_supplier"):
            assert value in shown


def test_an_unknown_code_is_refused_when_the_reason_is_made() -> None:
    with pytest.raises(ValueError, match=r"unknown reason code 'account\.hacked'"):
        Reason("account.hacked")


def test_a_missing_parameter_is_refused_when_the_reason_is_made() -> None:
    with pytest.raises(ValueError, match=r"'purchases\.imported' needs duplicates, format"):
        Reason("purchases.imported", {"imported": 3, "rejected": 0})


def test_json_is_canonical_and_round_trips() -> None:
    reason = Reason("purchases.line_deleted", {"lines": 2})
    assert reason.to_json() == '{"code":"purchases.line_deleted","params":{"lines":2}}'
    assert Reason.from_json(reason.to_json()) == reason
    assert Reason("account.created").to_json() == '{"code":"account.created"}'
    assert reason_of("a sentence") == Reason("text", {"text": "a sentence"})
    assert reason_of(reason) is reason


def test_suppliers_are_rendered_by_name_and_an_unknown_one_as_no_longer_registered() -> None:
    data = Reason("consent.granted", {"supplier": "acme"}).to_json()
    assert render(data, "", name_of) == "consent granted for Acme Books"
    assert render(data) == "consent granted for acme"  # no names given: the id
    gone = Reason("offers.blocked", {"supplier": "0e426b19"}).to_json()
    assert render(gone, "", name_of) == (
        "a supplier no longer registered blocked: no more offers or counts"
    )


def test_a_format_1_entry_shows_its_stored_sentence() -> None:
    assert render(None, "profile viewed", name_of) == "profile viewed"
    assert render("", "wrong password") == "wrong password"
    assert render("not json", "kept") == "kept"
    broken = json.dumps({"code": "purchases.line_deleted", "params": {}})
    assert render(broken, "") == "purchases.line_deleted"  # never a crash on a page


def test_a_long_reason_is_rendered_whole() -> None:
    rules = tuple(
        Rule(c, "marketing", Recipient.supplier("acme"), Mode.NEVER)
        for c in ("identity", "demographics", "interests", "preferences", "purchases")
    )
    request = AccessRequest(
        "acme",
        "retail",
        "marketing",
        frozenset({"identity", "demographics", "interests", "preferences", "purchases"}),
        Mode.DIRECT,
    )
    verdict = evaluate(Policy(rules), request, NOW)
    param = verdict_param(verdict, supplier="acme", purpose="marketing")
    data = Reason("resource.read_refused", {"verdict": param}).to_json()
    shown = render(data, "", name_of)
    assert len(shown) > 800
    assert shown.endswith("for marketing, whatever your other rules allow.")
    assert shown.count("Acme Books") == 10  # each rule names the supplier, and each sentence
    assert "acme" not in shown


def test_a_nested_cause_is_rendered_inside_its_reason() -> None:
    cause = Reason("tokens.by_supplier", {"supplier": "globex"})
    data = Reason("tokens.revoked", {"cause": cause.param(), "count": 2}).to_json()
    assert (
        render(data, "", name_of)
        == "token revoked by Globex (verified) (RFC 7009); 2 tokens revoked"
    )
    assert supplier_ids(data) == {"globex"}


def test_lists_are_joined_and_scopes_spaced_as_oauth_writes_them() -> None:
    data = Reason("keys.removed", {"versions": [1, 2]}).to_json()
    assert render(data) == "KEK version(s) 1, 2 removed from the keyring"
    scopes = Reason("token.scope_taken_back", {"scopes": ["audience:count", "offers:send"]})
    assert render(scopes.to_json()) == (
        "scope audience:count offers:send no longer granted to this supplier"
    )


def test_rules_are_quoted_in_words_their_supplier_by_name() -> None:
    rules = [
        rule_param(Rule("interests", "marketing", Recipient.anyone(), Mode.NEVER)),
        rule_param(Rule("identity", "*", Recipient.supplier("acme"), Mode.DIRECT)),
        rule_param(
            Rule("demographics", "service", Recipient.sector("travel"), Mode.AGGREGATE, NOW)
        ),
    ]
    assert describe_rules(rules, name_of) == (
        "'Interests, for marketing, by any supplier: never', "
        "'Identity, for any purpose, by Acme Books: with your name' and "
        "'Demographics, for providing the service you asked for, by suppliers in the travel "
        "sector: only in anonymous counts (until 1 Jun 2026)'"
    )
    assert "by supplier acme: with your name" in describe_rules(rules)


def test_supplier_ids_are_found_in_verdicts_and_rules() -> None:
    rules = (Rule("identity", "service", Recipient.supplier("globex"), Mode.DIRECT),)
    verdict = evaluate(Policy(rules), _ask("acme", "identity"), NOW)
    param = verdict_param(verdict, supplier="acme", purpose="marketing")
    data = Reason("resource.read_refused", {"verdict": param}).to_json()
    assert supplier_ids(data) == {"acme"}  # globex's rule did not decide
    verdict = evaluate(Policy(rules), _ask("globex", "identity", purpose="service"), NOW)
    param = verdict_param(verdict, supplier="globex", purpose="service")
    data = Reason("resource.read", {"verdict": param}).to_json()
    assert supplier_ids(data) == {"globex"}
    assert supplier_ids(None) == set()
    assert supplier_ids("[]") == set()


def _ask(supplier: str, *categories: str, purpose: str = "marketing") -> AccessRequest:
    return AccessRequest(
        supplier, "retail", purpose, frozenset(categories or ("interests",)), Mode.DIRECT
    )


# -- verdicts: the engine's words, rebuilt from the structured verdict -------------------------


@pytest.mark.parametrize(
    ("rules", "request_"), [(r[1], r[2]) for r in REASONS], ids=[r[0] for r in REASONS]
)
def test_a_verdict_renders_as_the_engine_explained_it(
    rules: list[Rule], request_: AccessRequest
) -> None:
    verdict = evaluate(Policy(tuple(rules)), request_, NOW)
    param = verdict_param(
        verdict, supplier=request_.supplier, purpose=request_.purpose, mode=request_.mode
    )
    assert describe_verdict(json.loads(json.dumps(param))) == verdict.reason


SUPPLIERS = ("acme", "globex")
LATER = NOW + timedelta(days=30)
rule_strategy = st.builds(
    Rule,
    category=st.sampled_from(("interests", "identity", "health", "religion", "district", "*")),
    purpose=st.sampled_from(("marketing", "service", "*")),
    recipient=st.one_of(
        st.just(Recipient.anyone()),
        st.sampled_from(("retail", "travel")).map(Recipient.sector),
        st.sampled_from(SUPPLIERS).map(Recipient.supplier),
    ),
    mode=st.sampled_from(Mode),
    expires=st.sampled_from(
        (None, LATER, NOW - timedelta(days=1), LATER.astimezone(timezone(timedelta(hours=-5))))
    ),
)
request_strategy = st.builds(
    AccessRequest,
    supplier=st.sampled_from(SUPPLIERS),
    sector=st.sampled_from(("retail", "travel", None)),
    purpose=st.sampled_from(("marketing", "service", "astrology")),
    categories=st.frozensets(
        st.sampled_from(("interests", "identity", "health", "district", "shoe_size")), max_size=3
    ),
    mode=st.sampled_from(Mode),
)


@settings(max_examples=300, deadline=None)
@given(rules=st.lists(rule_strategy, max_size=8), request_=request_strategy)
def test_any_verdict_renders_as_the_engine_explained_it(
    rules: list[Rule], request_: AccessRequest
) -> None:
    verdict = evaluate(Policy(tuple(rules)), request_, NOW)
    param = verdict_param(
        verdict, supplier=request_.supplier, purpose=request_.purpose, mode=request_.mode
    )
    data = Reason("resource.read_refused", {"verdict": param}).to_json()
    assert render(data) == verdict.reason
    named = render(data, "", name_of)
    assert request_.supplier not in named.replace("supplier", "")  # every mention is a name
