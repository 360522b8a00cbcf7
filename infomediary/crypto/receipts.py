"""Signed consent receipts: build, sign and verify.

Every grant, change and revocation of a supplier's access yields a receipt the customer can
download and check against the platform's published key set (JWKS). A receipt is a compact
JWS whose payload carries

* the Kantara Initiative Consent Receipt v1.1 fields (``version`` ... ``spiCat``),
* the same consent mapped to ISO/IEC TS 27560 record fields under ``"iso27560"``, and
* JWT registered claims ``iss``, ``sub``, ``iat`` and ``jti`` (deliberately no ``exp``: a
  receipt stays verifiable for as long as its key is published), and
* ``log_index`` and ``log_leaf_hash``: the access-log entry that records the same event, its
  index (leaf number, 0 first) and its RFC 9162 leaf hash in lowercase hex, so the signature
  binds the receipt to one leaf of the transparency log. Receipts issued before these claims
  existed carry neither and stay valid.

The signature is Ed25519 under the JWS algorithm name ``"Ed25519"`` from RFC 9864, which
deprecates the polymorphic ``"EdDSA"`` name; joserfc emits a ``SecurityWarning`` whenever
``"EdDSA"`` is used, so neither signing nor verification uses or accepts it.

This module is pure: no Flask, no database. The caller gathers :class:`ReceiptFacts`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import OKPKey

from infomediary.statuses import ReceiptEvent

RECEIPT_VERSION = "KI-CR-v1.1.0"
#: JWS ``typ`` header (explicit typing, RFC 8725 section 3.11).
RECEIPT_TYP = "consent-receipt+jwt"
#: JWS algorithm: Ed25519 by its fully-specified RFC 9864 name.
ALGORITHM = "Ed25519"
COLLECTION_METHOD = "web dashboard consent screen"
LANGUAGE = "en"
EVENTS = tuple(ReceiptEvent)
#: Our event names mapped to ISO/IEC TS 27560 consent event types.
ISO_27560_EVENTS: dict[str, str] = {
    ReceiptEvent.GRANTED: "given",
    ReceiptEvent.CHANGED: "modified",
    ReceiptEvent.REVOKED: "withdrawn",
}
ISO_27560_SCHEMA = "ISO/IEC TS 27560:2023"
SEED_SIZE = 32
#: An RFC 9162 leaf hash is a SHA-256 digest.
LEAF_HASH_SIZE = 32

_ALLOWED_HEADERS = frozenset({"alg", "kid", "typ"})
_EMAIL_LIKE = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")


class ReceiptError(ValueError):
    """A consent receipt is malformed, unsigned, signed by an unknown key or tampered with."""


@dataclass(frozen=True)
class ReceiptFacts:
    """Everything a receipt states, gathered by the caller; validated on construction."""

    receipt_id: str
    event: str
    issued_at: datetime
    controller_name: str
    controller_contact: str
    policy_url: str
    subject: str
    jurisdiction: str
    supplier_id: str
    supplier_name: str
    supplier_privacy_policy_url: str | None
    grant_id: str
    purpose: str
    purpose_label: str
    scopes: tuple[str, ...]
    categories: tuple[str, ...]
    sensitive_categories: tuple[str, ...]
    consent_text_version: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    #: The controller's URL (``iss``, ``piiControllerUrl``); defaults to the origin of
    #: ``policy_url``.
    controller_url: str | None = None
    #: The access-log entry recording this event: its index and its leaf hash (both or neither).
    log_index: int | None = None
    log_leaf_hash: bytes | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"receipt event must be one of {EVENTS}, not {self.event!r}")
        for name in ("issued_at", "granted_at", "expires_at", "revoked_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"receipt {name} must be timezone-aware")
        if not self.receipt_id:
            raise ValueError("receipt_id is required")
        if not self.subject or "@" in self.subject:
            raise ValueError("receipt subject must be a pairwise pseudonym, never an email address")
        if self.event == "revoked" and self.revoked_at is None:
            raise ValueError("a revocation receipt needs revoked_at")
        if (self.log_index is None) != (self.log_leaf_hash is None):
            raise ValueError("a receipt names its log entry by index and leaf hash together")
        if self.log_index is not None and (
            isinstance(self.log_index, bool) or not isinstance(self.log_index, int)
        ):
            raise ValueError("log_index must be a whole number")
        if self.log_index is not None and self.log_index < 0:
            raise ValueError("log_index is a leaf number, 0 or more")
        if self.log_leaf_hash is not None and len(self.log_leaf_hash) != LEAF_HASH_SIZE:
            raise ValueError(f"log_leaf_hash must be {LEAF_HASH_SIZE} bytes (SHA-256)")

    @property
    def issuer(self) -> str:
        if self.controller_url:
            return self.controller_url
        parts = urlsplit(self.policy_url)
        if not parts.scheme or not parts.netloc:
            raise ValueError("policy_url must be absolute when controller_url is not given")
        return f"{parts.scheme}://{parts.netloc}"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _termination(facts: ReceiptFacts) -> str:
    if facts.revoked_at is not None:
        return f"Consent withdrawn by the PII principal at {_iso(facts.revoked_at)}."
    if facts.expires_at is not None:
        return (
            f"Consent ends at {_iso(facts.expires_at)}, or earlier when the PII principal "
            "withdraws it from the dashboard."
        )
    return "Consent lasts until the PII principal withdraws it from the dashboard."


def receipt_claims(facts: ReceiptFacts) -> dict[str, Any]:
    """The receipt's JSON payload: Kantara CR v1.1 fields, ISO/IEC TS 27560 fields, JWT claims."""
    issuer = facts.issuer
    categories = list(facts.categories)
    sensitive = list(facts.sensitive_categories)
    termination = _termination(facts)

    controller: dict[str, Any] = {
        "piiController": facts.controller_name,
        "contact": facts.controller_contact,
        "piiControllerUrl": issuer,
        "onBehalf": False,
    }
    if _EMAIL_LIKE.fullmatch(facts.controller_contact):
        controller["email"] = facts.controller_contact

    recipient: dict[str, Any] = {"id": facts.supplier_id, "name": facts.supplier_name}
    if facts.supplier_privacy_policy_url:
        recipient["privacy_policy_url"] = facts.supplier_privacy_policy_url

    claims: dict[str, Any] = {
        # -- JWT registered claims ---------------------------------------------------------
        "iss": issuer,
        "sub": facts.subject,
        "iat": _epoch(facts.issued_at),
        "jti": facts.receipt_id,
        # -- Kantara Consent Receipt v1.1 --------------------------------------------------
        "version": RECEIPT_VERSION,
        "jurisdiction": facts.jurisdiction,
        "consentTimestamp": _epoch(facts.issued_at),
        "collectionMethod": COLLECTION_METHOD,
        "consentReceiptID": facts.receipt_id,
        "language": LANGUAGE,
        "piiPrincipalId": facts.subject,
        "piiControllers": [controller],
        "policyUrl": facts.policy_url,
        "services": [
            {
                "service": facts.supplier_name,
                "purposes": [
                    {
                        "purpose": facts.purpose_label,
                        "purposeCategory": [facts.purpose],
                        "consentType": "EXPLICIT",
                        "piiCategory": categories,
                        "primaryPurpose": True,
                        "termination": termination,
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": facts.supplier_name,
                    }
                ],
            }
        ],
        "sensitive": bool(sensitive),
        "spiCat": sensitive,
        # -- ISO/IEC TS 27560 consent record -----------------------------------------------
        "iso27560": {
            "schema_version": ISO_27560_SCHEMA,
            "record_id": facts.receipt_id,
            "consent_id": facts.grant_id,
            "pii_principal_id": facts.subject,
            "event": ISO_27560_EVENTS[facts.event],
            "event_time": _iso(facts.issued_at),
            "consent_type": "explicit",
            "collection_method": COLLECTION_METHOD,
            "jurisdiction": facts.jurisdiction,
            "notice": {
                "url": facts.policy_url,
                "consent_text_version": facts.consent_text_version,
                "language": LANGUAGE,
            },
            "processing": [
                {
                    "purpose": facts.purpose,
                    "purpose_label": facts.purpose_label,
                    "legal_basis": "consent",
                    "pii_categories": categories,
                    "sensitive_pii_categories": sensitive,
                    "scopes": list(facts.scopes),
                    "operations": ["disclose"],
                }
            ],
            "data_controller": {
                "name": facts.controller_name,
                "contact": facts.controller_contact,
                "url": issuer,
            },
            "data_recipient": recipient,
            "duration": {
                "start": _iso(facts.granted_at),
                "end": _iso(facts.expires_at),
                "withdrawn_at": _iso(facts.revoked_at),
                "description": termination,
            },
        },
    }
    # -- the access-log entry of the same event (absent from receipts issued before) --------
    if facts.log_index is not None and facts.log_leaf_hash is not None:
        claims["log_index"] = facts.log_index
        claims["log_leaf_hash"] = facts.log_leaf_hash.hex()
    return claims


