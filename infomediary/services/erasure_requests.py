"""Asking a supplier to delete what it holds about a customer: the request, its delivery to the
supplier's webhook (a job, retried with backoff), and the supplier's confirmation.

The webhook body is JSON ``{"type": "erasure_request", "id", "subject", "requested_at",
"confirm_url"}``; ``subject`` is the pairwise pseudonym the supplier knows the customer by.
It is signed Stripe-like: header ``Infomediary-Signature: t=<unix time>,v1=<hex
HMAC-SHA256(secret, "<t>." + body)>``, under a secret per supplier that ``set_webhook``
generates, shows once and stores sealed (AES-256-GCM under a key derived with HKDF from the
keyring's pseudonym key, bound to the supplier's id). Only https URLs receive requests; plain
http to the loopback is allowed outside production, for development. Each attempt and the
outcome is an entry on the customer's log. This is not the customer's own account erasure
(:mod:`infomediary.services.erasure`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import secrets
import socket
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, ActorType
from infomediary.audit.reasons import Param, Reason
from infomediary.errors import InvalidWebhook, NotFound, ServiceError
from infomediary.instance import Instance
from infomediary.models import ErasureRequest, Job, Supplier, SupplierWebhook, utcnow
from infomediary.services import Context, jobs
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.refusals import refuse_supplier
from infomediary.services.supplier_dealings import dealt_with
from infomediary.services.suppliers import find_supplier
from infomediary.services.uow import unit_of_work
from infomediary.statuses import ErasureStatus, JobStatus

JOB = "erasure_request.deliver"
HEADER = "Infomediary-Signature"
#: Seconds a delivery waits for the supplier's answer.
TIMEOUT_SECONDS = 5.0
MAX_ATTEMPTS = 6
MAX_URL_LENGTH = 512
_KEY_INFO = b"infomediary supplier webhook secret v1"
_SEAL_VERSION = 1
_NONCE = 12
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
BY_WEBHOOK = Context(Actor(ActorType.SYSTEM, "erasure-webhook"))


class DeliveryFailed(ServiceError):
    """The supplier's webhook did not accept an erasure request (retried by the job runner)."""

    code = "erasure_delivery_failed"


# -- the webhook's secret, sealed --------------------------------------------------------------


def _aead(inst: Instance) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
        inst.keyring.secret("pseudonym")
    )
    return AESGCM(key)


def _ad(supplier_id: str) -> bytes:
    return f"v{_SEAL_VERSION}|supplier_webhooks|{supplier_id}|secret".encode()


def seal_secret(inst: Instance, supplier_id: str, secret: str) -> bytes:
    nonce = os.urandom(_NONCE)
    return (
        bytes([_SEAL_VERSION])
        + nonce
        + _aead(inst).encrypt(nonce, secret.encode(), _ad(supplier_id))
    )


def open_secret(inst: Instance, supplier_id: str, blob: bytes) -> str:
    if len(blob) < 1 + _NONCE + 16 or blob[0] != _SEAL_VERSION:
        raise ValueError(f"the webhook secret of {supplier_id} is not a sealed value")
    try:
        plain = _aead(inst).decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], _ad(supplier_id))
    except InvalidTag:
        raise ValueError(f"the webhook secret of {supplier_id} does not authenticate") from None
    return plain.decode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Infomediary-Signature`` header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (none if it does not resolve)."""
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return []
    addresses = []
    for *_rest, sockaddr in found:
        try:
            addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        except ValueError:
            return []
    return addresses


def _checked(inst: Instance, url: str) -> tuple[str | None, str | None]:
    """Why ``url`` cannot receive requests (or None), and the address to connect to: https
    to a host whose every address is public, or loopback http outside production; no user
    information, no fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        return "not a URL", None
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return f"must be at most {MAX_URL_LENGTH} characters, without spaces", None
    if "@" in parts.netloc or parts.fragment:
        return "must not contain user information or a fragment", None
    host = parts.hostname
    if parts.scheme == "https" and host:
        addresses = _resolve(host, port or 443)
        if not addresses:
            return "the host name does not resolve", None
        if not all(_public(address) for address in addresses):
            return "must reach a public address (not a private, loopback or local one)", None
        return None, str(addresses[0])
    if parts.scheme == "http" and host in _LOOPBACK and not inst.settings.production:
        addresses = _resolve(host, port or 80)
        if addresses and all(address.is_loopback for address in addresses):
            return None, str(addresses[0])
    return "must be an https URL", None


def check_webhook_url(inst: Instance, url: str) -> str | None:
    """Why ``url`` cannot receive requests, or None (see :func:`_checked`)."""
    return _checked(inst, url)[0]


# -- the operator registers a supplier's webhook -----------------------------------------------


@dataclass(frozen=True, slots=True)
class NewWebhook:
    supplier_id: str
    url: str
    #: Shown once; only its sealed form is kept.
    secret: str
    #: Requests waiting for a webhook, now queued for delivery.
    queued: int


