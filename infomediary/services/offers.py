"""Pseudonymous offers: delivered by the broker to eligible inboxes, never to named people.

Sending is two steps, so that nothing the supplier can time depends on the data:

1. The request (:func:`send_offer`): validate like a count, check the funds and escrow the
   rewards of the *cap*, charge epsilon to the supplier's budget, store the offer ``queued``
   with its delivery job; all data-independent, so a ``402`` or ``429`` stays synchronous.
2. The delivery job (:func:`deliver_offer`): select the customers whose policy allows
   *pseudonymous* use of every category the criteria touch, for the offer's purpose, minus
   those who blocked the supplier; keep those the per-customer ledger admits; add discrete
   Laplace noise to their number. The offer is delivered only if the noisy reach reaches
   :func:`delivery_threshold` *and* the admitted audience is at least
   ``broker_offer_min_audience`` (both refusals are the same ``too_small``). Every admitted
   customer is charged in the ledger, delivered or not; at most ``max_recipients`` of them (a
   random sample) receive it. One access-log entry holds the admitted member set.

Later, jobs again: once per broker epoch the noisy totals the supplier cannot otherwise see
(declines, inboxes reached) are released (:func:`release_totals`), and at expiry the offer is
closed and its unpaid escrow refunded (:func:`close_offer`). Reading an offer is free. The
supplier sees the noisy reach, the noisy totals and, one by one, the pseudonyms of customers
who accepted (a pseudonym of their own for each offer); never who received the offer.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyroaring import BitMap
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from infomediary import metrics
from infomediary.audit.reasons import Reason
from infomediary.broker.attributes import categories_of, value_category
from infomediary.config import Settings
from infomediary.errors import BudgetExhausted, InvalidRequest, NotFound
from infomediary.instance import Instance
from infomediary.models import MatchEntry, Offer, OfferDelivery, Supplier, utcnow
from infomediary.services import Context, jobs, privacy_ledger
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
from infomediary.statuses import DeliveryStatus, OfferStatus, ReleaseKind, SupplierStatus
from policies.model import Mode

MAX_TITLE = 120
MAX_BODY = 2000
#: Offers per page of the supplier's list, by default and at most.
PAGE = 20
MAX_PAGE = 100

DELIVER = "offer.deliver"
TOTALS = "offer.totals"
CLOSE = "offer.close"


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


# -- the delivery decision -----------------------------------------------------------------------


def tail_probability(epsilon: float, t: int) -> float:
    """``P[Z >= t]`` for the discrete Laplace ``Z`` of scale ``1/epsilon`` and ``t >= 0``.

    Its pmf is ``(1 - q) / (1 + q) * q**|z|`` with ``q = exp(-epsilon)``, so the tail from
    ``t`` is the geometric sum ``q**t / (1 + q)``."""
    if t < 0:
        raise ValueError("the closed form holds for t >= 0")
    q = math.exp(-epsilon)
    return q**t / (1 + q)


def delivery_threshold(settings: Settings) -> int:
    """The smallest noisy reach that delivers: ``floor + t``, where ``floor`` is the larger of
    ``broker_k`` and ``broker_offer_min_audience`` and ``t`` the smallest integer with
    ``P[Z >= t] <= broker_delta``. That ``t`` is ``ceil(ln(1 / (delta (1 + e^-eps))) / eps)``,
    never below the continuous Laplace's ``ln(1 / (2 delta)) / eps``: with the defaults
    (k 50, epsilon 0.1, delta 1e-6) the threshold is 182, past 50 + ln(500000)/0.1 = 181.2."""
    epsilon, delta = settings.broker_epsilon, settings.broker_delta
    floor = max(settings.broker_k, settings.broker_offer_min_audience)
    t = max(0, math.ceil(math.log(1 / (delta * (1 + math.exp(-epsilon)))) / epsilon))
    while t > 0 and tail_probability(epsilon, t - 1) <= delta:  # float rounding, downwards
        t -= 1
    while tail_probability(epsilon, t) > delta:  # and upwards: P[Z >= t] <= delta, exactly
        t += 1
    return floor + t


def delivery_delta(settings: Settings) -> float:
    """The delta the decision spends: the chance of delivering to an audience just below the
    minimum's neighbour, ``P[floor + Z >= threshold]`` (at most ``broker_delta``)."""
    floor = max(settings.broker_k, settings.broker_offer_min_audience)
    return tail_probability(settings.broker_epsilon, delivery_threshold(settings) - floor)


