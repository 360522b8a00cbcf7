"""SQLAlchemy 2 typed models. They import nothing from Flask.

Every column that could hold personal data is ``LargeBinary`` ciphertext written by
:class:`infomediary.crypto.vault.Vault`; lookups go through keyed blind indexes.
Primary keys of customer data are UUID strings chosen before the insert, because the
record id is bound into each field's associated data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    or_,
)
from sqlalchemy.orm import Mapped, mapped_column

from infomediary.statuses import (
    CodeChallengeMethod,
    DeliveryStatus,
    EmailTokenPurpose,
    LedgerAccountKind,
    LedgerTransactionKind,
    OfferStatus,
    ReceiptEvent,
    RegisteredVia,
    SupplierKind,
    SupplierStatus,
)

from .base import NAMING_CONVENTION, Base, UTCDateTime, one_of, utcnow

__all__ = ["NAMING_CONVENTION", "Base", "UTCDateTime", "one_of", "utcnow"]


class KeyFingerprint(Base):
    """Fingerprints of the keyring's keys, so a wrong keyring is refused at start."""

    __tablename__ = "key_fingerprints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
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
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LogHead(Base):
    """The single row every append locks: the log's size and the hash of its last entry."""

    __tablename__ = "log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AccessLogEntry(Base):
    """An append-only access-log entry; see :mod:`infomediary.audit.log` for the hashing.

    ``customer_id`` is deliberately not a foreign key: entries outlive an erased customer.
    """

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_customer_seq", "customer_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(32))
    categories: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: An aggregate entry's contributing customer ordinals (a serialized roaring bitmap); the
    #: leaf hash commits to its SHA-256, so the blob needs no second encoding.
    members: Mapped[bytes | None] = mapped_column(LargeBinary)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


# -- suppliers, OAuth and consent -----------------------------------------------------------


class Supplier(Base):
    """A supplier and its OAuth client registration (one client per supplier).

    ``kind`` is ``supplier`` for data recipients and ``resource_server`` for the services
    allowed to call token introspection (RFC 7662 §4: introspection is for protected
    resources, not for clients).
    """

    __tablename__ = "suppliers"
    __table_args__ = (
        one_of("kind", SupplierKind),
        one_of("status", SupplierStatus),
        one_of("registered_via", RegisteredVia),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
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


class InitialAccessToken(Base):
    """Operator-issued bearer credential for dynamic client registration (RFC 7591 §3)."""

    __tablename__ = "initial_access_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
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
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustomerPolicy(Base):
    """The customer's policy rules, encrypted under their DEK (a policy reveals preferences)."""

    __tablename__ = "customer_policies"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    policy: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- the anonymising broker --------------------------------------------------------------------


class MatchEntry(Base):
    """A customer's blinded match tokens, against a dense ordinal for the in-memory bitmaps.

    Tokens are HMACs (index key) of coarsened attribute values and of eligibility facts
    (category x purpose x mode the policy releases). The row outlives erasure with no tokens
    (``customer_id`` set NULL) so every worker learns to drop the ordinal.
    """

    __tablename__ = "match_entries"
    __table_args__ = {"sqlite_autoincrement": True}

    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), unique=True
    )
    tokens: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    version: Mapped[int] = mapped_column(BigInteger, index=True, default=0)


class BrokerState(Base):
    """One row: the match index's version counter (bumped with every match-entry change)."""

    __tablename__ = "broker_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetAccount(Base):
    """Epsilon spent by one supplier (or ``*`` for the global cap) in one period, micro-units."""

    __tablename__ = "budget_accounts"

    supplier_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    period: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spent_micro: Mapped[int] = mapped_column(BigInteger, default=0)


class BudgetCharge(Base):
    """Append-only ledger of epsilon charges; charged before computing, never refunded."""

    __tablename__ = "budget_charges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    period: Mapped[int] = mapped_column(Integer)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger)
    query_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReleasedAnswer(Base):
    """A released noisy answer, reused for the same canonical query in the same data epoch."""

    __tablename__ = "released_answers"

    query_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    answer: Mapped[str] = mapped_column(Text)
    epsilon_micro: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- offers and rewards ------------------------------------------------------------------------


class Offer(Base):
    """An offer a supplier sent through the broker. It never names its recipients."""

    __tablename__ = "offers"
    __table_args__ = (one_of("status", OfferStatus),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    supplier_id: Mapped[str] = mapped_column(ForeignKey("suppliers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    criteria: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    reward_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    max_recipients: Mapped[int] = mapped_column(Integer)
    noisy_reach: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    totals_epoch: Mapped[int | None] = mapped_column(Integer)
    totals: Mapped[str | None] = mapped_column(Text)


class OfferDelivery(Base):
    """An offer in one customer's inbox, and what they did with it."""

    __tablename__ = "offer_deliveries"
    __table_args__ = (one_of("status", DeliveryStatus),)

    offer_id: Mapped[str] = mapped_column(
        ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.DELIVERED)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SupplierBlock(Base):
    """A customer blocked a supplier: no more offers or counts from it include them."""

    __tablename__ = "supplier_blocks"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    supplier_id: Mapped[str] = mapped_column(
        ForeignKey("suppliers.id"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerAccount(Base):
    """A rewards account: a supplier's, a customer's, an offer's escrow, or the platform's."""

    __tablename__ = "ledger_accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_ledger_accounts_kind_owner", "kind", "owner_id", unique=True),
        one_of("kind", LedgerAccountKind),
    )


class LedgerTransaction(Base):
    """A balanced set of entries (they sum to zero)."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (one_of("kind", LedgerTransactionKind),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[str | None] = mapped_column(String(36), index=True)
    offer_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)


class KeyringState(Base):
    """One row: the KEK version every process wraps new data keys under.

    ``keys rotate`` sets it (after saving the new KEK to the keyring) before it re-wraps;
    a transaction storing a new data key reads it under a share lock, so no key wrapped
    under an older version can be committed after the rotation switched.
    """

    __tablename__ = "keyring_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    active_kek: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessLease(Base):
    """A running process's claim on the KEK versions it may still wrap data keys with.

    Refreshed by the process (see :mod:`infomediary.leases`); ``keys prune`` refuses to
    remove a version a lease names until ``expires_at``. No personal data.
    """

    __tablename__ = "process_leases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    kek_versions: Mapped[str] = mapped_column(String(255))
    active_kek: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    releases_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def versions(self) -> list[int]:
        return sorted(int(v) for v in self.kek_versions.split(",") if v)
