"""Consents (grants), the customer's policy, receipts, and the policy decision on access.

A grant never exceeds the policy at the time of each access: the policy is evaluated on
every access. The *effective* policy for a supplier is the customer's own rules plus, for
each of that supplier's active grants, a per-supplier ``direct`` rule for the granted
categories and purpose, expiring with the grant. The customer's ``never`` rules still
override (deny overrides), so tightening the policy takes effect on the next call, and
revoking a grant removes its rules at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import LogEvent, append
from infomediary.crypto.receipts import ReceiptFacts, ReceiptSigner
from infomediary.errors import EmailNotVerified, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    ConsentReceipt,
    Customer,
    CustomerPolicy,
    OAuthToken,
    Supplier,
    utcnow,
)
from infomediary.oauth.scopes import CUSTOMER_SCOPES, categories_for, parse_scopes
from infomediary.services import Context
from infomediary.services.customers import customer_key, is_verified
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.refusals import record_refusal
from policies.engine import evaluate, policy_from_dict, policy_to_dict, validate_policy
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
from policies.templates import TEMPLATES, load_template

#: Version of the consent screen's wording; a receipt names the text the customer saw.
CONSENT_TEXT_VERSION = "consent-screen/2026-11"
DEFAULT_TEMPLATE = "balanced"
CONTROLLER = {"name": "Infomediary", "contact": "privacy@infomediary.example", "jurisdiction": "AU"}


def signer(inst: Instance) -> ReceiptSigner:
    cached = inst.extras.get("receipt_signer")
    if not isinstance(cached, ReceiptSigner):
        cached = ReceiptSigner(inst.keyring.secret("receipt_signing"))
        inst.extras["receipt_signer"] = cached
    return cached


# -- the customer's policy -----------------------------------------------------------------


def load_policy(session: Session, inst: Instance, customer_id: str) -> Policy:
    row = session.get(CustomerPolicy, customer_id)
    if row is None:
        return load_template(DEFAULT_TEMPLATE)
    key = customer_key(session, inst, customer_id)
    return policy_from_dict(
        inst.vault.open(key, "customer_policies", customer_id, "policy", row.policy)
    )


def save_policy(
    session: Session, inst: Instance, customer_id: str, policy: Policy, ctx: Context, reason: str
) -> None:
    problems = validate_policy(policy)
    if problems:
        raise ValidationFailed({"policy": "; ".join(problems)}, "The policy is not valid.")
    key = customer_key(session, inst, customer_id)
    blob = inst.vault.seal(key, "customer_policies", customer_id, "policy", policy_to_dict(policy))
    row = session.get(CustomerPolicy, customer_id)
    if row is None:
        session.add(CustomerPolicy(customer_id=customer_id, policy=blob))
    else:
        row.policy = blob
        row.updated_at = utcnow()
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="update",
            customer_id=customer_id,
            categories=frozenset({"account"}),
            reason=reason,
            request_id=ctx.request_id,
        ),
    )
    session.flush()
    from infomediary.services.matching import sync_member

    sync_member(session, inst, customer_id)
    session.commit()


def apply_template(
    session: Session, inst: Instance, customer_id: str, name: str, ctx: Context
) -> None:
    if name not in TEMPLATES:
        raise ValidationFailed({"template": f"Choose one of: {', '.join(TEMPLATES)}."})
    save_policy(
        session, inst, customer_id, load_template(name), ctx, f"policy set to template {name}"
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
        f"policy rule changed: {category} for {purpose}: {mode}",
    )


def effective_policy(
    session: Session, inst: Instance, customer_id: str, supplier_id: str, now: datetime
) -> Policy:
    own = load_policy(session, inst, customer_id)
    grants = session.execute(
        select(ConsentGrant).where(
            ConsentGrant.customer_id == customer_id,
            ConsentGrant.supplier_id == supplier_id,
            ConsentGrant.revoked_at.is_(None),
        )
    ).scalars()
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
    return Policy(rules=(*own.rules, *derived), template=own.template)


def decide(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    purpose: str,
    categories: frozenset[str],
    mode: Mode = Mode.DIRECT,
) -> Verdict:
    now = utcnow()
    policy = effective_policy(session, inst, customer_id, supplier.id, now)
    return evaluate(
        policy,
        AccessRequest(
            supplier=supplier.id,
            sector=supplier.sector,
            purpose=purpose,
            categories=categories,
            mode=mode,
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
        AccessRequest(
            supplier=supplier.id,
            sector=supplier.sector,
            purpose=purpose,
            categories=categories,
            mode=Mode.DIRECT,
        ),
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


# -- grants and receipts -------------------------------------------------------------------


@dataclass(frozen=True)
class GrantView:
    grant: ConsentGrant
    supplier: Supplier
    categories: tuple[str, ...]
    active: bool


def _receipt(
    session: Session,
    inst: Instance,
    grant: ConsentGrant,
    supplier: Supplier,
    event: str,
    base_url: str,
) -> ConsentReceipt:
    scopes = tuple(parse_scopes(grant.scopes))
    categories = tuple(sorted(categories_for(list(scopes))))
    receipt_id = str(uuid.uuid4())
    facts = ReceiptFacts(
        receipt_id=receipt_id,
        event=event,
        issued_at=utcnow(),
        controller_name=CONTROLLER["name"],
        controller_contact=CONTROLLER["contact"],
        policy_url=f"{base_url}/privacy",
        controller_url=base_url,
        subject=pairwise_pseudonym(inst, supplier.id, grant.customer_id),
        jurisdiction=CONTROLLER["jurisdiction"],
        supplier_id=supplier.id,
        supplier_name=supplier.name,
        supplier_privacy_policy_url=supplier.privacy_policy_url,
        grant_id=grant.id,
        purpose=grant.purpose,
        purpose_label=PURPOSES.get(grant.purpose, grant.purpose),
        scopes=scopes,
        categories=categories,
        sensitive_categories=tuple(c for c in categories if CATEGORIES[c].special),
        consent_text_version=grant.consent_text_version,
        granted_at=grant.created_at,
        expires_at=grant.expires_at,
        revoked_at=grant.revoked_at,
    )
    receipt = ConsentReceipt(
        id=receipt_id,
        grant_id=grant.id,
        customer_id=grant.customer_id,
        event=event,
        jws=signer(inst).sign(facts),
    )
    session.add(receipt)
    return receipt


def _require_verified(
    session: Session, customer_id: str, supplier: Supplier, purpose: str, ctx: Context
) -> None:
    """Only a customer whose address is confirmed may grant: an unverified account could be
    anyone's. The refusal is logged in a transaction of its own; nothing is granted."""
    customer = session.get(Customer, customer_id)
    if customer is not None and is_verified(customer):
        return
    record_refusal(
        session,
        LogEvent(
            actor=ctx.actor,
            action="consent",
            customer_id=customer_id,
            categories=frozenset({"account"}),
            purpose=purpose,
            reason=f"consent for supplier {supplier.name} refused: address not yet confirmed",
            request_id=ctx.request_id,
        ),
    )
    raise EmailNotVerified(
        "Please confirm your e-mail address first: open the link we sent you when you signed "
        "up, or ask for a new one. Until then nothing of yours can be shared."
    )


