"""Rewards: a double-entry ledger in integer cents.

Every transaction is a set of entries that sum to zero, so all balances together are
always zero: the platform's funding account goes negative by exactly what suppliers hold,
offers' escrow and customers' earnings. Suppliers fund their account; sending an offer moves
``reward x recipients`` into the offer's escrow; an acceptance moves one reward from escrow
to the customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.errors import InsufficientFunds, ValidationFailed
from infomediary.models import LedgerAccount, LedgerEntry, LedgerTransaction, Supplier
from infomediary.services.suppliers import find_supplier
from infomediary.services.uow import unit_of_work
from infomediary.statuses import LedgerAccountKind, LedgerTransactionKind

PLATFORM = (LedgerAccountKind.PLATFORM, "funding")


def account(session: Session, kind: str, owner_id: str) -> LedgerAccount:
    found = session.execute(
        select(LedgerAccount).where(LedgerAccount.kind == kind, LedgerAccount.owner_id == owner_id)
    ).scalar_one_or_none()
    if found is None:
        found = LedgerAccount(id=str(uuid.uuid4()), kind=kind, owner_id=owner_id)
        session.add(found)
        session.flush()
    return found


def balance(session: Session, account_id: str) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.account_id == account_id
        )
    ).scalar_one()
    return int(total)


def post(
    session: Session,
    kind: str,
    moves: Iterable[tuple[LedgerAccount, int]],
    *,
    supplier_id: str | None = None,
    offer_id: str | None = None,
) -> LedgerTransaction:
    """Record one balanced transaction; refuses anything that does not sum to zero."""
    moves = [(acct, amount) for acct, amount in moves if amount]
    if sum(amount for _, amount in moves) != 0:
        raise ValueError("a ledger transaction must sum to zero")
    txn = LedgerTransaction(
        id=str(uuid.uuid4()), kind=kind, supplier_id=supplier_id, offer_id=offer_id
    )
    session.add(txn)
    session.flush()
    for acct, amount in moves:
        session.add(
            LedgerEntry(
                id=str(uuid.uuid4()), transaction_id=txn.id, account_id=acct.id, amount_cents=amount
            )
        )
    session.flush()
    return txn


def fund_supplier(session: Session, supplier: Supplier, cents: int) -> int:
    """Credit a supplier's account from the platform's funding account; returns the balance."""
    if cents <= 0:
        raise ValidationFailed({"cents": "Fund with a positive whole number of cents."})
    mine = account(session, LedgerAccountKind.SUPPLIER, supplier.id)
    post(
        session,
        LedgerTransactionKind.FUND,
        [(account(session, *PLATFORM), -cents), (mine, cents)],
        supplier_id=supplier.id,
    )
    return balance(session, mine.id)


def lock(session: Session, acct: LedgerAccount) -> None:
    """Row lock on the account (PostgreSQL) so a balance check and its debit are atomic."""
    session.execute(select(LedgerAccount.id).where(LedgerAccount.id == acct.id).with_for_update())


def require_funds(session: Session, supplier_id: str, cents: int) -> None:
    mine = account(session, LedgerAccountKind.SUPPLIER, supplier_id)
    if balance(session, mine.id) < cents:
        raise InsufficientFunds("Your rewards account cannot cover this offer's rewards.")


def refund_escrow(session: Session, supplier_id: str, offer_id: str) -> int:
    escrow = account(session, LedgerAccountKind.ESCROW, offer_id)
    lock(session, escrow)
    left = balance(session, escrow.id)
    if left > 0:
        post(
            session,
            LedgerTransactionKind.REFUND,
            [(escrow, -left), (account(session, LedgerAccountKind.SUPPLIER, supplier_id), left)],
            supplier_id=supplier_id,
            offer_id=offer_id,
        )
    return left


def escrow_offer(session: Session, supplier_id: str, offer_id: str, cents: int) -> None:
    mine = account(session, LedgerAccountKind.SUPPLIER, supplier_id)
    lock(session, mine)
    if balance(session, mine.id) < cents:
        raise InsufficientFunds("Your rewards account cannot cover this offer's rewards.")
    post(
        session,
        LedgerTransactionKind.ESCROW,
        [(mine, -cents), (account(session, LedgerAccountKind.ESCROW, offer_id), cents)],
        supplier_id=supplier_id,
        offer_id=offer_id,
    )


def pay_reward(
    session: Session, supplier_id: str, offer_id: str, customer_id: str, cents: int
) -> None:
    escrow = account(session, LedgerAccountKind.ESCROW, offer_id)
    lock(session, escrow)
    if balance(session, escrow.id) < cents:
        raise InsufficientFunds("This offer's rewards are used up.")
    post(
        session,
        LedgerTransactionKind.REWARD,
        [(escrow, -cents), (account(session, LedgerAccountKind.CUSTOMER, customer_id), cents)],
        supplier_id=supplier_id,
        offer_id=offer_id,
    )


def earnings_by_supplier(session: Session, customer_id: str) -> dict[str, int]:
    """What the customer earned, per supplier name."""
    mine = account(session, LedgerAccountKind.CUSTOMER, customer_id)
    rows = session.execute(
        select(Supplier.name, func.sum(LedgerEntry.amount_cents))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(Supplier, Supplier.id == LedgerTransaction.supplier_id)
        .where(LedgerEntry.account_id == mine.id)
        .group_by(Supplier.name)
    ).all()
    return {str(name): int(total) for name, total in rows}


def total_of_all_balances(session: Session) -> int:
    return int(
        session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))).scalar_one()
    )


def fund(session: Session, supplier_ref: str, cents: int) -> int:
    """The operator credits a supplier's rewards account (by id or client id); its balance."""
    with unit_of_work(session) as uow:
        balance = fund_supplier(session, find_supplier(session, supplier_ref), cents)
        uow.commit()
        return balance
