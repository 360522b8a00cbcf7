"""The customer's intents in the dashboard: the same use cases as the agent's API
(:mod:`infomediary.services.intents`), for the logged-in customer rather than a token.

Each one checks, seals, decides and logs through the API's own helpers, so a posting, a
comparison, an acceptance or a cancellation made on the page writes exactly the rows and the
entry (same catalogue code, same parameters) the agent's request would. The overview's counts
and the per-supplier page read no sealed detail, only statuses, dates and prices.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.errors import IntentClosed, NotFound
from infomediary.instance import Instance
from infomediary.models import (
    Bid,
    BidStatus,
    ConsentGrant,
    Customer,
    Intent,
    IntentStatus,
    Supplier,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.agreements import default_agreement, roster
from infomediary.services.consent_grants import revoke_in_transaction
from infomediary.services.customer_keys import customer_key, logged_categories
from infomediary.services.intents import (
    SECTOR_OF,
    IntentInput,
    _bid_counts,
    _categories,
    _check_intent,
    _decide,
    _details,
    _entry_fields,
    _index,
    _own_intent,
    _share_for_fulfilment,
    _view,
    ends_at,
    supplier_record,
    today,
)
from infomediary.services.uow import unit_of_work
from policies.taxonomy import CATEGORIES, INTEREST_TAGS, REGIONS

#: A deadline this close (needed_by within it) is notified and marked on the list.
DEADLINE_DAYS = 2


@dataclass(frozen=True, slots=True)
class Overview:
    """The overview's card: open intents, and the bids on them still waiting for an answer."""

    open_intents: int
    open_bids: int


@dataclass(frozen=True, slots=True)
class SupplierIntent:
    """An intent of the customer's on which one supplier bid, and what came of its bid."""

    intent_id: str
    posted_at: datetime
    needed_by: date
    intent_status: str
    price_minor: int
    currency: str
    bid_status: str


def _customer(session: Session, customer_id: str) -> None:
    if session.get(Customer, customer_id) is None:
        raise NotFound("No such customer.")


def form_options(session: Session, inst: Instance, customer_id: str) -> dict[str, Any]:
    """What the form offers: the taxonomy's interests (key, label, whether of a special
    category), the states, the roster's
    agreements with their summaries and the customer's default one, preselected."""
    with unit_of_work(session):
        _customer(session, customer_id)
        chosen = default_agreement(session, customer_id, inst)
    interests = sorted(
        (
            (tag.key, tag.label, CATEGORIES[tag.category].special)
            for tag in INTEREST_TAGS.values()
            if tag.key in SECTOR_OF
        ),
        key=lambda row: row[1].lower(),
    )
    return {
        "interests": interests,
        "regions": REGIONS,
        "agreements": [(a.id, a.title, a.summary) for a in roster(inst)],
        "default_terms": chosen,
    }


def post(
    session: Session, inst: Instance, customer_id: str, data: IntentInput, ctx: Context
) -> dict[str, Any]:
    """Post the intent, open to its sector at once; the API's checks, seal and entry
    (``intents.posted``)."""
    with unit_of_work(session) as uow:
        _customer(session, customer_id)
        terms = data.terms or default_agreement(session, customer_id, inst)
        _check_intent(inst, data, terms)
        key = customer_key(session, inst, customer_id)
        intent_id = str(uuid.uuid4())
        details: dict[str, Any] = {"category": data.category, "description": data.description}
        if data.max_price_minor is not None:
            details |= {"max_price_minor": data.max_price_minor, "currency": data.currency}
        if data.region is not None:
            details["region"] = data.region
        intent = Intent(
            id=intent_id,
            customer_id=customer_id,
            sector_index=_index(inst, "sector", SECTOR_OF[data.category]),
            category_index=_index(inst, "category", data.category),
            region_index=_index(inst, "region", data.region) if data.region else None,
            details=inst.vault.seal(key, "intents", intent_id, "details", details),
            needed_by=data.needed_by,
            recurrence_every=data.recurrence.every if data.recurrence else None,
            recurrence_unit=data.recurrence.unit if data.recurrence else None,
            recurrence_until=data.recurrence.until if data.recurrence else None,
            terms=terms,
            status=IntentStatus.OPEN,
            created_at=utcnow(),
        )
        session.add(intent)
        ctx.log(
            session,
            "create",
            customer_id=customer_id,
            reason=Reason("intents.posted", {"intent": intent_id, "terms": terms}),
            **logged_categories(inst, key, _categories(details)),
        )
        view = _view(inst, intent, details, with_ids=True) | {"bids": 0}
        uow.commit()
        return view


