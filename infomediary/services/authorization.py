"""OAuth exchanges as use cases, each one transaction.

The protocol adapter (:mod:`infomediary.oauth.server`, authlib) validates requests and calls
its storage callbacks; those only read and write through the session. Here the exchange
becomes a use case: everything its callbacks wrote (a consumed code, a new token pair, a
revoked family, a refusal entry) commits together once the response is formed, and nothing
is kept if forming it fails. What a refused exchange claimed stays claimed: the refusal is a
response, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import Supplier
from infomediary.services import Context
from infomediary.services.consent_grants import grant_consent
from infomediary.services.uow import unit_of_work

T = TypeVar("T")


def exchange(session: Session, respond: Callable[[], T]) -> T:
    """One request to an OAuth endpoint (authorize screen, token, revocation, introspection)."""
    with unit_of_work(session) as uow:
        response = respond()
        uow.commit()
        return response


def approve(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier: Supplier,
    *,
    scopes: list[str],
    purpose: str,
    expires_at: datetime | None,
    ctx: Context,
    base_url: str,
    issue_code: Callable[[str], T],
    keep_expiry: bool = False,
) -> T:
    """The customer approves an authorization request: the grant, its signed receipt, its log
    entry and the authorization code (``issue_code(grant_id)`` stores it) in one transaction,
    so no code exists without its grant and no grant without the code it was approved for.
    With ``keep_expiry`` an active grant of the same supplier and purpose keeps its end date."""
    with unit_of_work(session) as uow:
        consent = grant_consent(
            session,
            inst,
            customer_id,
            supplier,
            scopes=scopes,
            purpose=purpose,
            expires_at=expires_at,
            ctx=ctx,
            base_url=base_url,
            keep_expiry=keep_expiry,
        )
        response = issue_code(consent.id)
        uow.commit()
        return response
