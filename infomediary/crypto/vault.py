"""Envelope encryption of customer data (see docs/ARCHITECTURE.md, "Key hierarchy").

KEK (keyring, versioned) --AES key wrap (RFC 3394)--> per-customer DEK (AES-256)
DEK --AES-256-GCM, random 96-bit nonce--> each field, with associated data
``v1|table|record_id|field|customer_id|dek_version``: a ciphertext copied to another row,
field or customer does not authenticate. Erasure deletes the wrapped DEK (crypto-shredding).

The KEKs stay with their provider (:class:`~infomediary.crypto.keyring.KeyProvider`): the
vault hands it a DEK to wrap or a wrapping to unwrap, and never sees a KEK, so a token's
KEKs (``key_provider=pkcs11``) never leave it. The provider is refreshed before every wrap
and looks again when a DEK names a KEK version it does not know, so another process's
``keys rotate`` needs no restart here. Which version a stored DEK is finally wrapped under
is the database's call, made in the transaction that stores it (:mod:`infomediary.leases`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infomediary.crypto.keyring import KeyProvider

#: First byte of every field ciphertext; bump when the layout or associated data change.
BLOB_VERSION = 1
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext did not authenticate (moved, altered, or its key was destroyed)."""


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """An unwrapped DEK, ready to seal and open one customer's fields."""

    customer_id: str
    dek_version: int
    aead: AESGCM


def _associated_data(key: CustomerKey, table: str, record_id: str, field: str) -> bytes:
    return (
        f"v{BLOB_VERSION}|{table}|{record_id}|{field}|{key.customer_id}|{key.dek_version}"
    ).encode()


def normalise_email(email: str) -> str:
    """The form of an email address that the blind index sees: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def json_bytes(value: Any) -> bytes:
    """The JSON a sealed field's plaintext is: compact, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class Vault:
    def __init__(self, keys: KeyProvider):
        self.keys = keys
        self._index_key = keys.secret("blind_index")

    # -- data keys ------------------------------------------------------------------------
    def new_data_key(self, customer_id: str) -> tuple[CustomerKey, int, bytes]:
        """A fresh DEK: returns it unwrapped, with the KEK version and the wrapped bytes."""
        dek = secrets.token_bytes(32)
        self.keys.refresh()
        version = self.keys.active_kek_version
        wrapped = self.keys.wrap(version, dek)
        return CustomerKey(customer_id, 1, AESGCM(dek)), version, wrapped

    def unwrap(
        self, customer_id: str, dek_version: int, kek_version: int, wrapped: bytes
    ) -> CustomerKey:
        dek = self.keys.unwrap(kek_version, wrapped)
        return CustomerKey(customer_id, dek_version, AESGCM(dek))

    def rewrap(self, wrapped: bytes, from_version: int, to_version: int) -> bytes:
        """Re-wrap a DEK under another KEK; the DEK itself (and so every field) is unchanged."""
        return self.keys.rewrap(wrapped, from_version, to_version)

    # -- fields ---------------------------------------------------------------------------
    def seal(self, key: CustomerKey, table: str, record_id: str, field: str, value: Any) -> bytes:
        """Encrypt a JSON-serialisable ``value`` bound to its table, record, field and owner."""
        return self.seal_bytes(key, table, record_id, field, json_bytes(value))

    def seal_bytes(
        self, key: CustomerKey, table: str, record_id: str, field: str, plaintext: bytes
    ) -> bytes:
        """Encrypt ``plaintext`` (the JSON :func:`json_bytes` makes) as :meth:`seal` does."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext, _associated_data(key, table, record_id, field))
        return bytes([BLOB_VERSION]) + nonce + sealed

    def open(self, key: CustomerKey, table: str, record_id: str, field: str, blob: bytes) -> Any:
        return json.loads(self.open_bytes(key, table, record_id, field, blob))

    def open_bytes(
        self, key: CustomerKey, table: str, record_id: str, field: str, blob: bytes
    ) -> bytes:
        """The plaintext bytes :meth:`seal` sealed (its JSON, exactly)."""
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != BLOB_VERSION:
            raise DecryptionError(f"{table}.{field} of record {record_id} is not a vault blob")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            plaintext = key.aead.decrypt(
                nonce, sealed, _associated_data(key, table, record_id, field)
            )
        except InvalidTag:
            raise DecryptionError(
                f"{table}.{field} of record {record_id} does not authenticate under its key"
            ) from None
        return plaintext

    # -- keyed hashes ---------------------------------------------------------------------
    def blind_index(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 under the blind-index key, separated by ``domain`` (e.g. ``email``)."""
        message = domain.encode() + b"\x00" + value.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).digest()

    def email_index(self, email: str) -> bytes:
        return self.blind_index("email", normalise_email(email))
