"""Pairwise pseudonyms: ``HMAC-SHA256(pseudonym_key, supplier_id || 0x00 || customer_id)``.

Stable for one supplier, unlinkable across suppliers (like OIDC pairwise subject
identifiers, OpenID Connect Core §8.1). The key lives in the keyring, apart from the
blind-index key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from infomediary.instance import Instance


def pairwise_pseudonym(
    inst: Instance, supplier_id: str, customer_id: str, domain: str = "identified"
) -> str:
    """``domain`` keeps pseudonyms of different relationships apart: the one an offer's
    accepter shows a supplier cannot be joined to the one a direct grant shows it."""
    message = domain.encode() + b"\x00" + supplier_id.encode() + b"\x00" + customer_id.encode()
    digest = hmac.new(inst.keyring.secret("pseudonym"), message, hashlib.sha256).digest()
    prefix = "psn_" if domain == "identified" else "off_"
    return prefix + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def offer_pseudonym(inst: Instance, supplier_id: str, customer_id: str) -> str:
    return pairwise_pseudonym(inst, supplier_id, customer_id, domain="offer")
