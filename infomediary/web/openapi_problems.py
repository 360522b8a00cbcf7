"""The OpenAPI document's shared error responses and headers (``components.responses`` and
``components.headers``), all RFC 9457 problem details, with examples built from the one
code-to-status table."""

from __future__ import annotations

from typing import Any

from infomediary.web.errors import PROBLEM_MIMETYPE, PROBLEM_TYPE, STATUS, title_of


def _example(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE + code,
        "title": title_of(code),
        "status": STATUS[code],
        "detail": detail,
        "code": code,
        **extra,
    }


def _problem(
    description: str,
    examples: dict[str, dict[str, Any]],
    schema: str = "Problem",
    headers: tuple[str, ...] = (),
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {
            PROBLEM_MIMETYPE: {
                "schema": schema,
                "examples": {name: {"value": value} for name, value in examples.items()},
            }
        },
    }
    if headers:
        response["headers"] = {name: name for name in headers}
    return response


_FIELD = {"where": "Unknown attribute 'shoe_size'; see /api/v1/audiences/attributes."}
_HEADER_ONLY = "Send the access token in the Authorization header only, never in the URL or body."
_TOKEN_IN_URL = _example("invalid_request", _HEADER_ONLY, errors={"access_token": _HEADER_ONLY})
_INVALID_JSON = _example(
    "invalid_json",
    "Send a JSON object (application/json).",
    errors={"body": "Send a JSON object (application/json)."},
)
_RATE_LIMITED = {
    "rate_limited": {
        "type": PROBLEM_TYPE + "rate_limited",
        "title": title_of("rate_limited"),
        "status": 429,
        "detail": "Too many attempts. Please wait a minute and try again.",
        "code": "rate_limited",
    }
}

#: Shared error responses (``components.responses``): what view docstrings name.
RESPONSES: dict[str, dict[str, Any]] = {
    "InvalidRequest": _problem(
        "invalid_request: an access token in the URL or body",
        {"token_in_url": _TOKEN_IN_URL},
    ),
    "InvalidQuery": _problem(
        "The query is refused; nothing is charged. ``code`` names the first problem "
        "(invalid_json, invalid_query, unknown_purpose, undeclared_purpose, "
        "too_many_predicates, unknown_attribute, invalid_values, unknown_value, "
        "invalid_breakdown, invalid_request), ``errors`` each field's",
        {
            "unknown_attribute": _example("unknown_attribute", _FIELD["where"], errors=_FIELD),
            "unknown_field": _example(
                "invalid_query", "Unknown field.", errors={"limit": "Unknown field."}
            ),
            "invalid_json": _INVALID_JSON,
        },
    ),
    "InvalidProofRequest": _problem(
        "invalid_proof_request: an index or size that is not a whole number, or outside the "
        "log; ``errors`` names the parameter",
        {
            "out_of_range": _example(
                "invalid_proof_request",
                "from 1 to 41",
                errors={"size": "from 1 to 41"},
            )
        },
    ),
    "NoCheckpoint": _problem(
        "no_checkpoint: no checkpoint of the log has been signed yet",
        {"none_yet": _example("no_checkpoint", "No checkpoint has been signed yet.")},
    ),
    "InvalidOffer": _problem(
        "The offer is refused; nothing is charged or escrowed. ``code`` names the first "
        "problem (invalid_offer for the offer's own fields and unknown ones, else as a "
        "count's), ``errors`` each field's",
        {
            "invalid_offer": _example(
                "invalid_offer",
                "Must be greater than or equal to 1 and less than or equal to 1000000.",
                errors={
                    "max_recipients": "Must be greater than or equal to 1 and less than or "
                    "equal to 1000000."
                },
            ),
            "breakdown": _example(
                "invalid_offer", "Unknown field.", errors={"breakdown": "Unknown field."}
            ),
            "invalid_json": _INVALID_JSON,
        },
    ),
    "Unauthorized": _problem(
        "No token, or one that is unknown, expired, revoked or whose consent ended "
        "(RFC 6750 invalid_token; missing_authorization without a token)",
        {
            "invalid_token": _example(
                "invalid_token",
                "The access token provided is expired, revoked, malformed, or invalid for "
                "other reasons.",
            )
        },
        headers=("WWW-Authenticate",),
    ),
    "InsufficientScope": _problem(
        "insufficient_scope: the token lacks the operation's scope; or, at the broker's "
        "operations (audiences, offers), broker_not_approved: the operator has not approved "
        "this client for the broker (whatever its token carries; nothing is charged)",
        {
            "insufficient_scope": _example(
                "insufficient_scope",
                "The request requires higher privileges than provided by the access token.",
            ),
            "broker_not_approved": _example(
                "broker_not_approved",
                "This client is not approved for the broker: its scopes (audience:count, "
                "offers:send) and its sector are granted by the operator only.",
            ),
        },
        headers=("WWW-Authenticate",),
    ),
    "NotFound": _problem(
        "not_found: not your offer, or no such accepter",
        {"not_found": _example("not_found", "No such offer.")},
    ),
    "NotBoundToCustomer": _problem(
        "not_found: the token is not bound to a customer (client credentials), or the "
        "customer no longer exists",
        {"not_found": _example("not_found", "This token is not bound to a customer.")},
    ),
    "InsufficientFunds": _problem(
        "insufficient_funds: your balance does not cover reward x max_recipients",
        {"insufficient_funds": _example("insufficient_funds", "Fund your account first.")},
    ),
    "UnknownTerms": _problem(
        "unknown_terms: an agreement that is not on the MyTerms roster (GET /api/v1/terms)",
        {
            "unknown_terms": _example(
                "unknown_terms",
                "'my-own-terms' is not an agreement on the roster.",
                errors={"accepted": "'my-own-terms' is not an agreement on the roster."},
            )
        },
    ),
    "RateLimited": _problem(
        "rate_limited: too many requests", _RATE_LIMITED, headers=("Retry-After",)
    ),
    "BudgetExhausted": _problem(
        "budget_exhausted (with retry_after: seconds until the budget period ends), or "
        "rate_limited",
        {
            "budget_exhausted": _example(
                "budget_exhausted",
                "Your organisation's privacy budget for this period is spent; no more counts "
                "until the next period.",
                retry_after=86400,
            ),
            **_RATE_LIMITED,
        },
        schema="BudgetExhaustedProblem",
        headers=("Retry-After",),
    ),
}

HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {
        "description": "RFC 6750 §3 challenge, e.g. "
        'Bearer realm="infomediary", error="invalid_token", error_description="..."',
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds until a retry can succeed (RFC 9110 §10.2.3)",
        "schema": {"type": "integer"},
    },
}
