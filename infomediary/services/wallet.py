"""The customer's rewards wallet: balance, history, payout requests; the operator's export.

A payout request moves its amount from the customer's ledger account to the platform's
"payouts pending" account in one balanced transaction, beside a :class:`PayoutRequest` row
whose destination (an IBAN, a PayPal address: personal data) is sealed under the customer's
DEK. Cancelling a still-requested payout moves the amount back; the operator's export opens
each requested payout's destination (an access to the customer's data, logged per payout),
moves its amount on to "paid out" and marks it settled, all in one transaction, so exporting
twice never pays twice. Every balance together still sums to zero.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import ActorType
from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Offer,
    OfferDelivery,
    PayoutRequest,
    Supplier,
    utcnow,
)
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.rewards import account, balance, lock, post
from infomediary.services.uow import unit_of_work
from infomediary.statuses import (
    DeliveryStatus,
    LedgerAccountKind,
    LedgerTransactionKind,
    PayoutStatus,
)
from infomediary.text import has_control_characters

#: The platform's accounts a payout passes through.
PAYOUTS_PENDING = (LedgerAccountKind.PLATFORM, "payouts_pending")
PAID_OUT = (LedgerAccountKind.PLATFORM, "paid_out")

CURRENCY = "USD"
#: The smallest payout, in cents.
MINIMUM_PAYOUT = 500
#: History rows per page.
PER_PAGE = 20
DESTINATION_MIN, DESTINATION_MAX = 5, 100
_AMOUNT = re.compile(r"([0-9]{1,9})(?:[.,]([0-9]{1,2}))?")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
DESTINATION_ERROR = (
    "Enter an IBAN (such as DE89 3704 0044 0532 0130 00) or a PayPal e-mail address."
)
_TABLE, _FIELD = "payout_requests", "destination"


def parse_amount(raw: str) -> int | None:
    """ "12", "12.5" or "12,50" as cents; None for anything else."""
    found = _AMOUNT.fullmatch(raw.strip().lstrip("$"))
    if found is None:
        return None
    whole, fraction = found.group(1), (found.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(fraction)


def is_iban(destination: str) -> bool:
    """Letters, digits and spaces, 15 to 34 of them besides the spaces, with a valid
    ISO 13616 mod-97 checksum."""
    if not all(c == " " or (c.isascii() and c.isalnum()) for c in destination):
        return False
    compact = destination.replace(" ", "").upper()
    if _IBAN.fullmatch(compact) is None:
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def is_email(destination: str) -> bool:
    """One ``@``, a dot in the domain, no spaces."""
    return _EMAIL.fullmatch(destination) is not None


def mask(destination: str) -> str:
    """A destination shown masked: its last four characters."""
    tail = destination.replace(" ", "")[-4:]
    return "•••• " + tail


@dataclass(frozen=True)
class PayoutInput:
    """What the payout form sends, as typed: the amount and the destination."""

    amount: str
    destination: str


@dataclass(frozen=True)
class Movement:
    """One movement of the customer's ledger account, with the balance after it."""

    time: datetime
    kind: str
    amount_cents: int
    balance_cents: int
    supplier_name: str | None
    offer_title: str | None
    payout_id: str | None


@dataclass(frozen=True)
class Payout:
    id: str
    amount_cents: int
    currency: str
    status: str
    requested_at: datetime
    destination_masked: str


@dataclass(frozen=True)
class Wallet:
    available_cents: int
    pending_cents: int
    movements: tuple[Movement, ...]
    payouts: tuple[Payout, ...]
    page: int
    pages: int
    minimum_cents: int = MINIMUM_PAYOUT


@dataclass(frozen=True)
class ExportedPayout:
    """A payout the operator is to pay, destination in the clear."""

    id: str
    requested_at: datetime
    amount_cents: int
    currency: str
    destination: str


def _customer_account(session: Session, customer_id: str) -> LedgerAccount:
    return account(session, LedgerAccountKind.CUSTOMER, customer_id)


def pending_cents(session: Session, customer_id: str) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(PayoutRequest.amount_cents), 0)).where(
            PayoutRequest.customer_id == customer_id,
            PayoutRequest.status == PayoutStatus.REQUESTED,
        )
    ).scalar_one()
    return int(total)


def available_cents(session: Session, customer_id: str) -> int:
    """The customer's balance, without creating an account for them."""
    total = session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(
            LedgerAccount.kind == LedgerAccountKind.CUSTOMER,
            LedgerAccount.owner_id == customer_id,
        )
    ).scalar_one()
    return int(total)


def pending_offers(session: Session, customer_id: str) -> int:
    """Offers waiting in the customer's inbox for an answer, not yet expired."""
    total = session.execute(
        select(func.count())
        .select_from(OfferDelivery)
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .where(
            OfferDelivery.customer_id == customer_id,
            OfferDelivery.status == DeliveryStatus.DELIVERED,
            Offer.expires_at > utcnow(),
        )
    ).scalar_one()
    return int(total)


@dataclass(frozen=True)
class SinceLastVisit:
    """What is new since the customer's previous login, for the overview."""

    offers: int
    accesses: int


