"""Intentcasts: a customer's agent posts what the customer wants, suppliers of its sector list
it under a pseudonym of its own and bid, and the customer accepts one bid.

- **Sealed.** An intent's category, description, region and budget are sealed under the
  customer's data key; the listing selects on keyed blind indexes of the sector, category and
  region. Its pseudonym, ``int_``, is ``HMAC(pseudonym key, "intent" || 0x00 || intent_id ||
  0x00 || customer_id)``: the id is random, so two intents of one customer are unlinkable.
- **Sectors.** A category (an interest of the taxonomy) belongs to one sector
  (:data:`SECTOR_OF`); a supplier the operator approved with ``intents:read`` sees the open
  intents of its own sector only, never those of customers who blocked it or whose policy
  says "never" to it or to its sector.
- **Logged.** Every intent a supplier is shown (in a list or alone) is one entry on that
  customer's access log, and so is every refusal; the customer's agent's reads and changes are
  entries too.
- **Acceptance.** The winner's bid is ``won``, every other ``not_chosen``; the agreement the
  bid accepted (the proffered one or its one alternative) is recorded and signed
  (:func:`infomediary.services.agreements.record_agreement`). Identity goes to the winner only
  through a consent grant for fulfilment (``profile.identity:read``, purpose ``service``) that
  the customer approves with the acceptance or later, expiring at the intent's end; the winner
  then reads ``/api/v1/me`` with an access token bound to that grant, handed out with its view
  of the intent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from babel.numbers import list_currencies
from pyroaring import BitMap
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import CustomerKey
from infomediary.db import rowcount
from infomediary.errors import (
    BidExists,
    FulfilmentNotShared,
    IntentClosed,
    IntentOutsideSector,
    InvalidRequest,
    NotFound,
    ValidationFailed,
)
from infomediary.instance import Instance
from infomediary.models import (
    Bid,
    ConsentGrant,
    Intent,
    MatchEntry,
    OAuthToken,
    Offer,
    OfferDelivery,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context, jobs, tokens
from infomediary.services.agreements import check_ids, default_agreement, record_agreement, roster
from infomediary.services.consent_grants import grant_consent, revoke_in_transaction
from infomediary.services.customer_keys import customer_key, logged_categories
from infomediary.services.refusals import refuse_supplier
from infomediary.services.suppliers import secret_hash
from infomediary.services.uow import UnitOfWork, unit_of_work
from infomediary.statuses import BidStatus, IntentStatus, RecurrenceUnit, SupplierStatus
from policies.taxonomy import INTEREST_TAGS, REGIONS, categories_of_interests

#: The sector each intent category (an interest of the taxonomy) belongs to: a supplier
#: approved for intents sees those of its own sector only.
SECTOR_OF: dict[str, str] = {
    "books": "retail",
    "travel": "travel",
    "cooking": "retail",
    "gardening": "retail",
    "music": "media",
    "film": "media",
    "sport": "retail",
    "outdoors": "retail",
    "fitness": "retail",
    "fashion": "retail",
    "technology": "retail",
    "gaming": "media",
    "pets": "retail",
    "parenting": "retail",
    "home-improvement": "retail",
    "cars": "retail",
    "wine": "retail",
    "coffee": "retail",
    "art": "retail",
    "finance": "finance",
    "vegetarian": "retail",
    "diabetes-care": "health",
    "mental-health": "health",
    "pregnancy": "health",
    "faith": "other",
    "halal-food": "retail",
    "kosher-food": "retail",
    "political-activism": "other",
    "lgbtq-community": "other",
    "cultural-heritage": "other",
}
MAX_DESCRIPTION = 2000
MAX_BID_DESCRIPTION = 2000
#: Longest a recurring intent's term may run, and its largest interval.
MAX_TERM = timedelta(days=5 * 366)
MAX_EVERY = 52
#: How long after its date a one-off intent's fulfilment grant lasts (delivery, returns).
ONE_OFF_GRACE = timedelta(days=30)
PAGE = 20
MAX_PAGE = 50
CURRENCY = re.compile(r"[A-Z]{3}\Z")
#: ISO 4217 codes as CLDR lists them (current and historic), upper case.
CURRENCIES = frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return bool(CURRENCY.match(code)) and code in CURRENCIES


#: What the winner may read for delivery: name, e-mail, phone and postal address.
FULFILMENT_SCOPES = ("profile.identity:read",)
FULFILMENT_PURPOSE = "service"
#: The job that closes bidding at an intent's deadline and applies its automatic rule.
DEADLINE_JOB = "intent_deadline"


@dataclass(frozen=True)
class Recurrence:
    every: int
    unit: str
    until: date


@dataclass(frozen=True)
class IntentInput:
    category: str
    description: str
    needed_by: date
    max_price_minor: int | None = None
    currency: str | None = None
    region: str | None = None
    recurrence: Recurrence | None = None
    terms: str | None = None
    #: When bidding closes; with ``auto_accept``, when the rule is applied.
    deadline: datetime | None = None
    auto_accept: bool = False


@dataclass(frozen=True)
class BidInput:
    price_minor: int
    currency: str
    description: str
    valid_until: date
    #: The agreement accepted: the proffered one (None: the same) or one alternative.
    terms: str | None = None


@dataclass(frozen=True)
class IntentPage:
    category: str | None = None
    region: str | None = None
    limit: int = PAGE
    cursor: str | None = None


@dataclass(frozen=True)
class AcceptInput:
    #: The customer's one click: a consent grant for fulfilment to the winner.
    share_contact: bool = False


# -- shared ----------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(UTC).date()


def intent_pseudonym(inst: Instance, intent: Intent) -> str:
    message = b"\x00".join(p.encode() for p in ("intent", intent.id, intent.customer_id))
    digest = hmac.new(inst.keyring.secret("pseudonym"), message, hashlib.sha256).digest()
    return "int_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def blind_index(inst: Instance, domain: str, value: str) -> bytes:
    """The keyed blind index of an intent's ``domain`` (sector, category, region) value."""
    return inst.vault.blind_index(f"intent-{domain}", value)