def set_webhook(
    session: Session, inst: Instance, ref: str, url: str, base_url: str, ctx: Context
) -> NewWebhook:
    """Give SUPPLIER (id, client_id or name) the webhook ``url`` and a new signing secret
    (returned once). Requests that were waiting for a webhook are queued for delivery."""
    with unit_of_work(session) as uow:
        supplier = find_supplier(session, ref)
        problem = check_webhook_url(inst, url)
        if problem:
            raise InvalidWebhook({"url": problem}, "The webhook URL is invalid.")
        secret = "whsec_" + secrets.token_urlsafe(32)
        sealed = seal_secret(inst, supplier.id, secret)
        row = session.get(SupplierWebhook, supplier.id)
        if row is None:
            session.add(SupplierWebhook(supplier_id=supplier.id, url=url, secret=sealed))
        else:
            row.url, row.secret, row.created_at = url, sealed, utcnow()
        waiting = session.execute(
            select(ErasureRequest.id).where(
                ErasureRequest.supplier_id == supplier.id,
                ErasureRequest.status.in_([ErasureStatus.REQUESTED, ErasureStatus.FAILED]),
            )
        ).scalars()
        queued = sum(_enqueue(session, str(request_id), base_url) for request_id in waiting)
        ctx.log(session, "update", reason=Reason("supplier.webhook_set", {"supplier": supplier.id}))
        uow.commit()
        return NewWebhook(supplier.id, url, secret, queued)


def has_webhook(session: Session, supplier_id: str) -> bool:
    return session.get(SupplierWebhook, supplier_id) is not None


# -- the customer asks -------------------------------------------------------------------------


def _enqueue(session: Session, request_id: str, base_url: str) -> bool:
    """Queue the request's delivery, unless one is already waiting or running (the supplier
    would receive it twice); whether one was queued."""
    pending = session.execute(
        select(Job.payload).where(
            Job.kind == JOB, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
        )
    ).scalars()
    if any(json.loads(payload).get("request") == request_id for payload in pending):
        return False
    jobs.enqueue(session, JOB, {"request": request_id, "base_url": base_url})
    return True


def _open_request(session: Session, customer_id: str, supplier_id: str) -> ErasureRequest | None:
    """The customer's request of this supplier not yet confirmed (at most one: an index)."""
    return session.execute(
        select(ErasureRequest).where(
            ErasureRequest.customer_id == customer_id,
            ErasureRequest.supplier_id == supplier_id,
            ErasureRequest.status != ErasureStatus.CONFIRMED,
        )
    ).scalar_one_or_none()


def request_erasure(
    session: Session,
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    ctx: Context,
    base_url: str,
) -> ErasureRequest:
    """The customer asks the supplier to delete their data: a request naming the subject the
    supplier knows them by, delivered by a job when the supplier has a webhook. A request
    still open (not confirmed) is the request: asking again adds none."""
    with unit_of_work(session) as uow:
        supplier = session.get(Supplier, supplier_id)
        if supplier is None or not dealt_with(session, inst, customer_id, supplier_id):
            raise NotFound("No such supplier.")
        open_one = _open_request(session, customer_id, supplier_id)
        if open_one is not None:
            if open_one.status == ErasureStatus.FAILED and has_webhook(session, supplier_id):
                open_one.status = ErasureStatus.REQUESTED
                _enqueue(session, open_one.id, base_url)
                ctx.log(
                    session,
                    "erase",
                    customer_id=customer_id,
                    reason=Reason(
                        "erasure.requested_again",
                        {"supplier": supplier_id, "request": open_one.id},
                    ),
                )
                uow.commit()
            return open_one
        found = ErasureRequest(
            id=str(uuid.uuid4()),
            customer_id=customer_id,
            supplier_id=supplier_id,
            subject=pairwise_pseudonym(inst, supplier_id, customer_id),
            status=ErasureStatus.REQUESTED,
            attempts=0,
            requested_at=utcnow(),
        )
        try:
            with session.begin_nested():  # a savepoint: losing the race keeps the look-ups
                session.add(found)
        except IntegrityError:
            # A request of this customer's for this supplier, made at the same moment, was
            # stored first (one open request each: an index): that one is the answer.
            raced = _open_request(session, customer_id, supplier_id)
            if raced is None:
                raise
            return raced
        ctx.log(
            session,
            "erase",
            customer_id=customer_id,
            reason=Reason("erasure.requested", {"supplier": supplier_id, "request": found.id}),
        )
        if has_webhook(session, supplier_id):
            _enqueue(session, found.id, base_url)
        uow.commit()
        return found


def requests_of(session: Session, customer_id: str, supplier_id: str) -> list[ErasureRequest]:
    return list(
        session.execute(
            select(ErasureRequest)
            .where(
                ErasureRequest.customer_id == customer_id,
                ErasureRequest.supplier_id == supplier_id,
            )
            .order_by(ErasureRequest.requested_at.desc())
        ).scalars()
    )


