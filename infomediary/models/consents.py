"""Consent: what a customer allowed a supplier, and the signed receipts of each change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, ForeignKey, String, Text, and_, or_
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import ReceiptEvent

from .base import Base, UTCDateTime, one_of, utcnow


class ConsentGrant(Base):
    """What a customer allowed a supplier, for which purpose, until when."""

    __tablename__ = "consent_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    scopes: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64))
    consent_text_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the customer shared contact details from an offer: only such a grant releases
    #: that offer's accepters' contacts, and it is never merged with an OAuth grant.
    offer_id: Mapped[str | None] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), index=True
    )

    def is_active(self, now: datetime) -> bool:
        """The one rule for a live grant: not revoked, and not past its expiry (if it has one).
        :meth:`active_at` is the same rule as a SQL condition; a test holds them equal."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @classmethod
    def active_at(cls, now: datetime) -> ColumnElement[bool]:
        return and_(cls.revoked_at.is_(None), or_(cls.expires_at.is_(None), cls.expires_at > now))


class ConsentReceipt(Base):
    """A signed (JWS, Ed25519) consent receipt for a grant, change or revocation."""

    __tablename__ = "consent_receipts"
    __table_args__ = (one_of("event", ReceiptEvent),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("consent_grants.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(16))
    jws: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
