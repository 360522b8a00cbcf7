"""Purchases a retailer pushes (``POST /api/v1/purchases``, scope ``purchases:write``): a
batch of normalised lines added to the customer's purchases under their policy, once per
``Idempotency-Key``.

Every call is decided by the customer's policy for the ``purchases`` category and the grant's
purpose, as a read is; a denial is logged and nothing is written. The key is the client's own
(scoped to it, kept :data:`KEY_LIFETIME`): only SHA-256 of it is stored, with SHA-256 of the
request (customer, method, path and the canonical body), so the same key and body are
answered again as first answered without writing anything, and the same key with another
request is refused. A key is claimed in a commit of its own before the work starts, so a
concurrent duplicate sees it being processed (409); a claim whose work failed is released,
and one left by a process that died is taken over after :data:`STALE_CLAIM`.

A batch of up to the ``push_job_lines`` setting is imported at once
(:func:`infomediary.services.purchases.import_lines`: all or nothing, idempotent by line
token, one log entry); a larger one is kept sealed under the customer's key and imported by
the ``purchase_upload`` job (:mod:`infomediary.services.purchase_uploads`). Either way the
lines' provenance is the client's name, format ``push``, and the import names the supplier.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.lines import PurchaseLine
from infomediary.audit.reasons import Reason, verdict_param
from infomediary.db import rowcount
from infomediary.errors import IdempotencyKeyInUse, IdempotencyKeyReused, NotFound, PolicyDenied
from infomediary.instance import Instance
from infomediary.models import Customer, IdempotencyKey, OAuthToken, Supplier, utcnow
from infomediary.services import Context, jobs, purchase_uploads, purchases
from infomediary.services.customer_keys import customer_key
from infomediary.services.decisions import decide
from infomediary.services.uow import unit_of_work
from policies.model import Decision, Verdict

#: Lines one request may carry.
MAX_LINES = 1000
#: How long an Idempotency-Key is remembered.
KEY_LIFETIME = timedelta(hours=24)
#: A claim older than this whose work never finished (its process died) is taken over.
STALE_CLAIM = timedelta(minutes=10)
#: The status a claimed key holds while its request is processed.
PROCESSING = 0
PURCHASES = frozenset({"purchases"})
#: The recurring job that deletes expired keys, and how often it runs.
EXPIRE_JOB = "idempotency_keys_expire"
EXPIRE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PushRequest:
    """A validated batch: its lines (UTC times; ``line_number`` its place in the batch,
    from 1; their ``source`` is set to the client's name), the ``Idempotency-Key`` and what
    identifies the request (method, path, the body in canonical JSON)."""

    lines: tuple[PurchaseLine, ...]
    idempotency_key: str
    method: str
    path: str
    canonical_body: bytes


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """The status and JSON body answered (again, when ``replayed``)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def canonical_json(value: Any) -> bytes:
    """The body as hashed: keys sorted, no spaces, UTF-8 (the same JSON, however written)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def request_hash(customer_id: str, push: PushRequest) -> bytes:
    digest = hashlib.sha256(b"purchases/push/v1")
    for part in (customer_id.encode(), push.method.encode(), push.path.encode()):
        digest.update(len(part).to_bytes(4, "big") + part)
    digest.update(push.canonical_body)
    return digest.digest()


def _reason(verdict: Verdict, supplier: Supplier, purpose: str) -> Reason:
    """The refusal as the entry's reason gives it: the deciding rules, by category."""
    return Reason(
        "push.refused",
        {"verdict": verdict_param(verdict, supplier=supplier.id, purpose=purpose)},
    )


def _response(row: IdempotencyKey) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(row.response)
    return body


def _claim(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    customer_id: str,
    purpose: str,
    push: PushRequest,
    ctx: Context,
) -> tuple[str, PushAnswer | None]:
    """The policy decision and the key's claim (a unit of work): the claim's id, and the
    answer given before when this is a replay."""
    now = utcnow()
    wanted = request_hash(customer_id, push)
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("The customer no longer exists.")
        verdict = decide(session, inst, customer_id, supplier, purpose, PURCHASES)
        if "purchases" not in verdict.allowed_categories():
            ctx.log(
                session,
                "import",
                customer_id=customer_id,
                reason=_reason(verdict, supplier, purpose),
                categories=PURCHASES,
                purpose=purpose,
                allowed=False,
            )
            uow.commit()
            withheld = [
                {"category": v.category, "reason": v.reason}
                for v in verdict.categories
                if v.decision != Decision.ALLOW
            ]
            raise PolicyDenied(
                "The customer's policy does not allow adding purchases now.", withheld
            )
        hashed = key_hash(push.idempotency_key)
        row = session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.supplier_id == supplier.id, IdempotencyKey.key_hash == hashed
            )
        ).scalar_one_or_none()
        if row is not None and row.expires_at <= now:
            session.delete(row)
            session.flush()
            row = None
        if row is not None:
            if row.request_hash != wanted:
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was used for another request: use a new key for "
                    "a new batch."
                )
            if row.status_code != PROCESSING:
                ctx.log(
                    session,
                    "import",
                    customer_id=customer_id,
                    reason=Reason("push.replayed"),
                    categories=PURCHASES,
                    purpose=purpose,
                )
                answer = PushAnswer(row.status_code, _response(row), replayed=True)
                uow.commit()
                return row.id, answer
            if row.created_at > now - STALE_CLAIM or not rowcount(
                session.execute(
                    update(IdempotencyKey)
                    .where(
                        IdempotencyKey.id == row.id,
                        IdempotencyKey.status_code == PROCESSING,
                        IdempotencyKey.created_at == row.created_at,
                    )
                    .values(created_at=now)
                    .execution_options(synchronize_session=False)
                )
            ):
                raise IdempotencyKeyInUse(
                    "A request with this Idempotency-Key is still being processed: retry later."
                )
            claim_id = row.id
        else:
            claim_id = str(uuid.uuid4())
            session.add(
                IdempotencyKey(
                    id=claim_id,
                    supplier_id=supplier.id,
                    key_hash=hashed,
                    request_hash=wanted,
                    status_code=PROCESSING,
                    response="",
                    created_at=now,
                    expires_at=now + KEY_LIFETIME,
                )
            )
        jobs.enqueue(session, EXPIRE_JOB, {}, key=EXPIRE_JOB)
        try:
            uow.commit()
        except IntegrityError:  # a concurrent request claimed the key first
            raise IdempotencyKeyInUse(
                "A request with this Idempotency-Key is still being processed: retry later."
            ) from None
    return claim_id, None


