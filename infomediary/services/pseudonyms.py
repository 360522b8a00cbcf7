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


def pairwise_pseudonym(inst: Instance, supplier_id: str, customer_id: str) -> str:
    message = supplier_id.encode() + b"\x00" + customer_id.encode()
    digest = hmac.new(inst.keyring.secret("pseudonym"), message, hashlib.sha256).digest()
    return "psn_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
