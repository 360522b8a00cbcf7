"""Consent receipts (Kantara CR v1.1 + ISO/IEC TS 27560 fields), signed with the instance's receipt
key, and the customer's reading of them.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.crypto.receipts import ReceiptFacts
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    ConsentGrant,
    ConsentReceipt,
    Supplier,
    utcnow,
)
from infomediary.scopes import categories_for, parse_scopes
from infomediary.services.pseudonyms import pairwise_pseudonym
from policies.model import (
    PURPOSES,
)
from policies.taxonomy import CATEGORIES

#: Version of the consent screen's wording; a receipt names the text the customer saw.
CONSENT_TEXT_VERSION = "consent-screen/2026-11"


CONTROLLER = {"name": "Infomediary", "contact": "privacy@infomediary.example", "jurisdiction": "AU"}


def make_receipt(
    session: Session,
    inst: Instance,
    grant: ConsentGrant,
    supplier: Supplier,
    event: str,
    base_url: str,
    *,
    log_entry: AccessLogEntry,
) -> ConsentReceipt:
    """The signed receipt of ``event``, citing ``log_entry`` (the event's access-log entry,
    appended first in the same transaction): its index and leaf hash are signed claims."""
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
        log_index=int(log_entry.seq),
        log_leaf_hash=bytes(log_entry.leaf_hash),
    )
    receipt = ConsentReceipt(
        id=receipt_id,
        grant_id=grant.id,
        customer_id=grant.customer_id,
        event=event,
        jws=inst.receipt_signer.sign(facts),
    )
    session.add(receipt)
    return receipt


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
