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
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import (
    MatchEntry,
    Offer,
    OfferDelivery,
    Supplier,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.broker import (
    CountQuery,
    epoch_of,
    log_aggregate,
    require_declared_purpose,
)
from infomediary.services.budgets import MICRO, budget_remaining, charge
from infomediary.services.offer_contacts import contact_shared
from infomediary.services.pseudonyms import offer_pseudonym
from infomediary.services.rewards import escrow_offer, refund_escrow, require_funds
from infomediary.services.uow import unit_of_work
from infomediary.statuses import DeliveryStatus, OfferStatus
from policies.model import Mode

MAX_TITLE = 120
MAX_BODY = 2000


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
    session: Session, inst: Instance, supplier: Supplier, offer_in: OfferInput, ctx: Context
) -> dict[str, Any]:
    """One offer, one transaction: funds checked, epsilon charged and the cap's rewards
    escrowed, the audience selected, the offer and its deliveries stored, one log entry; all
    committed together before the supplier hears anything."""
    with unit_of_work(session) as uow:
        query = offer_in.query
        require_declared_purpose(query, supplier)
        noise = inst.noise
        epsilon_micro = round(noise.privacy_loss() * MICRO)
        offer_id = str(uuid.uuid4())
        # Rewards are escrowed for the *cap*, before anything depends on the data: an amount or
        # a refusal that depended on how many customers match would leak the true count.
        escrow = offer_in.reward_cents * offer_in.max_recipients
        if escrow:
            require_funds(session, supplier.id, escrow)
        left = charge(session, inst.settings, supplier.id, epsilon_micro, f"offer:{offer_id}")
        if escrow:
            escrow_offer(session, supplier.id, offer_id, escrow)
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
            ctx,
            action="offer",
            query=query,
            epsilon_micro=epsilon_micro,
            released=offer.noisy_reach,
            k=k,
            members=recipients,
            categories=selection.categories,
            offer_id=offer_id,
        )
        uow.commit()
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
    session: Session, inst: Instance, supplier: Supplier, offer_id: str, ctx: Context
) -> dict[str, Any]:
    """The supplier's view: noisy reach, noisy batched totals, accepters' pseudonyms.

    One transaction: closing an expired offer (its unpaid escrow refunded) and this epoch's
    one noisy release of the response totals (charged like a count) commit together, before
    the view is answered; a view that changes nothing ends without a commit.
    """
    with unit_of_work(session) as uow:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.supplier_id != supplier.id:
            uow.refuse(
                ctx.event("offer", reason="offer view refused: no such offer of this supplier")
            )
            raise NotFound("No such offer.")
        now = utcnow()
        changed = False
        if offer.expires_at <= now and offer.status in (
            OfferStatus.DELIVERED,
            OfferStatus.TOO_SMALL,
        ):
            # what was escrowed and not paid out goes back: reward x (cap - acceptances)
            refund_escrow(session, supplier.id, offer.id)
            offer.status = OfferStatus.CLOSED
            changed = True
        epoch = epoch_of(now, inst.settings.broker_epoch_hours)
        if offer.status == OfferStatus.DELIVERED and offer.totals_epoch != epoch:
            _release_totals(session, inst, supplier, offer, epoch)
            changed = True
        view = _view(session, inst, supplier, offer)
        if changed:
            uow.commit()
        return view


def _release_totals(
    session: Session, inst: Instance, supplier: Supplier, offer: Offer, epoch: int
) -> None:
    """One noisy release of the response totals per epoch, charged like a count."""
    noise, k = inst.noise, inst.settings.broker_k
    epsilon_micro = round(noise.privacy_loss() * MICRO)
    charge(session, inst.settings, supplier.id, epsilon_micro, f"offer-totals:{offer.id}")
    answers = (DeliveryStatus.ACCEPTED, DeliveryStatus.DECLINED)
    true = [
        session.execute(
            select(func.count()).where(
                OfferDelivery.offer_id == offer.id, OfferDelivery.status == status
            )
        ).scalar_one()
        for status in answers
    ]
    noisy = noise.release([int(t) for t in true])
    offer.totals = json.dumps(
        {name: (v if v >= k else None) for name, v in zip(answers, noisy, strict=True)}
    )
    offer.totals_epoch = epoch


def _view(session: Session, inst: Instance, supplier: Supplier, offer: Offer) -> dict[str, Any]:
    accepted = session.execute(
        select(OfferDelivery.customer_id, OfferDelivery.responded_at)
        .where(OfferDelivery.offer_id == offer.id, OfferDelivery.status == DeliveryStatus.ACCEPTED)
        .order_by(OfferDelivery.responded_at)
    ).all()
    return {
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


# -- the customer's inbox ------------------------------------------------------------------


# -- "share my contact details": the normal consent, started from an accepted offer ----------
