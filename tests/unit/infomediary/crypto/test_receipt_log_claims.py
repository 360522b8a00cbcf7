"""A receipt's log claims: ``log_index`` and ``log_leaf_hash`` (hex), signed with the rest."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from typing import Any

import pytest

from infomediary.crypto.receipts import (
    ReceiptError,
    ReceiptSigner,
    log_citation,
    receipt_claims,
    verify_receipt,
)
from tests.unit.infomediary.crypto.test_receipts import SEED, make_facts

LEAF = hashlib.sha256(b"\x00an entry").digest()


def cited(**changes: Any) -> Any:
    return make_facts(log_index=41, log_leaf_hash=LEAF, **changes)


def payload_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def test_a_receipt_without_a_log_entry_has_no_log_claims() -> None:
    claims = receipt_claims(make_facts())
    assert not [name for name in claims if name.startswith("log_")]
    assert log_citation(claims) is None


def test_the_log_claims_are_the_index_and_the_leaf_hash_in_hex() -> None:
    claims = receipt_claims(cited())
    assert claims["log_index"] == 41
    assert claims["log_leaf_hash"] == LEAF.hex()
    assert len(claims["log_leaf_hash"]) == 64
    assert log_citation(claims) == (41, LEAF)
    # everything else is as it was
    plain = receipt_claims(make_facts())
    assert {k: v for k, v in claims.items() if not k.startswith("log_")} == plain


def test_the_signature_covers_the_log_claims() -> None:
    signer = ReceiptSigner(SEED)
    token = signer.sign(cited())
    assert verify_receipt(token, signer.jwks())["log_index"] == 41
    head, _, signature = token.split(".")
    for name, value in (("log_index", 40), ("log_leaf_hash", bytes(32).hex())):
        forged = {**payload_of(token), name: value}
        body = base64.urlsafe_b64encode(
            json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
        )
        with pytest.raises(ReceiptError, match="signature is invalid"):
            verify_receipt(f"{head}.{body.rstrip(b'=').decode()}.{signature}", signer.jwks())


def test_index_zero_is_a_leaf_too() -> None:
    claims = receipt_claims(make_facts(log_index=0, log_leaf_hash=LEAF))
    assert claims["log_index"] == 0
    assert log_citation(claims) == (0, LEAF)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"log_index": 3}, "together"),
        ({"log_leaf_hash": LEAF}, "together"),
        ({"log_index": -1, "log_leaf_hash": LEAF}, "0 or more"),
        ({"log_index": True, "log_leaf_hash": LEAF}, "whole number"),
        ({"log_index": 3, "log_leaf_hash": LEAF[:31]}, "32 bytes"),
    ],
)
def test_malformed_log_facts_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(make_facts(), **changes)


@pytest.mark.parametrize(
    "claims",
    [
        {"log_index": 3},
        {"log_leaf_hash": LEAF.hex()},
        {"log_index": -1, "log_leaf_hash": LEAF.hex()},
        {"log_index": "3", "log_leaf_hash": LEAF.hex()},
        {"log_index": True, "log_leaf_hash": LEAF.hex()},
        {"log_index": 3, "log_leaf_hash": LEAF.hex().upper()},
        {"log_index": 3, "log_leaf_hash": LEAF.hex()[:62]},
        {"log_index": 3, "log_leaf_hash": base64.b64encode(LEAF).decode()},
    ],
)
def test_malformed_log_claims_are_named(claims: dict[str, Any]) -> None:
    with pytest.raises(ReceiptError, match="receipt log_"):
        log_citation(claims)