def log_citation(claims: Mapping[str, Any]) -> tuple[int, bytes] | None:
    """The log entry a receipt's claims name, as (index, leaf hash), or None for a receipt
    issued before receipts named one. Raises :class:`ReceiptError` for malformed claims."""
    index, leaf = claims.get("log_index"), claims.get("log_leaf_hash")
    if index is None and leaf is None:
        return None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ReceiptError("receipt log_index is not a leaf number")
    if not isinstance(leaf, str) or not _HEX_HASH.fullmatch(leaf):
        raise ReceiptError("receipt log_leaf_hash is not 64 lowercase hex digits")
    return index, bytes.fromhex(leaf)


def _payload(claims: Mapping[str, Any]) -> bytes:
    return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ReceiptSigner:
    """Signs receipts with an Ed25519 key derived from a 32-byte seed (a keyring secret)."""

    def __init__(self, seed: bytes, kid: str | None = None):
        if len(seed) != SEED_SIZE:
            raise ValueError(f"receipt signing seed must be {SEED_SIZE} bytes")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        if kid is None:
            kid = OKPKey.import_key(private).thumbprint()
        self.kid = kid
        self._key = OKPKey.import_key(private, {"kid": kid, "use": "sig", "alg": ALGORITHM})

    def sign(self, facts: ReceiptFacts) -> str:
        """The receipt as a compact JWS (``alg`` Ed25519, ``typ`` consent-receipt+jwt)."""
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": RECEIPT_TYP}
        return jws.serialize_compact(
            header, _payload(receipt_claims(facts)), self._key, algorithms=[ALGORITHM]
        )

    def sign_claims(self, claims: Mapping[str, Any], typ: str) -> str:
        """Another signed record of the platform (``typ`` says which, RFC 8725 section 3.11),
        as a compact JWS under the same key: a MyTerms agreement, say."""
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": typ}
        return jws.serialize_compact(header, _payload(claims), self._key, algorithms=[ALGORITHM])

    def jwks(self) -> dict[str, Any]:
        """The public key set to publish (``kty``, ``crv``, ``x``, ``kid``, ``use``, ``alg``)."""
        return {"keys": [dict(self._key.as_dict(private=False))]}


