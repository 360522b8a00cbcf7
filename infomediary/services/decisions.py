"""Consents (grants), the customer's policy, receipts, and the policy decision on access.

A grant never exceeds the policy at the time of each access: the policy is evaluated on
every access. The *effective* policy for a supplier is the customer's own rules plus, for
each of that supplier's active grants, a per-supplier ``direct`` rule for the granted
categories and purpose, expiring with the grant, plus the ``never`` rules of each MyTerms
agreement made with that supplier (:mod:`infomediary.services.agreements`). The customer's
``never`` rules (their own and the agreements') still override (deny overrides), so
tightening the policy takes effect on the next call, and revoking a grant removes its rules
at once.

A grant is a specific yes to one supplier: it may widen the customer's general defaults for
that supplier (say, "with your name" where the default is "only under a pseudonym"), never a
``never`` rule. A supplier the customer blocked opens nothing, grants included.

Every sentence a verdict gives names the supplier as the customer knows it, "Acme Books
(verified)", never by its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    Agreement,
    ConsentGrant,
    CustomerPolicy,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.scopes import categories_for, parse_scopes
from infomediary.services.agreements import agreement_rules, rules_for_supplier
from infomediary.services.exports import display_name
from infomediary.services.policy_store import load_policy, open_policy
from policies.engine import evaluate
from policies.model import (
    PURPOSES,
    AccessRequest,
    Decision,
    Mode,
    Policy,
    Recipient,
    Rule,
    Verdict,
)
from policies.taxonomy import CATEGORIES


@dataclass(frozen=True)
class Facts:
    """What a decision about one customer and one supplier reads, when the caller read it
    already in its own query (the resource API reads it with the customer's rows): the
    customer's policy row (None: the default template), whether the customer blocked the
    supplier, the supplier's grants from the customer that are not revoked, and the MyTerms
    agreements in force between them (None: not read, so the decision reads them)."""

    policy_row: CustomerPolicy | None
    blocked: bool
    grants: Sequence[ConsentGrant]
    agreements: Sequence[Agreement] | None = None


def effective_policy(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    now: datetime,
    facts: Facts | None = None,
) -> Policy:
    if facts is not None:
        own = open_policy(session, inst, customer_id, facts.policy_row)
        grants: Sequence[ConsentGrant] = facts.grants
    else:
        own = load_policy(session, inst, customer_id)
        grants = (
            session.execute(
                select(ConsentGrant).where(
                    ConsentGrant.customer_id == customer_id,
                    ConsentGrant.supplier_id == supplier_id,
                    ConsentGrant.revoked_at.is_(None),
                )
            )
            .scalars()
            .all()
        )
    derived = []
    for grant in grants:
        if grant.expires_at is not None and grant.expires_at <= now:
            continue
        for category in sorted(categories_for(parse_scopes(grant.scopes))):
            derived.append(
                Rule(
                    category=category,
                    purpose=grant.purpose,
                    recipient=Recipient.supplier(supplier_id),
                    mode=Mode.DIRECT,
                    expires=grant.expires_at,
                )
            )
    # MyTerms agreements: restrictions only, for this supplier; a grant cannot widen them.
    if facts is not None and facts.agreements is not None:
        agreed = agreement_rules(facts.agreements, supplier_id)
    else:
        agreed = rules_for_supplier(session, customer_id, supplier_id)
    return Policy(rules=(*own.rules, *derived, *agreed), template=own.template)


def supplier_display_name(supplier: Supplier) -> str:
    """How a customer knows the supplier: its name, marked when we verified it."""
    return display_name(supplier.name, supplier.verified_at is not None)


def is_blocked(session: Session, customer_id: str, supplier_id: str) -> bool:
    """Whether the customer blocked the supplier (from the offers inbox)."""
    return session.get(SupplierBlock, (customer_id, supplier_id)) is not None


def access_request(
    session: Session,
    customer_id: str,
    supplier: Supplier,
    purpose: str,
    categories: frozenset[str],
    mode: Mode = Mode.DIRECT,
    blocked: bool | None = None,
) -> AccessRequest:
    """The supplier's request as the engine decides it: named in words, and blocked when the
    customer blocked it (``blocked``, when the caller read it already)."""
    return AccessRequest(
        supplier=supplier.id,
        sector=supplier.sector,
        purpose=purpose,
        categories=categories,
        mode=mode,
        supplier_name=supplier_display_name(supplier),
        blocked=is_blocked(session, customer_id, supplier.id) if blocked is None else blocked,
    )


def decide(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    purpose: str,
    categories: frozenset[str],
    mode: Mode = Mode.DIRECT,
    facts: Facts | None = None,
) -> Verdict:
    """The engine's verdict now; with ``facts``, on the rows the caller read in this
    transaction (so no decision reads them twice)."""
    now = utcnow()
    policy = effective_policy(session, inst, customer_id, supplier.id, now, facts)
    return evaluate(
        policy,
        access_request(
            session,
            customer_id,
            supplier,
            purpose,
            categories,
            mode,
            blocked=None if facts is None else facts.blocked,
        ),
        now,
    )


def blocked_by_policy(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    purpose: str,
    categories: frozenset[str],
) -> dict[str, str]:
    """Categories a grant could not open, because the customer's own rules deny them anyway.

    Evaluates the policy as if the grant were given (a per-supplier ``direct`` rule per
    category): whatever is still denied is denied by the customer's rules (deny overrides),
    so the consent screen shows it as blocked instead of offering it.
    """
    now = utcnow()
    hypothetical = [
        Rule(
            category=c, purpose=purpose, recipient=Recipient.supplier(supplier.id), mode=Mode.DIRECT
        )
        for c in sorted(categories)
    ]
    policy = effective_policy(session, inst, customer_id, supplier.id, now)
    verdict = evaluate(
        Policy(rules=(*policy.rules, *hypothetical), template=policy.template),
        access_request(session, customer_id, supplier, purpose, categories, Mode.DIRECT),
        now,
    )
    return {v.category: v.reason for v in verdict.categories if v.decision != Decision.ALLOW}


def preview(
    session: Session, inst: Instance, customer_id: str, supplier: Supplier, purpose: str
) -> Verdict:
    """ "What can this supplier see?": every category, identified (direct) access, this purpose."""
    if purpose not in PURPOSES:
        raise ValidationFailed({"purpose": "Unknown purpose."})
    return decide(
        session, inst, customer_id, supplier, purpose, frozenset(CATEGORIES) - {"account"}
    )
