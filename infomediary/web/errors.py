"""One place maps errors to responses: RFC 9457 problem details (``application/problem+json``)
for API clients, a friendly page for people, and the OAuth RFCs' own bodies at the OAuth
endpoints. Nothing internal (stack traces, SQL, values) leaks.

A problem's ``type`` is a tag URI naming its ``code`` (RFC 4151; not meant to be dereferenced):
``tag:infomediary.example,2026:problems/<code>``. Its ``status`` comes from :data:`STATUS`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from authlib.integrations.flask_oauth2.errors import _HTTPException as _AuthlibHTTPException
from flask import Flask, Response, json, jsonify, render_template, request
from limits.errors import StorageError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from infomediary.db import is_unavailable
from infomediary.errors import (
    BudgetExhausted,
    DatabaseUnavailable,
    PolicyDenied,
    RateLimitUnavailable,
    ServiceError,
    TokenRefused,
)
from infomediary.logs import get_logger

log = get_logger("errors")

PROBLEM_TYPE = "tag:infomediary.example,2026:problems/"
PROBLEM_MIMETYPE = "application/problem+json"

#: The one table from a machine-readable code to its HTTP status: domain exceptions' codes,
#: the codes request schemas give, RFC 6750's token errors and the edge's own. A code that is
#: not here is a bug, and ``tests`` check every code raised has a row.
STATUS: dict[str, int] = {
    "invalid_proof_request": 400,
    "no_checkpoint": 404,
    "log_shrank": 409,
    "bad_checkpoint": 400,
    "import_running": 409,
    "validation_failed": 400,
    "invalid_json": 400,
    "invalid_query": 400,
    "invalid_offer": 400,
    "unknown_purpose": 400,
    "undeclared_purpose": 400,
    "too_many_predicates": 400,
    "unknown_attribute": 400,
    "invalid_values": 400,
    "unknown_value": 400,
    "invalid_breakdown": 400,
    "invalid_redirect_uri": 400,
    "invalid_link": 400,
    "invalid_request": 400,
    "invalid_idempotency_key": 400,
    "invalid_credentials": 401,
    "invalid_token": 401,
    "invalid_initial_access_token": 401,
    "missing_authorization": 401,
    "insufficient_funds": 402,
    "email_unverified": 403,
    "policy_denied": 403,
    "insufficient_scope": 403,
    "broker_not_approved": 403,
    "not_found": 404,
    "email_taken": 409,
    "keys_in_use": 409,
    "idempotency_key_in_use": 409,
    "too_many_lines": 413,
    "invalid_purchases": 422,
    "idempotency_key_reused": 422,
    "unknown_terms": 422,
    "budget_exhausted": 429,
    "mail_unavailable": 503,
    "database_unavailable": 503,
    "rate_limit_unavailable": 503,
    "auditor_login_expired": 401,
    "invalid_audit_filter": 400,
    "export_too_large": 413,
    "invalid_webhook": 400,
    "invalid_intent": 400,
    "invalid_bid": 400,
    "currency_mismatch": 400,
    "intent_outside_sector": 403,
    "intent_closed": 409,
    "fulfilment_not_shared": 409,
    "bid_exists": 409,
}


def status_of(exc: ServiceError) -> int:
    """The HTTP status for a domain exception, from :data:`STATUS` alone."""
    return STATUS.get(exc.code, 500 if type(exc) is ServiceError else 400)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}
_MESSAGES = {
    400: "The request could not be understood.",
    403: "You are not allowed to do that.",
    404: "There is nothing here.",
    405: "That method is not allowed here.",
    413: "The request is too large.",
    415: "This address takes an HTML form submission (application/x-www-form-urlencoded).",
    429: "Too many attempts. Please wait a minute and try again.",
    500: "Something went wrong on our side. Nothing was changed.",
}
_DESCRIBED = {
    "token_in_query": (
        "invalid_request",
        "Send the access token in the Authorization header only, never in the URL or body.",
    ),
    "form_expected": ("unsupported_media_type", "This address takes an HTML form submission."),
    "control_characters": (
        "control_characters",
        "Control characters (such as NUL) are not accepted in form fields or addresses. "
        "Nothing was changed.",
    ),
}
_CSRF = {
    "csrf_failed": (
        "Your form expired or did not come from this site. Reload the page and try again."
    ),
    "csrf_origin": "This request came from another site and was refused.",
}


#: Endpoints that answer errors in the OAuth RFCs' own shape (``error``, ``error_description``).
OAUTH_ENDPOINTS = frozenset(
    {"/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/register"}
)


def is_api() -> bool:
    return request.path.startswith("/api/")


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/oauth/", "/.well-known/")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


#: Titles that are not the code's words: a missing dependency is the service's, not the client's.
_TITLES = {
    "database_unavailable": "Service unavailable",
    "rate_limit_unavailable": "Service unavailable",
}


def title_of(code: str) -> str:
    """A problem type's title: the same for every occurrence of the code (RFC 9457 §3.1.3)."""
    return _TITLES.get(code) or code.replace("_", " ").capitalize()