def grant_consent(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    *,
    scopes: list[str],
    purpose: str,
    expires_at: datetime | None,
    ctx: Context,
    base_url: str,
    offer_id: str | None = None,
) -> ConsentGrant:
    """Record the customer's approval (a new grant, or a change of the active one).

    A grant made from an offer (``offer_id``) is a grant of its own, for that offer only: it
    never changes, nor is changed by, the grants of the supplier's OAuth flow.
    """
    _require_verified(session, customer_id, supplier, purpose, ctx)
    unknown = [s for s in scopes if s not in CUSTOMER_SCOPES]
    if not scopes or unknown:
        raise ValidationFailed({"scope": "Choose at least one of the requested kinds of data."})
    existing = (
        session.execute(
            select(ConsentGrant).where(
                ConsentGrant.customer_id == customer_id,
                ConsentGrant.supplier_id == supplier.id,
                ConsentGrant.purpose == purpose,
                ConsentGrant.revoked_at.is_(None),
                ConsentGrant.offer_id.is_(None)
                if offer_id is None
                else ConsentGrant.offer_id == offer_id,
            )
        )
        .scalars()
        .first()
    )
    now = utcnow()
    if existing is not None:
        existing.scopes = " ".join(sorted(set(scopes)))
        existing.expires_at = expires_at
        existing.updated_at = now
        existing.consent_text_version = CONSENT_TEXT_VERSION
        grant, event = existing, "changed"
    else:
        grant = ConsentGrant(
            id=str(uuid.uuid4()),
            customer_id=customer_id,
            supplier_id=supplier.id,
            scopes=" ".join(sorted(set(scopes))),
            purpose=purpose,
            consent_text_version=CONSENT_TEXT_VERSION,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
            offer_id=offer_id,
        )
        session.add(grant)
        event = "granted"
    session.flush()
    _receipt(session, inst, grant, supplier, event, base_url)
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="consent",
            customer_id=customer_id,
            categories=categories_for(parse_scopes(grant.scopes)),
            purpose=purpose,
            reason=f"consent {event} for supplier {supplier.name}",
            request_id=ctx.request_id,
        ),
    )
    session.flush()
    return grant