def _find_key(jwks: Mapping[str, Any], kid: str) -> OKPKey:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ReceiptError("the key set is malformed: it has no 'keys' list")
    for jwk in keys:
        if not isinstance(jwk, Mapping) or jwk.get("kid") != kid:
            continue
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ReceiptError(f"key {kid!r} is not an Ed25519 key")
        public = {k: v for k, v in jwk.items() if k != "d"}
        try:
            return OKPKey.import_key(public)
        except (JoseError, ValueError, TypeError) as exc:
            raise ReceiptError(f"key {kid!r} in the key set is malformed") from exc
    raise ReceiptError(f"receipt is signed by an unknown key {kid!r}")


def verify_receipt(token: str, jwks: dict[str, Any], typ: str = RECEIPT_TYP) -> dict[str, Any]:
    """Verify a receipt (or another record of type ``typ``) against a published key set;
    return its claims.

    Only ``alg`` Ed25519 with a ``kid`` found in ``jwks`` is accepted (never ``none``, HMAC or
    the deprecated ``EdDSA``); raises :class:`ReceiptError` otherwise.
    """
    if not isinstance(token, str) or not token.isascii():
        raise ReceiptError("receipt is malformed: not a compact JWS string")
    try:
        extracted = jws.extract_compact(token.encode("ascii"))
        header = extracted.headers()
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptError("receipt is malformed: not a compact JWS") from exc
    if not isinstance(header, dict):
        raise ReceiptError("receipt is malformed: its header is not a JSON object")

    alg = header.get("alg")
    if alg != ALGORITHM:
        raise ReceiptError(f"receipt algorithm {alg!r} is not accepted; only {ALGORITHM}")
    if header.get("typ") != typ:
        raise ReceiptError(f"receipt type {header.get('typ')!r} is not {typ!r}")
    unexpected = set(header) - _ALLOWED_HEADERS
    if unexpected:
        raise ReceiptError(f"receipt header has unexpected parameters {sorted(unexpected)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ReceiptError("receipt header names no key (kid)")

    key = _find_key(jwks, kid)
    try:
        verified = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
    except BadSignatureError as exc:
        raise ReceiptError(
            "receipt signature is invalid: altered or signed by another key"
        ) from exc
    except JoseError as exc:
        raise ReceiptError(f"receipt cannot be verified: {exc}") from exc

    try:
        claims = json.loads(verified.payload)
    except ValueError as exc:
        raise ReceiptError("receipt payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise ReceiptError("receipt payload is not a JSON object")
    return claims
