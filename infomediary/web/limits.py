"""Rate limits and anti-automation shared by the blueprints (Flask-Limiter; Redis in production).

Three kinds, all answering ``429`` with ``Retry-After``:

- **every unsafe request** (anything but GET, HEAD and OPTIONS) per client address, an
  application-wide ceiling (``INFOMEDIARY_WRITE_RATE_LIMIT``) beside the tighter limits of
  logins, sign-ups and password checks;
- **the OAuth endpoints** (token, revocation, introspection, registration) per address, and
  per authenticated client: a request deducts from a client's allowance only once the client
  has authenticated, so nobody can spend a known client's allowance by claiming its id;
- **failed client authentications** per claimed ``client_id`` and address: past
  ``INFOMEDIARY_CLIENT_AUTH_FAILURE_LIMIT`` the failures answer ``429`` instead of
  ``invalid_client``. A correct secret is never refused by it, so a known client cannot be
  locked out (OWASP Authentication Cheat Sheet, "account lockout" vs throttling).

Limit keys never hold a secret or a token: tokens are looked up, client ids are public.

**The limits fail closed.** When the store (Redis) cannot be reached, a request that a limit
applies to is refused with ``503`` (``rate_limit_unavailable``; ``temporarily_unavailable`` at
the OAuth endpoints, ``web/errors.py``) and ``Retry-After``, never served without its limit and
never a ``500``: logins, sign-ups, e-mailed links and password checks, the OAuth endpoints, the
API and every state-changing request (they all carry a limit). Pages without a limit (most
GET pages, health checks) keep working. So the limiter neither swallows storage errors
(``swallow_errors``: unlimited) nor falls back to per-process memory
(``in_memory_fallback_enabled``: a limit each worker process counts alone, reset by a restart);
the store's errors are raised as ``limits.errors.StorageError``, and the store's sockets time
out after :data:`STORAGE_TIMEOUT_SECONDS`, so a Redis that hangs costs a request seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from urllib.parse import unquote

from flask import Flask, Response, g, jsonify, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.errors import StorageError

from infomediary.oauth.server import find_token
from infomediary.text import has_control_characters
from infomediary.web.limit_store import storage_uri
from infomediary.web.security import SAFE_METHODS, settings


def _write_rate() -> str:
    return settings().write_rate_limit


def _is_safe_method() -> bool:
    return request.method in SAFE_METHODS


#: Seconds a call to the rate-limit store may take before the request is refused.
STORAGE_TIMEOUT_SECONDS = 2.0
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")


def storage_options(uri: str) -> dict[str, object]:
    """Options of the store named by ``uri``: its errors raised as ``StorageError``, and for
    Redis, socket timeouts (redis-py waits forever by default)."""
    options: dict[str, object] = {"wrap_exceptions": True}
    if uri.startswith(_REDIS_SCHEMES):
        options.update(
            socket_connect_timeout=STORAGE_TIMEOUT_SECONDS, socket_timeout=STORAGE_TIMEOUT_SECONDS
        )
    return options


class FailClosedLimiter(Limiter):
    """Flask-Limiter configured to refuse, not to wave through, when its store is away."""

    def init_app(self, app: Flask) -> None:
        uri = storage_uri(str(app.config.get("RATELIMIT_STORAGE_URI") or "memory://"))
        app.config["RATELIMIT_STORAGE_URI"] = uri
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", storage_options(uri))
        app.config["RATELIMIT_SWALLOW_ERRORS"] = False
        app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = False
        super().init_app(app)


#: One limiter for the app. Every unsafe request also counts against an application-wide
#: ceiling per address; safe methods are exempt, since no view they reach changes anything.
limiter = FailClosedLimiter(
    key_func=get_remote_address,
    default_limits=[],
    application_limits=[_write_rate],
    application_limits_exempt_when=_is_safe_method,
    strategy="fixed-window",
    swallow_errors=False,
    in_memory_fallback_enabled=False,
)


def supplier_key() -> str:
    """Per supplier (not per address): the supplier behind the bearer token, if it is valid."""
    header = request.headers.get("Authorization", "")
    found = find_token(header[7:]) if header.startswith("Bearer ") else None
    return f"supplier:{found.row.supplier_id}" if found else f"anonymous:{get_remote_address()}"


def broker_rate() -> str:
    return settings().broker_rate_limit


def api_rate() -> str:
    return settings().api_rate_limit


def login_rate() -> str:
    """Logins, sign-ups, e-mailed links and password checks (``INFOMEDIARY_LOGIN_RATE_LIMIT``)."""
    return settings().login_rate_limit


def oauth_rate() -> str:
    return settings().oauth_rate_limit


def basic_credentials() -> tuple[str, str] | None:
    """RFC 6749 §2.3.1 client credentials from a Basic header: base64 of UTF-8 ``id:secret``
    (each form-urlencoded), no control characters. None if the header is malformed."""
    header = request.headers.get("Authorization", "")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon or has_control_characters(decoded):
        return None
    return unquote(client_id), unquote(secret)


def has_basic_header() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("basic ")


def claimed_client_id() -> str:
    """The ``client_id`` a request claims (Basic header or form), unverified."""
    if has_basic_header():
        credentials = basic_credentials()
        return credentials[0] if credentials else ""
    value = request.form.get("client_id", "") if request.mimetype.endswith("urlencoded") else ""
    return value


def _bounded(value: str) -> str:
    """A key part of fixed size: claimed ids are attacker-chosen and could be huge."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def client_key() -> str:
    return f"client:{_bounded(claimed_client_id())}"