def _details(
    inst: Instance, session: Session, intent: Intent, key: CustomerKey | None = None
) -> dict[str, Any]:
    """The intent's sealed details, opened (``key``: its customer's, when already unwrapped)."""
    if key is None or key.customer_id != intent.customer_id:
        key = customer_key(session, inst, intent.customer_id)
    opened: dict[str, Any] = inst.vault.open(key, "intents", intent.id, "details", intent.details)
    return opened


#: A standing agreement comes up for review this many days before its term ends, and stays
#: up for review as long after it.
REVIEW_DAYS = 14


def review_window(intent: Intent) -> tuple[date, date] | None:
    """When an accepted recurring intent (a standing agreement) is up for review: from
    ``REVIEW_DAYS`` before its term's last day to as many after; ``None`` for any other."""
    if intent.status != IntentStatus.ACCEPTED or intent.recurrence_until is None:
        return None
    span = timedelta(days=REVIEW_DAYS)
    return intent.recurrence_until - span, intent.recurrence_until + span


def ends_at(intent: Intent) -> datetime:
    """When the fulfilment grant of an accepted intent ends: the day after the term's last
    day for a recurring intent, 30 days after its date for a one-off one."""
    last = intent.recurrence_until or intent.needed_by
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return end if intent.recurrence_until else end + ONE_OFF_GRACE - timedelta(days=1)


def _recurrence(intent: Intent) -> dict[str, Any] | None:
    if intent.recurrence_every is None or intent.recurrence_until is None:
        return None
    return {
        "every": intent.recurrence_every,
        "unit": intent.recurrence_unit,
        "until": intent.recurrence_until.isoformat(),
    }


def deliveries(intent: Intent) -> list[date]:
    """The delivery dates of a recurring intent, its first on ``needed_by``; a one-off
    intent's one date."""
    if intent.recurrence_every is None or intent.recurrence_until is None:
        return [intent.needed_by]
    dates: list[date] = []
    step = 0
    while True:
        moment = advance(
            intent.needed_by, step * intent.recurrence_every, str(intent.recurrence_unit)
        )
        if moment > intent.recurrence_until:
            return dates
        dates.append(moment)
        step += 1


def advance(start: date, steps: int, unit: str) -> date:
    """``start`` moved on by ``steps`` weeks or months (``unit``), as deliveries fall."""
    if unit == RecurrenceUnit.WEEK:
        return start + timedelta(weeks=steps)
    return _add_months(start, steps)