def since_last_visit(session: Session, customer_id: str) -> SinceLastVisit | None:
    """Offers delivered and accesses to the customer's data by anyone else since the login
    before this one; None on the first visit."""
    logins = session.execute(
        select(AccessLogEntry.seq, AccessLogEntry.created_at)
        .where(
            AccessLogEntry.customer_id == customer_id,
            AccessLogEntry.action == "login",
            AccessLogEntry.actor_type == ActorType.CUSTOMER,
            AccessLogEntry.outcome == "allowed",
        )
        .order_by(AccessLogEntry.seq.desc())
        .limit(2)
    ).all()
    if len(logins) < 2:
        return None
    seq, at = logins[1]
    accesses = session.execute(
        select(func.count())
        .select_from(AccessLogEntry)
        .where(
            AccessLogEntry.customer_id == customer_id,
            AccessLogEntry.seq > seq,
            AccessLogEntry.actor_type != ActorType.CUSTOMER,
        )
    ).scalar_one()
    offers = session.execute(
        select(func.count())
        .select_from(OfferDelivery)
        .where(OfferDelivery.customer_id == customer_id, OfferDelivery.delivered_at > at)
    ).scalar_one()
    return SinceLastVisit(int(offers), int(accesses))


def _movements(
    session: Session, account_id: str, total: int, page: int
) -> tuple[tuple[Movement, ...], int]:
    """A page of movements, newest first, each with the balance after it."""
    count = int(
        session.execute(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == account_id)
        ).scalar_one()
    )
    pages = max(1, -(-count // PER_PAGE))
    page = min(max(page, 1), pages)
    order = (LedgerTransaction.created_at.desc(), LedgerEntry.id.desc())
    newest = (
        select(LedgerEntry.amount_cents)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(*order)
        .limit((page - 1) * PER_PAGE)
        .subquery()
    )
    newer = int(
        session.execute(select(func.coalesce(func.sum(newest.c.amount_cents), 0))).scalar_one()
    )
    rows = session.execute(
        select(LedgerEntry, LedgerTransaction, Supplier.name, Offer.title, PayoutRequest.id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .outerjoin(Supplier, Supplier.id == LedgerTransaction.supplier_id)
        .outerjoin(Offer, Offer.id == LedgerTransaction.offer_id)
        .outerjoin(
            PayoutRequest,
            (PayoutRequest.transaction_id == LedgerTransaction.id)
            | (PayoutRequest.closing_transaction_id == LedgerTransaction.id),
        )
        .where(LedgerEntry.account_id == account_id)
        .order_by(*order)
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    after = total - newer
    found = []
    for entry, txn, supplier_name, title, payout_id in rows:
        found.append(
            Movement(
                time=txn.created_at,
                kind=txn.kind,
                amount_cents=entry.amount_cents,
                balance_cents=after,
                supplier_name=supplier_name,
                offer_title=title,
                payout_id=payout_id,
            )
        )
        after -= entry.amount_cents
    return tuple(found), pages


def wallet(session: Session, inst: Instance, customer_id: str, page: int, ctx: Context) -> Wallet:
    """The customer's balance, a page of their account's history and their payouts (their
    destinations opened to be shown masked: a logged read)."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        # a read creates no account: a customer who never earned has none yet
        mine = session.execute(
            select(LedgerAccount.id).where(
                LedgerAccount.kind == LedgerAccountKind.CUSTOMER,
                LedgerAccount.owner_id == customer_id,
            )
        ).scalar_one_or_none()
        total = balance(session, mine) if mine else 0
        movements, pages = _movements(session, mine, total, page) if mine else ((), 1)
        rows = (
            session.execute(
                select(PayoutRequest)
                .where(PayoutRequest.customer_id == customer_id)
                .order_by(PayoutRequest.requested_at.desc())
                .limit(50)
            )
            .scalars()
            .all()
        )
        payouts = tuple(
            Payout(
                id=row.id,
                amount_cents=row.amount_cents,
                currency=row.currency,
                status=row.status,
                requested_at=row.requested_at,
                destination_masked=mask(
                    str(inst.vault.open(key, _TABLE, row.id, _FIELD, row.destination))
                ),
            )
            for row in rows
        )
        ctx.log(session, "read", customer_id=customer_id, reason=Reason("wallet.viewed"))
        uow.commit()
        return Wallet(
            available_cents=total,
            pending_cents=pending_cents(session, customer_id),
            movements=movements,
            payouts=payouts,
            page=min(max(page, 1), pages),
            pages=pages,
        )


def _check(form: PayoutInput, available: int) -> tuple[int, str]:
    """The amount in cents and the destination, or every field's error at once."""
    errors: dict[str, str] = {}
    cents = parse_amount(form.amount)
    if cents is None:
        errors["amount"] = "Enter an amount such as 12.50."
    elif cents < MINIMUM_PAYOUT:
        errors["amount"] = f"The smallest payout is ${MINIMUM_PAYOUT / 100:.2f}."
    elif cents > available:
        errors["amount"] = f"You have ${available / 100:.2f} available."
    destination = " ".join(form.destination.split())
    if has_control_characters(form.destination):
        errors["destination"] = "Control characters (such as NUL) are not allowed here."
    elif not DESTINATION_MIN <= len(destination) <= DESTINATION_MAX:
        errors["destination"] = (
            f"Enter an IBAN or a PayPal address ({DESTINATION_MIN} to {DESTINATION_MAX} "
            "characters)."
        )
    elif not (is_iban(destination) or is_email(destination)):
        errors["destination"] = DESTINATION_ERROR
    if errors or cents is None:
        raise ValidationFailed(errors)
    return cents, destination


def request_payout(
    session: Session, inst: Instance, customer_id: str, form: PayoutInput, ctx: Context
) -> Payout:
    """Move the amount to "payouts pending" and record the request, its destination sealed."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        mine = _customer_account(session, customer_id)
        lock(session, mine)
        cents, destination = _check(form, balance(session, mine.id))
        payout_id = str(uuid.uuid4())
        txn = post(
            session,
            LedgerTransactionKind.PAYOUT,
            [(mine, -cents), (account(session, *PAYOUTS_PENDING), cents)],
        )
        row = PayoutRequest(
            id=payout_id,
            customer_id=customer_id,
            amount_cents=cents,
            currency=CURRENCY,
            destination=inst.vault.seal(key, _TABLE, payout_id, _FIELD, destination),
            status=PayoutStatus.REQUESTED,
            transaction_id=txn.id,
            requested_at=utcnow(),
        )
        session.add(row)
        session.flush()
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("wallet.payout_requested", {"payout": payout_id, "cents": cents}),
        )
        uow.commit()
        return Payout(row.id, cents, CURRENCY, row.status, row.requested_at, mask(destination))


def cancel_payout(
    session: Session, inst: Instance, customer_id: str, payout_id: str, ctx: Context
) -> int:
    """Cancel a still-requested payout of the customer's: the amount goes back; the amount."""
    with unit_of_work(session) as uow:
        row = session.get(PayoutRequest, payout_id)
        if row is None or row.customer_id != customer_id:
            # Logged on this customer's log only, naming neither the payout nor its owner.
            uow.refuse(
                ctx.event("update", customer_id=customer_id, reason=Reason("wallet.cancel_refused"))
            )
            raise NotFound("No such payout request.")
        claimed = rowcount(
            session.execute(
                update(PayoutRequest)
                .where(
                    PayoutRequest.id == payout_id,
                    PayoutRequest.status == PayoutStatus.REQUESTED,
                )
                .values(status=PayoutStatus.CANCELLED, cancelled_at=utcnow())
            )
        )
        if not claimed:
            raise ValidationFailed({"payout": "This payout can no longer be cancelled."})
        session.refresh(row)
        row.closing_transaction_id = post(
            session,
            LedgerTransactionKind.PAYOUT_CANCEL,
            [
                (account(session, *PAYOUTS_PENDING), -row.amount_cents),
                (_customer_account(session, customer_id), row.amount_cents),
            ],
        ).id
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason(
                "wallet.payout_cancelled", {"payout": payout_id, "cents": row.amount_cents}
            ),
        )
        uow.commit()
        return row.amount_cents


def export_payouts(
    session: Session,
    inst: Instance,
    ctx: Context,
    deliver: Callable[[list[ExportedPayout]], None] | None = None,
) -> list[ExportedPayout]:
    """Every requested payout, destination opened for the operator to pay, each marked
    settled (its amount moved from "payouts pending" to "paid out") in this one transaction;
    opening a destination is logged as an access to that customer's data. ``deliver`` hands
    the payouts on (the CLI writes and syncs its file) before the settlement commits: if it
    raises, nothing is settled and every payout stays requested."""
    with unit_of_work(session) as uow:
        rows = (
            session.execute(
                select(PayoutRequest)
                .where(PayoutRequest.status == PayoutStatus.REQUESTED)
                .order_by(PayoutRequest.requested_at, PayoutRequest.id)
                .with_for_update()
            )
            .scalars()
            .all()
        )
        if not rows:
            if deliver is not None:
                deliver([])
            uow.commit()
            return []
        pending, paid = account(session, *PAYOUTS_PENDING), account(session, *PAID_OUT)
        now = utcnow()
        found = []
        for row in rows:
            key = customer_key(session, inst, row.customer_id)
            destination = str(inst.vault.open(key, _TABLE, row.id, _FIELD, row.destination))
            row.status = PayoutStatus.SETTLED
            row.settled_at = now
            row.closing_transaction_id = post(
                session,
                LedgerTransactionKind.PAYOUT_SETTLE,
                [(pending, -row.amount_cents), (paid, row.amount_cents)],
            ).id
            ctx.log(
                session,
                "read",
                customer_id=row.customer_id,
                reason=Reason(
                    "wallet.payout_settled", {"payout": row.id, "cents": row.amount_cents}
                ),
            )
            found.append(
                ExportedPayout(
                    row.id, row.requested_at, row.amount_cents, row.currency, destination
                )
            )
        session.flush()
        if deliver is not None:
            deliver(found)
        uow.commit()
        return found