def client_authenticated(_response: Response) -> bool:
    """Deduct from a client's allowance only when the client proved its secret in this request
    (whatever the answer): a stranger who merely claims its id spends none of it."""
    return bool(g.get("authenticated_client_id") == claimed_client_id())


def throttle_failed_client_auth(response: Response) -> Response:
    """After a failed client authentication, count it; past the limit answer 429 instead."""
    if response.status_code != 401 or g.get("client_auth_counted"):
        return response
    g.client_auth_counted = True
    limit = parse(settings().client_auth_failure_limit)
    parts = ("client-auth-failed", _bounded(claimed_client_id()), get_remote_address())
    strategy = limiter.limiter
    try:
        if strategy.hit(limit, *parts):
            return response
        reset_at, _remaining = strategy.get_window_stats(limit, *parts)
    except StorageError:  # the store went away since the request's limits passed: refuse
        return _oauth_unavailable()
    retry_after = max(1, math.ceil(reset_at - time.time()))
    throttled = jsonify(
        error="invalid_client",
        error_description="Too many failed client authentications; retry later.",
    )
    throttled.status_code = 429
    throttled.headers["Retry-After"] = str(retry_after)
    throttled.headers["Cache-Control"] = "no-store"
    return throttled


def _oauth_unavailable() -> Response:
    """RFC 6749 §5.2's ``temporarily_unavailable``, as ``web/errors.py`` answers it."""
    refused = jsonify(
        error="temporarily_unavailable",
        error_description="The service is briefly unavailable; retry shortly.",
    )
    refused.status_code = 503
    refused.headers["Retry-After"] = "5"
    refused.headers["Cache-Control"] = "no-store"
    return refused


def budget_exhausted(code: str, message: str, retry_after: int) -> Response:
    """An exhausted privacy budget: 429 until the period ends (``Retry-After`` in seconds)."""
    response = jsonify(error=code, code=code, message=message)
    response.status_code = 429
    response.headers["Retry-After"] = str(retry_after)
    return response


#: An auditor's TOTP codes per account waiting for its code (and per address through the login
#: limit): six digits and three live codes make a guess a 1 in 333,333 chance.
AUDITOR_CODE_RATE = "5 per minute;20 per hour"
#: An auditor's reads (search, statistics, anomalies): each appends the read's own entries.
AUDITOR_READ_RATE = "60 per minute"
#: Exports (up to 10,000 entries and their proofs each) and "verify now" (the whole log).
AUDITOR_EXPORT_RATE = "10 per minute;60 per hour"
AUDITOR_VERIFY_RATE = "3 per minute;20 per hour"
#: A customer's complete export (JSON or CSV files), per account: each reads every row they own.
EXPORT_RATE = "5 per minute;30 per hour"
#: A customer's language and time zone (the page's form, and the browser's zone sent once).
SETTINGS_RATE = "20 per minute;200 per hour"
#: A customer's notifications: marking them read and changing which ones they get, per account.
NOTIFICATION_RATE = "20 per minute;200 per hour"
#: A customer's payout requests and cancellations, per account.
PAYOUT_RATE = "10 per minute;50 per hour"
#: A customer's actions on a supplier's page (revoke, block, unblock, ask them to delete).
SUPPLIER_ACTION_RATE = "20 per minute;200 per hour"
#: Intents a customer's agent posts, per client, and the dashboard's form, per account: each is
#: shown to a whole sector's suppliers.
INTENT_POST_RATE = "10 per minute;100 per day"
#: A customer's acceptances and cancellations of their intents on the dashboard, per account.
INTENT_ACTION_RATE = "20 per minute;200 per hour"
#: Bids a supplier places, per supplier: one per intent, so a burst is a scan of the sector.
BID_RATE = "30 per minute;1000 per day"


def auditor_key() -> str:
    """Per auditor (the account the session is logged in to, or waits for the code of), else
    per address."""
    value = session.get("auditor_id") or session.get("auditor_pending")
    return f"auditor:{value}" if isinstance(value, str) else f"anonymous:{get_remote_address()}"
