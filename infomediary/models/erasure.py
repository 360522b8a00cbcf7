"""Erasure requests to suppliers, and the webhooks suppliers receive them on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import ErasureStatus

from .base import Base, UTCDateTime, one_of, utcnow


class SupplierWebhook(Base):
    """Where a supplier receives erasure requests, and the secret their HMAC signature uses.

    The secret must be recovered to sign (HMAC needs the secret itself), so it is sealed
    (AES-256-GCM under a key derived from the keyring), never stored in the clear."""

    __tablename__ = "supplier_webhooks"

    supplier_id: Mapped[str] = mapped_column(
        ForeignKey("suppliers.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(512))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ErasureRequest(Base):
    """A customer asked a supplier to delete what it holds about them. ``subject`` is the
    pairwise pseudonym the supplier knows the customer by (the ``sub`` it was given)."""

    __tablename__ = "erasure_requests"
    __table_args__ = (
        one_of("status", ErasureStatus),
        # One open (not confirmed) request per customer and supplier, even when two race.
        Index(
            "uq_erasure_requests_open",
            "customer_id",
            "supplier_id",
            unique=True,
            sqlite_where=text(f"status != '{ErasureStatus.CONFIRMED}'"),
            postgresql_where=text(f"status != '{ErasureStatus.CONFIRMED}'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    subject: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default=ErasureStatus.REQUESTED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
