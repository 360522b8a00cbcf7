"""Whether a customer has dealt with a supplier, and the entries and releases that say so."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Agreement,
    ConsentGrant,
    ErasureRequest,
    Offer,
    OfferDelivery,
    Release,
    SupplierBlock,
)
from infomediary.services import exposure, privacy_ledger


def supplier_entries(customer_id: str, supplier_id: str) -> tuple[ColumnElement[bool], ...]:
    return (
        AccessLogEntry.customer_id == customer_id,
        AccessLogEntry.actor_type == "supplier",
        AccessLogEntry.actor_id == supplier_id,
    )


def count_seqs(session: Session, customer_id: str, supplier_id: str) -> list[int]:
    """The releases (counts, offer matches) of this supplier's that used the customer."""
    ordinal = privacy_ledger.ordinal_of(session, customer_id)
    if ordinal is None:
        return []
    every = list(exposure.release_seqs(session, ordinal))
    found: list[int] = []
    for start in range(0, len(every), 500):
        chunk = every[start : start + 500]
        found += [
            int(seq)
            for seq in session.execute(
                select(Release.seq).where(
                    Release.seq.in_(chunk), Release.supplier_id == supplier_id
                )
            ).scalars()
        ]
    return sorted(found, reverse=True)


def dealt_with(session: Session, inst: Instance, customer_id: str, supplier_id: str) -> bool:
    """Whether the customer has dealt with the supplier: a grant, an offer, a block, an access
    of theirs on the customer's log, an erasure request, a MyTerms agreement, or a count that
    used the customer."""
    probes = (
        select(ConsentGrant.id).where(
            ConsentGrant.customer_id == customer_id, ConsentGrant.supplier_id == supplier_id
        ),
        select(OfferDelivery.offer_id)
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .where(OfferDelivery.customer_id == customer_id, Offer.supplier_id == supplier_id),
        select(SupplierBlock.supplier_id).where(
            SupplierBlock.customer_id == customer_id, SupplierBlock.supplier_id == supplier_id
        ),
        select(AccessLogEntry.seq).where(*supplier_entries(customer_id, supplier_id)),
        select(ErasureRequest.id).where(
            ErasureRequest.customer_id == customer_id, ErasureRequest.supplier_id == supplier_id
        ),
        select(Agreement.id).where(
            Agreement.customer_id == customer_id, Agreement.supplier_id == supplier_id
        ),
    )
    for probe in probes:
        if session.execute(probe.limit(1)).first() is not None:
            return True
    return bool(count_seqs(session, customer_id, supplier_id))
