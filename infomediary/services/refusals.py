"""Refused accesses are logged, in a transaction of their own that survives the refusal.

A refusal is usually answered by an exception, and whatever the refused request had begun is
rolled back; an entry appended in that transaction would go with it. So the request's
transaction is rolled back first, and the entry is appended and committed on its own before
the refusal is answered. (The customer sees, in "Who accessed my data", every supplier that
tried and was turned away; auditors see every refusal.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from infomediary.audit.log import append
from infomediary.audit.reasons import Reason
from infomediary.services import Context


def refuse_supplier(
    session: Session,
    ctx: Context,
    *,
    action: str,
    reason: str | Reason,
    customer_id: str | None = None,
    purpose: str = "service",
    categories: frozenset[str] = frozenset(),
) -> None:
    """Roll back the request's work, then write and commit the supplier's refused access.

    ``ctx`` is the supplier's (:meth:`Context.supplier`). ``categories`` must hold
    plaintext-safe names only (never a special category).
    """
    record_refusal(
        session,
        ctx,
        action,
        customer_id=customer_id,
        reason=reason,
        purpose=purpose,
        categories=categories,
    )


def record_refusal(
    session: Session,
    ctx: Context,
    action: str,
    *,
    customer_id: str | None = None,
    reason: str | Reason,
    **fields: Any,
) -> None:
    """Roll back the request's work, then append this actor's ``action`` as denied and commit
    it alone (``fields`` are :class:`~infomediary.audit.log.LogEvent`'s)."""
    session.rollback()
    append(session, ctx.denied(ctx.event(action, customer_id=customer_id, reason=reason, **fields)))
    session.commit()
