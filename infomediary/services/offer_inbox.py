"""The customer's inbox of offers: list (each with what it was targeted on, in words), accept
(paying the reward), decline, block the supplier; and the operator's list of suppliers many
customers blocked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason, render
from infomediary.broker.attributes import ATTRIBUTES
from infomediary.db import rowcount
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    Offer,
    OfferDelivery,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.consent_grants import revoke_in_transaction
from infomediary.services.matching import sync_member
from infomediary.services.rewards import pay_reward
from infomediary.services.uow import unit_of_work
from infomediary.statuses import DeliveryStatus
from policies.model import PURPOSES
from policies.taxonomy import INTEREST_TAGS

#: Suppliers whose offers this many customers blocked are flagged to the operator.
FLAG_BLOCKS = 25


@dataclass(frozen=True)
class Targeting:
    """What an offer was targeted on, in words, and so what accepting it tells the supplier:
    that someone matching every one of these predicates, for this purpose, accepted."""

    supplier: str
    #: (attribute's label, its values in words) for every predicate of the criteria.
    predicates: tuple[tuple[str, str], ...]
    purpose: str

    @property
    def matching(self) -> str:
        return ", ".join(f"{label} = {values}" for label, values in self.predicates)

    @property
    def reveals(self) -> str:
        return (
            f"{self.supplier} will know that someone matching: {self.matching} "
            f"accepted this offer, sent for {self.purpose}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "criteria": [{"attribute": a, "values": v} for a, v in self.predicates],
            "purpose": self.purpose,
            "accepting_reveals": self.reveals,
        }


def attribute_label(name: str) -> str:
    """An attribute's human label: its description up to the first explanation."""
    description = ATTRIBUTES[name].description if name in ATTRIBUTES else name
    return description.split(",")[0].split(":")[0].strip()


def value_label(attribute: str, value: str) -> str:
    if attribute == "interests" and value in INTEREST_TAGS:
        return INTEREST_TAGS[value].label
    if attribute == "area":
        return f"postcodes {value}xx"
    return value


def targeting(offer: Offer, supplier: Supplier) -> Targeting:
    """The offer's criteria and purpose in words, every predicate of them."""
    stored = json.loads(offer.criteria)
    where: dict[str, list[str]] = stored.get("where", {})
    predicates = tuple(
        (attribute_label(attribute), " or ".join(value_label(attribute, v) for v in values))
        for attribute, values in where.items()
    )
    purpose = stored.get("purpose", offer.purpose)
    return Targeting(supplier.name, predicates, PURPOSES.get(purpose, purpose))


@dataclass(frozen=True)
class InboxItem:
    offer: Offer
    supplier: Supplier
    delivery: OfferDelivery
    targeting: Targeting

    def as_dict(self) -> dict[str, Any]:
        """The offer as the customer may receive it in JSON, with what accepting reveals."""
        return {
            "id": self.offer.id,
            "supplier": self.supplier.name,
            "title": self.offer.title,
            "body": self.offer.body,
            "reward_cents": self.offer.reward_cents,
            "expires_at": self.offer.expires_at.isoformat(),
            "status": self.delivery.status,
            "targeting": self.targeting.as_dict(),
        }


def inbox(session: Session, customer_id: str) -> list[InboxItem]:
    rows = session.execute(
        select(OfferDelivery, Offer, Supplier)
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .join(Supplier, Supplier.id == Offer.supplier_id)
        .where(OfferDelivery.customer_id == customer_id)
        .order_by(OfferDelivery.delivered_at.desc())
    ).all()
    return [
        InboxItem(offer, supplier, delivery, targeting(offer, supplier))
        for delivery, offer, supplier in rows
    ]


