"""The customer's notification choices and how far they have read.

Notifications themselves are not stored: they are derived from the records the events left
(access-log entries, consent grants, offer deliveries, purchase imports), so no use case can
forget to notify and nothing more about the customer is kept. This row holds only the choices
and two watermarks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, utcnow


class NotificationSettings(Base):
    """One row per customer who chose something or marked notifications read; no row means
    the defaults (every kind in the app, no digest, nothing read yet).

    ``in_app`` and ``digest_kinds`` are space-separated kind names; ``seen_through`` and
    ``seen_seq`` are the time and the access-log position read up to (the position lets the
    log's ``(customer_id, seq)`` index bound the unread queries); ``digest_sent_at`` and
    ``digest_seq`` the same for the last digest e-mailed, so nothing is sent twice;
    ``digest_checked_at`` when the digest run last looked at this customer, sent or not (the
    run takes those looked at longest ago first, so customers with nothing to send do not
    hold back the others; it bounds nothing of the digest's content).
    """

    __tablename__ = "notification_settings"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    in_app: Mapped[str] = mapped_column(String(255))
    digest_kinds: Mapped[str] = mapped_column(String(255))
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_through: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seen_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    digest_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    digest_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    digest_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
