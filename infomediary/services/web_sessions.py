"""The customer's login sessions: the list the security page shows, and logging them out.

A session is named by its random ``public_id``, never by its cookie token or the token's
hash. Each logout is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import WebSession, utcnow
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.customers import ACCOUNT
from infomediary.services.uow import unit_of_work


@dataclass(frozen=True)
class SessionInfo:
    public_id: str
    created_at: datetime
    last_seen_at: datetime
    current: bool
    browser: str | None = None
    system: str | None = None


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("HeadlessChrome/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str) -> dict[str, str]:
    """A coarse label of a User-Agent: the browser's and the system's names, nothing more."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    return {"browser": browser, "system": system}


def seal_device(
    session: Session, inst: Instance, customer_id: str, public_id: str, user_agent: str
) -> bytes:
    key = customer_key(session, inst, customer_id)
    return inst.vault.seal(key, "web_sessions", public_id, "device", device_label(user_agent))


def list_sessions(
    session: Session, inst: Instance, customer_id: str, current: str | None
) -> list[SessionInfo]:
    """The customer's sessions that have not expired, newest first (their own: not logged, as
    the session row itself is read on every request)."""
    rows = session.scalars(
        select(WebSession)
        .where(
            WebSession.customer_id == customer_id,
            WebSession.expires_at > utcnow(),
            WebSession.public_id.is_not(None),
        )
        .order_by(WebSession.last_seen_at.desc())
    )
    out = []
    key = None
    for row in rows:
        label: dict[str, str] = {}
        if row.device is not None:
            key = key or customer_key(session, inst, customer_id)
            label = inst.vault.open(key, "web_sessions", str(row.public_id), "device", row.device)
        out.append(
            SessionInfo(
                public_id=str(row.public_id),
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                current=row.public_id == current,
                browser=label.get("browser") or None,
                system=label.get("system") or None,
            )
        )
    return out


def end_one(session: Session, customer_id: str, public_id: str, ctx: Context) -> None:
    """Log out one of the customer's sessions; another customer's id is not found."""
    with unit_of_work(session) as uow:
        gone = rowcount(
            session.execute(
                delete(WebSession).where(
                    WebSession.customer_id == customer_id, WebSession.public_id == public_id
                )
            )
        )
        if not gone:
            raise NotFound("No such session.")
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.session_ended"),
            categories=ACCOUNT,
        )
        uow.commit()


def end_all(session: Session, customer_id: str, keep: str | None, ctx: Context) -> int:
    """Log out every session of the customer but ``keep`` (every one, when None)."""
    with unit_of_work(session) as uow:
        query = delete(WebSession).where(WebSession.of_customer(customer_id))
        if keep is not None:
            query = query.where((WebSession.public_id != keep) | WebSession.public_id.is_(None))
        gone = rowcount(session.execute(query))
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.sessions_ended", {"count": gone}),
            categories=ACCOUNT,
        )
        uow.commit()
    return gone
