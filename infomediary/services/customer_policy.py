"""The customer's own policy: save it, apply a template, set one rule, say yes or no to being
counted by postal district. Every change re-derives the customer's broker entry in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.broker.members import eligibility
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    CustomerPolicy,
    Offer,
    OfferDelivery,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.matching import sync_member
from infomediary.services.policy_store import load_policy
from infomediary.services.profile_fields import FIELDS
from infomediary.services.uow import unit_of_work
from policies.engine import policy_to_dict, validate_policy
from policies.model import (
    PURPOSES,
    WILDCARD,
    Mode,
    Policy,
    Recipient,
    RecipientKind,
    Rule,
)
from policies.taxonomy import CATEGORIES, INTEREST_TAGS
from policies.templates import TEMPLATES, load_template


def save_policy(
    session: Session,
    inst: Instance,
    customer_id: str,
    policy: Policy,
    ctx: Context,
    reason: str | Reason,
) -> None:
    with unit_of_work(session) as uow:
        problems = validate_policy(policy)
        if problems:
            raise ValidationFailed({"policy": "; ".join(problems)}, "The policy is not valid.")
        key = customer_key(session, inst, customer_id)
        blob = inst.vault.seal(
            key, "customer_policies", customer_id, "policy", policy_to_dict(policy)
        )
        row = session.get(CustomerPolicy, customer_id)
        if row is None:
            session.add(CustomerPolicy(customer_id=customer_id, policy=blob))
        else:
            row.policy = blob
            row.updated_at = utcnow()
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=reason,
            categories=frozenset({"account"}),
        )
        session.flush()

        sync_member(session, inst, customer_id)
        uow.commit()


def apply_template(
    session: Session, inst: Instance, customer_id: str, name: str, ctx: Context
) -> None:
    if name not in TEMPLATES:
        raise ValidationFailed({"template": f"Choose one of: {', '.join(TEMPLATES)}."})
    save_policy(
        session,
        inst,
        customer_id,
        load_template(name),
        ctx,
        Reason("policy.template", {"template": name}),
    )


def set_rule(
    session: Session,
    inst: Instance,
    customer_id: str,
    *,
    category: str,
    purpose: str,
    mode: str,
    ctx: Context,
) -> None:
    """Set the any-supplier rule for one category and purpose, replacing the previous one."""
    errors = {}
    if category not in CATEGORIES:
        errors["category"] = "Unknown data category."
    if purpose not in PURPOSES and purpose != "*":
        errors["purpose"] = "Unknown purpose."
    if mode not in {m.value for m in Mode}:
        errors["mode"] = "Unknown mode."
    if errors:
        raise ValidationFailed(errors)
    policy = load_policy(session, inst, customer_id)
    kept = tuple(
        r
        for r in policy.rules
        if not (
            r.category == category and r.purpose == purpose and r.recipient == Recipient.anyone()
        )
    )
    rule = Rule(category=category, purpose=purpose, recipient=Recipient.anyone(), mode=Mode(mode))
    save_policy(
        session,
        inst,
        customer_id,
        Policy(rules=(*kept, rule), template=None),
        ctx,
        Reason("policy.rule", {"category": category, "purpose": purpose, "mode": mode}),
    )


#: The explicit category of the postal district (the first two digits of the postcode).
DISTRICT = "district"


@dataclass(frozen=True)
class DistrictCounting:
    """The customer's yes or no to being counted by postal district, and what it does: the
    purposes the broker counts them by district for (none without a yes; with one, those for
    which the policy counts their demographics too, as a district lies in a state)."""

    allowed: bool
    purposes: tuple[str, ...]


def _releases_district(rule: Rule) -> bool:
    return rule.category == DISTRICT and rule.mode != Mode.NEVER


def district_counting(policy: Policy) -> DistrictCounting:
    counted = {
        purpose
        for category, purpose, mode in eligibility(policy, utcnow())
        if category == DISTRICT and mode == Mode.AGGREGATE
    }
    return DistrictCounting(
        allowed=any(_releases_district(r) for r in policy.rules),
        purposes=tuple(p for p in PURPOSES if p in counted),
    )


def set_district_counting(
    session: Session, inst: Instance, customer_id: str, *, allowed: bool, ctx: Context
) -> None:
    """Yes: one rule releasing the postal district, for anonymous counts only, for any purpose
    (the customer's own ``never`` rules still win). No: no rule releasing it at all (``never``
    rules naming it stay). The broker entry follows in the same transaction."""
    policy = load_policy(session, inst, customer_id)
    kept = tuple(r for r in policy.rules if not _releases_district(r))
    if allowed:
        kept += (Rule(DISTRICT, WILDCARD, Recipient.anyone(), Mode.AGGREGATE),)
    save_policy(
        session,
        inst,
        customer_id,
        Policy(rules=kept, template=policy.template),
        ctx,
        Reason("policy.district_on" if allowed else "policy.district_off"),
    )


# -- the policy editor: the grid, per-supplier rules, removing any rule -----------------------

#: Categories that can hold data, in the taxonomy's order: those of profile fields, imported
#: purchases, and the special categories an interest tag reveals. A category nobody can enter
#: (biometrics) is never offered; the postal district has its own yes or no.
GRID_CATEGORIES: tuple[str, ...] = tuple(
    key
    for key in CATEGORIES
    if key
    in {f.category for f in FIELDS} | {"purchases"} | {t.category for t in INTEREST_TAGS.values()}
)

SPECIAL_ANY_SUPPLIER = (
    "Sensitive data can be shared only with a supplier you name: add a rule for that supplier."
)


def cell_field(category: str, purpose: str) -> str:
    """The form field (and error key) of one cell of the grid."""
    return f"cell-{category}-{purpose}"


def _grid_cell(rule: Rule) -> bool:
    return (
        rule.recipient == Recipient.anyone()
        and rule.category in GRID_CATEGORIES
        and rule.purpose in PURPOSES
        and rule.expires is None
    )


def grid_of(policy: Policy) -> dict[tuple[str, str], str]:
    """The grid's cells: (category, purpose) -> the mode of the any-supplier rule, or ``""``."""
    cells = {(c, p): "" for c in GRID_CATEGORIES for p in PURPOSES}
    for rule in policy.rules:
        if _grid_cell(rule):
            current = cells[(rule.category, rule.purpose)]
            cells[(rule.category, rule.purpose)] = (
                rule.mode.value if not current else min(Mode(current), rule.mode).value
            )
    return cells