def _answer(session: Session, claim_id: str, answer: PushAnswer) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim_id)
        .values(status_code=answer.status, response=json.dumps(answer.body, sort_keys=True))
        .execution_options(synchronize_session=False)
    )


def _release(session: Session, claim_id: str) -> None:
    """Best effort after a failure: the key may be used again (the work left nothing)."""
    try:
        session.rollback()
        with unit_of_work(session) as uow:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == claim_id))
            uow.commit()
    except Exception:  # noqa: S110 - the original failure is what the caller must see
        pass


def push(
    session: Session,
    inst: Instance,
    token: OAuthToken,
    request: PushRequest,
    ctx: Context,
    *,
    job_lines: int,
    status_url: str,
) -> PushAnswer:
    """Add a pushed batch to the purchases of ``token``'s customer (the token holds
    ``purchases:write``; ``ctx`` is its supplier's): 201 with the counts when imported at
    once, 202 with the job (``status_url`` followed by its id) when the batch has more than
    ``job_lines`` lines; the answer given before for a replayed key and request."""
    supplier = session.get(Supplier, token.supplier_id)
    if supplier is None or token.customer_id is None:
        raise NotFound("This token is not bound to a customer.")
    customer_id, purpose, supplier_id = token.customer_id, token.purpose, supplier.id
    source = supplier.name or supplier.client_id
    claim_id, replayed = _claim(session, inst, supplier, customer_id, purpose, request, ctx)
    if replayed is not None:
        return replayed
    lines = [replace(line, source=source) for line in request.lines]
    try:
        if len(request.lines) > job_lines:
            with unit_of_work(session) as uow:
                key = customer_key(session, inst, customer_id)
                queued = purchase_uploads.queue_push(
                    session,
                    inst,
                    key,
                    lines,
                    source,
                    supplier_id,
                    ctx.request_id,
                )
                answer = PushAnswer(
                    202,
                    {
                        "job": queued.upload_id,
                        "status": "queued",
                        "status_url": f"{status_url}{queued.upload_id}",
                    },
                )
                _answer(session, claim_id, answer)
                ctx.log(
                    session,
                    "import",
                    customer_id=customer_id,
                    reason=Reason("push.queued", {"lines": len(request.lines)}),
                    categories=PURCHASES,
                    purpose=purpose,
                )
                uow.commit()
            return answer
        result = purchases.import_lines(
            session,
            inst,
            customer_id,
            lines,
            purchase_uploads.PUSH_FORMAT,
            source,
            ctx=ctx,
            supplier_id=supplier_id,
        )
    except BaseException:
        _release(session, claim_id)
        raise
    answer = PushAnswer(
        201,
        {
            "imported": result.imported,
            "duplicates": result.duplicates,
            "rejected": result.rejected,
            "import": result.import_id,
        },
    )
    with unit_of_work(session) as uow:
        _answer(session, claim_id, answer)
        uow.commit()
    return answer


def job_status(session: Session, token: OAuthToken, job_id: str) -> dict[str, Any]:
    """A pushed batch's job as the client and customer of ``token`` see it; NotFound for
    anyone else's."""
    found = None
    if token.customer_id is not None:
        found = purchase_uploads.job_status(session, job_id, token.supplier_id, token.customer_id)
    if found is None:
        raise NotFound("No such job.")
    return found


# -- expiry ------------------------------------------------------------------------------------
def expire_keys(session: Session, now: datetime | None = None) -> int:
    """Delete every Idempotency-Key past its lifetime (a unit of work); returns how many."""
    with unit_of_work(session) as uow:
        gone = rowcount(
            session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.expires_at <= (now or utcnow()))
            )
        )
        uow.commit()
    return gone


def _expire_job(session: Session, inst: Instance, run: jobs.JobRun) -> datetime:
    expire_keys(session, run.now)
    return run.now + EXPIRE_EVERY


jobs.register(EXPIRE_JOB, _expire_job, max_attempts=5)
