"""Purchases a customer imported from retailers' files, and the imports that brought them.

Nothing personal is stored in plaintext: each line is one sealed JSON record under the
customer's DEK (what was bought, from whom, when, for how much, from which file), looked up
through keyed blind indexes (:mod:`infomediary.services.purchases`). An import is ``staging``
while its batches are written, and its lines are invisible until one final commit makes it
``done``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime, one_of, utcnow


class PurchaseImportStatus(StrEnum):
    """An import is written in batches while ``staging`` and seen only once ``done``."""

    STAGING = "staging"
    DONE = "done"


class PurchaseImport(Base):
    """One file imported for one customer.

    ``detail`` is sealed (record id: the import's id): the source's name and the retailers it
    named. ``lease_id`` names the process lease of the process writing a ``staging`` import,
    so a later run can tell an import whose process died from one still being written.
    """

    __tablename__ = "purchase_imports"
    __table_args__ = (one_of("status", PurchaseImportStatus),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=PurchaseImportStatus.STAGING)
    format: Mapped[str] = mapped_column(String(32))
    imported: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[bytes] = mapped_column(LargeBinary)
    lease_id: Mapped[str | None] = mapped_column(String(32))
    #: The retailer that pushed these lines (``POST /api/v1/purchases``); ``None``: a file.
    supplier_id: Mapped[str | None] = mapped_column(ForeignKey("suppliers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Purchase(Base):
    """One purchase line: ``sealed`` holds every field of the normalised line.

    ``line_token`` is HMAC(purchase index key, customer, retailer, line key), unique per
    customer, so importing the same line again adds nothing; ``retailer_token`` is
    HMAC(purchase index key, customer, retailer), so one retailer's lines can be deleted
    together; ``order_token`` is HMAC(purchase index key, customer, retailer, order id), so
    the lines of one order that came through two sources are found together. All are keyed
    per customer: equal tokens of two customers say nothing.
    """

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("customer_id", "line_token"),
        Index("ix_purchases_customer_id_retailer_token", "customer_id", "retailer_token"),
        Index("ix_purchases_customer_id_order_token", "customer_id", "order_token"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    import_id: Mapped[str] = mapped_column(
        ForeignKey("purchase_imports.id", ondelete="CASCADE"), index=True
    )
    line_token: Mapped[bytes] = mapped_column(LargeBinary(32))
    retailer_token: Mapped[bytes] = mapped_column(LargeBinary(32))
    order_token: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class PurchaseUploadStatus(StrEnum):
    """An upload waits for its job (``queued``), is read (``running``), then ends."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PurchaseUploadOrigin(StrEnum):
    FILE = "file"
    PUSH = "push"


class PurchaseUpload(Base):
    """A file or pushed batch kept until its job imports it; the customer sees its status.

    Its bytes are ``purchase_upload_chunks``, each sealed under the customer's key (record
    id: the upload's id and the chunk's number), and deleted when the job ends. ``detail``
    is sealed: the source's name. ``result`` is the import's counts as JSON (no line);
    ``error`` a code and a message that name no personal data.
    """

    __tablename__ = "purchase_uploads"
    __table_args__ = (
        one_of("status", PurchaseUploadStatus),
        one_of("origin", PurchaseUploadOrigin),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    origin: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[str | None] = mapped_column(ForeignKey("suppliers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=PurchaseUploadStatus.QUEUED)
    job_id: Mapped[str | None] = mapped_column(String(36))
    size: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[bytes] = mapped_column(LargeBinary)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(255))
    import_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PurchaseUploadChunk(Base):
    __tablename__ = "purchase_upload_chunks"

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("purchase_uploads.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class IdempotencyKey(Base):
    """A pushed batch's ``Idempotency-Key``, per client, kept 24 hours.

    ``key_hash`` is SHA-256 of the key; ``request_hash`` of the customer, the method, the path
    and the body, so the same key with another request is told apart; ``response`` is the
    JSON answered (counts and a job id, no line), answered again for the same request.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("supplier_id", "key_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PurchaseOrderReview(Base):
    """An order whose lines from two sources the customer said are not duplicates."""

    __tablename__ = "purchase_order_reviews"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    order_token: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DerivedInterests(Base):
    """What a customer's purchases suggest, in one sealed record (record id: the customer's):
    per interest, the evidence by month (lines, spend per currency), and the interests the
    customer removed, which stay removed whatever later purchases say."""

    __tablename__ = "derived_interests"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