# -- delivery: the job -------------------------------------------------------------------------


def body_of(found: ErasureRequest, base_url: str) -> bytes:
    return json.dumps(
        {
            "type": "erasure_request",
            "id": found.id,
            "subject": found.subject,
            "requested_at": found.requested_at.isoformat(),
            "confirm_url": f"{base_url.rstrip('/')}/api/v1/erasure-requests/{found.id}/confirm",
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def _post(url: str, address: str, body: bytes, header: str) -> int:
    """POST the request to ``address``, the one checked for ``url``'s host (the TLS name and
    the Host header stay the URL's); the HTTP status, or raises :class:`DeliveryFailed`. A
    redirect is not a delivery: it could lead anywhere."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, parts.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(host, parts.port, timeout=TIMEOUT_SECONDS)

    def pinned(
        target: tuple[str, int], timeout: float, source: tuple[str, int] | None = None
    ) -> socket.socket:
        return socket.create_connection((address, target[1]), timeout, source)

    connection._create_connection = pinned  # type: ignore[attr-defined]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", HEADER: header, "User-Agent": "Infomediary"}
    try:
        connection.request("POST", path, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, ValueError):
        raise DeliveryFailed("failed") from None
    finally:
        connection.close()
    if not 200 <= status < 300:
        raise DeliveryFailed("failed")
    return int(status)


def deliver(session: Session, inst: Instance, run: jobs.JobRun) -> datetime | None:
    """The job: POST the signed request to the supplier's webhook. Success marks it
    delivered; a failure is logged and raised (retried with backoff), the last one marks the
    request failed."""
    request_id = str(run.payload["request"])
    base_url = str(run.payload.get("base_url") or inst.settings.issuer or "http://localhost")
    found = session.get(ErasureRequest, request_id)
    hook = session.get(SupplierWebhook, found.supplier_id) if found is not None else None
    if found is None or hook is None or found.status == ErasureStatus.CONFIRMED:
        session.rollback()
        return None
    url, secret = hook.url, open_secret(inst, hook.supplier_id, hook.secret)
    body = body_of(found, base_url)
    session.rollback()  # no transaction is held while the supplier answers
    error: str | None = None
    # Resolved again at every delivery, and the connection made to the address checked: a
    # name that turned private since registration is not called.
    problem, address = _checked(inst, url)
    if problem or address is None:
        error = "failed"
    else:
        try:
            _post(url, address, body, signature(secret, int(utcnow().timestamp()), body))
        except DeliveryFailed:
            error = "failed"
    with unit_of_work(session) as uow:
        found = session.get_one(ErasureRequest, request_id)
        found.attempts += 1
        found.last_attempt_at = run.now
        params: dict[str, Param] = {
            "supplier": found.supplier_id,
            "request": found.id,
            "attempt": run.attempt,
        }
        if error is None:
            if found.status != ErasureStatus.CONFIRMED:
                found.status = ErasureStatus.DELIVERED
            found.delivered_at = found.delivered_at or run.now
            BY_WEBHOOK.log(
                session,
                "erase",
                customer_id=found.customer_id,
                reason=Reason("erasure.delivered", params),
            )
            jobs.complete(session, run)
            uow.commit()
            return None
        last = run.attempt >= run.max_attempts
        if last:
            found.status = ErasureStatus.FAILED
            found.failed_at = run.now
            BY_WEBHOOK.log(
                session,
                "erase",
                customer_id=found.customer_id,
                reason=Reason("erasure.failed", params),
                allowed=False,
            )
            jobs.complete(session, run)
            uow.commit()
            return None
        BY_WEBHOOK.log(
            session,
            "erase",
            customer_id=found.customer_id,
            reason=Reason("erasure.attempt_failed", {**params, "error": error}),
            allowed=False,
        )
        uow.commit()
    raise DeliveryFailed(error)


jobs.register(JOB, deliver, max_attempts=MAX_ATTEMPTS, lease_seconds=60)


# -- the supplier confirms ---------------------------------------------------------------------


def confirm(session: Session, supplier_id: str, request_id: str, ctx: Context) -> ErasureRequest:
    """The supplier confirms it deleted the customer's data. Idempotent: a confirmed request
    stays confirmed at its first time. Another supplier's request (or none) is not found,
    and the refusal is logged (naming no customer)."""
    with unit_of_work(session) as uow:
        found = session.get(ErasureRequest, request_id)
        if found is None or found.supplier_id != supplier_id:
            refuse_supplier(session, ctx, action="erase", reason=Reason("erasure.confirm_refused"))
            raise NotFound("No such erasure request.")
        if found.status == ErasureStatus.CONFIRMED:
            return found
        found.status = ErasureStatus.CONFIRMED
        found.confirmed_at = utcnow()
        ctx.log(
            session,
            "erase",
            customer_id=found.customer_id,
            reason=Reason("erasure.confirmed", {"supplier": supplier_id, "request": found.id}),
        )
        uow.commit()
        return found
