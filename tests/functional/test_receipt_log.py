"""Consent receipts cite their access-log entry, and prove it.

A grant's and a revocation's receipt carry ``log_index`` and ``log_leaf_hash`` (the entry of
the same event), signed with the rest of the receipt. The download with proofs adds, unsigned,
the RFC 9162 inclusion proof of that entry in the latest checkpoint that covers it, which an
outsider checks with nothing but ``tlog.note`` and ``tlog.merkle``; before a checkpoint covers
the entry it says ``pending``, and a GET never signs one.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy import delete, func, select

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    ConsentGrant,
    ConsentReceipt,
    LogCheckpoint,
    utcnow,
)
from infomediary.services import checkpoints, consent_receipts
from infomediary.services.consent_receipts import ProofStatus
from infomediary.tlog import merkle, note
from tests.conftest import Auth, csrf
from tests.factories import make_customer, make_grant
from tests.functional.test_checkpoints import rebuild
from tests.oauth_helpers import make_supplier
from tests.table_rows import row_counts

PASSWORD = "correct horse battery"
ORIGIN = "localhost/log"


@dataclass
class Granted:
    customer_id: str
    grant_id: str
    receipt_id: str
    client: FlaskClient


def receipt_rows(inst: Instance, grant_id: str) -> list[ConsentReceipt]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(ConsentReceipt)
                .where(ConsentReceipt.grant_id == grant_id)
                .order_by(ConsentReceipt.created_at)
            ).scalars()
        )


def entry_at(inst: Instance, seq: int) -> AccessLogEntry:
    with inst.sessions() as session:
        found = session.get(AccessLogEntry, seq)
        assert found is not None, f"no entry {seq}"
        session.expunge(found)
        return found


def reason_code(entry: AccessLogEntry) -> str:
    assert entry.reason_data is not None, "a format-2 entry has a structured reason"
    return str(json.loads(entry.reason_data)["code"])


def claims_of(inst: Instance, jws: str) -> dict[str, Any]:
    return verify_receipt(jws, inst.receipt_signer.jwks())


def sign(inst: Instance) -> checkpoints.Signed:
    with inst.sessions() as session:
        return checkpoints.sign(session, inst)


def grow(inst: Instance, entries: int) -> None:
    with inst.sessions() as session:
        for n in range(entries):
            append(session, LogEvent(Actor.system("test"), "read", None, reason=f"entry {n}"))
        session.commit()


def logged_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert Auth(client).login(email=email, password=PASSWORD).status_code == 302
    return client


@pytest.fixture
def granted(app: Flask, inst: Instance) -> Granted:
    email = "rosalind@example.org"
    customer_id = make_customer(inst, email=email, password=PASSWORD)
    supplier = make_supplier(inst)
    grant = make_grant(inst, customer_id, supplier.id)
    [receipt] = receipt_rows(inst, grant.id)
    return Granted(customer_id, grant.id, receipt.id, logged_in(app, email))


def bundle_of(granted: Granted, receipt_id: str | None = None) -> dict[str, Any]:
    path = f"/consents/{granted.grant_id}/receipts/{receipt_id or granted.receipt_id}.proof.json"
    answer = granted.client.get(path)
    assert answer.status_code == 200, answer.status_code
    assert answer.mimetype == "application/json"
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    body: dict[str, Any] = json.loads(answer.get_data(as_text=True))
    return body


def check_bundle(bundle: dict[str, Any]) -> note.Checkpoint:
    """What an outsider does with the download: open the checkpoint with the key, check that
    the receipt's signed claims are the bundle's, and verify the inclusion proof."""
    log = bundle["log"]
    checkpoint = note.open_checkpoint(
        log["checkpoint"], note.Verifier.from_vkey(log["key"]), ORIGIN
    )
    assert checkpoint.size == log["size"]
    payload = bundle["receipt"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert (claims["log_index"], claims["log_leaf_hash"]) == (log["index"], log["leaf_hash"])
    merkle.verify_inclusion(
        log["index"],
        log["size"],
        bytes.fromhex(log["leaf_hash"]),
        [base64.b64decode(node) for node in log["proof"]],
        checkpoint.root,
    )
    return checkpoint


# -- the signed claims ------------------------------------------------------------------------


def test_a_grants_receipt_signs_the_index_and_leaf_hash_of_its_entry(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    claims = claims_of(inst, receipt.jws)
    entry = entry_at(inst, claims["log_index"])
    assert claims["log_leaf_hash"] == bytes(entry.leaf_hash).hex()
    assert (entry.action, entry.customer_id, entry.actor_type) == (
        "consent",
        granted.customer_id,
        "customer",
    )
    assert reason_code(entry) == "consent.granted"
    with inst.sessions() as session:
        consent_entries = session.execute(
            select(AccessLogEntry.seq).where(AccessLogEntry.action == "consent")
        ).scalars()
        assert list(consent_entries) == [claims["log_index"]]


def test_a_revocations_receipt_cites_the_revocations_entry(app, inst, granted) -> None:
    client = granted.client
    answer = client.post(
        f"/consents/{granted.grant_id}/revoke", data={"csrf_token": csrf(client, "/consents")}
    )
    assert answer.status_code == 302
    first, revoked = receipt_rows(inst, granted.grant_id)
    assert revoked.event == "revoked"
    claims = claims_of(inst, revoked.jws)
    assert claims["log_index"] > claims_of(inst, first.jws)["log_index"]
    entry = entry_at(inst, claims["log_index"])
    assert claims["log_leaf_hash"] == bytes(entry.leaf_hash).hex()
    assert reason_code(entry) == "consent.revoked"
    assert entry.customer_id == granted.customer_id


def test_a_changed_grant_cites_its_own_entry(inst, granted) -> None:
    with inst.sessions() as session:
        grant = session.get(ConsentGrant, granted.grant_id)
        assert grant is not None
        supplier_id = grant.supplier_id
    make_grant(
        inst,
        granted.customer_id,
        supplier_id,
        scopes=("profile.identity:read", "profile.interests:read"),
    )
    first, changed = receipt_rows(inst, granted.grant_id)
    assert changed.event == "changed"
    cited = [claims_of(inst, r.jws)["log_index"] for r in (first, changed)]
    assert cited[0] < cited[1]
    entry = entry_at(inst, cited[1])
    assert claims_of(inst, changed.jws)["log_leaf_hash"] == bytes(entry.leaf_hash).hex()
    assert reason_code(entry) == "consent.changed"


def test_the_signature_covers_the_log_claims(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    head, payload, signature = receipt.jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for name, value in (("log_index", claims["log_index"] + 1), ("log_leaf_hash", "00" * 32)):
        forged = {**claims, name: value}
        raw = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
        encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        with pytest.raises(ReceiptError, match="signature is invalid"):
            verify_receipt(f"{head}.{encoded}.{signature}", inst.receipt_signer.jwks())
    assert claims_of(inst, receipt.jws) == claims


# -- the download with proofs ------------------------------------------------------------------


def test_before_any_checkpoint_the_proof_is_pending_and_nothing_is_signed(inst, granted) -> None:
    with inst.engine.connect() as conn:
        before = row_counts(conn)
    bundle = bundle_of(granted)
    with inst.engine.connect() as conn:
        assert row_counts(conn) == before
    [receipt] = receipt_rows(inst, granted.grant_id)
    claims = claims_of(inst, receipt.jws)
    assert bundle["status"] == "pending"
    assert bundle["receipt"] == receipt.jws
    assert bundle["log"] == {"index": claims["log_index"], "leaf_hash": claims["log_leaf_hash"]}
    assert bundle["retry_after"] == inst.settings.checkpoint_seconds
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(LogCheckpoint)).scalar_one() == 0


def test_a_checkpoint_that_ends_before_the_entry_leaves_it_pending(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    index = claims_of(inst, receipt.jws)["log_index"]
    with inst.sessions() as session:
        # a checkpoint of the log as it was just before the grant's entry
        leaves = session.execute(
            select(AccessLogEntry.leaf_hash)
            .where(AccessLogEntry.seq < index)
            .order_by(AccessLogEntry.seq)
        ).scalars()
        root = merkle.MemoryTree(bytes(h) for h in leaves).root()
        text = note.Checkpoint(ORIGIN, index, root).text()
        session.add(
            LogCheckpoint(
                size=index,
                root=root,
                note=checkpoints.signer(inst).sign(text),
                signed_at=utcnow(),
            )
        )
        session.commit()
    assert bundle_of(granted)["status"] == "pending"


def test_the_proof_verifies_against_the_latest_checkpoint_with_tlog_alone(inst, granted) -> None:
    sign(inst)
    grow(inst, 5)
    latest = sign(inst).checkpoint
    bundle = bundle_of(granted)
    assert bundle["status"] == "ready"
    assert set(bundle["log"]) == {"index", "leaf_hash", "size", "proof", "checkpoint", "key"}
    assert bundle["log"]["size"] == latest.size
    assert bundle["log"]["checkpoint"] == latest.note
    assert "retry_after" not in bundle
    checkpoint = check_bundle(bundle)
    assert checkpoint.root == latest.root
    # the leaf is the entry's, at its index: another leaf or index does not verify
    log = bundle["log"]
    proof = [base64.b64decode(node) for node in log["proof"]]
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(log["index"], log["size"], bytes(32), proof, checkpoint.root)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(
            log["index"] + 1, log["size"], bytes.fromhex(log["leaf_hash"]), proof, checkpoint.root
        )


def test_the_receipt_download_itself_is_unchanged(inst, granted) -> None:
    sign(inst)
    [receipt] = receipt_rows(inst, granted.grant_id)
    answer = granted.client.get(f"/consents/{granted.grant_id}/receipts/{receipt.id}.jws")
    assert answer.status_code == 200
    assert answer.mimetype == "application/jose"
    assert answer.get_data(as_text=True) == receipt.jws


def test_a_rewritten_log_is_named_in_the_bundle(inst, granted) -> None:
    sign(inst)
    [receipt] = receipt_rows(inst, granted.grant_id)
    index = claims_of(inst, receipt.jws)["log_index"]
    with inst.sessions() as session:
        # a forger rewrites the grant's history and signs again with the real key
        session.execute(delete(LogCheckpoint))
        row = session.get(AccessLogEntry, index)
        assert row is not None
        row.purpose = "marketing"
        rebuild(session)
    sign(inst)
    bundle = bundle_of(granted)
    assert bundle["status"] == "mismatch"
    assert "does not hold this receipt's entry" in bundle["problem"]
    assert "proof" not in bundle["log"]


def test_a_receipt_issued_before_log_claims_stays_valid_and_says_so(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    signed_claims = claims_of(inst, receipt.jws)
    old = {k: v for k, v in signed_claims.items() if not k.startswith("log_")}
    with inst.sessions() as session:
        row = session.get(ConsentReceipt, receipt.id)
        assert row is not None
        row.jws = sign_claims(inst, old)
        session.commit()
    sign(inst)
    assert claims_of(inst, row.jws) == old  # still a valid receipt
    bundle = bundle_of(granted)
    assert bundle["status"] == "not_recorded"
    assert bundle["log"] is None
    page = granted.client.get(f"/consents/{granted.grant_id}/receipts/{receipt.id}")
    assert page.status_code == 200
    assert "issued before receipts named their log entry" in page.get_data(as_text=True)


def sign_claims(inst: Instance, claims: dict[str, Any]) -> str:
    """A receipt as one issued before the log claims: the same key, claims without them."""
    seed = inst.keyring.secret("receipt_signing")
    key = OKPKey.import_key(Ed25519PrivateKey.from_private_bytes(seed))
    payload = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    header = {"alg": "Ed25519", "kid": inst.receipt_signer.kid, "typ": "consent-receipt+jwt"}
    return jws.serialize_compact(header, payload, key, algorithms=["Ed25519"])


def test_a_receipt_that_does_not_verify_is_said_plainly(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    with inst.sessions() as session:
        row = session.get(ConsentReceipt, receipt.id)
        assert row is not None
        row.jws = receipt.jws[:-4] + ("AAAA" if receipt.jws[-4:] != "AAAA" else "BBBB")
        session.commit()
    bundle = bundle_of(granted)
    assert bundle["status"] == str(ProofStatus.UNVERIFIED)
    assert "signature is invalid" in bundle["problem"]
    page = granted.client.get(f"/consents/{granted.grant_id}/receipts/{receipt.id}")
    assert page.status_code == 200
    assert "This receipt does not verify" in page.get_data(as_text=True)


# -- the readable receipt ----------------------------------------------------------------------


def test_the_receipt_page_names_the_entry_and_whether_its_proof_is_ready(inst, granted) -> None:
    [receipt] = receipt_rows(inst, granted.grant_id)
    index = claims_of(inst, receipt.jws)["log_index"]
    path = f"/consents/{granted.grant_id}/receipts/{receipt.id}"
    pending = granted.client.get(path).get_data(as_text=True)
    assert f"Recorded in the access log as entry {index}." in pending
    assert "Proof not available yet" in pending
    assert ".proof.json" not in pending
    sign(inst)
    ready = granted.client.get(path).get_data(as_text=True)
    assert f"Recorded in the access log as entry {index}." in ready
    assert "Proof available" in ready
    assert f"{path}.proof.json" in ready
    listing = granted.client.get(f"/consents/{granted.grant_id}/receipts").get_data(as_text=True)
    assert f'href="{path}"' in listing


def test_another_customers_receipt_is_not_found(app, inst, granted) -> None:
    other_email = "maurice@example.org"
    other_id = make_customer(inst, email=other_email, password=PASSWORD)
    other_grant = make_grant(inst, other_id, make_supplier(inst, name="Other Shop").id)
    [other_receipt] = receipt_rows(inst, other_grant.id)
    sign(inst)
    for grant_id, receipt_id in (
        (other_grant.id, other_receipt.id),
        (granted.grant_id, other_receipt.id),
        (other_grant.id, granted.receipt_id),
    ):
        for suffix in ("", ".proof.json"):
            path = f"/consents/{grant_id}/receipts/{receipt_id}{suffix}"
            answer = granted.client.get(path)
            assert answer.status_code == 404, path
            assert other_receipt.jws not in answer.get_data(as_text=True)
    # and the other customer reaches their own
    other = logged_in(app, other_email)
    answer = other.get(f"/consents/{other_grant.id}/receipts/{other_receipt.id}.proof.json")
    assert answer.status_code == 200
    assert check_bundle(answer.get_json()).size >= 1


def test_proof_pages_need_login(client, granted) -> None:
    for suffix in ("", ".proof.json"):
        answer = client.get(f"/consents/{granted.grant_id}/receipts/{granted.receipt_id}{suffix}")
        assert answer.status_code == 302
        assert answer.headers["Location"] == "/login"


def test_the_use_case_reads_only(inst, granted) -> None:
    sign(inst)
    with inst.engine.connect() as conn:
        before = row_counts(conn)
    with inst.sessions() as session:
        found = consent_receipts.receipt_proof(
            session, inst, granted.customer_id, granted.grant_id, granted.receipt_id
        )
        assert not session.new
        assert not session.dirty
    assert found.status == ProofStatus.READY
    assert found.index is not None
    assert found.size is not None
    assert found.size > found.index
    with inst.engine.connect() as conn:
        assert row_counts(conn) == before