def _open_bids(session: Session, intent_ids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(Bid.intent_id, func.count())
        .where(Bid.intent_id.in_(intent_ids), Bid.status == BidStatus.OPEN)
        .group_by(Bid.intent_id)
    )
    return {str(i): int(n) for i, n in rows}


def list_intents(
    session: Session, inst: Instance, customer_id: str, ctx: Context
) -> list[dict[str, Any]]:
    """The customer's intents, newest first, each with its bids (all, and those still open)
    and whether its date is near; logged as the agent's list is (``intents.listed_own``)."""
    with unit_of_work(session) as uow:
        _customer(session, customer_id)
        intents = list(
            session.execute(
                select(Intent)
                .where(Intent.customer_id == customer_id)
                .order_by(Intent.created_at.desc(), Intent.id.desc())
            ).scalars()
        )
        ids = [i.id for i in intents]
        counts, waiting = _bid_counts(session, ids), _open_bids(session, ids)
        soon = today() + timedelta(days=DEADLINE_DAYS)
        views: list[dict[str, Any]] = []
        categories: set[str] = set()
        for intent in intents:
            details = _details(inst, session, intent)
            categories |= _categories(details)
            views.append(
                _view(inst, intent, details, with_ids=True)
                | {
                    "bids": counts.get(intent.id, 0),
                    "open_bids": waiting.get(intent.id, 0),
                    "due_soon": intent.status in (IntentStatus.OPEN, IntentStatus.ACCEPTED)
                    and today() <= intent.needed_by <= soon,
                }
            )
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("intents.listed_own", {"count": len(views)}),
            **_entry_fields(inst, session, customer_id, frozenset(categories)),
        )
        uow.commit()
        return views


def _fulfilment(session: Session, intent: Intent) -> dict[str, Any] | None:
    if intent.fulfilment_grant_id is None:
        return None
    grant = session.get(ConsentGrant, intent.fulfilment_grant_id)
    if grant is None:
        return None
    return {
        "active": grant.is_active(utcnow()),
        "expires_at": grant.expires_at,
        "revoked_at": grant.revoked_at,
    }


def detail(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """One intent and its bids side by side, cheapest first: price, the supplier's name,
    verified mark and record, the agreement each accepts (with the roster's summary) and
    whether it is the one proffered; logged as the agent's comparison is
    (``intents.bids_compared``). Another customer's intent is :class:`NotFound`."""
    with unit_of_work(session) as uow:
        _customer(session, customer_id)
        intent = _own_intent(session, customer_id, intent_id)
        details = _details(inst, session, intent)
        rows = session.execute(
            select(Bid, Supplier)
            .join(Supplier, Supplier.id == Bid.supplier_id)
            .where(Bid.intent_id == intent.id)
            .order_by(Bid.price_minor, Bid.created_at, Bid.id)
        ).all()
        record = supplier_record(session, (s.id for _, s in rows))
        budget = details.get("max_price_minor")
        agreements = roster(inst)
        proffered = agreements.get(intent.terms)
        bids = []
        for bid, supplier in rows:
            terms = agreements.get(bid.terms)
            bids.append(
                {
                    "id": bid.id,
                    "status": bid.status,
                    "price_minor": bid.price_minor,
                    "currency": bid.currency,
                    "within_budget": None if budget is None else bid.price_minor <= budget,
                    "description": bid.description,
                    "valid_until": bid.valid_until,
                    "expired": bid.valid_until < today(),
                    "terms": bid.terms,
                    "terms_title": terms.title if terms else bid.terms,
                    "terms_summary": terms.summary if terms else "",
                    "accepts_proffered_terms": bid.terms == intent.terms,
                    "created_at": bid.created_at,
                    "supplier": {
                        "id": supplier.id,
                        "name": supplier.name,
                        "verified": supplier.verified_at is not None,
                        **record[supplier.id],
                    },
                }
            )
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("intents.bids_compared", {"intent": intent.id, "count": len(bids)}),
            **_entry_fields(inst, session, customer_id, _categories(details)),
        )
        view = _view(inst, intent, details, with_ids=True) | {
            "bids": len(bids),
            "terms_title": proffered.title if proffered else intent.terms,
            "terms_summary": proffered.summary if proffered else "",
            "ends_at": ends_at(intent),
            "fulfilment": _fulfilment(session, intent),
        }
        uow.commit()
        return {"intent": view, "bids": bids}


