"""What the consent screen shows before the customer allows a supplier anything.

A grant is a specific yes to one supplier: it may widen the customer's general defaults for
that supplier (say, "with your name" where the default is "only under a pseudonym"), never a
``never`` rule, which keeps the category closed whatever the grant says. So, per requested
scope, the screen says what the supplier will see, for which purpose, whether this grant
widens the customer's own policy (with the policy's own words beside it), whether a rule (or
a block) keeps it closed, and whether the customer holds any such data yet. It also names the
customer's active grant of the same supplier and purpose, whose end date re-authorising keeps
unless the customer chooses another.

Nothing here opens a customer's field: which categories hold data is read from whether the
sealed columns are set and whether any purchase line is visible, not from their contents.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    Profile,
    Purchase,
    PurchaseImport,
    PurchaseImportStatus,
    Supplier,
    utcnow,
)
from infomediary.scopes import CUSTOMER_SCOPES, categories_for
from infomediary.services import decisions
from infomediary.services.policy_store import load_policy
from policies.engine import evaluate
from policies.model import PURPOSE_DPV, PURPOSES, Decision
from policies.taxonomy import CATEGORIES
from policies.validation import describe_rule

#: The profile columns whose data each category releases (identity also holds the
#: account's e-mail address, which every customer has).
_CATEGORY_COLUMNS: dict[str, tuple[str, ...]] = {
    "demographics": ("birth_year", "household_size", "postcode"),
    "interests": ("interests",),
    "preferences": ("preferences",),
}


@dataclass(frozen=True, slots=True)
class ScopeConsequence:
    """One requested scope, and what allowing it would mean."""

    scope: str
    category: str
    label: str
    #: What the supplier will see (or do), in plain words: "your name, email, phone and ...".
    description: str
    action: str
    #: Why a rule of the customer's (or their block) keeps this closed whatever the grant says.
    blocked: str | None
    #: True when the customer's own policy would not let this supplier see it with their name:
    #: allowing it widens the policy for this supplier.
    widens: bool
    #: The customer's rules that decide it without this grant, in words (none: no rule does).
    policy_says: tuple[str, ...]
    #: Whether the customer holds any data of this category yet.
    has_data: bool


@dataclass(frozen=True, slots=True)
class ConsentScreen:
    supplier_name: str
    purpose: str
    purpose_words: str
    purpose_dpv: str
    scopes: tuple[ScopeConsequence, ...]
    #: The customer's active grant to this supplier for this purpose, if any: re-authorising
    #: changes it and keeps its end date unless the customer chooses another.
    existing: ConsentGrant | None


def active_grant(
    session: Session, customer_id: str, supplier_id: str, purpose: str
) -> ConsentGrant | None:
    """The customer's active grant to the supplier for the purpose (an OAuth grant, not one
    made from an offer), which approving again changes."""
    return (
        session.execute(
            select(ConsentGrant)
            .where(
                ConsentGrant.customer_id == customer_id,
                ConsentGrant.supplier_id == supplier_id,
                ConsentGrant.purpose == purpose,
                ConsentGrant.offer_id.is_(None),
                ConsentGrant.active_at(utcnow()),
            )
            .order_by(ConsentGrant.created_at.desc())
        )
        .scalars()
        .first()
    )


def held_categories(session: Session, customer_id: str) -> frozenset[str]:
    """The categories the customer holds data of, from which sealed columns are set."""
    held = {"identity"}  # the account's e-mail address
    profile = session.get(Profile, customer_id)
    if profile is not None:
        for category, columns in _CATEGORY_COLUMNS.items():
            if any(getattr(profile, column) is not None for column in columns):
                held.add(category)
    visible = session.execute(
        select(Purchase.id)
        .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
        .where(
            Purchase.customer_id == customer_id,
            PurchaseImport.status == PurchaseImportStatus.DONE,
        )
        .limit(1)
    ).first()
    if visible is not None:
        held.add("purchases")
    return frozenset(held)


def consent_screen(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    scopes: list[str],
    purpose: str,
) -> ConsentScreen:
    """Per requested scope: what, why, whether it widens the customer's policy or is blocked,
    whether they hold such data; and their active grant of the same supplier and purpose."""
    known = [s for s in scopes if s in CUSTOMER_SCOPES and CUSTOMER_SCOPES[s].category]
    categories = categories_for(known)
    who = decisions.supplier_display_name(supplier)
    blocked = decisions.blocked_by_policy(session, inst, customer_id, supplier, purpose, categories)
    # The customer's own policy, without any grant: what they allow this supplier by default.
    request = decisions.access_request(session, customer_id, supplier, purpose, categories)
    own = evaluate(load_policy(session, inst, customer_id), request, utcnow())
    defaults = {v.category: v for v in own.categories}
    names = {supplier.id: who}
    held = held_categories(session, customer_id)
    rows = []
    for name in known:
        scope = CUSTOMER_SCOPES[name]
        category = scope.category or ""
        default = defaults.get(category)
        closed = blocked.get(category)
        opened = default is not None and default.decision is Decision.ALLOW
        rows.append(
            ScopeConsequence(
                scope=name,
                category=category,
                label=CATEGORIES[category].label,
                description=scope.description,
                action=scope.action,
                blocked=closed,
                widens=closed is None and not opened,
                policy_says=tuple(describe_rule(r, names) for r in default.rules)
                if default is not None and not request.blocked
                else (),
                has_data=scope.action != "read" or category in held,
            )
        )
    return ConsentScreen(
        supplier_name=who,
        purpose=purpose,
        purpose_words=PURPOSES.get(purpose, purpose),
        purpose_dpv=PURPOSE_DPV.get(purpose, ""),
        scopes=tuple(rows),
        existing=active_grant(session, customer_id, supplier.id, purpose),
    )