def decide(noisy_reach: int, admitted: int, settings: Settings) -> bool:
    """Deliver only past the noisy threshold and, as a second line, to a true eligible
    audience of at least ``broker_offer_min_audience`` verified accounts."""
    return (
        noisy_reach >= delivery_threshold(settings)
        and admitted >= settings.broker_offer_min_audience
    )


# -- sending: the request ------------------------------------------------------------------------


def send_offer(
    session: Session, inst: Instance, supplier: Supplier, offer_in: OfferInput, ctx: Context
) -> dict[str, Any]:
    """One request, one transaction, none of it depending on the data: the declared purpose,
    the funds for the cap's rewards (escrowed), the epsilon charged, the offer stored
    ``queued`` with its delivery job. The supplier is answered at once; the job decides."""
    with unit_of_work(session) as uow:
        query = offer_in.query
        require_declared_purpose(query, supplier)
        epsilon_micro = round(inst.noise.privacy_loss() * MICRO)
        offer_id = str(uuid.uuid4())
        # Rewards are escrowed for the *cap*, before anything depends on the data: an amount or
        # a refusal that depended on how many customers match would leak the true count.
        escrow = offer_in.reward_cents * offer_in.max_recipients
        if escrow:
            require_funds(session, supplier.id, escrow)
        left = charge(session, inst.settings, supplier.id, epsilon_micro, f"offer:{offer_id}")
        if escrow:
            escrow_offer(session, supplier.id, offer_id, escrow)
        offer = Offer(
            id=offer_id,
            supplier_id=supplier.id,
            purpose=query.purpose,
            criteria=query.canonical(),
            title=offer_in.title,
            body=offer_in.body,
            reward_cents=offer_in.reward_cents,
            max_recipients=offer_in.max_recipients,
            noisy_reach=None,
            created_at=utcnow(),
            expires_at=offer_in.expires_at,
            status=OfferStatus.QUEUED,
        )
        session.add(offer)
        session.flush()
        jobs.enqueue(
            session,
            DELIVER,
            {"offer_id": offer_id, "request_id": ctx.request_id},
            key=f"{DELIVER}:{offer_id}",
        )
        # closed at expiry whatever happens to the delivery: an offer whose delivery job gave up
        # does not keep its escrow
        jobs.enqueue(
            session, CLOSE, {"offer_id": offer_id}, offer_in.expires_at, key=f"{CLOSE}:{offer_id}"
        )
        uow.commit()
        metrics.EPSILON_SPENT.inc(epsilon_micro / MICRO)
        return {
            "id": offer_id,
            "status": OfferStatus.QUEUED,
            "epsilon_spent": epsilon_micro / MICRO,
            "budget_remaining": left / MICRO,
            "created_at": offer.created_at.isoformat(),
            "expires_at": offer.expires_at.isoformat(),
        }


# -- the jobs ------------------------------------------------------------------------------------