def _add_months(start: date, months: int) -> date:
    year, month = divmod(start.month - 1 + months, 12)
    target_year, target_month = start.year + year, month + 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(target_year, target_month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def _view(
    inst: Instance, intent: Intent, details: dict[str, Any], *, with_ids: bool
) -> dict[str, Any]:
    """What an intent says: to a supplier only what the customer attached, under its
    pseudonym; to the customer's agent, its own bookkeeping too."""
    view: dict[str, Any] = {
        "id": intent.id,
        "pseudonym": intent_pseudonym(inst, intent),
        "category": details["category"],
        "description": details["description"],
        "needed_by": intent.needed_by.isoformat(),
        "max_price_minor": details.get("max_price_minor"),
        "currency": details.get("currency"),
        "region": details.get("region"),
        "recurrence": _recurrence(intent),
        "terms": intent.terms,
        "deadline": intent.deadline.isoformat() if intent.deadline else None,
        "status": intent.status,
        "created_at": intent.created_at.isoformat(),
    }
    if with_ids:
        view["auto_accept"] = intent.auto_accept
        view["closed_at"] = intent.closed_at.isoformat() if intent.closed_at else None
        view["accepted_bid_id"] = intent.accepted_bid_id
        view["fulfilment_grant_id"] = intent.fulfilment_grant_id
        view["deliveries"] = [d.isoformat() for d in deliveries(intent)]
    return view


def _categories(details: dict[str, Any]) -> frozenset[str]:
    """The data categories an intent reveals: its interest's, and demographics for a region."""
    found = set(categories_of_interests({details["category"]}))
    if details.get("region"):
        found.add("demographics")
    return frozenset(found)


def _entry_fields(
    inst: Instance,
    session: Session,
    customer_id: str,
    categories: frozenset[str],
    key: CustomerKey | None = None,
) -> dict[str, Any]:
    """An entry's categories with special ones only in its sealed detail."""
    if key is None or key.customer_id != customer_id:
        key = customer_key(session, inst, customer_id)
    return logged_categories(inst, key, categories)


# -- the customer's agent (intents:write) ----------------------------------------------------


def _customer_of(token: OAuthToken) -> str:
    if token.customer_id is None:
        raise NotFound("This token is not bound to a customer.")
    return token.customer_id


def _check_intent(inst: Instance, data: IntentInput, terms: str) -> None:
    errors: dict[str, str] = {}
    if data.category not in INTEREST_TAGS:
        errors["category"] = "Choose an interest of the taxonomy (GET /api/v1/broker/attributes)."
    if not data.description.strip():
        errors["description"] = "Say what you want."
    elif len(data.description) > MAX_DESCRIPTION:
        errors["description"] = f"At most {MAX_DESCRIPTION} characters."
    if data.needed_by < today():
        errors["needed_by"] = "A date that is not in the past."
    if data.max_price_minor is not None and data.max_price_minor <= 0:
        errors["max_price_minor"] = "A budget above zero, in the currency's minor unit."
    if (data.max_price_minor is None) != (data.currency is None):
        errors["currency"] = "Give max_price_minor and currency together, or neither."
    elif data.currency is not None and not is_currency(data.currency):
        errors["currency"] = "An ISO 4217 code, such as AUD."
    if data.region is not None and data.region not in REGIONS:
        errors["region"] = f"Your state or territory, one of: {', '.join(REGIONS)}."
    if data.recurrence is not None:
        every, unit, until = data.recurrence.every, data.recurrence.unit, data.recurrence.until
        if unit not in tuple(RecurrenceUnit) or not 1 <= every <= MAX_EVERY:
            errors["recurrence"] = f"Every 1 to {MAX_EVERY} weeks or months."
        elif until <= data.needed_by or until - data.needed_by > MAX_TERM:
            errors["recurrence"] = "A term ending after needed_by, within five years."
    if data.deadline is not None:
        last = datetime(data.needed_by.year, data.needed_by.month, data.needed_by.day, tzinfo=UTC)
        if data.deadline <= utcnow() or data.deadline > last + timedelta(days=1):
            errors["deadline"] = "A time in the future, no later than the end of needed_by."
    if data.auto_accept and (data.deadline is None or data.max_price_minor is None):
        errors["auto_accept"] = "The rule needs a deadline and a budget."
    if errors:
        raise InvalidRequest("invalid_intent", errors)
    check_ids([terms], "terms", inst)


def post_intent(
    session: Session, inst: Instance, token: OAuthToken, data: IntentInput, ctx: Context
) -> dict[str, Any]:
    """The customer posts an intent through their agent (:func:`post_for_customer`)."""
    return post_for_customer(session, inst, _customer_of(token), data, ctx)


def post_for_customer(
    session: Session, inst: Instance, customer_id: str, data: IntentInput, ctx: Context
) -> dict[str, Any]:
    """The customer posts an intent; it is open to its sector at once (and, with a deadline,
    its deadline job is queued in the same transaction)."""
    with unit_of_work(session) as uow:
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
            sector_index=blind_index(inst, "sector", SECTOR_OF[data.category]),
            category_index=blind_index(inst, "category", data.category),
            region_index=blind_index(inst, "region", data.region) if data.region else None,
            details=inst.vault.seal(key, "intents", intent_id, "details", details),
            needed_by=data.needed_by,
            recurrence_every=data.recurrence.every if data.recurrence else None,
            recurrence_unit=data.recurrence.unit if data.recurrence else None,
            recurrence_until=data.recurrence.until if data.recurrence else None,
            terms=terms,
            deadline=data.deadline,
            auto_accept=data.auto_accept,
            status=IntentStatus.OPEN,
            created_at=utcnow(),
        )
        session.add(intent)
        if data.deadline is not None:
            jobs.enqueue(
                session,
                DEADLINE_JOB,
                {"intent": intent_id},
                run_after=data.deadline,
                key=f"{DEADLINE_JOB}:{intent_id}",
            )
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


def _bid_counts(session: Session, intent_ids: Iterable[str]) -> dict[str, int]:
    rows = session.execute(
        select(Bid.intent_id, func.count())
        .where(Bid.intent_id.in_(list(intent_ids)))
        .group_by(Bid.intent_id)
    )
    return {str(i): int(n) for i, n in rows}


def list_own(session: Session, inst: Instance, token: OAuthToken, ctx: Context) -> dict[str, Any]:
    """The customer's intents, for their agent (:func:`list_for_customer`)."""
    return list_for_customer(session, inst, _customer_of(token), ctx)


def list_for_customer(
    session: Session, inst: Instance, customer_id: str, ctx: Context
) -> dict[str, Any]:
    """The customer's intents, newest first, each with its number of bids (logged)."""
    with unit_of_work(session) as uow:
        intents = list(
            session.execute(
                select(Intent)
                .where(Intent.customer_id == customer_id)
                .order_by(Intent.created_at.desc(), Intent.id.desc())
            ).scalars()
        )
        counts = _bid_counts(session, (i.id for i in intents))
        views: list[dict[str, Any]] = []
        categories: set[str] = set()
        for intent in intents:
            details = _details(inst, session, intent)
            categories |= _categories(details)
            views.append(
                _view(inst, intent, details, with_ids=True) | {"bids": counts.get(intent.id, 0)}
            )
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("intents.listed_own", {"count": len(views)}),
            **_entry_fields(inst, session, customer_id, frozenset(categories)),
        )
        uow.commit()
        return {"intents": views}


def _own_intent(
    session: Session, customer_id: str, intent_id: str, *, lock: bool = False
) -> Intent:
    query = select(Intent).where(Intent.id == intent_id, Intent.customer_id == customer_id)
    intent = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if intent is None:
        raise NotFound("No such intent of yours.")
    return intent


