"""Pseudonyms, each an HMAC-SHA256 under the keyring's pseudonym key, apart from the
blind-index key, in a domain of its own:

- ``psn_``: ``HMAC(key, "identified" || 0x00 || supplier_id || 0x00 || customer_id)``, the
  pairwise subject a supplier knows a customer by through its grants: stable for one
  supplier, unlinkable across suppliers (like OIDC pairwise subject identifiers, OpenID
  Connect Core §8.1).
- ``off_``: ``HMAC(key, "offer-response" || 0x00 || offer_id || 0x00 || customer_id)``, the
  one a customer answers *one offer* under: unlinkable across offers, even of one supplier
  (so accepting several offers does not tell the supplier that one person matched all their
  criteria), and to ``psn_``.

No identifier holds a 0x00, so the messages of different domains never coincide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from infomediary.instance import Instance


def _pseudonym(inst: Instance, prefix: str, *parts: str) -> str:
    message = b"\x00".join(part.encode() for part in parts)
    digest = hmac.new(inst.keyring.secret("pseudonym"), message, hashlib.sha256).digest()
    return prefix + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pairwise_pseudonym(inst: Instance, supplier_id: str, customer_id: str) -> str:
    """The customer's ``psn_`` subject for the supplier."""
    return _pseudonym(inst, "psn_", "identified", supplier_id, customer_id)


def offer_pseudonym(inst: Instance, offer_id: str, customer_id: str) -> str:
    """The customer's ``off_`` pseudonym for one offer."""
    return _pseudonym(inst, "off_", "offer-response", offer_id, customer_id)
