"""Sharing contact details from an accepted offer: the customer's own grant for that offer alone,
and the supplier's reading of it under the offer's pseudonym.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.log import LogEvent
from infomediary.audit.reasons import Reason
from infomediary.errors import NotFound, PolicyDenied, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    Offer,
    OfferDelivery,
    Supplier,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.consent_grants import grant_consent
from infomediary.services.pseudonyms import offer_pseudonym
from infomediary.services.resource import release
from infomediary.services.uow import unit_of_work
from infomediary.statuses import DeliveryStatus

CONTACT_SCOPES = ["profile.identity:read"]


def accepted_offer(session: Session, customer_id: str, offer_id: str) -> tuple[Offer, Supplier]:
    delivery = session.get(OfferDelivery, (offer_id, customer_id))
    offer = session.get(Offer, offer_id)
    supplier = session.get(Supplier, offer.supplier_id) if offer else None
    if delivery is None or offer is None or supplier is None:
        raise NotFound("No such offer in your inbox.")
    if delivery.status != DeliveryStatus.ACCEPTED:
        raise ValidationFailed({"action": "Accept the offer first."})
    return offer, supplier


def share_contact(
    session: Session,
    inst: Instance,
    customer_id: str,
    offer_id: str,
    expires_at: datetime | None,
    ctx: Context,
    base_url: str,
) -> str:
    """The customer chooses to reveal their identity to the offer's supplier: a consent grant
    (with its signed receipt and log entry) for identity, for the offer's purpose alone."""
    with unit_of_work(session) as uow:
        offer, supplier = accepted_offer(session, customer_id, offer_id)
        grant_consent(
            session,
            inst,
            customer_id,
            supplier,
            scopes=CONTACT_SCOPES,
            purpose=offer.purpose,
            expires_at=expires_at,
            ctx=ctx,
            base_url=base_url,
            offer_id=offer.id,
        )
        uow.commit()
        return supplier.name


def contact_shared(session: Session, offer_id: str, customer_id: str) -> bool:
    """Whether the customer shared contact details *for this offer*, and still does.

    Only the share made from the offer counts: a grant the customer gave the same supplier
    through its OAuth flow is known to the supplier under another pseudonym, and using it here
    would tie the offer's pseudonym to an identity without the customer's click.
    """
    now = utcnow()
    grants = session.execute(
        select(ConsentGrant).where(
            ConsentGrant.customer_id == customer_id, ConsentGrant.offer_id == offer_id
        )
    ).scalars()
    return any(g.is_active(now) and set(CONTACT_SCOPES) <= set(g.scopes.split()) for g in grants)


def identity_grants(session: Session, customer_id: str, supplier_id: str) -> list[ConsentGrant]:
    """The customer's active grants that already let the supplier read their identity, for the
    share page to tell the truth about what the supplier knows."""
    now = utcnow()
    grants = session.execute(
        select(ConsentGrant)
        .where(
            ConsentGrant.customer_id == customer_id,
            ConsentGrant.supplier_id == supplier_id,
            ConsentGrant.offer_id.is_(None),
        )
        .order_by(ConsentGrant.created_at)
    ).scalars()
    return [g for g in grants if g.is_active(now) and set(CONTACT_SCOPES) <= set(g.scopes.split())]


def contact_of(
    session: Session, inst: Instance, supplier: Supplier, offer_id: str, sub: str, ctx: Context
) -> dict[str, Any]:
    """An accepter's contact details, if they chose to share them and their policy allows it.
    Every refusal leaves its denied entry; a release is the resource read, logged as any."""
    with unit_of_work(session) as uow:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.supplier_id != supplier.id:
            uow.refuse(_refusal(ctx, Reason("contacts.no_offer")))
            raise NotFound("No such offer.")
        accepted = (
            session.execute(
                select(OfferDelivery.customer_id).where(
                    OfferDelivery.offer_id == offer_id,
                    OfferDelivery.status == DeliveryStatus.ACCEPTED,
                )
            )
            .scalars()
            .all()
        )
        # each accepter answers this offer under a pseudonym of its own (offer and customer)
        customer_id = next((c for c in accepted if offer_pseudonym(inst, offer.id, c) == sub), None)
        if customer_id is None:
            uow.refuse(_refusal(ctx, Reason("contacts.no_accepter")))
            raise NotFound("No customer who accepted this offer has that pseudonym.")
        if not contact_shared(session, offer.id, customer_id):
            uow.refuse(
                _refusal(
                    ctx,
                    Reason("contacts.not_shared"),
                    customer_id=customer_id,
                    purpose=offer.purpose,
                )
            )
            raise PolicyDenied(
                "This customer has not chosen to share contact details with you.",
                [{"category": "identity", "reason": "not shared from the offer"}],
            )
    # The read itself is the resource use case, with its own policy decision and entry.
    body = release(session, inst, supplier, customer_id, CONTACT_SCOPES, offer.purpose, ctx)
    body["sub"] = sub  # keep the offer's pseudonym: no link to other offers or relationships
    return body


def _refusal(
    ctx: Context, why: Reason, *, customer_id: str | None = None, purpose: str = "service"
) -> LogEvent:
    return ctx.event(
        "read",
        customer_id=customer_id,
        categories=frozenset({"identity"}),
        purpose=purpose,
        reason=why,
    )
