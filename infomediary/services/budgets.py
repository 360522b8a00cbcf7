"""The suppliers' privacy budgets: an integer ledger per budget holder and period, and the
platform-wide cap beside it.

Every charge locks the global row first and then the holder's, inside the release's own
transaction, so concurrent releases are serialised (the per-customer filter relies on it)
and a failed release leaves no charge.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.config import Settings
from infomediary.errors import BudgetExhausted
from infomediary.models import BudgetAccount, BudgetCharge, utcnow

GLOBAL = "*"
MICRO = 1_000_000


def _period(now: datetime, days: int) -> int:
    return int(now.timestamp() // (days * 86400))


def seconds_until_next_period(now: datetime, days: int) -> int:
    """Whole seconds (at least 1) until the budget period that holds ``now`` ends."""
    end = (_period(now, days) + 1) * days * 86400
    return max(1, math.ceil(end - now.timestamp()))


def _account(session: Session, supplier_id: str, period: int) -> BudgetAccount:
    account = session.execute(
        select(BudgetAccount)
        .where(BudgetAccount.supplier_id == supplier_id, BudgetAccount.period == period)
        .with_for_update()
    ).scalar_one_or_none()
    if account is None:
        try:
            with session.begin_nested():  # a savepoint: losing the race keeps the outer locks
                account = BudgetAccount(supplier_id=supplier_id, period=period, spent_micro=0)
                session.add(account)
        except IntegrityError:  # another worker created it first
            return _account(session, supplier_id, period)
    return account


def budget_remaining(session: Session, settings: Settings, supplier_id: str) -> float:
    period = _period(utcnow(), settings.broker_period_days)
    account = session.get(BudgetAccount, (supplier_id, period))
    spent = account.spent_micro if account else 0
    return max(0, int(settings.broker_budget * MICRO) - spent) / MICRO


def charge(
    session: Session, settings: Settings, supplier_id: str, epsilon_micro: int, query_hash: str
) -> int:
    """Charge the supplier's and the global budget, or raise BudgetExhausted. Returns micro left."""
    now = utcnow()
    days = settings.broker_period_days
    period = _period(now, days)
    limit = int(settings.broker_budget * MICRO)
    global_limit = int(settings.broker_global_budget * MICRO)
    glob = _account(session, GLOBAL, period)  # always lock the global row first: no deadlock
    mine = _account(session, supplier_id, period)
    if mine.spent_micro + epsilon_micro > limit:
        raise BudgetExhausted(
            "Your privacy budget for this period is spent; no more counts until the next period.",
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
    """Take the global budget row's lock (held to the end of the transaction): every release
    takes it, through :func:`charge` or here, so releases are serialised."""
    _account(session, GLOBAL, _period(utcnow(), settings.broker_period_days))
