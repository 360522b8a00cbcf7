"""SQLAlchemy 2 typed models. They import nothing from Flask.

Every column that could hold personal data is ``LargeBinary`` ciphertext written by
:class:`infomediary.crypto.vault.Vault`; lookups go through keyed blind indexes.
Primary keys of customer data are UUID strings chosen before the insert, because the
record id is bound into each field's associated data.

One module per family on a shared :mod:`.base`; importing any of them imports this
package, which imports every family, so ``Base.metadata`` always holds every table (the
foreign keys name their tables by string).
"""

from .access_log import AccessLogEntry, LogCheckpoint, LogHead, LogNode
from .agreements import Agreement, CustomerTerms, SupplierTerms
from .auditors import Auditor
from .base import NAMING_CONVENTION, Base, UTCDateTime, one_of, utcnow
from .broker import (
    BrokerState,
    BudgetAccount,
    BudgetCharge,
    MatchEntry,
    Release,
    ReleasedAnswer,
    ReleasePosting,
    ReleaseReplay,
)
from .consents import ConsentGrant, ConsentReceipt
from .customers import Customer, CustomerPolicy, DataKey, EmailToken, Profile, WebSession
from .erasure import ErasureRequest, SupplierWebhook
from .intents import Bid, Intent
from .jobs import Job
from .notifications import NotificationSettings
from .offers import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Offer,
    OfferDelivery,
    SupplierBlock,
)
from .operations import KeyFingerprint, KeyringState, ProcessLease
from .payouts import PayoutRequest
from .purchases import (
    DerivedInterests,
    IdempotencyKey,
    Purchase,
    PurchaseImport,
    PurchaseImportStatus,
    PurchaseOrderReview,
    PurchaseUpload,
    PurchaseUploadChunk,
    PurchaseUploadOrigin,
    PurchaseUploadStatus,
)
from .second_factors import CustomerTotp, Passkey, RecoveryCode
from .settings import CustomerSettings
from .suppliers import AuthorizationCode, InitialAccessToken, OAuthToken, Organisation, Supplier

__all__ = [
    "NAMING_CONVENTION",
    "AccessLogEntry",
    "Agreement",
    "Auditor",
    "AuthorizationCode",
    "Base",
    "Bid",
    "BrokerState",
    "BudgetAccount",
    "BudgetCharge",
    "ConsentGrant",
    "ConsentReceipt",
    "Customer",
    "CustomerPolicy",
    "CustomerSettings",
    "CustomerTerms",
    "CustomerTotp",
    "DataKey",
    "DerivedInterests",
    "EmailToken",
    "ErasureRequest",
    "IdempotencyKey",
    "InitialAccessToken",
    "Intent",
    "Job",
    "KeyFingerprint",
    "KeyringState",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "LogCheckpoint",
    "LogHead",
    "LogNode",
    "MatchEntry",
    "NotificationSettings",
    "OAuthToken",
    "Offer",
    "OfferDelivery",
    "Organisation",
    "Passkey",
    "PayoutRequest",
    "ProcessLease",
    "Profile",
    "Purchase",
    "PurchaseImport",
    "PurchaseImportStatus",
    "PurchaseOrderReview",
    "PurchaseUpload",
    "PurchaseUploadChunk",
    "PurchaseUploadOrigin",
    "PurchaseUploadStatus",
    "RecoveryCode",
    "Release",
    "ReleasePosting",
    "ReleaseReplay",
    "ReleasedAnswer",
    "Supplier",
    "SupplierBlock",
    "SupplierTerms",
    "SupplierWebhook",
    "UTCDateTime",
    "WebSession",
    "one_of",
    "utcnow",
]
