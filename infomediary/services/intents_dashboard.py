"""The customer's intents in the dashboard: the same use cases as the agent's API
(:mod:`infomediary.services.intents`), for the logged-in customer rather than a token.

Each one is the agent's own use case (the ``*_for_customer`` functions), so a posting, a
comparison, an acceptance or a cancellation made on the page writes exactly the rows and the
entry (same catalogue code, same parameters) the agent's request would; what the pages add
(the bids still open, the roster's summaries, the grant's end) is read after, in a read.
The overview's counts and the per-supplier page read no sealed detail, only statuses, dates
and prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import (
    Bid,
    ConsentGrant,
    Customer,
    Intent,
    Supplier,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.agreements import default_agreement, roster
from infomediary.services.exports import display_name
from infomediary.services.intents import (
    SECTOR_OF,
    AcceptInput,
    IntentInput,
    _own_intent,
    accept_for_customer,
    advance,
    cancel_for_customer,
    compare_for_customer,
    ends_at,
    list_for_customer,
    post_for_customer,
    review_window,
    today,
)
from infomediary.services.uow import unit_of_work
from infomediary.statuses import BidStatus, IntentStatus
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
    with unit_of_work(session):
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")


def form_options(session: Session, inst: Instance, customer_id: str) -> dict[str, Any]:
    """What the form offers: the taxonomy's interests (key, label, whether of a special
    category), the states, the roster's
    agreements with their summaries and the customer's default one, preselected."""
    _customer(session, customer_id)
    with unit_of_work(session):
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
    """Post the intent, open to its sector at once
    (:func:`~infomediary.services.intents.post_for_customer`: its checks, seal and entry)."""
    _customer(session, customer_id)
    return post_for_customer(session, inst, customer_id, data, ctx)


def _open_bids(session: Session, intent_ids: list[str]) -> dict[str, int]:
    rows = session.execute(
        select(Bid.intent_id, func.count())
        .where(Bid.intent_id.in_(intent_ids), Bid.status == BidStatus.OPEN)
        .group_by(Bid.intent_id)
    )
    return {str(i): int(n) for i, n in rows}


def _due_soon(view: dict[str, Any]) -> bool:
    needed_by = date.fromisoformat(view["needed_by"])
    live = view["status"] in (IntentStatus.OPEN, IntentStatus.ACCEPTED)
    return live and today() <= needed_by <= today() + timedelta(days=DEADLINE_DAYS)


def list_intents(
    session: Session, inst: Instance, customer_id: str, ctx: Context
) -> list[dict[str, Any]]:
    """The customer's intents, newest first, as the agent's list has them (and logged as it
    is, ``intents.listed_own``), each with the bids still open and whether its date is near."""
    _customer(session, customer_id)
    views: list[dict[str, Any]] = list_for_customer(session, inst, customer_id, ctx)["intents"]
    with unit_of_work(session):
        waiting = _open_bids(session, [v["id"] for v in views])
    return [v | {"open_bids": waiting.get(v["id"], 0), "due_soon": _due_soon(v)} for v in views]


def _fulfilment(session: Session, grant_id: str | None) -> dict[str, Any] | None:
    grant = session.get(ConsentGrant, grant_id) if grant_id else None
    if grant is None:
        return None
    return {
        "active": grant.is_active(utcnow()),
        "expires_at": grant.expires_at,
        "revoked_at": grant.revoked_at,
    }


def _review(intent: Intent) -> dict[str, Any] | None:
    """A standing agreement up for review: when its term ends, and whether it has."""
    window = review_window(intent)
    if window is None or today() < window[0] or intent.recurrence_until is None:
        return None
    return {"ends": intent.recurrence_until, "ended": intent.recurrence_until < today()}


def renewal_form(view: dict[str, Any]) -> dict[str, str]:
    """The posting form filled in from a recurring intent (as the customer's list has it),
    for another term as long as the last, its first delivery one period after the last one
    (and after today); empty for a one-off intent."""
    recurrence = view.get("recurrence")
    if not recurrence:
        return {}
    every, unit = int(recurrence["every"]), str(recurrence["unit"])
    first, until = date.fromisoformat(view["needed_by"]), date.fromisoformat(recurrence["until"])
    start = advance(date.fromisoformat(view["deliveries"][-1]), every, unit)
    while start <= today():
        start = advance(start, every, unit)
    form = {
        "category": view["category"],
        "description": view["description"],
        "needed_by": start.isoformat(),
        "region": view.get("region") or "",
        "recurrence": "repeat",
        "every": str(every),
        "unit": unit,
        "until": (start + (until - first)).isoformat(),
        "terms": view["terms"],
    }
    if view.get("max_price_minor"):
        form |= {"budget": f"{view['max_price_minor'] / 100:.2f}", "currency": view["currency"]}
    return form


def detail(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """One intent and its bids side by side, cheapest first, as the agent's comparison has
    them (and logged as it is, ``intents.bids_compared``), with the roster's summary of each
    agreement, when the grant for fulfilment would end and what became of it. Another
    customer's intent is :class:`NotFound`."""
    _customer(session, customer_id)
    found = compare_for_customer(session, inst, customer_id, intent_id, ctx)
    agreements = roster(inst)
    with unit_of_work(session):
        intent = _own_intent(session, customer_id, intent_id)
        proffered = agreements.get(intent.terms)
        view = found["intent"] | {
            "terms_title": proffered.title if proffered else intent.terms,
            "terms_summary": proffered.summary if proffered else "",
            "ends_at": ends_at(intent),
            "fulfilment": _fulfilment(session, intent.fulfilment_grant_id),
            "review": _review(intent),
        }
    bids = []
    for bid in found["bids"]:
        terms = agreements.get(bid["terms"])
        bids.append(
            bid
            | {
                "terms_summary": terms.summary if terms else "",
                "expired": date.fromisoformat(bid["valid_until"]) < today(),
            }
        )
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
    """Accept one bid (:func:`~infomediary.services.intents.accept_for_customer`): it wins,
    the others are not chosen, its agreement is signed (``intents.accepted``); with
    ``share_contact`` (now, or later on the won bid) the winner gets the grant for
    fulfilment until the intent's end (``intents.fulfilment_shared``). Returns the winner's
    name, with its verified mark."""
    _customer(session, customer_id)
    accept_for_customer(
        session, inst, customer_id, intent_id, bid_id, AcceptInput(share_contact), ctx, base_url
    )
    with unit_of_work(session):
        bid = session.get_one(Bid, bid_id)
        winner = session.get_one(Supplier, bid.supplier_id)
        return display_name(winner.name, winner.verified_at is not None)


def cancel(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context, base_url: str
) -> None:
    """Withdraw the intent (:func:`~infomediary.services.intents.cancel_for_customer`): open
    bids are not chosen, a standing intent ends and its grant for fulfilment is revoked
    (``intents.cancelled``)."""
    _customer(session, customer_id)
    cancel_for_customer(session, inst, customer_id, intent_id, ctx, base_url)


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
