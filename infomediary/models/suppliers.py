"""Organisations, suppliers and their OAuth credentials: initial access tokens, authorization
codes, tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import CodeChallengeMethod, RegisteredVia, SupplierKind, SupplierStatus

from .base import Base, UTCDateTime, one_of, utcnow

# -- suppliers, OAuth and consent -----------------------------------------------------------


class Organisation(Base):
    """Who runs one or more suppliers (OAuth clients). Its clients draw on one privacy budget
    and share the broker's answers; a supplier is created in an organisation of its own unless
    the operator names one."""

    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Supplier(Base):
    """A supplier and its OAuth client registration (one client per supplier).

    ``kind`` is ``supplier`` for data recipients and ``resource_server`` for the services
    allowed to call token introspection (RFC 7662 §4: introspection is for protected
    resources, not for clients).

    ``sector`` and the operator-gated scopes in ``scopes`` (``infomediary.scopes.OPERATOR_GATED``)
    are the operator's to set (``infomediary suppliers approve-broker``); a client registered
    dynamically is in sector ``other`` and holds none of those scopes until then, and what it
    asked for is kept in ``claimed_sector`` and ``requested_scopes`` for the operator to see.
    """

    __tablename__ = "suppliers"
    __table_args__ = (
        one_of("kind", SupplierKind),
        one_of("status", SupplierStatus),
        one_of("registered_via", RegisteredVia),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    kind: Mapped[str] = mapped_column(String(16), default=SupplierKind.SUPPLIER)
    name: Mapped[str] = mapped_column(String(120))
    sector: Mapped[str] = mapped_column(String(32))
    privacy_policy_url: Mapped[str | None] = mapped_column(String(512))
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")
    scopes: Mapped[str] = mapped_column(Text, default="")
    purposes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=SupplierStatus.ACTIVE)
    registered_via: Mapped[str] = mapped_column(String(16), default=RegisteredVia.CLI)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the operator vouched for this supplier (``infomediary suppliers verify``).
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The sector a dynamically registered client named for itself; it decides nothing.
    claimed_sector: Mapped[str | None] = mapped_column(String(32))
    #: Operator-gated scopes the client asked for at registration and was not given.
    requested_scopes: Mapped[str] = mapped_column(Text, default="")


class InitialAccessToken(Base):
    """Operator-issued bearer credential for dynamic client registration (RFC 7591 §3)."""

    __tablename__ = "initial_access_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthorizationCode(Base):
    """An authorization code, stored as its SHA-256; single use, short-lived."""

    __tablename__ = "authorization_codes"
    __table_args__ = (one_of("code_challenge_method", CodeChallengeMethod),)

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    grant_id: Mapped[str] = mapped_column(ForeignKey("consent_grants.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthToken(Base):
    """An access token (and its refresh token), stored only as SHA-256 hashes.

    ``family_id`` ties every token rotated from one authorization code together, so a
    reused refresh token or code revokes the whole family (RFC 9700 §4.14.2).
    """

    __tablename__ = "oauth_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[str | None] = mapped_column(
        ForeignKey("consent_grants.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    access_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    refresh_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    scope: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