def accept(
    session: Session,
    inst: Instance,
    customer_id: str,
    intent_id: str,
    bid_id: str,
    share_contact: bool,
    ctx: Context,
    base_url: str,
) -> str:
    """Accept one bid: it wins, the others are not chosen, its agreement is signed
    (``intents.accepted``); with ``share_contact`` (now, or later on the won bid) the winner
    gets the grant for fulfilment until the intent's end (``intents.fulfilment_shared``).
    Returns the winner's name."""
    with unit_of_work(session) as uow:
        _customer(session, customer_id)
        intent = _own_intent(session, customer_id, intent_id, lock=True)
        bid = session.get(Bid, bid_id)
        if bid is None or bid.intent_id != intent.id:
            raise NotFound("No such bid on this intent.")
        supplier = session.get(Supplier, bid.supplier_id)
        if supplier is None:  # pragma: no cover - a bid's supplier is never deleted
            raise NotFound("No such supplier.")
        details = _details(inst, session, intent)
        fields = _entry_fields(inst, session, customer_id, _categories(details))
        already_won = intent.status == IntentStatus.ACCEPTED and bid.status == BidStatus.WON
        if not already_won:
            if intent.status != IntentStatus.OPEN:
                raise IntentClosed(f"This intent is {intent.status}; it takes no acceptance.")
            if bid.status != BidStatus.OPEN or bid.valid_until < today():
                raise IntentClosed("This bid is no longer valid; choose another.")
            _decide(uow, inst, intent, bid, customer_id, ctx, fields)
        elif not share_contact or intent.fulfilment_grant_id is not None:
            raise IntentClosed("This bid is accepted already.")
        if share_contact:
            _share_for_fulfilment(session, inst, intent, supplier, customer_id, ctx, base_url)
        name = supplier.name
        uow.commit()
        return name


def cancel(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context, base_url: str
) -> None:
    """Withdraw the intent: open bids are not chosen, a standing intent ends and its grant
    for fulfilment is revoked (``intents.cancelled``)."""
    with unit_of_work(session) as uow:
        _customer(session, customer_id)
        intent = _own_intent(session, customer_id, intent_id, lock=True)
        if intent.status == IntentStatus.CANCELLED:
            raise IntentClosed("This intent is cancelled already.")
        details = _details(inst, session, intent)
        now = utcnow()
        others = rowcount(
            session.execute(
                update(Bid)
                .where(Bid.intent_id == intent.id, Bid.status == BidStatus.OPEN)
                .values(status=BidStatus.NOT_CHOSEN, decided_at=now)
            )
        )
        intent.status, intent.closed_at = IntentStatus.CANCELLED, now
        if intent.fulfilment_grant_id:
            grant = session.get(ConsentGrant, intent.fulfilment_grant_id)
            supplier = session.get(Supplier, grant.supplier_id) if grant else None
            if grant is not None and supplier is not None and grant.revoked_at is None:
                revoke_in_transaction(session, inst, grant, supplier, ctx, base_url)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("intents.cancelled", {"intent": intent.id, "not_chosen": others}),
            **_entry_fields(inst, session, customer_id, _categories(details)),
        )
        uow.commit()


def overview(session: Session, customer_id: str) -> Overview:
    """The overview's counts: open intents (still before their date) and their open bids.
    Counts of the customer's own rows, no sealed detail opened: not logged."""
    with unit_of_work(session):
        live = (
            Intent.customer_id == customer_id,
            Intent.status == IntentStatus.OPEN,
            Intent.needed_by >= today(),
        )
        intents = session.scalar(select(func.count()).select_from(Intent).where(*live)) or 0
        bids = (
            session.scalar(
                select(func.count())
                .select_from(Bid)
                .join(Intent, Intent.id == Bid.intent_id)
                .where(*live, Bid.status == BidStatus.OPEN)
            )
            or 0
        )
        return Overview(int(intents), int(bids))


def intents_with(session: Session, customer_id: str, supplier_id: str) -> list[SupplierIntent]:
    """The customer's intents on which ``supplier_id`` bid, newest first, with its bid's
    price and outcome (the per-supplier page; no sealed detail opened)."""
    rows = session.execute(
        select(Intent, Bid)
        .join(Bid, Bid.intent_id == Intent.id)
        .where(Intent.customer_id == customer_id, Bid.supplier_id == supplier_id)
        .order_by(Intent.created_at.desc(), Intent.id.desc())
    ).all()
    return [
        SupplierIntent(
            intent.id,
            intent.created_at,
            intent.needed_by,
            intent.status,
            bid.price_minor,
            bid.currency,
            bid.status,
        )
        for intent, bid in rows
    ]
