"""The customer's page per supplier: who they are, every grant with its receipts, what they
read and when, the counts and offers that involved the customer, the intents they bid on, what
they earned, and the erasure requests made. A read: nothing is written (reading one's own log
is not logged). Revoking one grant from the page checks the grant is the customer's, to this
supplier."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    ConsentGrant,
    ConsentReceipt,
    DataKey,
    ErasureRequest,
    LedgerEntry,
    LedgerTransaction,
    Offer,
    OfferDelivery,
    Release,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context, agreements, rewards
from infomediary.services.consent_grants import GrantView, list_grants, revoke_grant
from infomediary.services.customer_keys import customer_key
from infomediary.services.erasure_requests import has_webhook, requests_of
from infomediary.services.exports import SupplierNames, TimelineItem, timeline_item
from infomediary.services.intents_dashboard import SupplierIntent, intents_with
from infomediary.services.supplier_dealings import count_seqs, dealt_with, supplier_entries
from infomediary.services.suppliers import redirect_host, redirect_uris
from infomediary.services.uow import unit_of_work
from infomediary.statuses import LedgerAccountKind

#: Entries of the supplier's listed on the page, newest first.
READS_SHOWN = 50
#: Weeks the chart of accesses covers, up to this week.
CHART_WEEKS = 12


@dataclass(frozen=True, slots=True)
class GrantReceipts:
    view: GrantView
    receipts: list[ConsentReceipt]


@dataclass(frozen=True, slots=True)
class CountUse:
    time: datetime
    kind: str
    purpose: str
    epsilon: float


@dataclass(frozen=True, slots=True)
class OfferUse:
    offer: Offer
    delivery: OfferDelivery


@dataclass(frozen=True, slots=True)
class Week:
    start: datetime
    allowed: int
    denied: int


@dataclass(frozen=True, slots=True)
class SupplierPage:
    supplier: Supplier
    hosts: list[str]
    blocked: bool
    grants: list[GrantReceipts]
    reads: list[TimelineItem]
    reads_total: int
    weeks: list[Week]
    counts: list[CountUse]
    offers: list[OfferUse]
    earned_cents: int
    erasures: list[ErasureRequest]
    has_webhook: bool
    #: MyTerms: the roster agreements the supplier publishes it accepts (id, title), and the
    #: customer's agreements with it (:func:`infomediary.services.agreements.agreements_page`).
    accepted_terms: list[tuple[str, str]] = field(default_factory=list)
    agreements: list[dict[str, Any]] = field(default_factory=list)
    #: The customer's intents on which the supplier bid, with its bid's outcome.
    intents: list[SupplierIntent] = field(default_factory=list)

    @property
    def active_grants(self) -> int:
        return sum(1 for g in self.grants if g.view.active)


def _weeks(session: Session, customer_id: str, supplier_id: str) -> list[Week]:
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    this_week = today - timedelta(days=today.weekday())
    first = this_week - timedelta(weeks=CHART_WEEKS - 1)
    rows = session.execute(
        select(AccessLogEntry.created_at, AccessLogEntry.outcome).where(
            *supplier_entries(customer_id, supplier_id), AccessLogEntry.created_at >= first
        )
    ).all()
    allowed = [0] * CHART_WEEKS
    denied = [0] * CHART_WEEKS
    for at, outcome in rows:
        index = min(CHART_WEEKS - 1, max(0, (at - first).days // 7))
        (denied if outcome == "denied" else allowed)[index] += 1
    return [Week(first + timedelta(weeks=i), allowed[i], denied[i]) for i in range(CHART_WEEKS)]


def supplier_page(
    session: Session, inst: Instance, customer_id: str, supplier_id: str
) -> SupplierPage:
    """Everything the customer's page about ``supplier_id`` shows, only the customer's own;
    :class:`NotFound` for a supplier they never dealt with."""
    try:
        supplier = session.get(Supplier, supplier_id)
        if supplier is None or not dealt_with(session, inst, customer_id, supplier_id):
            raise NotFound("No such supplier.")
        grants = [g for g in list_grants(session, customer_id) if g.supplier.id == supplier_id]
        receipts: dict[str, list[ConsentReceipt]] = {g.grant.id: [] for g in grants}
        if receipts:
            for receipt in session.execute(
                select(ConsentReceipt)
                .where(ConsentReceipt.grant_id.in_(list(receipts)))
                .order_by(ConsentReceipt.created_at)
            ).scalars():
                receipts[receipt.grant_id].append(receipt)
        rows = (
            session.execute(
                select(AccessLogEntry)
                .where(*supplier_entries(customer_id, supplier_id))
                .order_by(AccessLogEntry.seq.desc())
                .limit(READS_SHOWN)
            )
            .scalars()
            .all()
        )
        total = session.execute(
            select(func.count()).where(*supplier_entries(customer_id, supplier_id))
        ).scalar_one()
        key = (
            customer_key(session, inst, customer_id) if session.get(DataKey, customer_id) else None
        )
        names = SupplierNames.lookup(session, {supplier_id})
        reads = [
            replace(timeline_item(inst, key, row, names.shown), actor_name=supplier.name)
            for row in rows
        ]
        seqs = count_seqs(session, customer_id, supplier_id)[:READS_SHOWN]
        counts = [
            CountUse(r.created_at, r.kind, r.purpose, r.epsilon_micro / 1_000_000)
            for r in session.execute(
                select(Release).where(Release.seq.in_(seqs)).order_by(Release.seq.desc())
            ).scalars()
        ]
        offers = [
            OfferUse(offer, delivery)
            for delivery, offer in session.execute(
                select(OfferDelivery, Offer)
                .join(Offer, Offer.id == OfferDelivery.offer_id)
                .where(OfferDelivery.customer_id == customer_id, Offer.supplier_id == supplier_id)
                .order_by(OfferDelivery.delivered_at.desc())
            ).all()
        ]
        mine = rewards.account(session, LedgerAccountKind.CUSTOMER, customer_id)
        earned = session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == mine.id, LedgerTransaction.supplier_id == supplier_id)
        ).scalar_one()
        return SupplierPage(
            supplier=supplier,
            hosts=sorted({redirect_host(uri) for uri in redirect_uris(supplier)}),
            blocked=session.get(SupplierBlock, (customer_id, supplier_id)) is not None,
            grants=[GrantReceipts(g, receipts[g.grant.id]) for g in grants],
            reads=reads,
            reads_total=int(total),
            weeks=_weeks(session, customer_id, supplier_id),
            counts=counts,
            offers=offers,
            earned_cents=int(earned or 0),
            erasures=requests_of(session, customer_id, supplier_id),
            has_webhook=has_webhook(session, supplier_id),
            accepted_terms=[
                (i, terms.title if (terms := agreements.roster(inst).get(i)) else i)
                for i in agreements.accepted_by(session, supplier_id, inst)
            ],
            agreements=agreements.agreements_page(session, inst, customer_id, supplier_id),
            intents=intents_with(session, customer_id, supplier_id),
        )
    finally:
        session.rollback()  # a read: nothing to keep


def revoke_supplier_grant(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    grant_id: str,
    ctx: Context,
    base_url: str,
) -> None:
    """Revoke the customer's grant ``grant_id`` to ``supplier_id`` (one commit, in
    :func:`~infomediary.services.consent_grants.revoke_grant`). A grant that is not theirs
    to this supplier (another customer's, or none) is :class:`NotFound`, and the refusal is
    logged on this customer's log, naming neither the grant nor its owner."""
    with unit_of_work(session) as uow:
        grant = session.get(ConsentGrant, grant_id)
        if grant is None or grant.supplier_id != supplier_id or grant.customer_id != customer_id:
            uow.refuse(
                ctx.event(
                    "consent", customer_id=customer_id, reason=Reason("consent.revoke_refused")
                )
            )
            raise NotFound("No such consent.")
    revoke_grant(session, inst, customer_id, grant_id, ctx, base_url)


def signature_verifies(inst: Instance, receipt: ConsentReceipt) -> bool:
    """Whether the receipt's signature verifies against the instance's receipt key."""
    try:
        verify_receipt(receipt.jws, inst.receipt_signer.jwks())
    except ReceiptError:
        return False
    return True