def problem(
    status: int,
    code: str,
    detail: str,
    errors: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """An RFC 9457 problem details response: ``type``, ``title``, ``status``, ``detail``, plus
    ``code``, ``errors`` (per field, when there are any) and the extension members given."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title_of(code),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extensions)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)


def error_response(
    status: int, code: str, message: str, errors: dict[str, str] | None = None
) -> Response:
    if wants_json():
        return problem(status, code, message, errors)
    html = render_template(
        "error.html", status=status, code=code, message=message, errors=errors or {}
    )
    return Response(html, status=status, mimetype="text/html")


def _authlib_problem(exc: _AuthlibHTTPException) -> Response:
    """A resource protector's RFC 6750 error outside our own token check: problem+json,
    keeping its ``WWW-Authenticate`` (and cache) headers."""
    try:
        body = json.loads(exc.get_body())
    except (TypeError, ValueError):
        body = {}
    code = str(body.get("error") or _CODES.get(exc.code or 500, "error"))
    status = STATUS.get(code, exc.code or 500)
    detail = str(body.get("error_description") or HTTPStatus(status).phrase)
    response = problem(status, code, detail)
    for name, value in exc.get_headers() or []:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_http(exc: HTTPException) -> Response:
    # An error outside the view (opening the login session, an after-request step) reaches
    # here as a 500 wrapping it: a dependency that went away is still a 503.
    original = getattr(exc, "original_exception", None)
    if original is not None and unavailable_cause(original) is not None:
        return handle_unavailable(original)
    if isinstance(exc, _AuthlibHTTPException):
        if is_api():
            return _authlib_problem(exc)
        # RFC 6750 errors outside the API: keep their body and WWW-Authenticate.
        return Response(exc.get_body(), status=exc.code, headers=exc.get_headers())
    status = exc.code or 500
    code = _CODES.get(status, "error")
    message = _MESSAGES.get(status, exc.name)
    if exc.description in _CSRF:
        code, message = exc.description, _CSRF[exc.description]
    elif exc.description in _DESCRIBED:
        code, message = _DESCRIBED[exc.description]
    if request.path in OAUTH_ENDPOINTS:
        # RFC 6749 §5.2 / RFC 7591 §3.2.2 error bodies at the OAuth endpoints.
        oauth_code = "invalid_request" if status == 400 else code
        response = jsonify(error=oauth_code, error_description=message)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
    else:
        response = error_response(status, code, message)
    valid_methods = getattr(exc, "valid_methods", None)
    if status == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    if status == 429:
        response.headers["Retry-After"] = "60"
    return response


def _extensions(exc: ServiceError) -> dict[str, Any]:
    """The extension members a problem carries beside ``code`` and ``errors``."""
    if isinstance(exc, PolicyDenied):
        return {"withheld": exc.withheld}
    if isinstance(exc, BudgetExhausted):
        return {"retry_after": exc.retry_after}
    return {}


def handle_service(exc: ServiceError) -> Response:
    errors = getattr(exc, "errors", None)
    status = status_of(exc)
    if not wants_json():
        return error_response(status, exc.code, exc.message, errors)
    response = problem(status, exc.code, exc.message, errors, **_extensions(exc))
    if isinstance(exc, BudgetExhausted):
        response.headers["Retry-After"] = str(exc.retry_after)  # RFC 9110 §10.2.3
    if isinstance(exc, TokenRefused):
        response.headers["WWW-Authenticate"] = exc.challenge  # RFC 6750 §3
        response.headers["Cache-Control"] = "no-store"
    return response


#: Seconds a client is asked to wait before sending again a request a dependency refused.
RETRY_AFTER_SECONDS = 5
_UNAVAILABLE_MESSAGES = {
    DatabaseUnavailable: "The service is briefly unavailable. Nothing was changed: please try "
    "again in a moment.",
    RateLimitUnavailable: "The service is briefly unavailable. Nothing was changed: please try "
    "again in a moment.",
}


def unavailable_cause(exc: BaseException) -> type[ServiceError] | None:
    """The domain error a dependency's failure is answered as (database or rate-limit store
    unreachable), or None for any other exception."""
    if isinstance(exc, SQLAlchemyError) and is_unavailable(exc):
        return DatabaseUnavailable
    if isinstance(exc, StorageError | RedisError):
        return RateLimitUnavailable
    return None


def handle_unavailable(exc: Exception) -> Response:
    """503 with ``Retry-After``: problem+json for API clients, RFC 6749's
    ``temporarily_unavailable`` at the OAuth endpoints, a page for people. One log line names
    the exception's class, never its message (which can carry a URL or values)."""
    cause = unavailable_cause(exc)
    if cause is None:
        return handle_unexpected(exc)
    rule = request.url_rule or "<unmatched>"
    log.warning("%s: %s on %s %s", cause.code, type(exc).__name__, request.method, rule)
    refused = cause(_UNAVAILABLE_MESSAGES[cause])
    if request.path in OAUTH_ENDPOINTS:
        response = jsonify(error="temporarily_unavailable", error_description=refused.message)
        response.status_code = 503
        response.headers["Cache-Control"] = "no-store"
    elif wants_json():
        response = handle_service(refused)
    else:
        response = _unavailable_page(refused)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


#: The page when even the site's layout cannot be rendered (it reads the login session and the
#: customer's language, which live in the database that is away).
_BARE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>503</title></head>'
    "<body><h1>{message}</h1><p>Error 503 ({code}).</p></body></html>"
)


def _unavailable_page(refused: ServiceError) -> Response:
    try:
        html = render_template(
            "error.html", status=503, code=refused.code, message=refused.message, errors={}
        )
    except Exception:  # the layout needed what is away: the bare page, same words
        html = _BARE_PAGE.format(message=refused.message, code=refused.code)
    return Response(html, status=503, mimetype="text/html")


def handle_unexpected(exc: Exception) -> Response:
    # The type only: messages of database errors can carry values.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url_rule)
    return error_response(500, "internal_error", _MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(ServiceError, handle_service)
    for unreachable in (SQLAlchemyError, StorageError, RedisError):
        app.register_error_handler(unreachable, handle_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
