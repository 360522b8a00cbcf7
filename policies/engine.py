"""The policy evaluator: a pure function of (policy, request, now) that explains itself.

Policies are evaluated on every access, not only when a grant is made, so a grant can never
exceed the policy in force at the moment of the access. The evaluation order is drawn in
``policies/README.md``; each step below names the step it implements. Anything the
evaluator cannot understand (an unknown category or purpose, a rule whose expiry has no time
zone) fails closed: it can deny but never allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

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
from policies.taxonomy import CATEGORIES

#: Version of the dictionary form written by :func:`policy_to_dict`.
FORMAT_VERSION = 1

_RECIPIENT_RANK: dict[RecipientKind, int] = {
    RecipientKind.ANY: 0,
    RecipientKind.SECTOR: 1,
    RecipientKind.SUPPLIER: 2,
}

_E = TypeVar("_E", Mode, RecipientKind)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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
    return Verdict(decision, verdicts, _overall_reason(decision, verdicts))


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
    who = request.supplier

    # Step 1: the rules that apply to this category, purpose, recipient and instant.
    applicable = tuple(r for r in rules if _applies(r, request, category, info.special, now))

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
            f"{_your_rules(denying)} {says} never, so {who} may not use your {label} for "
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
        reason = f"{_your_rules(deciding)} {allows} {who} to {action}."
        return CategoryVerdict(category, Decision.ALLOW, permitted, deciding, reason)
    if capped:
        allows = "allows" if len(deciding) == 1 else "allow"
        reason = (
            f"{info.label} is a special category and none of your rules names {who} for it, "
            f"so {who} may not {action}: {_your_rules(deciding, lower=True)} {allows} use "
            f"{permitted.label}."
        )
    else:
        verb = "does" if len(deciding) == 1 else "do"
        reason = (
            f"{_your_rules(deciding)} {verb} not allow {who} to {action}: "
            f"{'it allows' if len(deciding) == 1 else 'they allow'} use {permitted.label}."
        )
    return CategoryVerdict(category, Decision.DENY, permitted, deciding, reason)


def _applies(
    rule: Rule, request: AccessRequest, category: str, special: bool, now: datetime
) -> bool:
    # "*" never covers a special category.
    covers = not special if rule.category == WILDCARD else rule.category == category
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


def _your_rules(rules: Sequence[Rule], *, lower: bool = False) -> str:
    quoted = [f"'{describe_rule(r)}'" for r in rules]
    if len(quoted) == 1:
        text = f"Your rule {quoted[0]}"
    else:
        text = f"Your rules {', '.join(quoted[:-1])} and {quoted[-1]}"
    return text[0].lower() + text[1:] if lower else text


# -- description and validation -----------------------------------------------------------


def describe_rule(rule: Rule) -> str:
    """A rule in plain words, e.g. "Interests, for marketing, by any supplier: never"."""
    if rule.category == WILDCARD:
        what = "All your data except special categories"
    elif rule.category in CATEGORIES:
        what = CATEGORIES[rule.category].label
    else:
        what = f"{rule.category!r}"
    if rule.purpose == WILDCARD:
        why = "any purpose"
    else:
        why = PURPOSES.get(rule.purpose, f"{rule.purpose!r}")
    mode = rule.mode.label if isinstance(rule.mode, Mode) else f"{rule.mode!r}"
    text = f"{what}, for {why}, by {_describe_recipient(rule.recipient)}: {mode}"
    if rule.expires is not None:
        when = rule.expires
        text += f" (until {when.day} {_MONTHS[when.month - 1]} {when.year})"
    return text


def _describe_recipient(recipient: Recipient) -> str:
    if recipient.kind == RecipientKind.SECTOR:
        return f"suppliers in the {recipient.value or 'unnamed'} sector"
    if recipient.kind == RecipientKind.SUPPLIER:
        return f"supplier {recipient.value}" if recipient.value else "an unnamed supplier"
    return "any supplier"


def validate_policy(policy: Policy) -> list[str]:
    """Every problem in ``policy``, in words a customer can act on; empty if it is sound."""
    problems: list[str] = []
    for number, rule in enumerate(policy.rules, start=1):
        at = f"Rule {number}"
        if rule.category != WILDCARD and rule.category not in CATEGORIES:
            problems.append(
                f"{at}: {rule.category!r} is not a data category "
                f"(expected '*' or one of {_listing(CATEGORIES)})."
            )
        if rule.purpose != WILDCARD and rule.purpose not in PURPOSES:
            problems.append(
                f"{at}: {rule.purpose!r} is not a purpose (expected '*' or one of "
                f"{_listing(PURPOSES)})."
            )
        if not isinstance(rule.mode, Mode):
            problems.append(
                f"{at}: {rule.mode!r} is not a mode (expected one of {_listing(Mode)})."
            )
        problems.extend(f"{at}: {problem}" for problem in _recipient_problems(rule.recipient))
        if rule.expires is not None and not _is_aware(rule.expires):
            problems.append(
                f"{at}: the expiry {rule.expires.isoformat()} has no time zone, so we cannot "
                "tell when it passes."
            )
    return problems


def _recipient_problems(recipient: Recipient) -> list[str]:
    if not isinstance(recipient.kind, RecipientKind):
        return [
            f"{recipient.kind!r} is not a kind of recipient "
            f"(expected one of {_listing(RecipientKind)})."
        ]
    named = recipient.value is not None and recipient.value.strip() != ""
    if recipient.kind == RecipientKind.SUPPLIER and not named:
        return ["a rule for one supplier must say which supplier."]
    if recipient.kind == RecipientKind.SECTOR and not named:
        return ["a rule for a sector must say which sector."]
    if recipient.kind == RecipientKind.ANY and recipient.value is not None:
        return [
            f"a rule for any supplier cannot also name {recipient.value!r}; "
            "make it a supplier or sector rule instead."
        ]
    return []


def _listing(keys: Iterable[str]) -> str:
    return ", ".join(str(k) for k in keys)


# -- dictionary form ----------------------------------------------------------------------


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """A JSON-safe form of ``policy`` (datetimes as ISO 8601); inverse of policy_from_dict."""
    return {
        "version": FORMAT_VERSION,
        "template": policy.template,
        "rules": [
            {
                "category": rule.category,
                "purpose": rule.purpose,
                "recipient": {
                    "kind": str(rule.recipient.kind),
                    "value": rule.recipient.value,
                },
                "mode": str(rule.mode),
                "expires": None if rule.expires is None else rule.expires.isoformat(),
            }
            for rule in policy.rules
        ],
    }


def policy_from_dict(data: object) -> Policy:
    """Parse the form written by :func:`policy_to_dict` (or a template's TOML).

    Raises :class:`ValueError` naming the offending field. Only the structure is checked
    here; :func:`validate_policy` reports unknown categories and purposes, so a stored policy
    still loads after the taxonomy changes.
    """
    fields = _mapping(data, "policy", required={"rules"}, optional={"version", "template"})
    version = fields.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"policy.version: {version!r} is not supported (expected 1)")
    template = fields.get("template")
    if template is not None and not isinstance(template, str):
        raise ValueError(f"policy.template: expected a string or null, not {_kind(template)}")
    rules = fields["rules"]
    if not isinstance(rules, list | tuple):
        raise ValueError(f"policy.rules: expected a list of rules, not {_kind(rules)}")
    return Policy(
        tuple(_rule_from_dict(item, f"rules[{index}]") for index, item in enumerate(rules)),
        template,
    )


def _rule_from_dict(data: object, at: str) -> Rule:
    fields = _mapping(
        data, at, required={"category", "purpose", "recipient", "mode"}, optional={"expires"}
    )
    recipient = _mapping(
        fields["recipient"], f"{at}.recipient", required={"kind"}, optional={"value"}
    )
    value = recipient.get("value")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{at}.recipient.value: expected a string or null, not {_kind(value)}")
    return Rule(
        category=_string(fields["category"], f"{at}.category"),
        purpose=_string(fields["purpose"], f"{at}.purpose"),
        recipient=Recipient(_enum(RecipientKind, recipient["kind"], f"{at}.recipient.kind"), value),
        mode=_enum(Mode, fields["mode"], f"{at}.mode"),
        expires=_datetime(fields.get("expires"), f"{at}.expires"),
    )


def _mapping(
    data: object, at: str, *, required: set[str], optional: set[str]
) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{at}: expected a mapping, not {_kind(data)}")
    keys = set(data)
    if missing := required - keys:
        raise ValueError(f"{at}: missing {', '.join(sorted(missing))}")
    if unknown := keys - required - optional:
        raise ValueError(f"{at}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    return data


def _string(value: object, at: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{at}: expected a string, not {_kind(value)}")
    return value


def _enum(kind: type[_E], value: object, at: str) -> _E:
    text = _string(value, at)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{at}: {text!r} is not one of {_listing(kind)}") from None


def _datetime(value: object, at: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value  # TOML has native datetimes
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{at}: {value!r} is not an ISO 8601 date and time") from None
    else:
        raise ValueError(f"{at}: expected an ISO 8601 string or null, not {_kind(value)}")
    if not _is_aware(parsed):
        raise ValueError(f"{at}: {value!s} has no time zone offset (add one, e.g. +00:00)")
    return parsed


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _is_aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


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
