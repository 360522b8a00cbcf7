"""OAuth tokens' rules, apart from the protocol adapter: lifetimes, when a token may be used,
and the one way tokens are revoked (always with an access-log entry).

The adapter (:mod:`infomediary.oauth.server`) speaks RFC 6749 / 7009 / 7662 through authlib;
what a token *means* (is it active, how long it lives, what revoking it records) is decided
here, so the API, the introspection endpoint and the rate-limit key agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, ActorType
from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.models import ConsentGrant, OAuthToken, Supplier, utcnow
from infomediary.services import Context
from infomediary.statuses import SupplierStatus

#: An authorization code is redeemable for 60 s (RFC 6749 §4.1.2 recommends at most 10 min).
CODE_LIFETIME = timedelta(seconds=60)
ACCESS_TOKEN_SECONDS = 3600
#: A refresh token lives 30 days, never beyond its consent grant's expiry.
REFRESH_LIFETIME = timedelta(days=30)

SYSTEM = Actor(ActorType.SYSTEM, "oauth")
#: Revocations the system makes outside any request.
BY_SYSTEM = Context(SYSTEM)


def token_refusal(session: Session, row: OAuthToken, now: datetime | None = None) -> Reason | None:
    """Why a known token may not be used now, or None: revoked or expired, supplier not
    active, its consent grant revoked or expired."""
    now = now or utcnow()
    if row.revoked_at is not None:
        return Reason("token.revoked")
    if row.expires_at <= now:
        return Reason("token.expired")
    supplier = session.get(Supplier, row.supplier_id)
    if supplier is None or supplier.status != SupplierStatus.ACTIVE:
        return Reason(
            "token.supplier_inactive", {"status": str(supplier.status) if supplier else "removed"}
        )
    if row.grant_id:
        grant = session.get(ConsentGrant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            return Reason("token.consent_revoked")
        if not grant.is_active(now):
            return Reason("token.consent_expired")
    return None


def token_is_active(session: Session, row: OAuthToken, now: datetime | None = None) -> bool:
    """Not revoked or expired, supplier active, its consent grant active."""
    return token_refusal(session, row, now) is None


def lifetimes(
    session: Session, grant_id: str | None, now: datetime, expires_at: datetime, refresh: bool
) -> tuple[datetime, datetime | None]:
    """An access token's expiry and its refresh token's: neither outlives the consent grant."""
    limit = now + REFRESH_LIFETIME
    if grant_id:
        grant = session.get(ConsentGrant, grant_id)
        if grant is not None and grant.expires_at is not None:
            limit = min(limit, grant.expires_at)
            expires_at = min(expires_at, grant.expires_at)
    return expires_at, (limit if refresh else None)


def revoke_tokens(
    session: Session,
    where: ColumnElement[bool],
    *,
    reason: Reason,
    ctx: Context = BY_SYSTEM,
    customer_id: str | None = None,
    **entry: Any,
) -> int:
    """Revoke every live token matching ``where`` and record it: the one revocation path.

    RFC 7009 revocation, a reused code or refresh token (the whole family), a revoked consent
    and a suspended supplier all come here, so no token stops working without a log entry.
    The entry is written even when nothing was live any more (the request is still an event).
    """
    count = rowcount(
        session.execute(
            update(OAuthToken)
            .where(where, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    )
    ctx.log(
        session,
        "update",
        customer_id=customer_id,
        reason=Reason("tokens.revoked", {"cause": reason.param(), "count": count}),
        **entry,
    )
    return count


def revoke_family(session: Session, family_id: str, reason: Reason, request_id: str = "-") -> int:
    """Revoke one authorization's lineage of tokens (a replayed code or refresh token): the
    system's act in this request, not the supplier's."""
    return revoke_tokens(
        session,
        OAuthToken.family_id == family_id,
        reason=reason,
        ctx=Context(SYSTEM, request_id),
        allowed=False,
    )
