"""Pseudonymous offers: delivered by the broker to eligible inboxes, never to named people.

Sending: validate like a count -> charge epsilon (the reach released is a noisy count) ->
select customers whose policy allows *pseudonymous* use of every category the criteria
touch, for the offer's purpose, minus those who blocked the supplier -> if the noisy reach
is below k nothing is delivered -> else deliver to at most ``max_recipients`` (a random
sample), escrow the rewards, write one access-log entry with the member set.
The supplier sees the noisy reach, batched noisy response totals, and the pairwise
pseudonyms of customers who accepted; never who received the offer.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import LogEvent, append
from infomediary.db import rowcount
from infomediary.errors import NotFound, PolicyDenied, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    MatchEntry,
    Offer,
    OfferDelivery,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.broker import (
    MICRO,
    CountQuery,
    budget_remaining,
    charge,
    epoch_of,
    log_aggregate,
    require_declared_purpose,
)
from infomediary.services.consent_grants import grant_consent
from infomediary.services.matching import sync_member
from infomediary.services.pseudonyms import offer_pseudonym
from infomediary.services.refusals import refuse_supplier
from infomediary.services.resource import release
from infomediary.services.rewards import escrow_offer, pay_reward, refund_escrow, require_funds
from infomediary.statuses import DeliveryStatus, OfferStatus
from policies.model import Mode

MAX_TITLE = 120
MAX_BODY = 2000
#: Suppliers whose offers this many customers blocked are flagged to the operator.
FLAG_BLOCKS = 25


@dataclass(frozen=True)
class OfferInput:
    """An offer as the edge's schema loaded it: its audience (a count's criteria without a
    breakdown), a stripped title and body of 1 to ``MAX_TITLE`` / ``MAX_BODY`` characters,
    the reward per acceptance, the cap on recipients and the expiry."""

    query: CountQuery
    title: str
    body: str
    reward_cents: int
    max_recipients: int
    expires_at: datetime


def send_offer(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    offer_in: OfferInput,
    request_id: str = "-",
) -> dict[str, Any]:
    query = offer_in.query
    require_declared_purpose(query, supplier)
    noise = inst.noise
    epsilon_micro = round(noise.privacy_loss() * MICRO)
    offer_id = str(uuid.uuid4())
    # Rewards are escrowed for the *cap*, before anything depends on the data: an amount or a
    # refusal that depended on how many customers match would leak the true count.
    escrow = offer_in.reward_cents * offer_in.max_recipients
    if escrow:
        require_funds(session, supplier.id, escrow)
    left = charge(session, inst.settings, supplier.id, epsilon_micro, f"offer:{offer_id}")
    if escrow:
        escrow_offer(session, supplier.id, offer_id, escrow)
    session.commit()  # charged (and escrowed) before computing, never refunded early

    index = inst.match_index
    index.refresh(session)
    selection = index.select(
        query.where, query.purpose, Mode.PSEUDONYMOUS, supplier.id, supplier.sector
    )
    noisy = noise.release([len(selection.members)])[0]
    k = inst.settings.broker_k
    offer = Offer(
        id=offer_id,
        supplier_id=supplier.id,
        purpose=query.purpose,
        criteria=query.canonical(),
        title=offer_in.title,
        body=offer_in.body,
        reward_cents=offer_in.reward_cents,
        max_recipients=offer_in.max_recipients,
        noisy_reach=noisy if noisy >= k else None,
        expires_at=offer_in.expires_at,
        status=OfferStatus.TOO_SMALL if noisy < k else OfferStatus.DELIVERED,
    )
    session.add(offer)
    recipients = BitMap()
    if noisy >= k:
        ordinals = list(selection.members)
        if len(ordinals) > offer_in.max_recipients:
            ordinals = random.SystemRandom().sample(ordinals, offer_in.max_recipients)
        recipients = BitMap(ordinals)
        customer_ids = _customers_of(session, ordinals)
        session.add_all(OfferDelivery(offer_id=offer_id, customer_id=c) for c in customer_ids)
    log_aggregate(
        session,
        supplier,
        "offer",
        query,
        epsilon_micro,
        offer.noisy_reach,
        k,
        recipients,
        selection.categories,
        request_id,
        offer_id=offer_id,
    )
    session.commit()
    return {
        "id": offer_id,
        "status": offer.status,
        "reach": offer.noisy_reach,
        "suppressed": offer.noisy_reach is None,
        "k": k,
        "epsilon_spent": epsilon_micro / MICRO,
        "budget_remaining": left / MICRO,
        "expires_at": offer.expires_at.isoformat(),
    }


def _customers_of(session: Session, ordinals: list[int]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(ordinals), 5000):
        chunk = ordinals[start : start + 5000]
        found += [
            c
            for c in session.execute(
                select(MatchEntry.customer_id).where(MatchEntry.ordinal.in_(chunk))
            ).scalars()
            if c
        ]
    return found


def offer_view(
    session: Session, inst: Instance, supplier: Supplier, offer_id: str, request_id: str = "-"
) -> dict[str, Any]:
    """The supplier's view: noisy reach, noisy batched totals, accepters' pseudonyms."""
    offer = session.get(Offer, offer_id)
    if offer is None or offer.supplier_id != supplier.id:
        refuse_supplier(
            session,
            supplier_id=supplier.id,
            action="offer",
            reason="offer view refused: no such offer of this supplier",
            request_id=request_id,
        )
        raise NotFound("No such offer.")
    epoch = epoch_of(utcnow(), inst.settings.broker_epoch_hours)
    k = inst.settings.broker_k
    if offer.expires_at <= utcnow() and offer.status in (
        OfferStatus.DELIVERED,
        OfferStatus.TOO_SMALL,
    ):
        # what was escrowed and not paid out goes back: reward x (cap - acceptances)
        refund_escrow(session, supplier.id, offer.id)
        offer.status = OfferStatus.CLOSED
        session.commit()
    if offer.status == OfferStatus.DELIVERED and offer.totals_epoch != epoch:
        # one noisy release of the response totals per epoch, charged like a count
        noise = inst.noise
        epsilon_micro = round(noise.privacy_loss() * MICRO)
        charge(session, inst.settings, supplier.id, epsilon_micro, f"offer-totals:{offer.id}")
        true = [
            session.execute(
                select(func.count()).where(
                    OfferDelivery.offer_id == offer.id, OfferDelivery.status == status
                )
            ).scalar_one()
            for status in (DeliveryStatus.ACCEPTED, DeliveryStatus.DECLINED)
        ]
        noisy = noise.release([int(t) for t in true])
        offer.totals = json.dumps(
            {
                name: (v if v >= k else None)
                for name, v in zip(
                    (DeliveryStatus.ACCEPTED, DeliveryStatus.DECLINED), noisy, strict=True
                )
            }
        )
        offer.totals_epoch = epoch
        session.commit()
    accepted = session.execute(
        select(OfferDelivery.customer_id, OfferDelivery.responded_at)
        .where(OfferDelivery.offer_id == offer.id, OfferDelivery.status == DeliveryStatus.ACCEPTED)
        .order_by(OfferDelivery.responded_at)
    ).all()
    view = {
        "id": offer.id,
        "status": offer.status,
        "title": offer.title,
        "purpose": offer.purpose,
        "criteria": json.loads(offer.criteria),
        "reward_cents": offer.reward_cents,
        "reach": offer.noisy_reach,
        "suppressed": offer.noisy_reach is None,
        "expires_at": offer.expires_at.isoformat(),
        "response_totals": json.loads(offer.totals) if offer.totals else None,
        "accepted": [
            {
                "sub": offer_pseudonym(inst, supplier.id, customer_id),
                "accepted_at": at.isoformat() if at else None,
                "contact_shared": contact_shared(session, offer.id, customer_id),
            }
            for customer_id, at in accepted
        ],
        "budget_remaining": budget_remaining(session, inst.settings, supplier.id),
    }
    session.rollback()
    return view


# -- the customer's inbox ------------------------------------------------------------------


@dataclass(frozen=True)
class InboxItem:
    offer: Offer
    supplier: Supplier
    delivery: OfferDelivery


def inbox(session: Session, customer_id: str) -> list[InboxItem]:
    rows = session.execute(
        select(OfferDelivery, Offer, Supplier)
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .join(Supplier, Supplier.id == Offer.supplier_id)
        .where(OfferDelivery.customer_id == customer_id)
        .order_by(OfferDelivery.delivered_at.desc())
    ).all()
    return [InboxItem(offer, supplier, delivery) for delivery, offer, supplier in rows]


def respond(
    session: Session, inst: Instance, customer_id: str, offer_id: str, action: str, ctx: Context
) -> str:
    """accept | decline | block. Accepting shares the pairwise pseudonym and pays the reward."""
    delivery = session.get(OfferDelivery, (offer_id, customer_id))
    offer = session.get(Offer, offer_id)
    if delivery is None or offer is None:
        raise NotFound("No such offer in your inbox.")
    if action not in ("accept", "decline", "block"):
        raise ValidationFailed({"action": "Choose accept, decline or block."})
    supplier = session.get(Supplier, offer.supplier_id)
    if supplier is None:
        raise NotFound("No such offer in your inbox.")
    now = utcnow()
    if action in ("accept", "decline") and delivery.status != DeliveryStatus.DELIVERED:
        raise ValidationFailed({"action": "You already answered this offer."})
    if action == "accept" and offer.expires_at <= now:
        raise ValidationFailed({"action": "This offer has expired."})
    if action in ("accept", "decline"):
        # one answer per delivery, even with two concurrent requests (PostgreSQL READ COMMITTED)
        claimed = rowcount(
            session.execute(
                update(OfferDelivery)
                .where(
                    OfferDelivery.offer_id == offer_id,
                    OfferDelivery.customer_id == customer_id,
                    OfferDelivery.status == DeliveryStatus.DELIVERED,
                )
                .values(
                    status=DeliveryStatus.ACCEPTED
                    if action == "accept"
                    else DeliveryStatus.DECLINED,
                    responded_at=now,
                )
            )
        )
        if not claimed:
            session.rollback()
            raise ValidationFailed({"action": "You already answered this offer."})
    if action == "accept":
        if offer.reward_cents:
            pay_reward(session, supplier.id, offer.id, customer_id, offer.reward_cents)
        reason = f"offer accepted: pseudonym shared with {supplier.name}"
    elif action == "decline":
        reason = "offer declined"
    else:
        delivery.status = (
            DeliveryStatus.BLOCKED
            if delivery.status == DeliveryStatus.DELIVERED
            else delivery.status
        )
        if session.get(SupplierBlock, (customer_id, supplier.id)) is None:
            session.add(SupplierBlock(customer_id=customer_id, supplier_id=supplier.id))
        session.flush()

        sync_member(session, inst, customer_id)
        reason = f"supplier {supplier.name} blocked: no more offers or counts"
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="offer",
            customer_id=customer_id,
            categories=frozenset(),
            purpose=offer.purpose,
            reason=reason,
            request_id=ctx.request_id,
        ),
    )
    session.commit()
    return reason


def flagged_suppliers(session: Session, threshold: int = FLAG_BLOCKS) -> dict[str, int]:
    """Suppliers blocked by at least ``threshold`` customers: for the operator to review."""
    rows = session.execute(
        select(SupplierBlock.supplier_id, func.count())
        .group_by(SupplierBlock.supplier_id)
        .having(func.count() >= threshold)
    ).all()
    return {str(s): int(n) for s, n in rows}


# -- "share my contact details": the normal consent, started from an accepted offer ----------

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
    (with its signed receipt) for identity, for the offer's purpose, under the policy."""

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
    session.commit()
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
    session: Session, inst: Instance, supplier: Supplier, offer_id: str, sub: str, request_id: str
) -> dict[str, Any]:
    """An accepter's contact details, if they chose to share them and their policy allows it."""

    offer = session.get(Offer, offer_id)
    if offer is None or offer.supplier_id != supplier.id:
        _refuse_contact(session, supplier, request_id, "no such offer of this supplier")
        raise NotFound("No such offer.")
    accepted = (
        session.execute(
            select(OfferDelivery.customer_id).where(
                OfferDelivery.offer_id == offer_id, OfferDelivery.status == DeliveryStatus.ACCEPTED
            )
        )
        .scalars()
        .all()
    )
    for customer_id in accepted:
        if offer_pseudonym(inst, supplier.id, customer_id) == sub:
            if not contact_shared(session, offer.id, customer_id):
                _refuse_contact(
                    session,
                    supplier,
                    request_id,
                    "not shared for this offer",
                    customer_id=customer_id,
                    purpose=offer.purpose,
                )
                raise PolicyDenied(
                    "This customer has not chosen to share contact details with you.",
                    [{"category": "identity", "reason": "not shared from the offer"}],
                )
            body = release(
                session, inst, supplier, customer_id, CONTACT_SCOPES, offer.purpose, request_id
            )
            body["sub"] = sub  # keep the offer's pseudonym: no link to other relationships
            return body
    _refuse_contact(session, supplier, request_id, "no accepter of this offer has that pseudonym")
    raise NotFound("No customer who accepted this offer has that pseudonym.")


def _refuse_contact(
    session: Session,
    supplier: Supplier,
    request_id: str,
    why: str,
    *,
    customer_id: str | None = None,
    purpose: str = "service",
) -> None:
    refuse_supplier(
        session,
        supplier_id=supplier.id,
        action="read",
        customer_id=customer_id,
        categories=frozenset({"identity"}),
        purpose=purpose,
        reason=f"contact details refused: {why}",
        request_id=request_id,
    )
