"""The customer's own policy: save it, apply a template, set one rule, say yes or no to being
counted by postal district. Every change re-derives the customer's broker entry in the same
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.broker.members import eligibility
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    CustomerPolicy,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.matching import sync_member
from infomediary.services.policy_store import load_policy
from infomediary.services.uow import unit_of_work
from policies.engine import policy_to_dict, validate_policy
from policies.model import (
    PURPOSES,
    WILDCARD,
    Mode,
    Policy,
    Recipient,
    Rule,
)
from policies.taxonomy import CATEGORIES
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