def respond(
    session: Session, inst: Instance, customer_id: str, offer_id: str, action: str, ctx: Context
) -> str:
    """accept | decline | block. Accepting shares the customer's pseudonym for this offer (and
    so that someone matching its criteria accepted) and pays the reward."""
    with unit_of_work(session) as uow:
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
                raise ValidationFailed({"action": "You already answered this offer."})
        if action == "accept":
            if offer.reward_cents:
                pay_reward(session, supplier.id, offer.id, customer_id, offer.reward_cents)
            reason = Reason("offers.accepted", {"supplier": supplier.id})
        elif action == "decline":
            reason = Reason("offers.declined")
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
            reason = Reason("offers.blocked", {"supplier": supplier.id})
        ctx.log(session, "offer", customer_id=customer_id, purpose=offer.purpose, reason=reason)
        uow.commit()
        return render(reason.to_json(), name_of=lambda _: supplier.name)


def _revoke_grants_of(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    ctx: Context,
    base_url: str,
) -> int:
    """Revoke every active grant of the customer's to ``supplier`` (each with its tokens, its
    entry and its signed receipt), in the caller's transaction; returns how many."""
    grants = session.execute(
        select(ConsentGrant).where(
            ConsentGrant.customer_id == customer_id,
            ConsentGrant.supplier_id == supplier.id,
            ConsentGrant.revoked_at.is_(None),
        )
    ).scalars()
    revoked = list(grants)
    for grant in revoked:
        revoke_in_transaction(session, inst, grant, supplier, ctx, base_url)
    return len(revoked)


def revoke_all_grants(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    ctx: Context,
    base_url: str,
) -> int:
    """Revoke every active grant the customer gave ``supplier``, in one transaction."""
    with unit_of_work(session) as uow:
        supplier = session.get(Supplier, supplier_id)
        if supplier is None:
            raise NotFound("No such supplier.")
        revoked = _revoke_grants_of(session, inst, customer_id, supplier, ctx, base_url)
        uow.commit()
        return revoked


def block_supplier(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    *,
    revoke_grants: bool,
    ctx: Context,
    base_url: str,
) -> int:
    """Block the supplier (no more offers or counts) and, if asked, revoke every grant the
    customer gave it, together. Returns the grants revoked."""
    with unit_of_work(session) as uow:
        supplier = session.get(Supplier, supplier_id)
        if supplier is None:
            raise NotFound("No such supplier.")
        revoked = (
            _revoke_grants_of(session, inst, customer_id, supplier, ctx, base_url)
            if revoke_grants
            else 0
        )
        if session.get(SupplierBlock, (customer_id, supplier.id)) is None:
            session.add(SupplierBlock(customer_id=customer_id, supplier_id=supplier.id))
        session.flush()
        sync_member(session, inst, customer_id)
        ctx.log(
            session,
            "offer",
            customer_id=customer_id,
            reason=Reason("offers.blocked", {"supplier": supplier.id}),
        )
        uow.commit()
        return revoked


def unblock_supplier(
    session: Session, inst: Instance, customer_id: str, supplier_id: str, ctx: Context
) -> bool:
    """Lift the customer's block of the supplier: its offers and counts may reach them again
    (their policy still decides). Grants revoked stay revoked. Whether there was a block."""
    with unit_of_work(session) as uow:
        block = session.get(SupplierBlock, (customer_id, supplier_id))
        if block is None:
            return False
        session.delete(block)
        session.flush()
        sync_member(session, inst, customer_id)
        ctx.log(
            session,
            "offer",
            customer_id=customer_id,
            reason=Reason("offers.unblocked", {"supplier": supplier_id}),
        )
        uow.commit()
        return True


def flagged_suppliers(session: Session, threshold: int = FLAG_BLOCKS) -> dict[str, int]:
    """Suppliers blocked by at least ``threshold`` customers: for the operator to review."""
    rows = session.execute(
        select(SupplierBlock.supplier_id, func.count())
        .group_by(SupplierBlock.supplier_id)
        .having(func.count() >= threshold)
    ).all()
    return {str(s): int(n) for s, n in rows}
