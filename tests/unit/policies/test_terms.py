"""The MyTerms roster: the shipped file loads, means what its summaries say, and a bad file is
refused with one line naming the problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policies.engine import evaluate
from policies.model import PURPOSE_DPV, PURPOSES, AccessRequest, Decision, Mode, Policy, Rule
from policies.model import Recipient as R
from policies.taxonomy import CATEGORIES
from policies.terms import (
    DEFAULT_AGREEMENT,
    NOT_OFFICIAL_NOTE,
    Agreement,
    Roster,
    load_roster,
    parse_roster,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHIPPED = Path(__file__).parents[3] / "policies" / "myterms" / "roster.json"
SPECIAL = sorted(k for k, c in CATEGORIES.items() if c.special)


def shipped_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SHIPPED.read_text(encoding="utf-8"))
    return data


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "roster.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def decide(
    rules: tuple[Rule, ...], purpose: str, category: str, supplier: str = "acme"
) -> Decision:
    """An access the supplier would otherwise have (a grant-like direct rule for it), under
    the agreement's rules."""
    grant = Rule(category, purpose, R.supplier(supplier), Mode.DIRECT)
    request = AccessRequest(supplier, "retail", purpose, frozenset({category}), Mode.DIRECT)
    return evaluate(Policy((grant, *rules)), request, NOW).decision


def test_the_shipped_roster_holds_the_five_agreements() -> None:
    roster = load_roster()
    assert roster.ids() == (
        "sd-base",
        "sd-base-dp",
        "no-ai-training",
        "goods-services-only",
        "intent",
    )
    assert roster.default_id() == DEFAULT_AGREEMENT == "sd-base"
    for agreement in roster.agreements():
        assert isinstance(agreement, Agreement)
        assert agreement.official is False
        assert agreement.note == NOT_OFFICIAL_NOTE
        assert agreement.summary
        assert agreement.title
        assert agreement.kind
        assert agreement.rules
        assert all(r.mode == Mode.NEVER for r in agreement.rules)
        assert agreement.id in roster
        assert roster.get(agreement.id) is agreement
    assert "nope" not in roster
    assert roster.get("nope") is None
    assert len(roster) == 5
    assert list(roster) == list(roster.agreements())


def test_ai_training_is_a_purpose_with_words_and_a_dpv_name() -> None:
    assert "ai_training" in PURPOSES
    assert PURPOSE_DPV["ai_training"].startswith("dpv:")
    assert set(PURPOSES) == set(PURPOSE_DPV)


def test_no_ai_training_refuses_ai_training_even_with_a_grant_and_nothing_else() -> None:
    rules = load_roster().get("no-ai-training").rules_for("acme")  # type: ignore[union-attr]
    for category in ("interests", "purchases", "health"):
        assert decide(rules, "ai_training", category) == Decision.DENY
        assert decide(rules, "marketing", category) == Decision.ALLOW
    # the rules are for that supplier only: another supplier is not bound by acme's agreement
    assert decide(rules, "ai_training", "interests", supplier="other") == Decision.ALLOW


@pytest.mark.parametrize(
    ("agreement_id", "purpose", "category", "expected"),
    [
        ("sd-base", "service", "interests", Decision.ALLOW),
        ("sd-base", "marketing", "interests", Decision.DENY),
        ("sd-base", "rewards", "purchases", Decision.DENY),
        ("sd-base", "research", "health", Decision.DENY),
        ("sd-base", "service", "health", Decision.ALLOW),
        ("sd-base-dp", "service", "health", Decision.DENY),
        ("sd-base-dp", "service", "biometrics", Decision.DENY),
        ("sd-base-dp", "service", "identity", Decision.ALLOW),
        ("goods-services-only", "rewards", "purchases", Decision.ALLOW),
        ("goods-services-only", "marketing", "purchases", Decision.DENY),
        ("goods-services-only", "ai_training", "district", Decision.DENY),
        ("intent", "service", "demographics", Decision.ALLOW),
        ("intent", "personalisation", "demographics", Decision.DENY),
        ("intent", "analytics", "demographics", Decision.ALLOW),
    ],
)
def test_each_agreement_means_what_its_summary_says(
    agreement_id: str, purpose: str, category: str, expected: Decision
) -> None:
    agreement = load_roster().get(agreement_id)
    assert agreement is not None
    assert decide(agreement.rules_for("acme"), purpose, category) == expected


def test_a_wildcard_rule_also_covers_every_special_category_by_name() -> None:
    bound = load_roster().get("no-ai-training").rules_for("s1")  # type: ignore[union-attr]
    assert {r.category for r in bound} == {"*", *SPECIAL}
    assert all(r.recipient == R.supplier("s1") and r.mode == Mode.NEVER for r in bound)


def test_to_dict_lists_the_rules_and_says_it_is_not_the_official_text() -> None:
    form = load_roster().get("no-ai-training").to_dict()  # type: ignore[union-attr]
    assert form["official"] is False
    assert form["note"] == NOT_OFFICIAL_NOTE
    assert form["rules"] == [{"category": "*", "purpose": "ai_training", "mode": "never"}]


def test_a_replacement_roster_loads_from_a_path(tmp_path: Path) -> None:
    data = shipped_data()
    data["agreements"] = [data["agreements"][2]]
    roster = load_roster(write(tmp_path, data))
    assert roster.ids() == ("no-ai-training",)
    assert roster.default_id() == "no-ai-training"  # no sd-base: the first one


def _broken(change: str) -> object:
    data = shipped_data()
    first = data["agreements"][0]
    if change == "not_never":
        first["rules"][0]["mode"] = "direct"
    elif change == "unknown_purpose":
        first["rules"][0]["purpose"] = "spying"
    elif change == "unknown_category":
        first["rules"][0]["category"] = "shoe_size"
    elif change == "duplicate":
        data["agreements"].append(dict(first))
    elif change == "bad_id":
        first["id"] = "Not An Id"
    elif change == "long_summary":
        first["summary"] = "x" * 601
    elif change == "extra_field":
        first["grants"] = ["everything"]
    elif change == "no_rules":
        first["rules"] = []
    elif change == "version":
        data["version"] = 2
    elif change == "empty":
        data["agreements"] = []
    elif change == "not_object":
        return ["a list"]
    return data


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("not_never", "only restricts"),
        ("unknown_purpose", "'spying' is not a purpose"),
        ("unknown_category", "'shoe_size' is not a data category"),
        ("duplicate", "appears twice"),
        ("bad_id", "lowercase letters"),
        ("long_summary", "longer than 600"),
        ("extra_field", "unknown field(s) grants"),
        ("no_rules", "non-empty list"),
        ("version", "not supported"),
        ("empty", "non-empty list"),
        ("not_object", "expected an object"),
    ],
)
def test_a_bad_roster_is_refused_in_one_line(tmp_path: Path, change: str, words: str) -> None:
    path = write(tmp_path, _broken(change))
    with pytest.raises(ValueError, match="terms roster") as caught:
        load_roster(path)
    message = str(caught.value)
    assert words in message
    assert str(path) in message
    assert "\n" not in message


def test_an_unreadable_or_non_json_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        load_roster(tmp_path / "missing.json")
    path = tmp_path / "roster.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not JSON"):
        load_roster(path)


def test_a_roster_with_duplicate_ids_cannot_be_built() -> None:
    one = parse_roster(shipped_data()).agreements()[0]
    with pytest.raises(ValueError, match="unique"):
        Roster((one, one))
