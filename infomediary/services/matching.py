"""Keep a customer's broker match entry in step with their profile and policy.

Called inside the use case's transaction (profile edit, policy change, sign-up, erasure),
so the index can never lag behind what the customer allowed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.broker.members import clear_entry, member_texts, member_tokens, store_entry
from infomediary.instance import Instance
from infomediary.models import Customer, Profile, SupplierBlock, utcnow
from infomediary.services.customer_keys import customer_key, is_verified
from infomediary.services.policy_store import load_policy
from infomediary.services.profile_fields import FIELD_NAMES


def sync_member(session: Session, inst: Instance, customer_id: str) -> None:
    """Store the customer's tokens; an unverified customer's entry holds none.

    An entry without tokens is outside every bitmap and the live set, so until the address
    is confirmed the customer is neither counted nor sent offers. Verification calls this
    again and the tokens appear at the next index refresh.
    """

    profile = session.get(Profile, customer_id)
    customer = session.get(Customer, customer_id)
    if profile is None or customer is None:
        return
    if not is_verified(customer):
        store_entry(session, customer_id, b"")
        return
    key = customer_key(session, inst, customer_id)
    values = {
        name: inst.vault.open(key, "profiles", customer_id, name, blob)
        for name in FIELD_NAMES
        if (blob := getattr(profile, name)) is not None
    }
    policy = load_policy(session, inst, customer_id)
    blocked = session.execute(
        select(SupplierBlock.supplier_id).where(SupplierBlock.customer_id == customer_id)
    ).scalars()
    texts = member_texts(values, policy, utcnow(), blocked)
    store_entry(session, customer_id, member_tokens(inst.keyring.secret("blind_index"), texts))


def forget_member(session: Session, customer_id: str) -> None:
    clear_entry(session, customer_id)
