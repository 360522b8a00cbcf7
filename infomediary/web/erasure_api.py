"""Suppliers confirm erasure requests.

The supplier authenticates as itself: with HTTP Basic client authentication (its client_id
and client_secret, as at the token endpoint; RFC 6749 §2.3.1), or with any active access
token issued to it (a client-credentials token, for instance). Confirming needs no scope:
any supplier a request was sent to can confirm it, broker-approved or not.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from infomediary.errors import TokenRefused
from infomediary.models import Supplier
from infomediary.services import Context, erasure_requests
from infomediary.services.suppliers import secret_hash
from infomediary.statuses import SupplierStatus
from infomediary.web.bearer import bearer_token, refuse_tokens_outside_the_header
from infomediary.web.db import db
from infomediary.web.limits import api_rate, basic_credentials, has_basic_header, limiter
from infomediary.web.security import csrf_exempt, request_id

bp = Blueprint("erasure_api", __name__, url_prefix="/api/v1/erasure-requests")
bp.before_request(refuse_tokens_outside_the_header)

BASIC_CHALLENGE = 'Basic realm="infomediary"'


def _supplier_id() -> str:
    """The authenticated supplier: by its client credentials (Basic) or by a bearer token."""
    if has_basic_header():
        credentials = basic_credentials()
        supplier = None
        if credentials is not None:
            client_id, secret = credentials
            found = db().query(Supplier).filter(Supplier.client_id == client_id).one_or_none()
            if found is not None and hmac.compare_digest(
                found.client_secret_hash, secret_hash(secret)
            ):
                supplier = found
        if supplier is None or supplier.status != SupplierStatus.ACTIVE:
            raise TokenRefused(
                "invalid_credentials", "Client authentication failed.", BASIC_CHALLENGE
            )
        return supplier.id
    return str(bearer_token(action="erase").row.supplier_id)


@bp.post("/<erasure_id>/confirm")
@csrf_exempt
@limiter.limit(api_rate)
def confirm(erasure_id: str) -> ResponseReturnValue:
    """Confirm that you deleted the customer's data an erasure request names.
    ---
    post:
      operationId: confirmErasureRequest
      tags: [erasure]
      summary: Confirm that you deleted the data an erasure request names
      description: >-
        Erasure requests reach your registered webhook as signed JSON (see
        docs/suppliers.md); once you deleted what you hold about its subject, confirm it
        here. Idempotent: confirming again answers the same, with the first confirmation
        time. Only the supplier the request was sent to can confirm it; any other gets 404.
        Authenticate with your client credentials (HTTP Basic) or an access token issued
        to you; no scope is needed.
      security:
        - clientBasic: []
        - oauth2: []
      parameters:
        - {name: erasure_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The request, confirmed
          content:
            application/json:
              schema:
                type: object
                required: [id, status, subject, confirmed_at]
                properties:
                  id: {type: string}
                  status: {type: string, enum: [confirmed]}
                  subject: {type: string}
                  confirmed_at: {type: string, format: date-time}
        400: InvalidRequest
        401: Unauthorized
        404: NotFound
        429: RateLimited
    """
    supplier_id = _supplier_id()
    found = erasure_requests.confirm(
        db(), supplier_id, erasure_id, Context.supplier(supplier_id, request_id())
    )
    return jsonify(
        id=found.id,
        status=str(found.status),
        subject=found.subject,
        confirmed_at=found.confirmed_at.isoformat() if found.confirmed_at else None,
    )
