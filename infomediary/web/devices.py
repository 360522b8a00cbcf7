"""Device cookies: password guessing is slowed down without locking the owner out.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies" (linked from the
Authentication Cheat Sheet, "Protect Against Automated Attacks"): after a successful login
the browser keeps a long-lived cookie ``v1.<nonce>.<mac>``, where
``mac = HMAC-SHA256(secret, "device" || account's email blind index || nonce)``. It names
the account without showing it and cannot be forged or moved to another account.

- A login attempt that presents a valid device cookie *for the account it names* is limited
  per device cookie (failures only) and is not held back by the account's limit below.
- An attempt without one counts against the account's allowance for untrusted browsers
  (``INFOMEDIARY_LOGIN_ACCOUNT_RATE_LIMIT``, failures only). An attacker guessing from
  anywhere else exhausts that allowance and gets ``429``; the owner, on a browser where
  they logged in before, logs in as usual.

The per-address limit applies to everyone. Limit keys hold a digest of the nonce, never the
cookie. The cookie is ``HttpOnly``, ``SameSite=Strict`` and, in production, ``Secure`` with
the ``__Host-`` prefix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from infomediary.web.security import instance

COOKIE_DAYS = 365
_COOKIE_RE = re.compile(r"^v1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")


def cookie_name(app: Flask) -> str:
    return "__Host-infomediary_device" if app.config["PRODUCTION"] else "infomediary_device"


def _mac(email_index: bytes, nonce: str) -> str:
    key = hashlib.sha256(b"device-cookie\x00" + current_app.config["SECRET_KEY"].encode()).digest()
    digest = hmac.new(key, b"device\x00" + email_index + b"\x00" + nonce.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _email_index() -> bytes:
    return instance().vault.email_index(request.form.get("email", ""))


def trusted_nonce() -> str | None:
    """The nonce of this request's device cookie if it is valid for the account it names."""
    if "device_nonce" not in g:
        match = _COOKIE_RE.match(request.cookies.get(cookie_name(current_app), ""))
        nonce = None
        if match and hmac.compare_digest(match.group(2), _mac(_email_index(), match.group(1))):
            nonce = match.group(1)
        g.device_nonce = nonce
    value = g.device_nonce
    return value if isinstance(value, str) else None


def is_trusted() -> bool:
    return trusted_nonce() is not None


def is_untrusted() -> bool:
    return trusted_nonce() is None


def device_key() -> str:
    return "device:" + hashlib.sha256((trusted_nonce() or "-").encode()).hexdigest()[:32]


def remember(response: Response, email: str) -> None:
    """After a successful login: this browser is a known device of this account."""
    nonce = secrets.token_urlsafe(16)
    value = f"v1.{nonce}.{_mac(instance().vault.email_index(email), nonce)}"
    response.set_cookie(
        cookie_name(current_app),
        value,
        max_age=COOKIE_DAYS * 24 * 3600,
        path="/",
        secure=bool(current_app.config["PRODUCTION"]),
        httponly=True,
        samesite="Strict",
    )
