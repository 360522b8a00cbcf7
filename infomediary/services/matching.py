"""Keep a customer's broker match entry in step with their profile and policy.

Called inside the use case's transaction (profile edit, policy change, sign-up, erasure),
so the index can never lag behind what the customer allowed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.broker.members import clear_entry, member_texts, member_tokens, store_entry
from infomediary.instance import Instance
from infomediary.models import Agreement, Customer, MatchEntry, Profile, SupplierBlock, utcnow
from infomediary.services import derived_record
from infomediary.services.customer_keys import customer_key, is_verified
from infomediary.services.policy_store import load_policy
from infomediary.services.profile_fields import FIELD_NAMES


def sync_member(
    session: Session, inst: Instance, customer_id: str, now: datetime | None = None
) -> bool:
    """Store the customer's tokens (unless they are what the entry holds); an unverified
    customer's entry holds none. Returns whether the entry changed.

    The interests the customer's purchases suggest, as of ``now``, are part of the entry
    (``bought`` and ``spend``: :mod:`infomediary.services.derived_record`).

    An entry without tokens is outside every bitmap and the live set, so until the address
    is confirmed the customer is neither counted nor sent offers. Verification calls this
    again and the tokens appear at the next index refresh.
    """

    profile = session.get(Profile, customer_id)
    customer = session.get(Customer, customer_id)
    if profile is None or customer is None:
        return False
    if not is_verified(customer):
        return _store(session, customer_id, b"")
    now = now or utcnow()
    key = customer_key(session, inst, customer_id)
    values = {
        name: inst.vault.open(key, "profiles", customer_id, name, blob)
        for name in FIELD_NAMES
        if (blob := getattr(profile, name)) is not None
    }
    values["bought"] = derived_record.bought(derived_record.load(session, inst, key), now)
    policy = load_policy(session, inst, customer_id)
    blocked = session.execute(
        select(SupplierBlock.supplier_id).where(SupplierBlock.customer_id == customer_id)
    ).scalars()
    agreed = session.execute(
        select(Agreement.supplier_id).where(
            Agreement.customer_id == customer_id, Agreement.revoked_at.is_(None)
        )
    ).scalars()
    texts = member_texts(values, policy, now, blocked, agreed)
    return _store(session, customer_id, member_tokens(inst.keyring.secret("blind_index"), texts))


def _store(session: Session, customer_id: str, tokens: bytes) -> bool:
    held = session.execute(
        select(MatchEntry.tokens).where(MatchEntry.customer_id == customer_id)
    ).scalar_one_or_none()
    if held == tokens:
        return False
    store_entry(session, customer_id, tokens)
    return True


def forget_member(session: Session, customer_id: str) -> None:
    clear_entry(session, customer_id)
