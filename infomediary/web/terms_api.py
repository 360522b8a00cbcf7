"""MyTerms (IEEE 7012) in the API: the roster of standard agreements, public, and the
agreements a supplier publishes it accepts, set with its own credentials."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from infomediary.errors import InvalidRequest, NotFound
from infomediary.models import Supplier
from infomediary.services import Context, agreements
from infomediary.statuses import SupplierStatus
from infomediary.web.bearer import bearer_token, json_input, refuse_tokens_outside_the_header
from infomediary.web.db import db
from infomediary.web.limits import api_rate, limiter, supplier_key
from infomediary.web.schemas.terms import (
    AcceptedTermsInput,
    AcceptedTermsRequestSchema,
    AcceptedTermsSchema,
    AgreementCopySchema,
    TermsAgreementSchema,
    TermsRosterSchema,
)
from infomediary.web.security import csrf_exempt, instance, request_id

bp = Blueprint("terms_api", __name__, url_prefix="/api/v1")
bp.before_request(refuse_tokens_outside_the_header)

#: The longest ``?supplier=`` (a client_id) the roster's listing reads.
MAX_CLIENT_ID = 64


def _published_supplier(client_id: str) -> Supplier:
    if not client_id or len(client_id) > MAX_CLIENT_ID or not client_id.isprintable():
        raise InvalidRequest("invalid_request", {"supplier": "Give a supplier's client_id."})
    found = db().execute(select(Supplier).where(Supplier.client_id == client_id)).scalar()
    if found is None or found.status != SupplierStatus.ACTIVE:
        raise NotFound("No such supplier.")
    return found


@bp.get("/terms")
@csrf_exempt
@limiter.limit(api_rate)
def roster() -> ResponseReturnValue:
    """The MyTerms roster: the standard agreements a customer may proffer.
    ---
    get:
      operationId: listTerms
      tags: [terms]
      summary: The roster of standard agreements (IEEE 7012 MyTerms)
      description: >-
        Public and unauthenticated. Each agreement has a stable id, a plain-language summary
        (official false: written by this platform, not the standard's text) and the policy
        rules it implies, all never rules: an agreement only restricts. With
        ?supplier=<client_id>, also the agreements that supplier publishes it accepts.
      security: []
      parameters:
        - in: query
          name: supplier
          required: false
          schema: {type: string, maxLength: 64}
          description: A supplier's client_id.
      responses:
        200:
          description: The roster
          content:
            application/json:
              schema: TermsRosterSchema
        400: InvalidRequest
        404: NotFound
        429: RateLimited
    """
    body: dict[str, object] = {
        "agreements": [a.to_dict() for a in agreements.roster(instance()).agreements()]
    }
    if "supplier" in request.args:
        supplier = _published_supplier(request.args["supplier"])
        body["supplier"] = supplier.client_id
        body["accepted"] = agreements.accepted_by(db(), supplier.id, instance())
    return jsonify(TermsRosterSchema().dump(body))


@bp.get("/terms/<agreement_id>")
@csrf_exempt
@limiter.limit(api_rate)
def agreement(agreement_id: str) -> ResponseReturnValue:
    """One agreement of the MyTerms roster.
    ---
    get:
      operationId: getTerms
      tags: [terms]
      summary: One agreement of the roster
      description: Public and unauthenticated. 404 not_found for an id the roster lacks.
      security: []
      parameters:
        - in: path
          name: agreement_id
          required: true
          schema: {type: string, maxLength: 64}
      responses:
        200:
          description: The agreement
          content:
            application/json:
              schema: TermsAgreementSchema
        400: InvalidRequest
        404: NotFound
        429: RateLimited
    """
    if len(agreement_id) > 64:
        raise InvalidRequest("invalid_request", {"agreement_id": "At most 64 characters."})
    found = agreements.terms_of(agreement_id, instance())
    return jsonify(TermsAgreementSchema().dump(found.to_dict()))


@bp.post("/supplier/terms")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def publish() -> ResponseReturnValue:
    """Publish which agreements of the roster you accept.
    ---
    post:
      operationId: publishAcceptedTerms
      tags: [terms]
      summary: Publish the agreements you accept
      description: >-
        With any active token of yours (a client-credentials token, say): no scope needed.
        The list replaces the one published before, and is shown to customers on your page
        and in GET /api/v1/terms?supplier=<client_id>. An id not on the roster is refused
        (422 unknown_terms) and nothing changes.
      security:
        - oauth2: []
      requestBody:
        required: true
        content:
          application/json:
            schema: AcceptedTermsRequestSchema
            examples:
              accepted:
                summary: Accept two agreements
                value: {accepted: [sd-base, no-ai-training]}
              none:
                summary: Withdraw every acceptance
                value: {accepted: []}
      responses:
        200:
          description: What you now publish
          content:
            application/json:
              schema: AcceptedTermsSchema
        400: InvalidRequest
        401: Unauthorized
        422: UnknownTerms
        429: RateLimited
    """
    token = bearer_token(action="terms")
    supplier = token.supplier or db().get(Supplier, token.row.supplier_id)
    if supplier is None:  # pragma: no cover - the validator checked it
        raise NotFound("No such supplier.")
    loaded = json_input(AcceptedTermsRequestSchema(), AcceptedTermsInput)
    ids = agreements.publish_accepted(
        db(), instance(), supplier, loaded.accepted, Context.supplier(supplier.id, request_id())
    )
    return jsonify(AcceptedTermsSchema().dump({"supplier": supplier.client_id, "accepted": ids}))


@bp.get("/supplier/agreements/<record_id>")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def agreement_copy(record_id: str) -> ResponseReturnValue:
    """Your copy of an agreement you made with a customer.
    ---
    get:
      operationId: getAgreementCopy
      tags: [terms]
      summary: Your copy of a signed agreement
      description: >-
        With any active token of yours. The record id is the one an accepted bid names
        (agreement_record_id). Both sides keep the same signed record (IEEE 7012); it names
        the customer only by the pairwise sub you know them by. Every read is on the
        customer's access log; an id that is not yours answers 404 not_found.
      security:
        - oauth2: []
      parameters:
        - in: path
          name: record_id
          required: true
          schema: {type: string, maxLength: 36}
      responses:
        200:
          description: The signed agreement
          content:
            application/json:
              schema: AgreementCopySchema
        400: InvalidRequest
        401: Unauthorized
        404: NotFound
        429: RateLimited
    """
    token = bearer_token(action="terms")
    copy = agreements.supplier_copy(
        db(),
        str(token.row.supplier_id),
        record_id,
        Context.supplier(token.row.supplier_id, request_id()),
    )
    return jsonify(AgreementCopySchema().dump(copy))
