"""Domain exceptions, all in one module. The web layer maps their codes to HTTP responses in
one place (:mod:`infomediary.web.errors`); the CLI prints their message."""

from __future__ import annotations


class ServiceError(Exception):
    """Base: ``code`` is machine-readable and names the failure; it carries no HTTP status
    (the edge's one table, ``infomediary.web.errors.STATUS``, maps codes to statuses)."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationFailed(ServiceError):
    code = "validation_failed"

    def __init__(self, errors: dict[str, str], message: str = "Some fields need attention."):
        super().__init__(message)
        self.errors = errors


class EmailTaken(ServiceError):
    code = "email_taken"


class InvalidCredentials(ServiceError):
    code = "invalid_credentials"


class NotFound(ServiceError):
    code = "not_found"


class EmailNotVerified(ServiceError):
    """An unverified account asked for something that needs a confirmed address."""

    code = "email_unverified"


class InvalidLink(ServiceError):
    """An e-mailed link that is unknown, used, expired or meant for something else."""

    code = "invalid_link"


class MailUnavailable(ServiceError):
    """The mail backend did not take a message; nothing the customer did is lost."""

    code = "mail_unavailable"


class DatabaseUnavailable(ServiceError):
    """The database could not be reached (or dropped the connection): nothing was changed,
    and the same request can be sent again shortly."""

    code = "database_unavailable"


class RateLimitUnavailable(ServiceError):
    """The rate-limit store could not be reached: a limited request is refused rather than
    served without its limit (fail closed); nothing was changed."""

    code = "rate_limit_unavailable"


class InvalidRedirectUri(ServiceError):
    code = "invalid_redirect_uri"


class QueryRejected(ValidationFailed):
    """A broker query the broker will not answer; ``code`` names why, ``errors`` the field."""

    def __init__(self, code: str, message: str, field: str):
        super().__init__({field: message}, message)
        self.code = code


class BudgetExhausted(ServiceError):
    """``retry_after`` is the number of seconds until the budget period ends (RFC 9110 §10.2.3)."""

    code = "budget_exhausted"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class PolicyDenied(ServiceError):
    code = "policy_denied"

    def __init__(self, message: str, withheld: list[dict[str, str]]):
        super().__init__(message)
        self.withheld = withheld


class KeysInUse(ServiceError):
    """A KEK that would be pruned may still be used by a running process."""

    code = "keys_in_use"


class InsufficientFunds(ServiceError):
    code = "insufficient_funds"


class InvalidRequest(ValidationFailed):
    """A request its schema refuses: ``code`` names the first failure, ``errors`` each field's."""

    def __init__(self, code: str, errors: dict[str, str], message: str | None = None):
        super().__init__(errors, message or next(iter(errors.values()), "Invalid request."))
        self.code = code


class TokenRefused(ServiceError):
    """An access token the API refuses (RFC 6750 §3.1: ``invalid_token``,
    ``insufficient_scope``, or none presented); ``challenge`` is the ``WWW-Authenticate``
    value the answer carries."""

    def __init__(self, code: str, message: str, challenge: str):
        super().__init__(message)
        self.code = code
        self.challenge = challenge


class InvalidInitialAccessToken(ServiceError):
    """RFC 7591 §3: registration needs an unused, unexpired initial access token."""

    code = "invalid_initial_access_token"


class BrokerNotApproved(ServiceError):
    """A client the operator has not approved for the broker (``infomediary suppliers
    approve-broker``) called one of its operations: refused before anything depends on the
    data, nothing charged."""

    code = "broker_not_approved"


class InvalidPurchases(ValidationFailed):
    """A pushed batch of purchase lines with a line (or more) its schema refuses: ``errors``
    names each, by JSON Pointer (``/3/quantity``); nothing is written."""

    code = "invalid_purchases"


class UnknownTerms(ValidationFailed):
    """An agreement id that is not on the MyTerms roster (``GET /api/v1/terms``): a well-formed
    request the roster cannot honour, so 422; nothing is written."""

    code = "unknown_terms"


class TooManyLines(ValidationFailed):
    """A pushed batch holding more lines than one request may carry."""

    code = "too_many_lines"


class IdempotencyKeyReused(ServiceError):
    """An ``Idempotency-Key`` already used by this client for another request."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(ServiceError):
    """A request with this ``Idempotency-Key`` is still being processed."""

    code = "idempotency_key_in_use"


class ImportRunning(ServiceError):
    """Another import of the customer's purchases is being written: one at a time, so that a
    line two imports both hold is never counted as held by one that is then refused."""

    code = "import_running"


class InvalidProofRequest(ValidationFailed):
    """A proof of the access log asked for sizes or an index it does not have."""

    code = "invalid_proof_request"


class NoCheckpoint(ServiceError):
    """No checkpoint of the access log has been signed yet."""

    code = "no_checkpoint"


class LogShrank(ServiceError):
    """The access log holds fewer entries than a checkpoint already signed vouches for."""

    code = "log_shrank"


class BadCheckpoint(ServiceError):
    """A checkpoint kept outside is not one, is another log's, or is signed by another key."""

    code = "bad_checkpoint"


class AuditorLoginExpired(ServiceError):
    """The second step of an auditor's login came too late, or without the first."""

    code = "auditor_login_expired"


class InvalidAuditFilter(ValidationFailed):
    """A filter of the auditor's search, statistics or export that is not understood."""

    code = "invalid_audit_filter"


class ExportTooLarge(ValidationFailed):
    """An auditor's export range holding more entries than one export may carry."""

    code = "export_too_large"


class InvalidWebhook(ValidationFailed):
    """A supplier's erasure webhook URL that is not https (or, when allowed, loopback http)."""

    code = "invalid_webhook"


class IntentClosed(ServiceError):
    """A bid on, or an acceptance of, an intent that takes none any more (accepted,
    cancelled, or past its date), or of a bid no longer open."""

    code = "intent_closed"


class FulfilmentNotShared(ServiceError):
    """A supplier asked for a token for fulfilment the customer has not given it: its bid did
    not win, or the customer has not shared (or has withdrawn) contact details."""

    code = "fulfilment_not_shared"


class IntentOutsideSector(ServiceError):
    """A supplier asked for an intent outside the sectors the operator approved it for."""

    code = "intent_outside_sector"


class BidExists(ServiceError):
    """The supplier already bid on this intent: one bid per supplier and intent."""

    code = "bid_exists"
