"""Device cookies: password guessing is slowed down without locking the owner out.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies" (linked from the
Authentication Cheat Sheet, "Protect Against Automated Attacks"): after a successful login
the browser keeps a cookie ``v2.<nonce>.<issued>.<mac>``, where ``mac = HMAC-SHA256(secret,
"device" || account's email blind index || nonce || issued || when the password last
changed)``. It names the account without showing it, cannot be forged or moved to another
account, lapses after a year (``issued`` is checked, not only the browser's ``Max-Age``),
and dies with every password change or reset: a cookie from a lost machine stops counting
as the owner's once they set a new password.

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
import time

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from infomediary.services import customers
from infomediary.web.db import db
from infomediary.web.security import instance, settings

COOKIE_DAYS = 365
_COOKIE_RE = re.compile(r"^v2\.([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


def cookie_name(app: Flask) -> str:
    return "__Host-infomediary_device" if settings(app).production else "infomediary_device"


def _mac(email: str, nonce: str, issued: str) -> str:
    key = hashlib.sha256(b"device-cookie\x00" + current_app.config["SECRET_KEY"].encode()).digest()
    epoch = customers.credential_epoch(db(), instance(), email)
    message = b"\x00".join(
        (
            b"device",
            instance().vault.email_index(email),
            nonce.encode(),
            issued.encode(),
            epoch.encode(),
        )
    )
    digest = hmac.new(key, message, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def trusted_nonce() -> str | None:
    """The nonce of this request's device cookie if it is valid for the account it names."""
    if "device_nonce" not in g:
        match = _COOKIE_RE.match(request.cookies.get(cookie_name(current_app), ""))
        nonce = None
        if match and int(match.group(2)) > time.time() - COOKIE_DAYS * 86400:
            nonce_, issued, mac = match.groups()
            email = request.form.get("email", "")
            if hmac.compare_digest(mac, _mac(email, nonce_, issued)):
                nonce = nonce_
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
    nonce, issued = secrets.token_urlsafe(16), str(int(time.time()))
    value = f"v2.{nonce}.{issued}.{_mac(email, nonce, issued)}"
    response.set_cookie(
        cookie_name(current_app),
        value,
        max_age=COOKIE_DAYS * 24 * 3600,
        path="/",
        secure=settings().production,
        httponly=True,
        samesite="Strict",
    )
