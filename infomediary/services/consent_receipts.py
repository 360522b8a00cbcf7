"""Consent receipts (Kantara CR v1.1 + ISO/IEC TS 27560 fields), signed with the instance's receipt
key, and the customer's reading of them.

A receipt names the access-log entry of the same event (``log_index``, ``log_leaf_hash``, signed
with the rest), so the customer can prove, against a checkpoint kept anywhere, that the log the
operator publishes holds that entry: :func:`receipt_proof` adds the RFC 9162 inclusion proof and
the latest checkpoint that covers it, unsigned, beside the receipt.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.log import StoredTree
from infomediary.crypto.receipts import ReceiptError, ReceiptFacts, log_citation, verify_receipt
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
from infomediary.services import checkpoints
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.uow import unit_of_work
from infomediary.tlog import merkle
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


# -- the receipt's log entry, proved ----------------------------------------------------------


class ProofStatus(StrEnum):
    """Whether a receipt's log entry can be proved included in a signed checkpoint."""

    #: proved: the inclusion proof leads from the receipt's leaf to the checkpoint's root
    READY = "ready"
    #: no checkpoint covers the entry yet (they are signed every ``checkpoint_seconds``)
    PENDING = "pending"
    #: a receipt issued before receipts named their log entry
    NOT_RECORDED = "not_recorded"
    #: the receipt does not verify against our key, or its log claims are malformed
    UNVERIFIED = "unverified"
    #: the log no longer holds the receipt's leaf where the receipt says: never expected
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    """A receipt, the log entry it names, and (when a checkpoint covers it) the RFC 9162
    inclusion proof of that entry in the latest checkpoint, with the checkpoint and its key."""

    receipt: ConsentReceipt
    status: ProofStatus
    claims: dict[str, Any] = field(default_factory=dict)
    index: int | None = None
    leaf_hash: bytes | None = None
    size: int | None = None
    proof: tuple[bytes, ...] = ()
    checkpoint: str | None = None
    key: str | None = None
    retry_after: int | None = None
    problem: str = ""

    def bundle(self) -> dict[str, Any]:
        """The download: the receipt (signed) and, unsigned beside it, what proves its entry.

        ``log.leaf_hash`` is the receipt's ``log_leaf_hash`` claim (lowercase hex); ``proof``
        holds base64 SHA-256 hashes, as ``GET /api/v1/log/proof/inclusion`` gives them;
        ``checkpoint`` is the signed note, ``key`` its verifier key (signed-note vkey)."""
        body: dict[str, Any] = {
            "status": str(self.status),
            "receipt": self.receipt.jws,
            "log": None,
        }
        if self.index is not None and self.leaf_hash is not None:
            body["log"] = {"index": self.index, "leaf_hash": self.leaf_hash.hex()}
        if self.status == ProofStatus.READY:
            body["log"].update(
                size=self.size,
                proof=[base64.b64encode(node).decode() for node in self.proof],
                checkpoint=self.checkpoint,
                key=self.key,
            )
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.problem:
            body["problem"] = self.problem
        return body


def receipt_proof(
    session: Session, inst: Instance, customer_id: str, grant_id: str, receipt_id: str
) -> ReceiptProof:
    """The customer's receipt with the proof of its log entry, against the latest checkpoint
    that covers the entry. Read only: before a checkpoint covers it the answer is ``pending``
    (nothing is signed on a read; the worker signs every ``checkpoint_seconds``)."""
    with unit_of_work(session):
        receipt = receipt_of(session, customer_id, receipt_id)
        if receipt.grant_id != grant_id:
            raise NotFound("No such receipt.")
        try:
            claims = verify_receipt(receipt.jws, inst.receipt_signer.jwks())
            cited = log_citation(claims)
        except ReceiptError as exc:
            return ReceiptProof(receipt, ProofStatus.UNVERIFIED, problem=str(exc))
        if cited is None:
            return ReceiptProof(
                receipt,
                ProofStatus.NOT_RECORDED,
                claims,
                problem="this receipt was issued before receipts named their log entry",
            )
        index, leaf = cited
        found = checkpoints.latest(session)
        if found is None or found.size <= index:
            return ReceiptProof(
                receipt,
                ProofStatus.PENDING,
                claims,
                index,
                leaf,
                retry_after=inst.settings.checkpoint_seconds,
                problem="no signed checkpoint covers this entry yet",
            )
        size, root = int(found.size), bytes(found.root)
        try:
            nodes = tuple(StoredTree(session).inclusion_proof(index, size))
            merkle.verify_inclusion(index, size, leaf, nodes, root)
        except merkle.ProofError as exc:
            return ReceiptProof(
                receipt,
                ProofStatus.MISMATCH,
                claims,
                index,
                leaf,
                size=size,
                checkpoint=found.note,
                key=checkpoints.verifier_key(inst),
                problem=f"the log's checkpoint of {size} entries does not hold this "
                f"receipt's entry as signed ({exc})",
            )
        return ReceiptProof(
            receipt,
            ProofStatus.READY,
            claims,
            index,
            leaf,
            size=size,
            proof=nodes,
            checkpoint=found.note,
            key=checkpoints.verifier_key(inst),
        )