def _locked_offer(session: Session, offer_id: object) -> Offer | None:
    if not isinstance(offer_id, str):
        return None
    return session.execute(
        select(Offer)
        .where(Offer.id == offer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _query_of(offer: Offer) -> CountQuery:
    stored = json.loads(offer.criteria)
    return CountQuery(purpose=stored["purpose"], where=stored["where"], breakdown=None)


def _categories(query: CountQuery) -> frozenset[str]:
    return frozenset(
        category
        for a, values in query.where.items()
        for v in values
        for category in categories_of(value_category(a, v))
    )


def _epoch_start(epoch: int, hours: int) -> datetime:
    return datetime.fromtimestamp(epoch * hours * 3600, UTC)


def _job_context(supplier_id: str, run: jobs.JobRun) -> Context:
    request_id = run.payload.get("request_id")
    return Context.supplier(supplier_id, request_id if isinstance(request_id, str) else "-")


def deliver_offer(session: Session, inst: Instance, run: jobs.JobRun) -> None:
    """The delivery job: one transaction that selects, filters, adds noise, decides, records
    the release, delivers (or refunds the escrow), logs, and completes the job, so a retry
    after a crash finds the offer decided and changes nothing."""
    with unit_of_work(session) as uow:
        offer = _locked_offer(session, run.payload.get("offer_id"))
        supplier = session.get(Supplier, offer.supplier_id) if offer else None
        if offer is None or supplier is None or offer.status != OfferStatus.QUEUED:
            jobs.complete(session, run)
            uow.commit()
            return
        if not may_send(supplier):
            # suspended, or its broker approval taken back, since it asked: nobody is selected,
            # charged or reached, and the escrow goes back
            offer.status = OfferStatus.TOO_SMALL
            refund_escrow(session, supplier.id, offer.id)
            ctx = _job_context(supplier.id, run)
            ctx.log(
                session,
                "offer",
                purpose=offer.purpose,
                reason=Reason("offers.not_delivered"),
            )
            jobs.complete(session, run)
            uow.commit()
            return
        settings, noise, index = inst.settings, inst.noise, inst.match_index
        query = _query_of(offer)
        epsilon_micro = round(noise.privacy_loss() * MICRO)
        index.refresh(session)
        selection = index.select(
            query.where, query.purpose, Mode.PSEUDONYMOUS, supplier.id, supplier.sector
        )
        admitted = privacy_ledger.admit(session, inst, selection.members, epsilon_micro)
        noisy = noise.release([len(admitted)])[0]
        delivered = decide(noisy, len(admitted), settings)
        release = privacy_ledger.record(
            session,
            inst,
            kind=ReleaseKind.OFFER_REACH,
            supplier_id=supplier.id,
            purpose=query.purpose,
            criteria=query.canonical(),
            epsilon_micro=epsilon_micro,
            members=admitted,
            offer_id=offer.id,
        )
        if delivered:
            ordinals = list(admitted)
            if len(ordinals) > offer.max_recipients:
                ordinals = random.SystemRandom().sample(ordinals, offer.max_recipients)
            now = utcnow()
            session.add_all(
                OfferDelivery(offer_id=offer.id, customer_id=c, delivered_at=now)
                for c in _customers_of(session, ordinals)
            )
            offer.status = OfferStatus.DELIVERED
            offer.noisy_reach = noisy
            hours = settings.broker_epoch_hours
            jobs.enqueue(
                session, CLOSE, {"offer_id": offer.id}, offer.expires_at, key=f"{CLOSE}:{offer.id}"
            )
            jobs.enqueue(
                session,
                TOTALS,
                {"offer_id": offer.id},
                _epoch_start(epoch_of(run.now, hours) + 1, hours),
                key=f"{TOTALS}:{offer.id}",
            )
        else:
            offer.status = OfferStatus.TOO_SMALL
            refund_escrow(session, supplier.id, offer.id)  # nothing was delivered
        log_aggregate(
            session,
            _job_context(supplier.id, run),
            action="offer",
            query=query,
            epsilon_micro=epsilon_micro,
            released=offer.noisy_reach,
            k=settings.broker_k,
            members=admitted,
            categories=selection.categories,
            offer_id=offer.id,
            release=release.seq,
            threshold=delivery_threshold(settings),
        )
        jobs.complete(session, run)
        uow.commit()


def may_send(supplier: Supplier) -> bool:
    """Whether the supplier may still send offers: active, and holding the operator's grant."""
    return supplier.status == SupplierStatus.ACTIVE and "offers:send" in supplier.scopes.split()


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


def release_totals(session: Session, inst: Instance, run: jobs.JobRun) -> datetime | None:
    """Once per broker epoch, while the offer is open and once after it closed: the noisy
    number of inboxes it reached and of declines, charged once to the supplier's budget and,
    through the ledger, to every recipient it counts. A spent budget leaves the totals as they
    were (with their "as of") and the job tries again next epoch. Returns the next run."""
    hours = inst.settings.broker_epoch_hours
    epoch = epoch_of(run.now, hours)
    with unit_of_work(session) as uow:
        offer = _locked_offer(session, run.payload.get("offer_id"))
        supplier = session.get(Supplier, offer.supplier_id) if offer else None
        if offer is None or supplier is None:
            return None
        if offer.status not in (OfferStatus.DELIVERED, OfferStatus.CLOSED):
            return None
        if not may_send(supplier):
            return None  # no more totals for a supplier that may no longer send offers
        following = None if run.now >= offer.expires_at else _epoch_start(epoch + 1, hours)
        if offer.totals_epoch == epoch:
            return following
        ctx = _job_context(supplier.id, run)
        settings, noise, k = inst.settings, inst.noise, inst.settings.broker_k
        epsilon_micro = round(noise.privacy_loss() * MICRO)
        try:
            charge(session, settings, supplier.id, epsilon_micro, f"offer-totals:{offer.id}")
        except BudgetExhausted:
            uow.refuse(
                ctx.event(
                    "offer",
                    purpose=offer.purpose,
                    reason=Reason("offers.totals_not_refreshed"),
                )
            )
            return following
        answers = session.execute(
            select(MatchEntry.ordinal, OfferDelivery.status)
            .join(MatchEntry, MatchEntry.customer_id == OfferDelivery.customer_id)
            .where(OfferDelivery.offer_id == offer.id)
        ).all()
        recipients = BitMap(int(ordinal) for ordinal, _ in answers)
        # only recipients who still allow pseudonymous use and have not excluded or blocked
        # the supplier since: a total must not depend on anyone who said "never" to it
        index = inst.match_index
        index.refresh(session)
        query = _query_of(offer)
        eligible = index.select(
            query.where, query.purpose, Mode.PSEUDONYMOUS, supplier.id, supplier.sector
        ).members
        admitted = privacy_ledger.admit(
            session, inst, recipients & eligible, epsilon_micro, locked=True
        )
        # Two disjoint cells (each recipient is in exactly one): sensitivity 1, one epsilon.
        declined = sum(1 for o, s in answers if o in admitted and s == DeliveryStatus.DECLINED)
        others = sum(1 for o, s in answers if o in admitted and s != DeliveryStatus.DECLINED)
        noisy_declined, noisy_others = noise.release([declined, others])
        reached = noisy_declined + noisy_others  # post-processing of the noisy cells
        totals = {
            "declined": noisy_declined if noisy_declined >= k else None,
            "reached": reached if reached >= k else None,
        }
        release = privacy_ledger.record(
            session,
            inst,
            kind=ReleaseKind.OFFER_TOTALS,
            supplier_id=supplier.id,
            purpose=offer.purpose,
            criteria=offer.criteria,
            epsilon_micro=epsilon_micro,
            members=admitted,
            offer_id=offer.id,
        )
        log_aggregate(
            session,
            ctx,
            action="offer",
            query=query,
            epsilon_micro=epsilon_micro,
            released=totals,
            k=k,
            members=admitted,
            categories=_categories(query),
            offer_id=offer.id,
            release=release.seq,
            totals_epoch=epoch,
        )
        offer.totals = json.dumps(totals, sort_keys=True)
        offer.totals_epoch = epoch
        offer.totals_at = run.now
        jobs.complete(session, run, following)
        uow.commit()
        return following


def close_offer(session: Session, inst: Instance, run: jobs.JobRun) -> datetime | None:
    """At expiry: the offer closes and what was escrowed and not paid out goes back
    (reward x (cap - acceptances)), with the job's completion in one transaction. Enqueued
    when the offer is sent, so an offer whose delivery never happened closes too."""
    with unit_of_work(session) as uow:
        offer = _locked_offer(session, run.payload.get("offer_id"))
        if offer is None or offer.status not in (OfferStatus.DELIVERED, OfferStatus.QUEUED):
            return None
        if offer.expires_at > run.now:
            return offer.expires_at
        # delivered: what was not paid out goes back; still queued (its delivery job gave up):
        # all of it, and the offer is closed undelivered
        refund_escrow(session, offer.supplier_id, offer.id)
        offer.status = OfferStatus.CLOSED
        jobs.complete(session, run)
        uow.commit()
        return None


jobs.register(DELIVER, deliver_offer, max_attempts=5)
jobs.register(TOTALS, release_totals, max_attempts=5)
jobs.register(CLOSE, close_offer, max_attempts=10)


# -- the supplier's views: reads, free -----------------------------------------------------------


def offer_view(
    session: Session, inst: Instance, supplier: Supplier, offer_id: str, ctx: Context
) -> dict[str, Any]:
    """The supplier's view of its offer: status, noisy reach, the last noisy totals with their
    "as of", accepters' pseudonyms. Free: nothing is charged, whatever the budget. The view is
    logged, allowed (it shows accepters' pseudonyms) or refused (someone else's offer, or
    none)."""
    with unit_of_work(session) as uow:
        offer = session.get(Offer, offer_id)
        if offer is None or offer.supplier_id != supplier.id:
            uow.refuse(ctx.event("offer", reason=Reason("offers.view_refused")))
            raise NotFound("No such offer.")
        view = _view(session, inst, supplier, offer)
        ctx.log(
            session,
            "offer",
            purpose=offer.purpose,
            reason=Reason("offers.viewed", {"accepted": len(view["accepted"])}),
        )
        uow.commit()
        return view


def _view(session: Session, inst: Instance, supplier: Supplier, offer: Offer) -> dict[str, Any]:
    accepted = session.execute(
        select(OfferDelivery.customer_id, OfferDelivery.responded_at)
        .where(OfferDelivery.offer_id == offer.id, OfferDelivery.status == DeliveryStatus.ACCEPTED)
        .order_by(OfferDelivery.responded_at)
    ).all()
    return {
        **_summary(offer),
        "purpose": offer.purpose,
        "criteria": json.loads(offer.criteria),
        "reward_cents": offer.reward_cents,
        "suppressed": offer.status == OfferStatus.TOO_SMALL,
        "response_totals": json.loads(offer.totals) if offer.totals else None,
        "totals_as_of": offer.totals_at.isoformat() if offer.totals_at else None,
        "accepted": [
            {
                "sub": offer_pseudonym(inst, offer.id, customer_id),
                "accepted_at": at.isoformat() if at else None,
                "contact_shared": contact_shared(session, offer.id, customer_id),
            }
            for customer_id, at in accepted
        ],
        "budget_remaining": budget_remaining(session, inst.settings, supplier.id),
    }


def _summary(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.id,
        "status": offer.status,
        "title": offer.title,
        "created_at": offer.created_at.isoformat(),
        "expires_at": offer.expires_at.isoformat(),
        "reach": offer.noisy_reach,
    }


@dataclass(frozen=True)
class OfferPage:
    """A page of the supplier's offers: at most ``limit`` (1 to ``MAX_PAGE``), after
    ``cursor`` (the ``next_cursor`` of the page before), newest first."""

    limit: int = PAGE
    cursor: str | None = None


def _cursor(offer: Offer) -> str:
    raw = json.dumps([offer.created_at.isoformat(), offer.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, offer_id = json.loads(raw)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None or not isinstance(offer_id, str):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidRequest(
            "invalid_request", {"cursor": "Unknown cursor: pass a next_cursor unchanged."}
        ) from None
    return at, offer_id


def list_offers(session: Session, supplier: Supplier, page: OfferPage) -> dict[str, Any]:
    """The supplier's own offers, newest first, a page at a time (a read)."""
    query = select(Offer).where(Offer.supplier_id == supplier.id)
    if page.cursor is not None:
        created, offer_id = _after(page.cursor)
        query = query.where(
            or_(
                Offer.created_at < created,
                and_(Offer.created_at == created, Offer.id < offer_id),
            )
        )
    rows = list(
        session.execute(
            query.order_by(Offer.created_at.desc(), Offer.id.desc()).limit(page.limit + 1)
        ).scalars()
    )
    shown = rows[: page.limit]
    return {
        "offers": [_summary(offer) for offer in shown],
        "next_cursor": _cursor(shown[-1]) if len(rows) > page.limit else None,
    }