def revoke_grant(
    session: Session, inst: Instance, customer_id: str, grant_id: str, ctx: Context, base_url: str
) -> None:
    """Revoke at once: the grant, every token issued under it, and a receipt saying so."""
    grant = session.get(ConsentGrant, grant_id)
    if grant is None or grant.customer_id != customer_id:
        raise NotFound("No such consent.")
    if grant.revoked_at is not None:
        return
    now = utcnow()
    grant.revoked_at = now
    session.execute(
        update(OAuthToken)
        .where(OAuthToken.grant_id == grant.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    supplier = session.get(Supplier, grant.supplier_id)
    if supplier is None:
        raise NotFound("No such supplier.")
    _receipt(session, inst, grant, supplier, "revoked", base_url)
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="consent",
            customer_id=customer_id,
            categories=categories_for(parse_scopes(grant.scopes)),
            purpose=grant.purpose,
            reason=f"consent revoked for supplier {supplier.name}; tokens revoked",
            request_id=ctx.request_id,
        ),
    )
    session.commit()


def list_grants(session: Session, customer_id: str) -> list[GrantView]:
    now = utcnow()
    rows = session.execute(
        select(ConsentGrant, Supplier)
        .join(Supplier, Supplier.id == ConsentGrant.supplier_id)
        .where(ConsentGrant.customer_id == customer_id)
        .order_by(ConsentGrant.created_at.desc())
    ).all()
    return [
        GrantView(
            grant,
            supplier,
            tuple(sorted(categories_for(parse_scopes(grant.scopes)))),
            grant.revoked_at is None and (grant.expires_at is None or grant.expires_at > now),
        )
        for grant, supplier in rows
    ]


def receipts_of(session: Session, customer_id: str, grant_id: str) -> list[ConsentReceipt]:
    grant = session.get(ConsentGrant, grant_id)
    if grant is None or grant.customer_id != customer_id:
        raise NotFound("No such consent.")
    return list(
        session.execute(
            select(ConsentReceipt)
            .where(ConsentReceipt.grant_id == grant_id)
            .order_by(ConsentReceipt.created_at)
        ).scalars()
    )


def receipt_of(session: Session, customer_id: str, receipt_id: str) -> ConsentReceipt:
    receipt = session.get(ConsentReceipt, receipt_id)
    if receipt is None or receipt.customer_id != customer_id:
        raise NotFound("No such receipt.")
    return receipt
