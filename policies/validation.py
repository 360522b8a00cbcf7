"""Rules in plain words, and the problems in a policy that the dashboard refuses to save.

:func:`describe_rule` quotes a rule the way the access log and the dashboard show it (the
evaluator's reasons quote rules through it); :func:`validate_policy` lists every problem in a
customer's policy in words they can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from policies.model import (
    PURPOSES,
    WILDCARD,
    Mode,
    Policy,
    Recipient,
    RecipientKind,
    Rule,
)
from policies.taxonomy import CATEGORIES

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# -- description and validation -----------------------------------------------------------


def describe_rule(rule: Rule, names: Mapping[str, str] | None = None) -> str:
    """A rule in plain words, e.g. "Interests, for marketing, by any supplier: never".

    ``names`` maps supplier ids to how the customer knows them ("Acme Books (verified)"): a
    rule for one supplier says "by Acme Books (verified)"; a supplier missing from it (or no
    ``names`` at all) is named by its id, "by supplier <id>"."""
    if rule.category == WILDCARD:
        what = "All your data except special categories"
        if rule.mode != Mode.NEVER:  # "*" denies an explicit category but never releases it
            explicit = [c.label.lower() for c in CATEGORIES.values() if c.explicit]
            for label in explicit:
                what += f" and your {label}"
    elif rule.category in CATEGORIES:
        what = CATEGORIES[rule.category].label
    else:
        what = f"{rule.category!r}"
    if rule.purpose == WILDCARD:
        why = "any purpose"
    else:
        why = PURPOSES.get(rule.purpose, f"{rule.purpose!r}")
    mode = rule.mode.label if isinstance(rule.mode, Mode) else f"{rule.mode!r}"
    text = f"{what}, for {why}, by {_describe_recipient(rule.recipient, names)}: {mode}"
    if rule.expires is not None:
        when = rule.expires
        text += f" (until {when.day} {_MONTHS[when.month - 1]} {when.year})"
    return text


def _describe_recipient(recipient: Recipient, names: Mapping[str, str] | None) -> str:
    if recipient.kind == RecipientKind.SECTOR:
        return f"suppliers in the {recipient.value or 'unnamed'} sector"
    if recipient.kind == RecipientKind.SUPPLIER:
        if not recipient.value:
            return "an unnamed supplier"
        named = (names or {}).get(recipient.value)
        return named if named else f"supplier {recipient.value}"
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


def _is_aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None
