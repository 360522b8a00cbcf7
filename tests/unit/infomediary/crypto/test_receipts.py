"""Consent receipts: Kantara/ISO 27560 claims, Ed25519 JWS signing and strict verification."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from infomediary.crypto.receipts import (
    RECEIPT_VERSION,
    ReceiptError,
    ReceiptFacts,
    ReceiptSigner,
    receipt_claims,
    verify_receipt,
)

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
EMAIL_LIKE = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")

KANTARA_TOP = {
    "version",
    "jurisdiction",
    "consentTimestamp",
    "collectionMethod",
    "consentReceiptID",
    "language",
    "piiPrincipalId",
    "piiControllers",
    "policyUrl",
    "services",
    "sensitive",
    "spiCat",
}
KANTARA_CONTROLLER = {"piiController", "contact", "piiControllerUrl", "onBehalf"}
KANTARA_PURPOSE = {
    "purpose",
    "purposeCategory",
    "consentType",
    "piiCategory",
    "primaryPurpose",
    "termination",
    "thirdPartyDisclosure",
    "thirdPartyName",
}
ISO_FIELDS = {
    "record_id",
    "event",
    "event_time",
    "processing",
    "data_controller",
    "data_recipient",
    "duration",
}


def make_facts(**changes: Any) -> ReceiptFacts:
    facts = ReceiptFacts(
        receipt_id=str(uuid.UUID(int=42)),
        event="granted",
        issued_at=NOW,
        controller_name="Infomediary",
        controller_contact="privacy@infomediary.example",
        policy_url="https://infomediary.example/privacy",
        subject="pw-3f9c2a7d1e",
        jurisdiction="AU",
        supplier_id="sup-1",
        supplier_name="Acme Outdoors",
        supplier_privacy_policy_url="https://acme.example/privacy",
        grant_id="grant-7",
        purpose="marketing",
        purpose_label="Send you offers about outdoor gear",
        scopes=("profile.identity:read", "profile.interests:read"),
        categories=("identity", "interests"),
        sensitive_categories=(),
        consent_text_version="consent-2025-01",
        granted_at=NOW,
        expires_at=NOW + timedelta(days=365),
        revoked_at=None,
    )
    return dataclasses.replace(facts, **changes)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(unb64url(token.split(".")[0]))
    return header


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings_in(v)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


@pytest.fixture(scope="module")
def signer() -> ReceiptSigner:
    return ReceiptSigner(SEED)


# -- signing and verifying -------------------------------------------------------------------
def test_sign_verify_round_trip(signer: ReceiptSigner) -> None:
    facts = make_facts()
    token = signer.sign(facts)
    assert verify_receipt(token, signer.jwks()) == receipt_claims(facts)
    assert header_of(token) == {"alg": "Ed25519", "kid": signer.kid, "typ": "consent-receipt+jwt"}


def test_verifies_against_a_jwks_that_went_through_json(signer: ReceiptSigner) -> None:
    token = signer.sign(make_facts())
    published = json.loads(json.dumps(signer.jwks()))
    assert verify_receipt(token, published)["jti"] == make_facts().receipt_id


def test_signature_is_plain_ed25519_over_the_signing_input(signer: ReceiptSigner) -> None:
    token = signer.sign(make_facts())
    head, payload, sig = token.split(".")
    public = Ed25519PublicKey.from_public_bytes(unb64url(signer.jwks()["keys"][0]["x"]))
    public.verify(unb64url(sig), f"{head}.{payload}".encode())  # raises if invalid


def test_tampered_payload_fails(signer: ReceiptSigner) -> None:
    token = signer.sign(make_facts())
    head, payload, sig = token.split(".")
    claims = json.loads(unb64url(payload))
    claims["iso27560"]["event"] = "withdrawn"
    forged = f"{head}.{b64url_json(claims)}.{sig}"
    with pytest.raises(ReceiptError, match="signature is invalid"):
        verify_receipt(forged, signer.jwks())


def test_tampered_signature_fails(signer: ReceiptSigner) -> None:
    token = signer.sign(make_facts())
    head, payload, sig = token.split(".")
    raw = bytearray(unb64url(sig))
    raw[0] ^= 1
    with pytest.raises(ReceiptError, match="signature is invalid"):
        verify_receipt(f"{head}.{payload}.{b64url(bytes(raw))}", signer.jwks())


def test_signature_by_another_key_under_our_kid_fails(signer: ReceiptSigner) -> None:
    impostor = ReceiptSigner(OTHER_SEED, kid=signer.kid)
    with pytest.raises(ReceiptError, match="signature is invalid"):
        verify_receipt(impostor.sign(make_facts()), signer.jwks())


def test_unknown_kid_fails(signer: ReceiptSigner) -> None:
    other = ReceiptSigner(OTHER_SEED)
    with pytest.raises(ReceiptError, match="unknown key"):
        verify_receipt(other.sign(make_facts()), signer.jwks())


def test_key_rotation_keeps_old_receipts_verifiable(signer: ReceiptSigner) -> None:
    new = ReceiptSigner(OTHER_SEED)
    published = {"keys": new.jwks()["keys"] + signer.jwks()["keys"]}
    assert verify_receipt(signer.sign(make_facts()), published)
    assert verify_receipt(new.sign(make_facts()), published)


# -- algorithm confusion and malformed input -------------------------------------------------
def test_alg_none_is_rejected(signer: ReceiptSigner) -> None:
    head = b64url_json({"alg": "none", "kid": signer.kid, "typ": "consent-receipt+jwt"})
    token = f"{head}.{b64url_json(receipt_claims(make_facts()))}."
    with pytest.raises(ReceiptError, match="'none' is not accepted"):
        verify_receipt(token, signer.jwks())


@pytest.mark.parametrize("secret_from", ["x_text", "x_bytes"])
def test_hs256_signed_with_the_public_key_is_rejected(
    signer: ReceiptSigner, secret_from: str
) -> None:
    # The classic confusion attack: HMAC keyed with the published public key.
    x = signer.jwks()["keys"][0]["x"]
    secret = x.encode() if secret_from == "x_text" else unb64url(x)
    head = b64url_json({"alg": "HS256", "kid": signer.kid, "typ": "consent-receipt+jwt"})
    payload = b64url_json(receipt_claims(make_facts()))
    mac = hmac.new(secret, f"{head}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(ReceiptError, match="'HS256' is not accepted"):
        verify_receipt(f"{head}.{payload}.{b64url(mac)}", signer.jwks())


def test_deprecated_eddsa_name_is_rejected_without_a_warning(signer: ReceiptSigner) -> None:
    # Validly signed by our key, but under the RFC 9864-deprecated polymorphic name.
    head = b64url_json({"alg": "EdDSA", "kid": signer.kid, "typ": "consent-receipt+jwt"})
    payload = b64url_json(receipt_claims(make_facts()))
    sig = Ed25519PrivateKey.from_private_bytes(SEED).sign(f"{head}.{payload}".encode())
    with pytest.raises(ReceiptError, match="'EdDSA' is not accepted"):
        verify_receipt(f"{head}.{payload}.{b64url(sig)}", signer.jwks())


def _resigned(header: dict[str, Any]) -> str:
    head = b64url_json(header)
    payload = b64url_json(receipt_claims(make_facts()))
    sig = Ed25519PrivateKey.from_private_bytes(SEED).sign(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{b64url(sig)}"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"alg": "Ed25519", "typ": "consent-receipt+jwt"}, "names no key"),
        ({"alg": "Ed25519", "kid": "KID", "typ": "JWT"}, "type 'JWT'"),
        ({"alg": "Ed25519", "kid": "KID"}, "type None"),
        (
            {"alg": "Ed25519", "kid": "KID", "typ": "consent-receipt+jwt", "b64": False},
            "b64|malformed",
        ),
        ({"alg": "Ed25519", "kid": "KID", "typ": "consent-receipt+jwt", "jku": "x"}, "jku"),
    ],
)
def test_unexpected_headers_are_rejected(
    signer: ReceiptSigner, header: dict[str, Any], message: str
) -> None:
    if header.get("kid") == "KID":
        header = {**header, "kid": signer.kid}
    with pytest.raises(ReceiptError, match=message):
        verify_receipt(_resigned(header), signer.jwks())


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "é.é.é",
        f"{b64url(b'[1, 2]')}.e30.",
        f"{b64url(b'not json')}.e30.",
        f"{b64url_json({'kid': 'k'})}.e30.",
    ],
)
def test_malformed_tokens_are_rejected(signer: ReceiptSigner, token: str) -> None:
    with pytest.raises(ReceiptError):
        verify_receipt(token, signer.jwks())


def test_non_string_token_is_rejected(signer: ReceiptSigner) -> None:
    token = signer.sign(make_facts()).encode()
    with pytest.raises(ReceiptError, match="malformed"):
        verify_receipt(token, signer.jwks())  # type: ignore[arg-type]


def test_non_object_payload_is_rejected(signer: ReceiptSigner) -> None:
    head = b64url_json({"alg": "Ed25519", "kid": signer.kid, "typ": "consent-receipt+jwt"})
    payload = b64url(b"[1,2,3]")
    sig = Ed25519PrivateKey.from_private_bytes(SEED).sign(f"{head}.{payload}".encode())
    with pytest.raises(ReceiptError, match="not a JSON object"):
        verify_receipt(f"{head}.{payload}.{b64url(sig)}", signer.jwks())


@pytest.mark.parametrize("jwks", [{}, {"keys": "nope"}, {"keys": [42]}])
def test_malformed_key_sets_are_rejected(signer: ReceiptSigner, jwks: dict[str, Any]) -> None:
    with pytest.raises(ReceiptError):
        verify_receipt(signer.sign(make_facts()), jwks)


def test_a_non_ed25519_key_under_the_kid_is_rejected(signer: ReceiptSigner) -> None:
    jwks = {"keys": [{"kty": "oct", "k": b64url(b"k" * 32), "kid": signer.kid}]}
    with pytest.raises(ReceiptError, match="not an Ed25519 key"):
        verify_receipt(signer.sign(make_facts()), jwks)


# -- keys ------------------------------------------------------------------------------------
def test_jwks_holds_only_public_material(signer: ReceiptSigner) -> None:
    keys = signer.jwks()["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert "d" not in jwk
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("OKP", "Ed25519", "sig", "Ed25519")
    assert b64url(SEED) not in json.dumps(signer.jwks())


def test_kid_is_the_rfc7638_thumbprint_and_stable_for_a_seed(signer: ReceiptSigner) -> None:
    x = signer.jwks()["keys"][0]["x"]
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    assert signer.kid == b64url(hashlib.sha256(canonical.encode()).digest())
    assert ReceiptSigner(SEED).kid == signer.kid
    assert ReceiptSigner(SEED).jwks() == signer.jwks()
    assert ReceiptSigner(OTHER_SEED).kid != signer.kid


def test_explicit_kid_is_used() -> None:
    named = ReceiptSigner(SEED, kid="receipts-2025")
    token = named.sign(make_facts())
    assert header_of(token)["kid"] == "receipts-2025"
    assert named.jwks()["keys"][0]["kid"] == "receipts-2025"
    assert verify_receipt(token, named.jwks())


@pytest.mark.parametrize("seed", [b"", b"short", bytes(31), bytes(33)])
def test_seed_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ReceiptSigner(seed)


# -- claims ----------------------------------------------------------------------------------
def test_claims_carry_every_kantara_field() -> None:
    facts = make_facts()
    claims = receipt_claims(facts)
    assert set(claims) >= KANTARA_TOP
    assert "publicKey" not in claims
    assert claims["version"] == RECEIPT_VERSION == "KI-CR-v1.1.0"
    assert claims["jurisdiction"] == "AU"
    assert claims["consentTimestamp"] == int(NOW.timestamp())
    assert isinstance(claims["consentTimestamp"], int)
    assert claims["collectionMethod"] == "web dashboard consent screen"
    assert claims["consentReceiptID"] == facts.receipt_id
    assert claims["language"] == "en"
    assert claims["piiPrincipalId"] == facts.subject
    assert claims["policyUrl"] == facts.policy_url

    [controller] = claims["piiControllers"]
    assert set(controller) >= KANTARA_CONTROLLER
    assert controller["piiController"] == "Infomediary"
    assert controller["piiControllerUrl"] == "https://infomediary.example"
    assert controller["onBehalf"] is False

    [service] = claims["services"]
    assert service["service"] == "Acme Outdoors"
    [purpose] = service["purposes"]
    assert set(purpose) == KANTARA_PURPOSE
    assert purpose["purpose"] == facts.purpose_label
    assert purpose["purposeCategory"] == ["marketing"]
    assert purpose["consentType"] == "EXPLICIT"
    assert purpose["piiCategory"] == ["identity", "interests"]
    assert purpose["primaryPurpose"] is True
    assert "2026-03-04T05:06:07Z" in purpose["termination"]
    assert purpose["thirdPartyDisclosure"] is True
    assert purpose["thirdPartyName"] == "Acme Outdoors"
    assert claims["sensitive"] is False
    assert claims["spiCat"] == []


def test_claims_carry_jwt_and_iso27560_fields() -> None:
    facts = make_facts()
    claims = receipt_claims(facts)
    assert claims["iss"] == "https://infomediary.example"
    assert claims["sub"] == facts.subject
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["jti"] == facts.receipt_id
    assert "exp" not in claims

    iso = claims["iso27560"]
    assert set(iso) >= ISO_FIELDS
    assert iso["record_id"] == facts.receipt_id
    assert iso["consent_id"] == "grant-7"
    assert iso["event"] == "given"
    assert iso["event_time"] == "2025-03-04T05:06:07Z"
    [processing] = iso["processing"]
    assert processing["purpose"] == "marketing"
    assert processing["scopes"] == ["profile.identity:read", "profile.interests:read"]
    assert processing["pii_categories"] == ["identity", "interests"]
    assert iso["notice"]["consent_text_version"] == "consent-2025-01"
    assert iso["data_controller"]["name"] == "Infomediary"
    assert iso["data_recipient"] == {
        "id": "sup-1",
        "name": "Acme Outdoors",
        "privacy_policy_url": "https://acme.example/privacy",
    }
    assert iso["duration"]["start"] == "2025-03-04T05:06:07Z"
    assert iso["duration"]["end"] == "2026-03-04T05:06:07Z"
    assert iso["duration"]["withdrawn_at"] is None


def test_claims_are_json_serialisable_and_deterministic() -> None:
    assert json.loads(json.dumps(receipt_claims(make_facts()))) == receipt_claims(make_facts())


def test_sensitive_categories_are_flagged() -> None:
    claims = receipt_claims(
        make_facts(categories=("identity", "health"), sensitive_categories=("health",))
    )
    assert claims["sensitive"] is True
    assert claims["spiCat"] == ["health"]
    assert claims["iso27560"]["processing"][0]["sensitive_pii_categories"] == ["health"]


def test_no_email_like_string_when_the_contact_is_not_an_email(signer: ReceiptSigner) -> None:
    facts = make_facts(controller_contact="Privacy Officer, https://infomediary.example/contact")
    claims = receipt_claims(facts)
    assert not [s for s in strings_in(claims) if EMAIL_LIKE.search(s)]
    assert "email" not in claims["piiControllers"][0]
    token = signer.sign(facts)
    assert not EMAIL_LIKE.search(unb64url(token.split(".")[1]).decode())


def test_the_only_email_like_string_is_the_controllers_own_contact() -> None:
    claims = receipt_claims(make_facts())
    found = {m for s in strings_in(claims) for m in EMAIL_LIKE.findall(s)}
    assert found == {"privacy@infomediary.example"}
    assert claims["piiControllers"][0]["email"] == "privacy@infomediary.example"


@pytest.mark.parametrize("subject", ["jane@example.com", "a@b", ""])
def test_subject_must_be_a_pseudonym_not_an_email(subject: str) -> None:
    with pytest.raises(ValueError, match="pseudonym"):
        make_facts(subject=subject)


@pytest.mark.parametrize(
    ("event", "iso_event"),
    [("granted", "given"), ("changed", "modified"), ("revoked", "withdrawn")],
)
def test_events_map_to_iso27560(event: str, iso_event: str) -> None:
    revoked_at = NOW if event == "revoked" else None
    claims = receipt_claims(make_facts(event=event, revoked_at=revoked_at))
    assert claims["iso27560"]["event"] == iso_event


def test_revocation_receipt_states_the_withdrawal() -> None:
    later = NOW + timedelta(days=3)
    claims = receipt_claims(make_facts(event="revoked", issued_at=later, revoked_at=later))
    assert claims["iso27560"]["duration"]["withdrawn_at"] == "2025-03-07T05:06:07Z"
    termination = claims["services"][0]["purposes"][0]["termination"]
    assert "withdrawn" in termination
    assert "2025-03-07T05:06:07Z" in termination
    assert claims["consentTimestamp"] == int(later.timestamp())


def test_open_ended_grant_says_so() -> None:
    claims = receipt_claims(make_facts(expires_at=None))
    assert claims["iso27560"]["duration"]["end"] is None
    assert (
        "until the PII principal withdraws" in claims["services"][0]["purposes"][0]["termination"]
    )


def test_supplier_without_privacy_policy_omits_it() -> None:
    claims = receipt_claims(make_facts(supplier_privacy_policy_url=None))
    assert claims["iso27560"]["data_recipient"] == {"id": "sup-1", "name": "Acme Outdoors"}


def test_non_utc_times_are_normalised_to_utc() -> None:
    aest = NOW.astimezone(timezone(timedelta(hours=10)))
    claims = receipt_claims(make_facts(issued_at=aest))
    assert claims["iso27560"]["event_time"] == "2025-03-04T05:06:07Z"
    assert claims["consentTimestamp"] == int(NOW.timestamp())


def test_explicit_controller_url_is_the_issuer() -> None:
    claims = receipt_claims(make_facts(controller_url="https://id.infomediary.example"))
    assert claims["iss"] == "https://id.infomediary.example"
    assert claims["piiControllers"][0]["piiControllerUrl"] == "https://id.infomediary.example"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"event": "deleted"}, "event must be one of"),
        ({"issued_at": datetime(2025, 1, 1)}, "issued_at must be timezone-aware"),  # noqa: DTZ001
        ({"granted_at": datetime(2025, 1, 1)}, "granted_at must be timezone-aware"),  # noqa: DTZ001
        ({"event": "revoked", "revoked_at": None}, "needs revoked_at"),
        ({"receipt_id": ""}, "receipt_id"),
    ],
)
def test_invalid_facts_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_facts(**changes)


def test_relative_policy_url_needs_a_controller_url() -> None:
    facts = make_facts(policy_url="/privacy")
    with pytest.raises(ValueError, match="absolute"):
        receipt_claims(facts)
    assert receipt_claims(dataclasses.replace(facts, controller_url="https://x.example"))["iss"]
