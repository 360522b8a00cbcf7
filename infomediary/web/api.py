"""The supplier-facing resource API. Bearer tokens only from the Authorization header.

Every view documents its operation in its docstring (YAML after ``---``), which
:mod:`infomediary.web.openapi` reads through apispec's Flask plugin. Errors are raised as
domain exceptions; :mod:`infomediary.web.errors` answers them as problem details.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlencode

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary.errors import InvalidRequest
from infomediary.services import checkpoints, purchase_push, resource, transparency
from infomediary.services.purchase_push import PushRequest
from infomediary.services.resource import PurchaseQuery
from infomediary.web.bearer import (
    bearer_token,
    json_body,
    refuse_tokens_outside_the_header,
    supplier_context,
)
from infomediary.web.db import db, reads_first
from infomediary.web.limits import api_rate, limiter, supplier_key
from infomediary.web.mailer import site_url
from infomediary.web.schemas import (
    MeResponseSchema,
    PurchaseListRequestSchema,
    PurchaseListSchema,
    PushJobSchema,
    load,
    load_push,
)
from infomediary.web.security import csrf_exempt, instance, settings

bp = Blueprint("api", __name__, url_prefix="/api/v1")
#: Output schemas, built once (a schema holds no state between dumps).
ME_RESPONSE = MeResponseSchema()
PURCHASE_LIST = PurchaseListSchema()
PUSH_JOB = PushJobSchema()
bp.before_request(refuse_tokens_outside_the_header)


@bp.get("/me")
@csrf_exempt
@reads_first
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def me() -> ResponseReturnValue:
    """The customer's data this token may see now.
    ---
    get:
      operationId: readMe
      tags: [resource]
      summary: The customer's data this token may see now
      description: >-
        Token check, then the customer's policy, then only the allowed fields. Tokens are
        accepted only in the Authorization header.
      security:
        - oauth2: [profile.identity:read]
      responses:
        200:
          description: Allowed fields; withheld categories listed with reasons
          content:
            application/json:
              schema: MeResponseSchema
        400: InvalidRequest
        401: Unauthorized
        403:
          description: policy_denied - the customer's policy denies every requested category
          content:
            application/problem+json:
              schema: PolicyDeniedProblemSchema
        404: NotBoundToCustomer
        429: RateLimited
    """
    token = bearer_token()
    body = resource.read_me(db(), instance(), token.row, supplier_context(token.row.supplier_id))
    return jsonify(ME_RESPONSE.dump(body))


@bp.get("/purchases")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def purchases() -> ResponseReturnValue:
    """The customer's purchases this token may see now, newest first, a page at a time.
    ---
    get:
      operationId: listPurchases
      tags: [resource]
      summary: The customer's purchases this token may see now, newest first, a page at a time
      description: >-
        Token check (purchases:read, through the customer's consent), then the customer's
        policy for the purchases category and the grant's purpose, then a page of the lines
        the customer imported from retailers' files, newest first. since and until are UTC
        days, both included; retailer matches whatever its case. Follow next (the same
        filters, an opaque cursor) for the next page. Every call is on the customer's
        access log, allowed (with how many lines it released) or denied.
      security:
        - oauth2: [purchases:read]
      parameters:
        - in: query
          schema: PurchaseListRequestSchema
      responses:
        200:
          description: A page of purchase lines, and the next page's URL (null on the last)
          content:
            application/json:
              schema: PurchaseListSchema
        400:
          description: >-
            invalid_request: a date that is not YYYY-MM-DD, until before since, a limit
            outside 1 to 200, a cursor that no next link carried, an unknown parameter or an
            access token in the URL; errors names the parameter
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403:
          description: >-
            insufficient_scope - the token lacks purchases:read; or policy_denied - the
            customer's policy denies purchases for this purpose now (withheld gives the reason)
          content:
            application/problem+json:
              schema: PurchasesRefusedProblemSchema
        404: NotBoundToCustomer
        429: RateLimited
    """
    token = bearer_token("purchases:read")
    query = load(PurchaseListRequestSchema(), request.args.to_dict(), PurchaseQuery)
    page = resource.read_purchases(
        db(), instance(), token.row, query, supplier_context(token.row.supplier_id)
    )
    following = None
    if page["next"] is not None:
        args = {k: v for k, v in request.args.items() if k != "cursor"} | {"cursor": page["next"]}
        following = f"{site_url()}{request.path}?{urlencode(args)}"
    return jsonify(PURCHASE_LIST.dump({"purchases": page["purchases"], "next": following}))


IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}\Z")
_KEY_MESSAGE = (
    "Send an Idempotency-Key header: 1 to 255 printable ASCII characters, new for every "
    "batch (a UUID will do)."
)


def _idempotency_key() -> str:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None or not _IDEMPOTENCY_KEY.match(value) or not value.strip():
        raise InvalidRequest("invalid_idempotency_key", {IDEMPOTENCY_HEADER: _KEY_MESSAGE})
    return value


@bp.post("/purchases")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def push_purchases() -> ResponseReturnValue:
    """Add a batch of purchase lines to the customer's purchases, once per Idempotency-Key.
    ---
    post:
      operationId: pushPurchases
      tags: [resource]
      summary: Add a batch of purchase lines to the customer's purchases
      description: >-
        Token check (purchases:write, through the customer's consent), then the customer's
        policy for the purchases category and the grant's purpose (a denial is logged and
        writes nothing), then the batch: a JSON array of 1 to 1000 lines in the normalised
        shape, every field checked and unknown fields refused; one bad line refuses the
        whole batch (422, each bad line named by JSON Pointer in errors). Lines the customer
        already holds (same retailer and line_key) are counted as duplicates, not added
        again. Up to 100 lines are imported at once (201); a larger batch is kept encrypted
        under the customer's key and imported by a job (202; poll status_url). The
        Idempotency-Key header is required and scoped to your client for 24 hours: the same
        key with the same body is answered again as first answered, writing nothing; the same
        key with another body is refused (422 idempotency_key_reused); a request whose key is
        still being processed gets 409. The lines' source is your client's name, their
        format push, and the customer sees the import under your name.
      security:
        - oauth2: [purchases:write]
      parameters:
        - in: header
          name: Idempotency-Key
          required: true
          description: 1 to 255 printable ASCII characters, new for every batch.
          schema:
            type: string
            minLength: 1
            maxLength: 255
            pattern: "^[ -~]+$"
          example: 6f1c1a52-8d0e-4c5b-9a57-3d0f8f4b2e10
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: array
              minItems: 1
              maxItems: 1000
              items: PushLineSchema
            examples:
              one_line:
                summary: One line, only the required fields
                value:
                  - retailer: Corner Books
                    order_id: CB-10442
                    line_key: CB-10442/1
                    ordered_at: "2024-03-05T18:22:41+01:00"
                    product_name: The Left Hand of Darkness
                    quantity: 1
                    unit_price_minor: 1299
                    currency: EUR
                    status: shipped
              order:
                summary: An order of two lines, one of them returned
                value:
                  - retailer: Corner Books
                    order_id: CB-10443
                    line_key: CB-10443/1
                    ordered_at: "2024-04-01T09:00:00Z"
                    product_name: A Wizard of Earthsea
                    product_id: "9780547773742"
                    category: Books
                    quantity: 2
                    unit_price_minor: 899
                    currency: EUR
                    status: shipped
                  - retailer: Corner Books
                    order_id: CB-10443
                    line_key: CB-10443/2
                    ordered_at: "2024-04-01T09:00:00Z"
                    product_name: Reading Lamp
                    category: Home
                    quantity: 1
                    unit_price_minor: 2450
                    currency: EUR
                    status: returned
      responses:
        201:
          description: Imported at once; the counts and the import's id
          content:
            application/json:
              schema: PushImportedSchema
        202:
          description: Kept encrypted and queued for a job; poll status_url
          content:
            application/json:
              schema: PushQueuedSchema
        400:
          description: >-
            invalid_idempotency_key (the header is missing or not 1 to 255 printable ASCII
            characters), invalid_json (the body is not JSON) or invalid_request (an access
            token in the URL or body)
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403:
          description: >-
            insufficient_scope - the token lacks purchases:write; or policy_denied - the
            customer's policy does not allow purchases for this purpose now (withheld gives
            the reason)
          content:
            application/problem+json:
              schema: PurchasesRefusedProblemSchema
        404: NotBoundToCustomer
        409:
          description: >-
            idempotency_key_in_use - a request with this key is still being processed;
            retry later
          content:
            application/problem+json:
              schema: ProblemSchema
        413:
          description: >-
            too_many_lines (more than 1000 lines) or payload_too_large (a body over the
            server's limit); nothing written
          content:
            application/problem+json:
              schema: ProblemSchema
        422:
          description: >-
            invalid_purchases - a line is refused (errors names each bad field by JSON
            Pointer, /3/quantity; /3 for a line that is not an object), or the body is not an
            array of 1 to 1000 lines; or idempotency_key_reused - the key was used for another
            request. Nothing written.
          content:
            application/problem+json:
              schema: ProblemSchema
        429: RateLimited
    """
    token = bearer_token("purchases:write", action="import")
    key = _idempotency_key()
    body = json_body()
    if body is None:
        raise InvalidRequest("invalid_json", {"body": "Send a JSON array (application/json)."})
    lines = load_push(body)
    answer = purchase_push.push(
        db(),
        instance(),
        token.row,
        PushRequest(
            lines=lines,
            idempotency_key=key,
            method=request.method,
            path=request.path,
            canonical_body=purchase_push.canonical_json(body),
        ),
        supplier_context(token.row.supplier_id),
        job_lines=settings().push_job_lines,
        status_url=f"{site_url()}{request.path}/jobs/",
    )
    response = jsonify(answer.body)
    response.status_code = answer.status
    if answer.status == 202:
        response.headers["Location"] = answer.body["status_url"]
    return response


@bp.get("/purchases/jobs/<job_id>")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def push_job(job_id: str) -> ResponseReturnValue:
    """A pushed batch's job: its status, and the counts once it ended.
    ---
    get:
      operationId: readPushJob
      tags: [resource]
      summary: A pushed batch's job, its status and counts
      description: >-
        Only the client that pushed the batch, with a token of the same customer, reads it
        (anyone else gets 404). queued, then running (read counts the lines read so far),
        then done (the counts and the import's id) or failed (error, a code; nothing is
        visible to the customer).
      security:
        - oauth2: [purchases:write]
      parameters:
        - in: path
          name: job_id
          required: true
          schema:
            type: string
      responses:
        200:
          description: The job's status
          content:
            application/json:
              schema: PushJobSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404:
          description: not_found - no such job of this client and customer
          content:
            application/problem+json:
              schema: ProblemSchema
        429: RateLimited
    """
    token = bearer_token("purchases:write")
    found = purchase_push.job_status(db(), token.row, job_id)
    return jsonify(PUSH_JOB.dump(found))


def _b64(nodes: tuple[bytes, ...]) -> list[str]:
    return [base64.b64encode(node).decode() for node in nodes]


@bp.get("/log/checkpoint")
@csrf_exempt
@limiter.limit(api_rate)
def log_checkpoint() -> ResponseReturnValue:
    """The latest signed checkpoint of the access log.
    ---
    get:
      operationId: logCheckpoint
      tags: [log]
      summary: The latest signed checkpoint (C2SP tlog-checkpoint, signed note)
      description: >-
        Public and unauthenticated. A C2SP tlog-checkpoint (origin, tree size, base64 root
        hash) in a C2SP signed-note with an Ed25519 signature by the key GET /api/v1/log/key
        gives. Keep it: a later checkpoint must be consistent with it (GET
        /api/v1/log/proof/consistency). Reading it writes nothing; checkpoints are signed on
        a schedule when the log grew, and every one is kept: with size, the one of that size.
      security: []
      parameters:
        - {in: query, name: size, required: false, schema: {type: integer, minimum: 0}}
      responses:
        200:
          description: The signed note
          content:
            text/plain:
              schema: {type: string}
        400: InvalidProofRequest
        404: NoCheckpoint
        429: RateLimited
    """
    text = checkpoints.latest_note(db(), request.args.get("size"))
    return text, 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"}


@bp.get("/log/key")
@csrf_exempt
@limiter.limit(api_rate)
def log_key() -> ResponseReturnValue:
    """The verifier key of the access log's checkpoints.
    ---
    get:
      operationId: logKey
      tags: [log]
      summary: The checkpoints' verifier key (signed-note vkey)
      description: >-
        Public and unauthenticated. The Ed25519 verifier key in the C2SP signed-note vkey
        form, name+hash+base64: the name is the log's origin, the hash the key ID in hex.
      security: []
      responses:
        200:
          description: The verifier key, one line
          content:
            text/plain:
              schema: {type: string}
        429: RateLimited
    """
    vkey = checkpoints.verifier_key(instance())
    return f"{vkey}\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/log/proof/inclusion")
@csrf_exempt
@limiter.limit(api_rate)
def log_inclusion() -> ResponseReturnValue:
    """An inclusion proof of the access log: that leaf ``index`` is in the tree of ``size``.
    ---
    get:
      operationId: logInclusionProof
      tags: [log]
      summary: RFC 9162 inclusion proof of one log entry
      description: >-
        Public and unauthenticated. The proof is the RFC 9162 section 2.1.3 path from the
        leaf at index (0 first) to the root of the tree of the first size entries, as base64
        SHA-256 hashes; verify it against a checkpoint of that size.
      security: []
      parameters:
        - {in: query, name: index, required: true, schema: {type: integer, minimum: 0}}
        - {in: query, name: size, required: true, schema: {type: integer, minimum: 1}}
      responses:
        200:
          description: The proof
          content:
            application/json:
              schema: InclusionProofSchema
        400: InvalidProofRequest
        429: RateLimited
    """
    found = transparency.inclusion(db(), request.args.get("index"), request.args.get("size"))
    return jsonify({"index": found.first, "size": found.size, "proof": _b64(found.nodes)})


@bp.get("/log/proof/consistency")
@csrf_exempt
@limiter.limit(api_rate)
def log_consistency() -> ResponseReturnValue:
    """A consistency proof of the access log: that the tree of ``to`` extends that of ``from``.
    ---
    get:
      operationId: logConsistencyProof
      tags: [log]
      summary: RFC 9162 consistency proof between two sizes of the log
      description: >-
        Public and unauthenticated. The RFC 9162 section 2.1.4 proof that the tree of the first
        to entries extends the tree of the first from entries (1 <= from <= to <= the log's
        size; equal sizes give an empty proof), as base64 SHA-256 hashes.
      security: []
      parameters:
        - {in: query, name: from, required: true, schema: {type: integer, minimum: 1}}
        - {in: query, name: to, required: true, schema: {type: integer, minimum: 1}}
      responses:
        200:
          description: The proof
          content:
            application/json:
              schema: ConsistencyProofSchema
        400: InvalidProofRequest
        429: RateLimited
    """
    found = transparency.consistency(db(), request.args.get("from"), request.args.get("to"))
    return jsonify({"from": found.first, "to": found.size, "proof": _b64(found.nodes)})
