"""Refused accesses are logged, in a transaction of their own that survives the refusal.

A refusal is usually answered by an exception, and whatever the refused request had begun is
rolled back; an entry appended in that transaction would go with it. So the request's
transaction is rolled back first, and the entry is appended and committed on its own before
the refusal is answered. (The customer sees, in "Who accessed my data", every supplier that
tried and was turned away; auditors see every refusal.)
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, ActorType, LogEvent, append

REASON_LENGTH = 255


def refuse_supplier(
    session: Session,
    *,
    supplier_id: str,
    action: str,
    reason: str,
    request_id: str,
    customer_id: str | None = None,
    purpose: str = "service",
    categories: frozenset[str] = frozenset(),
) -> None:
    """Roll back the request's work, then write and commit the supplier's refused access.

    ``categories`` must hold plaintext-safe names only (never a special category).
    """
    record_refusal(
        session,
        LogEvent(
            actor=Actor(ActorType.SUPPLIER, supplier_id),
            action=action,
            customer_id=customer_id,
            categories=categories,
            purpose=purpose,
            reason=reason,
            request_id=request_id,
        ),
    )


def record_refusal(session: Session, event: LogEvent) -> None:
    """Roll back the request's work, then append ``event`` as denied and commit it alone."""
    session.rollback()
    append(session, replace(event, allowed=False, reason=event.reason[:REASON_LENGTH]))
    session.commit()
