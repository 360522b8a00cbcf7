"""The suppliers' privacy budgets: an integer ledger per budget holder and period, and the
platform-wide cap beside it.

The holder is the supplier's organisation: every client of one organisation draws on one
budget (``budget_accounts.supplier_id`` holds the organisation's id), so an organisation
cannot multiply its budget by registering more clients. Callers name the supplier; its
organisation is looked up here, and ``budget_charges`` keeps which client spent.

Every charge locks the global row first and then the holder's, inside the release's own
transaction, so concurrent releases are serialised (the per-customer filter relies on it)
and a failed release leaves no charge.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.config import Settings
from infomediary.errors import BudgetExhausted, NotFound
from infomediary.models import BudgetAccount, BudgetCharge, Supplier, utcnow

GLOBAL = "*"
MICRO = 1_000_000


def _period(now: datetime, days: int) -> int:
    return int(now.timestamp() // (days * 86400))


def seconds_until_next_period(now: datetime, days: int) -> int:
    """Whole seconds (at least 1) until the budget period that holds ``now`` ends."""
    end = (_period(now, days) + 1) * days * 86400
    return max(1, math.ceil(end - now.timestamp()))


def _account(session: Session, holder_id: str, period: int) -> BudgetAccount:
    account = session.execute(
        select(BudgetAccount)
        .where(BudgetAccount.supplier_id == holder_id, BudgetAccount.period == period)
        .with_for_update()
    ).scalar_one_or_none()
    if account is None:
        try:
            with session.begin_nested():  # a savepoint: losing the race keeps the outer locks
                account = BudgetAccount(supplier_id=holder_id, period=period, spent_micro=0)
                session.add(account)
        except IntegrityError:  # another worker created it first
            return _account(session, holder_id, period)
    return account


def budget_holder(session: Session, supplier_id: str) -> str:
    """The id of the budget ``supplier_id`` draws on: its organisation's."""
    supplier = session.get(Supplier, supplier_id)  # no query when the caller loaded it
    if supplier is None:
        raise NotFound("No such supplier.")
    return supplier.organisation_id


def budget_remaining(session: Session, settings: Settings, supplier_id: str) -> float:
    """What is left this period of the budget of ``supplier_id``'s organisation."""
    period = _period(utcnow(), settings.broker_period_days)
    account = session.get(BudgetAccount, (budget_holder(session, supplier_id), period))
    spent = account.spent_micro if account else 0
    return max(0, int(settings.broker_budget * MICRO) - spent) / MICRO


def charge(
    session: Session, settings: Settings, supplier_id: str, epsilon_micro: int, query_hash: str
) -> int:
    """Charge the budget of the supplier's organisation and the global one, or raise
    BudgetExhausted. Returns micro left of the organisation's."""
    now = utcnow()
    days = settings.broker_period_days
    period = _period(now, days)
    limit = int(settings.broker_budget * MICRO)
    global_limit = int(settings.broker_global_budget * MICRO)
    holder = budget_holder(session, supplier_id)
    serialise_releases(session)
    glob = _account(session, GLOBAL, period)  # always lock the global row first: no deadlock
    mine = _account(session, holder, period)
    if mine.spent_micro + epsilon_micro > limit:
        raise BudgetExhausted(
            "Your organisation's privacy budget for this period is spent; no more counts until "
            "the next period.",
            seconds_until_next_period(now, days),
        )
    if glob.spent_micro + epsilon_micro > global_limit:
        raise BudgetExhausted(
            "The platform-wide privacy budget for this period is spent.",
            seconds_until_next_period(now, days),
        )
    mine.spent_micro += epsilon_micro
    glob.spent_micro += epsilon_micro
    session.add(
        BudgetCharge(
            id=str(uuid.uuid4()),
            supplier_id=supplier_id,
            period=period,
            epsilon_micro=epsilon_micro,
            query_hash=query_hash,
        )
    )
    return limit - mine.spent_micro


def lock_global(session: Session, settings: Settings) -> None:
    """Serialise with every other release and take the global budget row's lock (both held to
    the end of the transaction): every release does, through :func:`charge` or here."""
    serialise_releases(session)
    _account(session, GLOBAL, _period(utcnow(), settings.broker_period_days))


#: The PostgreSQL advisory lock that serialises releases (an arbitrary constant of this app).
RELEASE_LOCK = 0x1F0_3ED1A


def serialise_releases(session: Session) -> None:
    """One release at a time, whatever the budget period: a release that began just before a
    period ended and one that began just after lock different budget rows, so the budget row
    alone would let both filter against the same ledger. On PostgreSQL a transaction-level
    advisory lock; SQLite transactions begin ``IMMEDIATE`` and hold the database's write
    lock already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RELEASE_LOCK})