def supplier_record(session: Session, supplier_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each supplier's record on the platform, as the customer compares bids: how many
    customers block it, out of the customers it reached (offers delivered, grants held)."""
    ids = list(dict.fromkeys(supplier_ids))
    blocks = dict(
        session.execute(
            select(SupplierBlock.supplier_id, func.count())
            .where(SupplierBlock.supplier_id.in_(ids))
            .group_by(SupplierBlock.supplier_id)
        ).all()
    )
    reached: dict[str, set[str]] = {i: set() for i in ids}
    for supplier_id, customer_id in session.execute(
        select(Offer.supplier_id, OfferDelivery.customer_id)
        .join(OfferDelivery, OfferDelivery.offer_id == Offer.id)
        .where(Offer.supplier_id.in_(ids))
        .distinct()
    ):
        reached[supplier_id].add(customer_id)
    for supplier_id, customer_id in session.execute(
        select(ConsentGrant.supplier_id, ConsentGrant.customer_id)
        .where(ConsentGrant.supplier_id.in_(ids))
        .distinct()
    ):
        reached[supplier_id].add(customer_id)
    record: dict[str, dict[str, Any]] = {}
    for supplier_id in ids:
        count = int(blocks.get(supplier_id, 0))
        customers = len(reached[supplier_id])
        record[supplier_id] = {
            "blocked_by": count,
            "customers": customers,
            "block_share": round(count / customers, 4) if customers else None,
        }
    return record


def compare_bids(
    session: Session, inst: Instance, token: OAuthToken, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """An intent's bids, for the customer's agent (:func:`compare_for_customer`)."""
    return compare_for_customer(session, inst, _customer_of(token), intent_id, ctx)


def compare_for_customer(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """The intent's bids side by side, cheapest first: price, the supplier's name, verified
    mark and record, the terms it accepts and whether they are the ones proffered."""
    with unit_of_work(session) as uow:
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
        bids = []
        for bid, supplier in rows:
            agreement = agreements.get(bid.terms)
            bids.append(
                {
                    "id": bid.id,
                    "status": bid.status,
                    "price_minor": bid.price_minor,
                    "currency": bid.currency,
                    "within_budget": None if budget is None else bid.price_minor <= budget,
                    "description": bid.description,
                    "valid_until": bid.valid_until.isoformat(),
                    "terms": bid.terms,
                    "terms_title": agreement.title if agreement else bid.terms,
                    "accepts_proffered_terms": bid.terms == intent.terms,
                    "created_at": bid.created_at.isoformat(),
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
        view = _view(inst, intent, details, with_ids=True) | {"bids": len(bids)}
        uow.commit()
        return {"intent": view, "bids": bids}


def accept_bid(
    session: Session,
    inst: Instance,
    token: OAuthToken,
    intent_id: str,
    bid_id: str,
    data: AcceptInput,
    ctx: Context,
    base_url: str,
) -> dict[str, Any]:
    """The customer's agent accepts one bid (:func:`accept_for_customer`)."""
    customer_id = _customer_of(token)
    return accept_for_customer(session, inst, customer_id, intent_id, bid_id, data, ctx, base_url)


def accept_for_customer(
    session: Session,
    inst: Instance,
    customer_id: str,
    intent_id: str,
    bid_id: str,
    data: AcceptInput,
    ctx: Context,
    base_url: str,
) -> dict[str, Any]:
    """The customer accepts one bid: it wins, the others are not chosen, the agreement it
    accepted is recorded and signed; with ``share_contact`` (also later, on the won bid) the
    winner gets a grant for fulfilment until the intent's end."""
    with unit_of_work(session) as uow:
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
        elif not data.share_contact or intent.fulfilment_grant_id is not None:
            raise IntentClosed("This bid is accepted already.")
        if data.share_contact:
            _share_for_fulfilment(session, inst, intent, supplier, customer_id, ctx, base_url)
        view = _view(inst, intent, details, with_ids=True)
        uow.commit()
        return {"intent": view, "bid": {"id": bid.id, "status": bid.status}}


def _decide(
    uow: UnitOfWork,
    inst: Instance,
    intent: Intent,
    bid: Bid,
    customer_id: str,
    ctx: Context,
    fields: dict[str, Any],
) -> None:
    session = uow.session
    now = utcnow()
    others = rowcount(
        session.execute(
            update(Bid)
            .where(Bid.intent_id == intent.id, Bid.id != bid.id, Bid.status == BidStatus.OPEN)
            .values(status=BidStatus.NOT_CHOSEN, decided_at=now)
        )
    )
    bid.status, bid.decided_at = BidStatus.WON, now
    intent.status, intent.accepted_bid_id, intent.closed_at = IntentStatus.ACCEPTED, bid.id, now
    agreement = record_agreement(
        uow,
        inst,
        customer_id=customer_id,
        supplier_id=bid.supplier_id,
        agreement_id=bid.terms,
        context={"intent": intent.id, "bid": bid.id, "pseudonym": intent_pseudonym(inst, intent)},
    )
    bid.agreement_record_id = str(agreement.id)
    ctx.log(
        session,
        "update",
        customer_id=customer_id,
        reason=Reason(
            "intents.accepted",
            {
                "intent": intent.id,
                "bid": bid.id,
                "winner_supplier": bid.supplier_id,
                "terms": bid.terms,
                "not_chosen": others,
            },
        ),
        **fields,
    )


def _share_for_fulfilment(
    session: Session,
    inst: Instance,
    intent: Intent,
    supplier: Supplier,
    customer_id: str,
    ctx: Context,
    base_url: str,
) -> None:
    """The grant for delivery: identity, purpose service, until the intent's end. An active
    grant of the same supplier and purpose keeps what it allowed and its own end date."""
    now = utcnow()
    existing = (
        session.execute(
            select(ConsentGrant).where(
                ConsentGrant.customer_id == customer_id,
                ConsentGrant.supplier_id == supplier.id,
                ConsentGrant.purpose == FULFILMENT_PURPOSE,
                ConsentGrant.offer_id.is_(None),
                ConsentGrant.active_at(now),
            )
        )
        .scalars()
        .first()
    )
    scopes = set(FULFILMENT_SCOPES) | (set(existing.scopes.split()) if existing else set())
    grant = grant_consent(
        session,
        inst,
        customer_id,
        supplier,
        scopes=sorted(scopes),
        purpose=FULFILMENT_PURPOSE,
        expires_at=ends_at(intent),
        ctx=ctx,
        base_url=base_url,
        keep_expiry=existing is not None,
    )
    intent.fulfilment_grant_id = grant.id
    ctx.log(
        session,
        "consent",
        customer_id=customer_id,
        reason=Reason(
            "intents.fulfilment_shared",
            {"intent": intent.id, "winner_supplier": supplier.id, "grant": grant.id},
        ),
        categories=frozenset({"identity"}),
    )


def cancel_intent(
    session: Session, inst: Instance, token: OAuthToken, intent_id: str, ctx: Context, base_url: str
) -> dict[str, Any]:
    """The customer's agent withdraws an intent (:func:`cancel_for_customer`)."""
    return cancel_for_customer(session, inst, _customer_of(token), intent_id, ctx, base_url)


def cancel_for_customer(
    session: Session, inst: Instance, customer_id: str, intent_id: str, ctx: Context, base_url: str
) -> dict[str, Any]:
    """The customer withdraws an intent: open bids are not chosen; an accepted (standing)
    intent ends, and its grant for fulfilment is revoked."""
    with unit_of_work(session) as uow:
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
        view = _view(inst, intent, details, with_ids=True)
        uow.commit()
        return {"intent": view}


# -- suppliers (intents:read, intents:bid) ---------------------------------------------------


def _open_to(session: Session, inst: Instance, supplier: Supplier) -> Any:
    """The intents' customers who have not blocked the supplier nor said "never" to it or to
    its sector in their policy (the broker's exclusions, read from the refreshed index; an
    agreement with the supplier restricts what it may use, not the intents it may see)."""
    blocked = select(SupplierBlock.customer_id).where(SupplierBlock.supplier_id == supplier.id)
    clause: ColumnElement[bool] = Intent.customer_id.not_in(blocked)
    said_never = _said_never(session, inst, supplier)
    if said_never:
        ids = select(MatchEntry.customer_id).where(
            MatchEntry.ordinal.in_(sorted(said_never)), MatchEntry.customer_id.is_not(None)
        )
        clause = clause & Intent.customer_id.not_in(ids)
    return clause


def _said_never(session: Session, inst: Instance, supplier: Supplier) -> BitMap:
    index = inst.match_index
    index.refresh(session)
    return index.excluded(supplier.id, supplier.sector, agreements=False)


def _closed_to(session: Session, inst: Instance, supplier: Supplier, customer_id: str) -> bool:
    """Whether the customer blocked the supplier or said "never" to it or to its sector."""
    if session.get(SupplierBlock, (customer_id, supplier.id)) is not None:
        return True
    ordinal = session.execute(
        select(MatchEntry.ordinal).where(MatchEntry.customer_id == customer_id)
    ).scalar_one_or_none()
    return ordinal is not None and int(ordinal) in _said_never(session, inst, supplier)


def _cursor(intent: Intent) -> str:
    raw = f"{intent.created_at.isoformat()}|{intent.id}".encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, intent_id = raw.split("|", 1)
        return datetime.fromisoformat(moment).astimezone(UTC), str(uuid.UUID(intent_id))
    except ValueError:
        raise InvalidRequest(
            "invalid_request", {"cursor": "Use the next link of the page before."}
        ) from None


def list_open(
    session: Session, inst: Instance, supplier: Supplier, page: IntentPage, ctx: Context
) -> dict[str, Any]:
    """A page of the open intents of the supplier's sector, newest first; one entry per
    intent shown, on its customer's log."""
    if page.category is not None and SECTOR_OF.get(page.category) != supplier.sector:
        raise InvalidRequest(
            "invalid_request",
            {"category": f"An interest of your sector ({supplier.sector}) of the taxonomy."},
        )
    if page.region is not None and page.region not in REGIONS:
        raise InvalidRequest("invalid_request", {"region": f"One of: {', '.join(REGIONS)}."})
    with unit_of_work(session) as uow:
        query = select(Intent).where(
            Intent.sector_index == blind_index(inst, "sector", supplier.sector),
            Intent.status == IntentStatus.OPEN,
            Intent.needed_by >= today(),
            or_(Intent.deadline.is_(None), Intent.deadline > utcnow()),
            _open_to(session, inst, supplier),
        )
        if page.category is not None:
            query = query.where(
                Intent.category_index == blind_index(inst, "category", page.category)
            )
        if page.region is not None:
            query = query.where(Intent.region_index == blind_index(inst, "region", page.region))
        if page.cursor is not None:
            moment, last = _after(page.cursor)
            query = query.where(
                or_(
                    Intent.created_at < moment,
                    (Intent.created_at == moment) & (Intent.id < last),
                )
            )
        rows = list(
            session.execute(
                query.order_by(Intent.created_at.desc(), Intent.id.desc()).limit(page.limit + 1)
            ).scalars()
        )
        shown = rows[: page.limit]
        own = _own_bids(session, supplier.id, (i.id for i in shown))
        views = []
        keys: dict[str, CustomerKey] = {}  # one unwrap per customer on the page
        for intent in shown:
            if intent.customer_id not in keys:
                keys[intent.customer_id] = customer_key(session, inst, intent.customer_id)
            key = keys[intent.customer_id]
            details = _details(inst, session, intent, key)
            ctx.log(
                session,
                "read",
                customer_id=intent.customer_id,
                reason=Reason("intents.listed", {"intent": intent.id}),
                **_entry_fields(inst, session, intent.customer_id, _categories(details), key),
            )
            views.append(_supplier_view(inst, intent, details, own.get(intent.id)))
        following = _cursor(shown[-1]) if len(rows) > page.limit else None
        uow.commit()
        return {"intents": views, "next": following}


def _own_bids(session: Session, supplier_id: str, intent_ids: Iterable[str]) -> dict[str, Bid]:
    rows = session.execute(
        select(Bid).where(Bid.supplier_id == supplier_id, Bid.intent_id.in_(list(intent_ids)))
    ).scalars()
    return {bid.intent_id: bid for bid in rows}


def _bid_view(bid: Bid) -> dict[str, Any]:
    return {
        "id": bid.id,
        "status": bid.status,
        "won": bid.status == BidStatus.WON,
        "price_minor": bid.price_minor,
        "currency": bid.currency,
        "description": bid.description,
        "valid_until": bid.valid_until.isoformat(),
        "terms": bid.terms,
        "agreement_record_id": bid.agreement_record_id,
        "created_at": bid.created_at.isoformat(),
    }


def _supplier_view(
    inst: Instance, intent: Intent, details: dict[str, Any], bid: Bid | None
) -> dict[str, Any]:
    return _view(inst, intent, details, with_ids=False) | {
        "bid": _bid_view(bid) if bid else None,
        "fulfilment": None,
    }


def _refused(
    session: Session, ctx: Context, why: Reason, action: str, customer_id: str | None
) -> None:
    """Drop the request's work and commit only its denied entry."""
    refuse_supplier(session, ctx, action=action, reason=why, customer_id=customer_id)


def _intent_for(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    intent_id: str,
    ctx: Context,
    action: str,
    *,
    lock: bool = False,
) -> Intent:
    """The intent, if the supplier may see it: of its sector, of a customer who has not
    blocked it nor said "never" to it or its sector. A refusal is logged (on the customer's
    log when there is one)."""
    query = select(Intent).where(Intent.id == intent_id)
    intent = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if intent is None:
        _refused(session, ctx, Reason("intents.no_intent"), action, None)
        raise NotFound("No such intent.")
    if intent.sector_index != blind_index(inst, "sector", supplier.sector) or _closed_to(
        session, inst, supplier, intent.customer_id
    ):
        customer_id = intent.customer_id
        _refused(
            session,
            ctx,
            Reason("intents.outside_sector", {"intent": intent_id}),
            action,
            customer_id,
        )
        raise IntentOutsideSector(
            f"This intent is not of your sector ({supplier.sector}), or not open to you."
        )
    return intent


def read_intent(
    session: Session, inst: Instance, supplier: Supplier, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """One intent of the supplier's sector: its status and, to a bidder, its bid (won or
    not chosen). To the winner, once the customer shared their identity for fulfilment, when
    that grant ends and where to ask for an access token under it
    (:func:`issue_fulfilment_token`: a read hands out nothing and changes nothing but the
    log)."""
    with unit_of_work(session) as uow:
        intent = _intent_for(session, inst, supplier, intent_id, ctx, "read")
        details = _details(inst, session, intent)
        bid = _own_bids(session, supplier.id, [intent.id]).get(intent.id)
        fields = _entry_fields(inst, session, intent.customer_id, _categories(details))
        ctx.log(
            session,
            "read",
            customer_id=intent.customer_id,
            reason=Reason("intents.viewed", {"intent": intent.id}),
            **fields,
        )
        view = _supplier_view(inst, intent, details, bid)
        grant = _fulfilment_grant(session, intent, supplier, bid)
        if grant is not None:
            view["fulfilment"] = {
                "grant_expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
                "token_endpoint": f"/api/v1/intents/{intent.id}/fulfilment-token",
            }
        uow.commit()
        return view


def _fulfilment_grant(
    session: Session, intent: Intent, supplier: Supplier, bid: Bid | None
) -> ConsentGrant | None:
    """The active grant for fulfilment the customer gave ``supplier``, if its bid won."""
    if bid is None or bid.status != BidStatus.WON or not intent.fulfilment_grant_id:
        return None
    grant = session.get(ConsentGrant, intent.fulfilment_grant_id)
    if grant is None or not grant.is_active(utcnow()) or grant.supplier_id != supplier.id:
        return None
    return grant


def issue_fulfilment_token(
    session: Session, inst: Instance, supplier: Supplier, intent_id: str, ctx: Context
) -> dict[str, Any]:
    """To the winner, an access token for ``GET /api/v1/me`` bound to the customer's grant for
    fulfilment (the one issued before is revoked); :class:`FulfilmentNotShared` (logged) while
    there is no such grant, or the supplier did not win."""
    with unit_of_work(session) as uow:
        intent = _intent_for(session, inst, supplier, intent_id, ctx, "create")
        bid = _own_bids(session, supplier.id, [intent.id]).get(intent.id)
        grant = _fulfilment_grant(session, intent, supplier, bid)
        if grant is None:
            _refused(
                session,
                ctx,
                Reason("intents.fulfilment_not_shared", {"intent": intent.id}),
                "create",
                intent.customer_id,
            )
            raise FulfilmentNotShared(
                "The customer has not shared contact details for this intent with you "
                "(your bid must have won, and the grant must still be in force)."
            )
        token = _fulfilment_token(session, intent, grant, supplier, ctx)
        uow.commit()
        return token


def _fulfilment_token(
    session: Session, intent: Intent, grant: ConsentGrant, supplier: Supplier, ctx: Context
) -> dict[str, Any]:
    now = utcnow()
    family = hashlib.sha256(f"intent-fulfilment\x00{intent.id}".encode()).hexdigest()
    live = session.execute(
        select(OAuthToken.id).where(OAuthToken.family_id == family, OAuthToken.revoked_at.is_(None))
    ).first()
    if live is not None:
        tokens.revoke_tokens(
            session,
            OAuthToken.family_id == family,
            reason=Reason("intents.fulfilment_token_replaced", {"intent": intent.id}),
            ctx=ctx,
            customer_id=intent.customer_id,
            categories=frozenset({"identity"}),
        )
    secret = secrets.token_urlsafe(32)
    expires_at, _ = tokens.lifetimes(
        session, grant.id, now, now + timedelta(seconds=tokens.ACCESS_TOKEN_SECONDS), refresh=False
    )
    session.add(
        OAuthToken(
            id=str(uuid.uuid4()),
            supplier_id=supplier.id,
            customer_id=intent.customer_id,
            grant_id=grant.id,
            family_id=family,
            access_token_hash=secret_hash(secret),
            refresh_token_hash=None,
            scope=" ".join(FULFILMENT_SCOPES),
            purpose=grant.purpose,
            issued_at=now,
            expires_at=expires_at,
        )
    )
    ctx.log(
        session,
        "update",
        customer_id=intent.customer_id,
        reason=Reason("intents.fulfilment_token", {"intent": intent.id, "grant": grant.id}),
        categories=frozenset({"identity"}),
    )
    return {
        "grant_expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
        "access_token": secret,
        "token_type": "Bearer",
        "expires_in": max(1, int((expires_at - now).total_seconds())),
        "scope": " ".join(FULFILMENT_SCOPES),
        "resource": "/api/v1/me",
    }


def place_bid(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    intent_id: str,
    data: BidInput,
    ctx: Context,
) -> dict[str, Any]:
    """A supplier bids on an open intent of its sector. The request, made with its own
    credentials, is its acceptance of the agreement it names (the proffered one, or one
    alternative from the roster). Every refusal is logged and writes nothing else."""
    with unit_of_work(session) as uow:
        intent = _intent_for(session, inst, supplier, intent_id, ctx, "create", lock=True)
        customer_id = intent.customer_id
        if not _takes_bids(intent):
            _refused(
                session,
                ctx,
                Reason("intents.bid_refused", {"intent": intent_id, "error": "intent_closed"}),
                "create",
                customer_id,
            )
            raise IntentClosed(f"This intent is {_closed_word(intent)}; it takes no bids.")
        details = _details(inst, session, intent)
        terms = data.terms or intent.terms
        error = _bid_error(inst, data, details, terms)
        if error is not None:
            _refused(
                session,
                ctx,
                Reason("intents.bid_refused", {"intent": intent_id, "error": error.code}),
                "create",
                customer_id,
            )
            raise error
        if _own_bids(session, supplier.id, [intent.id]):
            _refused(
                session,
                ctx,
                Reason("intents.bid_refused", {"intent": intent_id, "error": "bid_exists"}),
                "create",
                customer_id,
            )
            raise BidExists("You bid on this intent already; one bid per supplier.")
        bid = Bid(
            id=str(uuid.uuid4()),
            intent_id=intent.id,
            supplier_id=supplier.id,
            price_minor=data.price_minor,
            currency=data.currency,
            description=data.description,
            valid_until=data.valid_until,
            terms=terms,
            status=BidStatus.OPEN,
            created_at=utcnow(),
        )
        session.add(bid)
        ctx.log(
            session,
            "create",
            customer_id=customer_id,
            reason=Reason(
                "intents.bid",
                {
                    "intent": intent.id,
                    "bid": bid.id,
                    "price_minor": data.price_minor,
                    "currency": data.currency,
                    "terms": terms,
                },
            ),
            **_entry_fields(inst, session, customer_id, _categories(details)),
        )
        view = _supplier_view(inst, intent, details, bid)
        uow.commit()
        return view


def _takes_bids(intent: Intent) -> bool:
    """Open, not past its date, and not past its deadline."""
    if intent.status != IntentStatus.OPEN or intent.needed_by < today():
        return False
    return intent.deadline is None or intent.deadline > utcnow()


def _closed_word(intent: Intent) -> str:
    if intent.status != IntentStatus.OPEN:
        return str(intent.status)
    return "past its date" if intent.needed_by < today() else "past its deadline"


def _bid_error(
    inst: Instance, data: BidInput, details: dict[str, Any], terms: str
) -> ValidationFailed | None:
    errors: dict[str, str] = {}
    if data.price_minor <= 0:
        errors["price_minor"] = "A price above zero, in the currency's minor unit."
    if not is_currency(data.currency):
        errors["currency"] = "An ISO 4217 code, such as AUD."
    if not data.description.strip():
        errors["description"] = "Say what you offer."
    elif len(data.description) > MAX_BID_DESCRIPTION:
        errors["description"] = f"At most {MAX_BID_DESCRIPTION} characters."
    if data.valid_until < today():
        errors["valid_until"] = "A date that is not in the past."
    if errors:
        return InvalidRequest("invalid_bid", errors)
    wanted = details.get("currency")
    if wanted is not None and data.currency != wanted:
        return InvalidRequest(
            "currency_mismatch", {"currency": f"The customer's budget is in {wanted}; bid in it."}
        )
    try:
        check_ids([terms], "terms", inst)
    except ValidationFailed as error:  # unknown_terms
        return error
    return None


# -- the customer's export -------------------------------------------------------------------


def export_rows(session: Session, inst: Instance, customer_id: str) -> list[dict[str, Any]]:
    """Every intent of the customer, opened, with every bid on it (the export's ``intents``
    section; the caller names the suppliers)."""
    intents = list(
        session.execute(
            select(Intent)
            .where(Intent.customer_id == customer_id)
            .order_by(Intent.created_at, Intent.id)
        ).scalars()
    )
    bids: dict[str, list[Bid]] = {i.id: [] for i in intents}
    for bid in session.execute(
        select(Bid).where(Bid.intent_id.in_(list(bids))).order_by(Bid.created_at, Bid.id)
    ).scalars():
        bids[bid.intent_id].append(bid)
    rows = []
    for intent in intents:
        view = _view(inst, intent, _details(inst, session, intent), with_ids=True)
        view["bids"] = [
            {
                "id": bid.id,
                "supplier_id": bid.supplier_id,
                "price_minor": bid.price_minor,
                "currency": bid.currency,
                "description": bid.description,
                "valid_until": bid.valid_until.isoformat(),
                "terms": bid.terms,
                "status": bid.status,
                "created_at": bid.created_at.isoformat(),
                "decided_at": bid.decided_at.isoformat() if bid.decided_at else None,
            }
            for bid in bids[intent.id]
        ]
        rows.append(view)
    return rows


# -- the deadline and the automatic rule -----------------------------------------------------


def _qualifies(intent: Intent, details: dict[str, Any], bid: Bid, supplier: Supplier) -> bool:
    """The rule: within the budget, in its currency, from a verified supplier that is not
    suspended, accepting the proffered terms, still valid."""
    budget, currency = details.get("max_price_minor"), details.get("currency")
    return (
        bid.status == BidStatus.OPEN
        and bid.valid_until >= today()
        and bid.terms == intent.terms
        and budget is not None
        and bid.currency == currency
        and bid.price_minor <= budget
        and supplier.verified_at is not None
        and supplier.status == SupplierStatus.ACTIVE
    )


def apply_deadline(session: Session, inst: Instance, run: jobs.JobRun) -> None:
    """At an intent's deadline bidding is closed; with the automatic rule, the lowest bid that
    qualifies (the earliest among equal ones) is accepted as the customer would, and the rule's
    outcome is logged either way. An intent no longer open is left as it is."""
    with unit_of_work(session) as uow:
        intent_id = str(run.payload.get("intent", ""))
        intent = session.execute(
            select(Intent).where(Intent.id == intent_id).with_for_update()
        ).scalar_one_or_none()
        if intent is None or intent.status != IntentStatus.OPEN or not intent.auto_accept:
            jobs.complete(session, run)
            uow.commit()
            return
        details = _details(inst, session, intent)
        fields = _entry_fields(inst, session, intent.customer_id, _categories(details))
        rows = session.execute(
            select(Bid, Supplier)
            .join(Supplier, Supplier.id == Bid.supplier_id)
            .where(Bid.intent_id == intent.id)
            .order_by(Bid.price_minor, Bid.created_at, Bid.id)
        ).all()
        chosen = next((b for b, s in rows if _qualifies(intent, details, b, s)), None)
        ctx = Context(Actor.system("intents"))
        if chosen is None:
            ctx.log(
                session,
                "update",
                customer_id=intent.customer_id,
                reason=Reason(
                    "intents.auto_accept_none", {"intent": intent.id, "count": len(rows)}
                ),
                **fields,
            )
        else:
            _decide(uow, inst, intent, chosen, intent.customer_id, ctx, fields)
            ctx.log(
                session,
                "update",
                customer_id=intent.customer_id,
                reason=Reason(
                    "intents.auto_accepted",
                    {"intent": intent.id, "bid": chosen.id, "winner_supplier": chosen.supplier_id},
                ),
                **fields,
            )
        jobs.complete(session, run)
        uow.commit()


def _deadline_job(session: Session, inst: Instance, run: jobs.JobRun) -> None:
    apply_deadline(session, inst, run)


jobs.register(DEADLINE_JOB, _deadline_job, max_attempts=10)
