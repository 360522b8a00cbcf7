"""One place maps errors to responses: JSON (``{"error": code, "message": ...}``) for API
clients, a friendly page for people. Nothing internal (stack traces, SQL, values) leaks."""

from __future__ import annotations

from authlib.integrations.flask_oauth2.errors import _HTTPException as _AuthlibHTTPException
from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from infomediary.errors import ServiceError
from infomediary.logs import get_logger

log = get_logger("errors")

#: The one table from a domain exception's machine-readable code to its HTTP status. A code
#: that is not here is a bug, and ``tests`` check every code raised has a row.
STATUS: dict[str, int] = {
    "validation_failed": 400,
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
    "invalid_credentials": 401,
    "insufficient_funds": 402,
    "email_unverified": 403,
    "policy_denied": 403,
    "not_found": 404,
    "email_taken": 409,
    "keys_in_use": 409,
    "budget_exhausted": 429,
    "mail_unavailable": 503,
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


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/oauth/", "/.well-known/")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(
    status: int, code: str, message: str, errors: dict[str, str] | None = None
) -> Response:
    if wants_json():
        body: dict[str, object] = {"error": code, "message": message}
        if errors:
            body["fields"] = errors
        response = jsonify(body)
        response.status_code = status
        return response
    html = render_template(
        "error.html", status=status, code=code, message=message, errors=errors or {}
    )
    return Response(html, status=status, mimetype="text/html")


def handle_http(exc: HTTPException) -> Response:
    if isinstance(exc, _AuthlibHTTPException):
        # RFC 6750 errors from the resource protector: keep their body and WWW-Authenticate.
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


def handle_service(exc: ServiceError) -> Response:
    errors = getattr(exc, "errors", None)
    return error_response(status_of(exc), exc.code, exc.message, errors)


def handle_unexpected(exc: Exception) -> Response:
    # The type only: messages of database errors can carry values.
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url_rule)
    return error_response(500, "internal_error", _MESSAGES[500])


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(ServiceError, handle_service)
    app.register_error_handler(Exception, handle_unexpected)
