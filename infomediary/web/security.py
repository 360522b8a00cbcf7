"""Request ids, CSRF protection, security headers and the login guard.

CSRF (OWASP cheat sheet, synchronizer token + origin check): every state-changing
request from a browser must carry ``csrf_token`` = HMAC(secret, "csrf" || session token)
and must not come from a foreign ``Origin`` or a cross-site ``Sec-Fetch-Site``. Views that
authenticate by bearer token, not cookie, opt out with :func:`csrf_exempt`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for

from infomediary.audit.log import Actor
from infomediary.config import Settings
from infomediary.instance import Instance
from infomediary.logs import REQUEST_ID
from infomediary.services import Context
from infomediary.text import has_control_characters

if TYPE_CHECKING:
    from infomediary.web.sessions import ServerSession

F = TypeVar("F", bound=Callable[..., Any])
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
#: RFC 9110 §9.2.1 safe methods: the only ones that may skip CSRF and rate limits, because no
#: view they reach changes anything (enforced at start by :func:`check_method_split`).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def instance() -> Instance:
    inst: Instance = current_app.extensions["infomediary"]
    return inst


def settings(app: Flask | None = None) -> Settings:
    """The app's settings, parsed and checked once at start (``current_app``'s by default)."""
    found: Settings = (app or current_app).config["SETTINGS"]
    return found


def csrf_exempt(view: F) -> F:
    view._csrf_exempt = True  # type: ignore[attr-defined]
    return view


def csrf_token() -> str:
    sess = cast("ServerSession", session)
    sess.token_used = True
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"csrf\x00" + sess.token.encode(), hashlib.sha256).hexdigest()


def _same_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


def check_csrf() -> None:
    if request.method in SAFE_METHODS or request.routing_exception is not None:
        return  # unknown routes and wrong methods get their own 404 / 405
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and getattr(view, "_csrf_exempt", False):
        return
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and not _same_origin(origin):
        abort(403, description="csrf_origin")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403, description="csrf_origin")
    if request.mimetype not in _FORM_TYPES:
        abort(415, description="form_expected")
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not hmac.compare_digest(sent, csrf_token()):
        abort(403, description="csrf_failed")


#: Query arguments read leniently on purpose: ``next`` after login is reduced to a local
#: path (:func:`login_next_target`), so a hostile one costs nobody a login.
_LENIENT_ARGS = frozenset({"next"})


def refuse_control_characters() -> None:
    """No form field or query argument may carry a control character (:mod:`infomediary.text`).

    One check at the edge, before any view or library parses a value: NUL in a name would be
    refused by PostgreSQL deep inside a transaction (and stored by SQLite), and in an OAuth
    parameter it reaches a database lookup or authlib's own error building. No form of ours
    has a multi-line field; passwords are hashed, never stored, and are left as typed.
    """
    if request.routing_exception is not None:
        return
    values = [(k, v) for k, v in request.args.items(multi=True) if k not in _LENIENT_ARGS]
    if request.mimetype in _FORM_TYPES:
        values += [(k, v) for k, v in request.form.items(multi=True) if "password" not in k]
    for key, value in values:
        if has_control_characters(key) or has_control_characters(value):
            abort(400, description="control_characters")


def request_id() -> str:
    """The id of the request being served (echoed in ``X-Request-ID``, carried by its entries)."""
    return str(g.get("request_id", "-"))


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    REQUEST_ID.set(g.request_id)


def security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), browsing-topics=()"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["X-Request-ID"] = g.get("request_id", "-")
    if settings().production:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def current_customer_id() -> str | None:
    value = session.get("customer_id")
    return value if isinstance(value, str) else None


def context() -> Context:
    """The acting customer (or the system, for anonymous requests) and the request id."""
    customer_id = current_customer_id()
    actor = Actor.customer(customer_id) if customer_id else Actor.system("web")
    return Context(actor, g.get("request_id", "-"))


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_customer_id() is None:
            return redirect(url_for("auth.login"))
        return view(*args, **kwargs)

    return cast(F, wrapped)


class MixedMethods(RuntimeError):
    """A route serves a safe and an unsafe method from one view."""


def check_method_split(app: Flask) -> None:
    """Refuse to start if any view answers both a safe and an unsafe method.

    Werkzeug routes HEAD to the view that serves GET, so a view that branches on
    ``request.method == "GET"`` runs its state-changing branch for a HEAD (which CSRF checks
    and rate limits skip). With one view per kind of method that cannot happen: a HEAD
    reaches only code written for GET.
    """
    mixed = sorted(
        f"{rule.rule} ({rule.endpoint})"
        for rule in app.url_map.iter_rules()
        if (rule.methods or set()) & {"GET"} and (rule.methods or set()) - SAFE_METHODS
    )
    if mixed:
        raise MixedMethods(
            "these routes serve GET and an unsafe method from one view; split them into "
            f"a GET view and a POST view: {', '.join(mixed)}"
        )


def init_app(app: Flask) -> None:
    app.before_request(assign_request_id)
    app.before_request(check_csrf)
    app.before_request(refuse_control_characters)
    app.after_request(security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token


def login_next_target(raw: str | None) -> str | None:
    """Only a local path may follow login (no open redirect)."""
    if not raw or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        return None  # browsers drop tabs and newlines: "/\t/evil" would become "//evil"
    parts = urlsplit(raw)
    if raw.startswith("/") and not raw.startswith("//") and "\\" not in raw and not parts.netloc:
        return raw
    return None
