"""The closed sets of strings the database stores: statuses, kinds, events, purposes.

Each is a :class:`enum.StrEnum`, so a member equals its string (``SupplierStatus.ACTIVE ==
"active"``) and a row read back compares equal to the member. The columns stay ``String``;
:mod:`infomediary.models` adds a CHECK constraint per column from these values, so the
database refuses a value outside the set whoever writes it. Adding a member means a migration
that replaces the column's constraint. No Flask, no SQLAlchemy.
"""

from __future__ import annotations

from enum import StrEnum


class SupplierStatus(StrEnum):
    """Whether a supplier may use its tokens (``suppliers suspend`` makes it ``suspended``)."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class SupplierKind(StrEnum):
    """A data recipient, or a resource server allowed token introspection (RFC 7662 §4)."""

    SUPPLIER = "supplier"
    RESOURCE_SERVER = "resource_server"


class RegisteredVia(StrEnum):
    """How a supplier was registered: by the operator's command, or dynamically (RFC 7591)."""

    CLI = "cli"
    DCR = "dcr"


class EmailTokenPurpose(StrEnum):
    """What an e-mailed single-use link does."""

    VERIFY = "verify"
    RESET = "reset"
    CHANGE = "change"


class ReceiptEvent(StrEnum):
    """The event a consent receipt records."""

    GRANTED = "granted"
    CHANGED = "changed"
    REVOKED = "revoked"


class OfferStatus(StrEnum):
    """An offer: waiting for its delivery job, sent to its recipients, refused for too small a
    reach, or past its expiry."""

    DELIVERED = "delivered"
    TOO_SMALL = "too_small"
    CLOSED = "closed"
    QUEUED = "queued"


class DeliveryStatus(StrEnum):
    """An offer in one inbox, and the customer's answer to it."""

    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    BLOCKED = "blocked"


class LedgerAccountKind(StrEnum):
    """Whose rewards account: a supplier's, a customer's, an offer's escrow, the platform's."""

    SUPPLIER = "supplier"
    CUSTOMER = "customer"
    ESCROW = "escrow"
    PLATFORM = "platform"


class LedgerTransactionKind(StrEnum):
    """What moved money: funding a supplier, escrow for an offer, a reward, a refund; a
    customer's payout request, its cancellation, and its settlement by the operator."""

    FUND = "fund"
    ESCROW = "escrow"
    REWARD = "reward"
    REFUND = "refund"
    PAYOUT = "payout"
    PAYOUT_CANCEL = "payout_cancel"
    PAYOUT_SETTLE = "payout_settle"


class CodeChallengeMethod(StrEnum):
    """PKCE methods an authorization code may carry: S256 alone (RFC 9700 §2.1.1)."""

    S256 = "S256"


class ReleaseKind(StrEnum):
    """What a differentially private release was: a count, a breakdown, an offer's reach (its
    delivery decision), an offer's noisy response totals, a count of open intents."""

    COUNT = "count"
    BREAKDOWN = "breakdown"
    OFFER_REACH = "offer_reach"
    OFFER_TOTALS = "offer_totals"
    INTENT_DEMAND = "intent_demand"


class JobStatus(StrEnum):
    """A background job: waiting (or due again), claimed by a worker, finished, or given up
    after its last attempt."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ErasureStatus(StrEnum):
    """A customer's request that a supplier delete their data: asked for, delivered to the
    supplier's webhook, confirmed by the supplier, or given up after the last delivery attempt."""

    REQUESTED = "requested"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class PayoutStatus(StrEnum):
    """A customer's payout request: waiting for the operator, paid, or cancelled by them."""

    REQUESTED = "requested"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class IntentStatus(StrEnum):
    """An intent: open to bids, accepted (one bid won), or withdrawn by its customer."""

    #: Suppliers of its sector see it and bid.
    OPEN = "open"
    #: The customer accepted a bid; a recurring intent is now a standing agreement.
    ACCEPTED = "accepted"
    #: The customer withdrew it; nobody bids any more.
    CANCELLED = "cancelled"


class BidStatus(StrEnum):
    """A bid: open, the one the customer chose, or not chosen."""

    OPEN = "open"
    #: The customer chose this bid.
    WON = "won"
    #: The customer chose another bid, or withdrew the intent.
    NOT_CHOSEN = "not_chosen"


class RecurrenceUnit(StrEnum):
    """The unit of a recurring intent's interval."""

    WEEK = "week"
    MONTH = "month"