def other_rules(policy: Policy) -> tuple[Rule, ...]:
    """The rules the grid does not show: per-supplier and sector rules, wildcards, expiring
    ones and rules about categories that hold no data (each still listed and removable)."""
    return tuple(r for r in policy.rules if not _grid_cell(r))


def save_grid(
    session: Session,
    inst: Instance,
    customer_id: str,
    cells: Mapping[str, str],
    ctx: Context,
) -> None:
    """Save the whole grid as any-supplier rules, in one transaction and one entry. ``cells``
    maps each cell's field to a mode or ``""`` (no rule); a cell not sent is left as it is.
    Every problem is reported at once and nothing is saved unless all cells are valid."""
    modes = {m.value for m in Mode}
    errors: dict[str, str] = {}
    wanted: dict[tuple[str, str], str] = {}
    known = {cell_field(c, p): (c, p) for c in GRID_CATEGORIES for p in PURPOSES}
    for name, value in cells.items():
        if name not in known:
            errors[name] = "Unknown data category or purpose."
            continue
        category, purpose = known[name]
        if value and value not in modes:
            errors[name] = "Unknown mode."
        elif value and value != Mode.NEVER and CATEGORIES[category].special:
            errors[name] = SPECIAL_ANY_SUPPLIER
        else:
            wanted[(category, purpose)] = value
    if errors:
        raise ValidationFailed(errors, "Some choices could not be saved.")
    policy = load_policy(session, inst, customer_id)
    before = grid_of(policy)
    kept = tuple(
        r for r in policy.rules if not (_grid_cell(r) and (r.category, r.purpose) in wanted)
    )
    added = tuple(
        Rule(category, purpose, Recipient.anyone(), Mode(value))
        for (category, purpose), value in wanted.items()
        if value
    )
    changed = sum(1 for key, value in wanted.items() if before[key] != value)
    save_policy(
        session,
        inst,
        customer_id,
        Policy(rules=(*kept, *added), template=None),
        ctx,
        Reason("policy.grid", {"changed": changed}),
    )


