"""Consent grants: a customer allows a supplier some scopes for a purpose, until an expiry, and can
revoke it at any time.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.errors import EmailNotVerified, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    Customer,
    OAuthToken,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.scopes import CUSTOMER_SCOPES, categories_for, parse_scopes
from infomediary.services import Context, tokens
from infomediary.services.consent_receipts import (
    CONSENT_TEXT_VERSION,
    make_receipt,
)
from infomediary.services.customer_keys import is_verified
from infomediary.services.refusals import record_refusal
from infomediary.services.uow import unit_of_work
from infomediary.statuses import ReceiptEvent, SupplierStatus


@dataclass(frozen=True)
class GrantView:
    grant: ConsentGrant
    supplier: Supplier
    categories: tuple[str, ...]
    active: bool
    #: What the customer reads beside it: active, expired, revoked, suspended (the supplier
    #: is suspended) or blocked (the customer blocked the supplier); only "active" opens data.
    status: str = "active"


def grant_status(grant: ConsentGrant, supplier: Supplier, blocked: bool, now: datetime) -> str:
    """A grant's status as the customer reads it: revoked or expired first (the grant itself
    ended), then suspended or blocked (the supplier may not use it), else active."""
    if grant.revoked_at is not None:
        return "revoked"
    if not grant.is_active(now):
        return "expired"
    if supplier.status == SupplierStatus.SUSPENDED:
        return "suspended"
    if blocked:
        return "blocked"
    return "active"


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
        ctx,
        "consent",
        customer_id=customer_id,
        reason=Reason("consent.refused_unconfirmed", {"supplier": supplier.id}),
        categories=frozenset({"account"}),
        purpose=purpose,
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
    keep_expiry: bool = False,
) -> ConsentGrant:
    """Record the customer's approval (a new grant, or a change of the active one).

    A grant made from an offer (``offer_id``) is a grant of its own, for that offer only: it
    never changes, nor is changed by, the grants of the supplier's OAuth flow. With
    ``keep_expiry``, a change of an active grant keeps its end date (``expires_at`` applies
    only to a new grant, or one that has already ended): re-authorising never silently moves
    the date the customer chose.
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
        if not (keep_expiry and existing.is_active(now)):
            existing.expires_at = expires_at
        existing.updated_at = now
        existing.consent_text_version = CONSENT_TEXT_VERSION
        grant, event = existing, ReceiptEvent.CHANGED
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
        event = ReceiptEvent.GRANTED
    session.flush()
    entry = ctx.log(
        session,
        "consent",
        customer_id=customer_id,
        reason=Reason(
            "consent.granted" if event == ReceiptEvent.GRANTED else "consent.changed",
            {"supplier": supplier.id},
        ),
        categories=categories_for(parse_scopes(grant.scopes)),
        purpose=purpose,
    )
    # the receipt cites the entry (index and leaf hash, signed), so the entry comes first
    make_receipt(session, inst, grant, supplier, event, base_url, log_entry=entry)
    session.flush()
    return grant


def revoke_grant(
    session: Session, inst: Instance, customer_id: str, grant_id: str, ctx: Context, base_url: str
) -> None:
    """Revoke at once: the grant, every token issued under it, and a receipt saying so."""
    with unit_of_work(session) as uow:
        grant = session.get(ConsentGrant, grant_id)
        if grant is None or grant.customer_id != customer_id:
            raise NotFound("No such consent.")
        if grant.revoked_at is not None:
            return
        supplier = session.get(Supplier, grant.supplier_id)
        if supplier is None:
            raise NotFound("No such supplier.")
        revoke_in_transaction(session, inst, grant, supplier, ctx, base_url)
        uow.commit()


def revoke_in_transaction(
    session: Session,
    inst: Instance,
    grant: ConsentGrant,
    supplier: Supplier,
    ctx: Context,
    base_url: str,
) -> None:
    """Revoke ``grant`` in the caller's transaction: the grant, every token issued under it
    (logged), its entry and the signed receipt that cites it."""
    grant.revoked_at = utcnow()
    tokens.revoke_tokens(
        session,
        OAuthToken.grant_id == grant.id,
        reason=Reason("consent.grant_revoked", {"grant": grant.id}),
        ctx=ctx,
        customer_id=grant.customer_id,
        purpose=grant.purpose,
    )
    entry = ctx.log(
        session,
        "consent",
        customer_id=grant.customer_id,
        reason=Reason("consent.revoked", {"supplier": supplier.id}),
        categories=categories_for(parse_scopes(grant.scopes)),
        purpose=grant.purpose,
    )
    # the receipt cites the entry (index and leaf hash, signed), so the entry comes first
    make_receipt(session, inst, grant, supplier, ReceiptEvent.REVOKED, base_url, log_entry=entry)


def list_grants(session: Session, customer_id: str) -> list[GrantView]:
    now = utcnow()
    rows = session.execute(
        select(ConsentGrant, Supplier)
        .join(Supplier, Supplier.id == ConsentGrant.supplier_id)
        .where(ConsentGrant.customer_id == customer_id)
        .order_by(ConsentGrant.created_at.desc())
    ).all()
    views = [
        GrantView(
            grant,
            supplier,
            tuple(sorted(categories_for(parse_scopes(grant.scopes)))),
            grant.is_active(now),
        )
        for grant, supplier in rows
    ]
    blocked = set(
        session.execute(
            select(SupplierBlock.supplier_id).where(SupplierBlock.customer_id == customer_id)
        ).scalars()
    )
    return [
        dataclasses.replace(
            view,
            status=(
                status := grant_status(view.grant, view.supplier, view.supplier.id in blocked, now)
            ),
            active=status == "active",
        )
        for view in views
    ]
