"""Customers and what they own: e-mailed tokens, data keys, profiles, login sessions, policies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ColumnElement, ForeignKey, Integer, LargeBinary, String, Text, or_
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import EmailTokenPurpose

from .base import Base, UTCDateTime, one_of, utcnow


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[bytes] = mapped_column(LargeBinary)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the customer proved they read mail at the address (a link from the outbox or SMTP);
    #: until then they may fill in their profile but neither grant consents nor get offers.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailToken(Base):
    """A single-use link sent by e-mail: verify the address, reset the password, or change it.

    Only the SHA-256 of the 256-bit token is stored. For an address change the new address is
    sealed under the customer's DEK (record id: the token hash in hex), never in plaintext.
    """

    __tablename__ = "email_tokens"
    __table_args__ = (one_of("purpose", EmailTokenPurpose),)

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    new_email: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DataKey(Base):
    """A customer's data-encryption key, wrapped (RFC 3394) by a key-encryption key."""

    __tablename__ = "data_keys"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    dek_version: Mapped[int] = mapped_column(Integer, default=1)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Profile(Base):
    """One encrypted column per profile field, so a later reader decrypts only what it may."""

    __tablename__ = "profiles"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    # identity
    name: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone: Mapped[bytes | None] = mapped_column(LargeBinary)
    street_address: Mapped[bytes | None] = mapped_column(LargeBinary)
    locality: Mapped[bytes | None] = mapped_column(LargeBinary)
    postcode: Mapped[bytes | None] = mapped_column(LargeBinary)
    # demographics
    birth_year: Mapped[bytes | None] = mapped_column(LargeBinary)
    household_size: Mapped[bytes | None] = mapped_column(LargeBinary)
    # interests and preferences
    interests: Mapped[bytes | None] = mapped_column(LargeBinary)
    preferences: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSession(Base):
    """Server-side login session; the cookie holds a random token, the row its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    #: A half-logged-in session's customer (the password was right, the second factor is
    #: still to come): ending a customer's sessions ends these too.
    pending_customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: The id the session list names a session by (neither the token nor its hash).
    public_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    #: A coarse device label ({"browser", "system"}, e.g. Firefox, Linux) sealed under the
    #: customer's DEK (record id the public id): which devices someone uses is personal.
    device: Mapped[bytes | None] = mapped_column(LargeBinary)

    @staticmethod
    def of_customer(customer_id: str) -> ColumnElement[bool]:
        """The customer's sessions, logged in or half logged in: what "end this customer's
        sessions" deletes."""
        return or_(
            WebSession.customer_id == customer_id, WebSession.pending_customer_id == customer_id
        )


class CustomerPolicy(Base):
    """The customer's policy rules, encrypted under their DEK (a policy reveals preferences)."""

    __tablename__ = "customer_policies"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
