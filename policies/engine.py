"""The policy evaluator: a pure function of (policy, request, now) that explains itself.

Policies are evaluated on every access, not only when a grant is made, so a grant can never
exceed the policy in force at the moment of the access. The evaluation order is drawn in
``policies/README.md``; each step below names the step it implements. Anything the
evaluator cannot understand (an unknown category or purpose, a rule whose expiry has no time
zone) fails closed: it can deny but never allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from policies.codec import policy_from_dict as policy_from_dict
from policies.codec import policy_to_dict as policy_to_dict
from policies.model import (
    PURPOSES,
    WILDCARD,
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
from policies.taxonomy import CATEGORIES, Category
from policies.validation import _is_aware
from policies.validation import describe_rule as describe_rule
from policies.validation import validate_policy as validate_policy

# The storage form (policies.codec) and rules in words (policies.validation) live in their own
# modules; their names are re-exported here, where callers import them from.

_RECIPIENT_RANK: dict[RecipientKind, int] = {
    RecipientKind.ANY: 0,
    RecipientKind.SECTOR: 1,
    RecipientKind.SUPPLIER: 2,
}


# -- evaluation ---------------------------------------------------------------------------


def evaluate(policy: Policy, request: AccessRequest, now: datetime) -> Verdict:
    """Decide ``request`` against ``policy`` at instant ``now`` (timezone-aware).

    One :class:`CategoryVerdict` per requested category, sorted by category. The request is
    allowed only if every category is; a request naming no categories is denied.
    """
    if not _is_aware(now):
        raise ValueError("now must be timezone-aware, for example datetime.now(UTC)")
    # A canonical rule order makes the verdict (rules named, reasons) independent of the
    # order in which the customer wrote the rules.
    rules = tuple(sorted(policy.rules, key=_rule_key))
    verdicts = tuple(
        _evaluate_category(rules, request, category, now) for category in sorted(request.categories)
    )
    decision = _combine(verdicts)
    return Verdict(decision, verdicts, _overall_reason(decision, verdicts), blocked=request.blocked)


def restrict(verdict: Verdict, categories: frozenset[str]) -> Verdict:
    """The verdict ``evaluate`` gives the same request for only ``categories`` (of those it
    decided): each category is decided on its own, so one evaluation can answer several
    requests that differ only in their categories."""
    kept = tuple(v for v in verdict.categories if v.category in categories)
    decision = _combine(kept)
    return Verdict(decision, kept, _overall_reason(decision, kept), blocked=verdict.blocked)


def _evaluate_category(
    rules: Sequence[Rule], request: AccessRequest, category: str, now: datetime
) -> CategoryVerdict:
    info = CATEGORIES.get(category)
    if info is None:
        return _denied(
            category, f"{category!r} is not a data category we know, so it is not shared."
        )
    label = info.label.lower()
    if request.purpose not in PURPOSES:
        return _denied(
            category,
            f"{request.purpose!r} is not a purpose we know, so your {label} is not shared.",
        )
    if request.mode == Mode.NEVER:
        return _denied(category, "A request must ask for some kind of access, not 'never'.")
    purpose = PURPOSES[request.purpose]
    who = request.who
    # Rules quote the supplier by the same name (unnamed, "supplier <id>" as before).
    names = {request.supplier: request.supplier_name} if request.supplier_name else {}

    # Step 0: a supplier the customer blocked opens nothing, whatever a rule or grant says.
    if request.blocked:
        return _denied(
            category,
            f"You blocked {who}, so {who} may not use your {label} for {purpose}, whatever "
            "your rules and consents allow.",
        )

    # Step 1: the rules that apply to this category, purpose, recipient and instant.
    applicable = tuple(r for r in rules if _applies(r, request, category, info, now))

    # Step 2: default deny.
    if not applicable:
        return CategoryVerdict(
            category,
            Decision.NOT_APPLICABLE,
            Mode.NEVER,
            (),
            f"None of your rules lets {who} use your {label} for {purpose}, so it is not shared.",
        )

    # Step 3: deny overrides, whatever else applies.
    denying = tuple(r for r in applicable if r.mode == Mode.NEVER)
    if denying:
        says = "says" if len(denying) == 1 else "say"
        return CategoryVerdict(
            category,
            Decision.DENY,
            Mode.NEVER,
            denying,
            f"{_your_rules(denying, names)} {says} never, so {who} may not use your {label} for "
            f"{purpose}, whatever your other rules allow.",
        )

    # Step 4: the most specific rules decide; among equals, the least identifying mode.
    top = max(_specificity(r) for r in applicable)
    specific = [r for r in applicable if _specificity(r) == top]
    permitted = min(r.mode for r in specific)
    deciding = tuple(r for r in specific if r.mode == permitted)

    # Step 5: special categories go out with a name only under a rule naming this supplier.
    capped = (
        info.special
        and permitted == Mode.DIRECT
        and not any(_names_supplier_directly(r, request, category) for r in deciding)
    )
    if capped:
        permitted = Mode.PSEUDONYMOUS

    # Step 6: the requested mode must not exceed the permitted one.
    action = _action(request.mode, label)
    if request.mode <= permitted:
        allows = "allows" if len(deciding) == 1 else "allow"
        reason = f"{_your_rules(deciding, names)} {allows} {who} to {action}."
        return CategoryVerdict(category, Decision.ALLOW, permitted, deciding, reason)
    if capped:
        allows = "allows" if len(deciding) == 1 else "allow"
        reason = (
            f"{info.label} is a special category and none of your rules names {who} for it, "
            f"so {who} may not {action}: {_your_rules(deciding, names, lower=True)} {allows} use "
            f"{permitted.label}."
        )
    else:
        verb = "does" if len(deciding) == 1 else "do"
        reason = (
            f"{_your_rules(deciding, names)} {verb} not allow {who} to {action}: "
            f"{'it allows' if len(deciding) == 1 else 'they allow'} use {permitted.label}."
        )
    return CategoryVerdict(category, Decision.DENY, permitted, deciding, reason)


def _applies(
    rule: Rule, request: AccessRequest, category: str, info: Category, now: datetime
) -> bool:
    # "*" never covers a special category, and covers an explicit one only to deny it.
    if rule.category == WILDCARD:
        covers = not info.special and (not info.explicit or rule.mode == Mode.NEVER)
    else:
        covers = rule.category == category
    return (
        covers
        and rule.purpose in (WILDCARD, request.purpose)
        and _recipient_matches(rule.recipient, request)
        and _in_force(rule, now)
    )


def _recipient_matches(recipient: Recipient, request: AccessRequest) -> bool:
    if recipient.kind == RecipientKind.ANY:
        return True
    if recipient.value is None:
        return False
    if recipient.kind == RecipientKind.SECTOR:
        return recipient.value == request.sector
    return recipient.kind == RecipientKind.SUPPLIER and recipient.value == request.supplier


def _in_force(rule: Rule, now: datetime) -> bool:
    if rule.expires is None:
        return True
    if not _is_aware(rule.expires):
        # An expiry without a time zone cannot be compared with now: fail closed, so such a
        # rule may still deny but never allows.
        return rule.mode == Mode.NEVER
    return rule.expires > now


def _specificity(rule: Rule) -> tuple[int, bool, bool]:
    return (
        _RECIPIENT_RANK[rule.recipient.kind],
        rule.category != WILDCARD,
        rule.purpose != WILDCARD,
    )


def _names_supplier_directly(rule: Rule, request: AccessRequest, category: str) -> bool:
    return (
        rule.recipient.kind == RecipientKind.SUPPLIER
        and rule.recipient.value == request.supplier
        and rule.category == category
        and rule.mode == Mode.DIRECT
    )


def _combine(verdicts: Sequence[CategoryVerdict]) -> Decision:
    decisions = {v.decision for v in verdicts}
    if not decisions or Decision.DENY in decisions:
        return Decision.DENY
    if Decision.NOT_APPLICABLE in decisions:
        return Decision.NOT_APPLICABLE
    return Decision.ALLOW


def _overall_reason(decision: Decision, verdicts: Sequence[CategoryVerdict]) -> str:
    if not verdicts:
        return "The request names no data, so nothing is shared."
    relevant = (v for v in verdicts if decision is Decision.ALLOW or v.decision != Decision.ALLOW)
    return " ".join(dict.fromkeys(v.reason for v in relevant))


def _denied(category: str, reason: str) -> CategoryVerdict:
    return CategoryVerdict(category, Decision.DENY, Mode.NEVER, (), reason)


def _action(mode: Mode, label: str) -> str:
    if mode == Mode.AGGREGATE:
        return f"count your {label} in anonymous totals"
    if mode == Mode.PSEUDONYMOUS:
        return f"use your {label} for offers without learning who you are"
    return f"see your {label}, knowing it is you"


def _your_rules(rules: Sequence[Rule], names: Mapping[str, str], *, lower: bool = False) -> str:
    quoted = [f"'{describe_rule(r, names)}'" for r in rules]
    if len(quoted) == 1:
        text = f"Your rule {quoted[0]}"
    else:
        text = f"Your rules {', '.join(quoted[:-1])} and {quoted[-1]}"
    return text[0].lower() + text[1:] if lower else text


def _rule_key(rule: Rule) -> tuple[str, str, str, bool, str, str, str]:
    return (
        rule.category,
        rule.purpose,
        str(rule.recipient.kind),
        rule.recipient.value is not None,
        rule.recipient.value or "",
        str(rule.mode),
        "" if rule.expires is None else rule.expires.isoformat(),
    )
