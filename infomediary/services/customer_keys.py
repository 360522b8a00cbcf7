"""A customer's data key and what it seals: log-entry details, and which categories an
entry may name in plaintext. The lowest service module: every use case that touches
personal data builds on it, and it builds on no other use case."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any

from sqlalchemy.orm import Session

from infomediary.audit.log import Sealed
from infomediary.crypto.vault import CustomerKey, DecryptionError, json_bytes
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.logs import get_logger
from infomediary.models import Customer, DataKey
from infomediary.tlog import entry as entry_v2
from policies.taxonomy import CATEGORIES


def customer_key(
    session: Session, inst: Instance, customer_id: str, row: DataKey | None = None
) -> CustomerKey:
    """The customer's DEK, unwrapped; ``row``: their ``data_keys`` row, when already read."""
    if row is None or row.customer_id != customer_id:
        row = session.get(DataKey, customer_id)
    if row is None:
        raise NotFound("No such customer.")
    return inst.vault.unwrap(customer_id, row.dek_version, row.kek_version, row.wrapped_key)


log = get_logger("customer_keys")

#: The detail's member holding its salt: 16 random bytes, base64.
SALT = "salt"


def seal_detail(inst: Instance, key: CustomerKey, detail: dict[str, Any]) -> Sealed:
    """Encrypt a log entry's personal detail under the customer's DEK, salted, with the hash
    of its plaintext that the entry commits to (:func:`infomediary.tlog.entry.detail_hash`).

    The record id is the customer id (the entry's sequence number is not known until
    the append takes the lock); the field name keeps it apart from profile fields. The salt
    makes the hash useless for testing guesses of the detail, and goes with the detail to
    the customer, who can then check the hash offline.
    """
    plaintext = json_bytes({**detail, SALT: base64.b64encode(secrets.token_bytes(16)).decode()})
    blob = inst.vault.seal_bytes(key, "access_log", key.customer_id, "detail", plaintext)
    return Sealed(blob, entry_v2.detail_hash(plaintext))


def logged_categories(
    inst: Instance,
    key: CustomerKey,
    categories: frozenset[str],
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A log entry's categories: special ones (health, religion, ...) never in plaintext.

    The plaintext column says "interests" instead, and the exact set goes into the entry's
    encrypted detail, so the customer still sees it and erasure leaves nothing sensitive.
    """
    special = {c for c in categories if CATEGORIES[c].special}
    if not special:
        sealed = seal_detail(inst, key, detail) if detail else None
        return {"categories": categories, "detail": sealed}
    full = {**(detail or {}), "categories": sorted(categories)}
    return {
        "categories": (categories - special) | {"interests"},
        "detail": seal_detail(inst, key, full),
    }


def open_detail(
    inst: Instance, key: CustomerKey | None, blob: bytes | None, digest: bytes | None = None
) -> Any:
    """An entry's detail as the customer reads it (its salt left out). With ``digest`` (the
    entry's ``detail_hash``), a detail that is not the one the entry committed to (another
    entry's of the same customer, put in its place) is not shown."""
    plaintext = open_detail_bytes(inst, key, blob)
    if plaintext is None:
        return None
    if digest is not None and not hmac.compare_digest(entry_v2.detail_hash(plaintext), digest):
        log.warning("an access-log entry's detail does not match the hash its entry commits to")
        return None
    detail = json.loads(plaintext)
    if isinstance(detail, dict):
        detail.pop(SALT, None)
    return detail


def open_detail_bytes(inst: Instance, key: CustomerKey | None, blob: bytes | None) -> bytes | None:
    """An entry's detail plaintext exactly as sealed (what its detail hash commits to)."""
    if blob is None or key is None:
        return None
    try:
        return inst.vault.open_bytes(key, "access_log", key.customer_id, "detail", blob)
    except DecryptionError:
        return None


def is_verified(customer: Customer) -> bool:
    """Whether the customer may grant consents and be counted or reached by the broker.

    Synthetic customers (the demo population) cannot log in and count as verified for the
    broker; everyone else needs a confirmed address (operator-created accounts are confirmed
    at creation).
    """
    return customer.synthetic or customer.verified_at is not None


def is_confirmed(session: Session, customer_id: str) -> bool:
    """:func:`is_verified` for the customer with this id (False if there is none)."""
    customer = session.get(Customer, customer_id)
    return customer is not None and is_verified(customer)