def known_suppliers(session: Session, customer_id: str, policy: Policy) -> list[Supplier]:
    """The suppliers a customer may write a rule for: those they dealt with (a grant, an
    offer, a block) and those their rules already name, by name."""
    ids: set[str] = set(
        session.execute(
            select(ConsentGrant.supplier_id).where(ConsentGrant.customer_id == customer_id)
        ).scalars()
    )
    ids |= set(
        session.execute(
            select(Offer.supplier_id)
            .join(OfferDelivery, OfferDelivery.offer_id == Offer.id)
            .where(OfferDelivery.customer_id == customer_id)
        ).scalars()
    )
    ids |= set(
        session.execute(
            select(SupplierBlock.supplier_id).where(SupplierBlock.customer_id == customer_id)
        ).scalars()
    )
    ids |= {
        r.recipient.value
        for r in policy.rules
        if r.recipient.kind == RecipientKind.SUPPLIER and r.recipient.value
    }
    if not ids:
        return []
    return list(
        session.execute(
            select(Supplier).where(Supplier.id.in_(ids)).order_by(Supplier.name, Supplier.id)
        ).scalars()
    )


def set_supplier_rule(
    session: Session,
    inst: Instance,
    customer_id: str,
    *,
    supplier_id: str,
    category: str,
    purpose: str,
    mode: str,
    ctx: Context,
) -> None:
    """Add or change the rule for one named supplier, category and purpose. Special
    categories may be opened here, for this supplier alone."""
    policy = load_policy(session, inst, customer_id)
    errors = {}
    if supplier_id not in {s.id for s in known_suppliers(session, customer_id, policy)}:
        errors["supplier"] = "Choose a supplier you have dealt with."
    if category not in GRID_CATEGORIES:
        errors["category"] = "Unknown data category."
    if purpose not in PURPOSES:
        errors["purpose"] = "Unknown purpose."
    if mode not in {m.value for m in Mode}:
        errors["mode"] = "Unknown mode."
    if errors:
        raise ValidationFailed(errors, "The rule could not be saved.")
    recipient = Recipient.supplier(supplier_id)
    kept = tuple(
        r
        for r in policy.rules
        if not (r.category == category and r.purpose == purpose and r.recipient == recipient)
    )
    save_policy(
        session,
        inst,
        customer_id,
        Policy(rules=(*kept, Rule(category, purpose, recipient, Mode(mode))), template=None),
        ctx,
        Reason(
            "policy.supplier_rule",
            {"supplier": supplier_id, "category": category, "purpose": purpose, "mode": mode},
        ),
    )


@dataclass(frozen=True)
class RuleKey:
    """Which rule to remove: its category, purpose and recipient (every rule matching them
    goes, an expiring one included)."""

    category: str
    purpose: str
    recipient_kind: str
    recipient_value: str = ""


def rule_key(rule: Rule) -> RuleKey:
    return RuleKey(
        rule.category, rule.purpose, rule.recipient.kind.value, rule.recipient.value or ""
    )


def remove_rule(
    session: Session, inst: Instance, customer_id: str, key: RuleKey, ctx: Context
) -> None:
    """Remove any rule of the policy, whoever it names."""
    policy = load_policy(session, inst, customer_id)
    kept = tuple(r for r in policy.rules if rule_key(r) != key)
    if len(kept) == len(policy.rules):
        raise ValidationFailed({"rule": "That rule is no longer in your policy."})
    if key.recipient_kind == RecipientKind.SUPPLIER:
        reason = Reason(
            "policy.supplier_rule_removed",
            {"supplier": key.recipient_value, "category": key.category, "purpose": key.purpose},
        )
    else:
        recipient = "any supplier"
        if key.recipient_kind == RecipientKind.SECTOR:
            recipient = f"the {key.recipient_value} sector"
        reason = Reason(
            "policy.rule_removed",
            {"category": key.category, "purpose": key.purpose, "recipient": recipient},
        )
    save_policy(
        session, inst, customer_id, Policy(rules=kept, template=policy.template), ctx, reason
    )
