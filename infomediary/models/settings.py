"""The customer's site settings: the language the site speaks to them and their time zone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class CustomerSettings(Base):
    """One row per customer who chose something; no row means the defaults (the browser's
    language among the complete ones, and UTC).

    ``time_zone`` is sealed under the customer's DEK like a profile field: an IANA zone
    such as ``America/Argentina/San_Luis`` narrows down where someone lives. ``site_language``
    is one of the few languages the site is complete in (``en``, ``de``), a display choice
    every browser already sends in ``Accept-Language``, and is read before any key is opened.
    """

    __tablename__ = "customer_settings"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    site_language: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
