"""Single-use links sent by e-mail: verify an address, reset a password, confirm a new address.

Following OWASP's Forgot Password Cheat Sheet, a token is 256 random bits
(``secrets.token_urlsafe(32)``), lives briefly (``LIFETIMES``), works once, and only its SHA-256
is stored (a slow hash adds nothing for a value with that much entropy). Issuing a token
retires the customer's earlier unused ones of the same purpose, so only the newest link works.
Consuming is one conditional ``UPDATE ... WHERE used_at IS NULL``, so two clicks racing each
other cannot both succeed, on either backend.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from infomediary.errors import InvalidLink
from infomediary.instance import Instance
from infomediary.models import EmailToken, utcnow
from infomediary.services.customer_keys import customer_key
from infomediary.statuses import EmailTokenPurpose

VERIFY = EmailTokenPurpose.VERIFY
RESET = EmailTokenPurpose.RESET
CHANGE = EmailTokenPurpose.CHANGE
LIFETIMES: dict[str, timedelta] = {
    VERIFY: timedelta(hours=24),
    RESET: timedelta(hours=1),
    CHANGE: timedelta(hours=24),
}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
EXPIRED = "This link has expired or was already used. Ask for a new one."


def token_hash(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def _sealed_email(
    inst: Instance, session: Session, customer_id: str, digest: bytes, email: str
) -> bytes:
    key = customer_key(session, inst, customer_id)
    return inst.vault.seal(key, "email_tokens", digest.hex(), "new_email", email)


def issue(
    session: Session,
    inst: Instance,
    customer_id: str,
    purpose: str,
    *,
    new_email: str | None = None,
) -> str:
    """A new token for ``purpose`` (the caller commits); returns the raw value for the link."""
    raw = secrets.token_urlsafe(32)
    digest = token_hash(raw)
    now = utcnow()
    retire(session, customer_id, purpose)
    session.add(
        EmailToken(
            token_hash=digest,
            customer_id=customer_id,
            purpose=purpose,
            new_email=None
            if new_email is None
            else _sealed_email(inst, session, customer_id, digest, new_email),
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    session.flush()
    return raw


def retire(session: Session, customer_id: str, purpose: str | None = None) -> None:
    """Mark the customer's unused tokens (of one purpose, or all) as used."""
    query = update(EmailToken).where(
        EmailToken.customer_id == customer_id, EmailToken.used_at.is_(None)
    )
    if purpose is not None:
        query = query.where(EmailToken.purpose == purpose)
    session.execute(query.values(used_at=utcnow()))


def find(session: Session, raw: Any, purpose: str) -> EmailToken:
    """The live token behind ``raw`` (not consumed); :class:`InvalidLink` if there is none."""
    if not isinstance(raw, str) or not _TOKEN_RE.match(raw):
        raise InvalidLink(EXPIRED)
    row = session.execute(
        select(EmailToken).where(EmailToken.token_hash == token_hash(raw))
    ).scalar_one_or_none()
    if row is None or row.purpose != purpose or row.used_at is not None:
        raise InvalidLink(EXPIRED)
    if row.expires_at <= utcnow():
        raise InvalidLink(EXPIRED)
    return row


def consume(session: Session, raw: Any, purpose: str) -> EmailToken:
    """Use the token up (the caller commits); :class:`InvalidLink` if it is not live."""
    row = find(session, raw, purpose)
    now = utcnow()
    result = session.execute(
        update(EmailToken)
        .where(
            EmailToken.token_hash == row.token_hash,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise InvalidLink(EXPIRED)
    session.refresh(row)
    return row


def new_email_of(inst: Instance, session: Session, row: EmailToken) -> str:
    if row.new_email is None:
        raise InvalidLink(EXPIRED)
    key = customer_key(session, inst, row.customer_id)
    return str(
        inst.vault.open(key, "email_tokens", row.token_hash.hex(), "new_email", row.new_email)
    )
