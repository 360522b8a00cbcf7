"""Reading and editing the customer's own profile: every field sealed under their key, every read
and edit logged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, Profile, utcnow
from infomediary.services import Context, matching
from infomediary.services.customer_keys import (
    customer_key,
    logged_categories,
)
from infomediary.services.profile_fields import (
    FIELD_NAMES,
    categories_of,
    categories_touched,
    clean_profile,
)
from infomediary.services.uow import unit_of_work


def decrypt_profile(
    inst: Instance, key: CustomerKey, customer: Customer, profile: Profile
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "email": inst.vault.open(key, "customers", customer.id, "email", customer.email)
    }
    for field in FIELD_NAMES:
        blob = getattr(profile, field)
        data[field] = (
            None if blob is None else inst.vault.open(key, "profiles", customer.id, field, blob)
        )
    return data


def read_profile(
    session: Session, inst: Instance, customer_id: str, ctx: Context, *, purpose: str = "service"
) -> dict[str, Any]:
    """Decrypt the whole profile for its owner (or the system), logging the read."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        profile = session.get(Profile, customer_id)
        if customer is None or profile is None:
            raise NotFound("No such customer.")
        key = customer_key(session, inst, customer_id)
        data = decrypt_profile(inst, key, customer, profile)
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("profile.viewed"),
            purpose=purpose,
            **logged_categories(
                inst,
                key,
                frozenset({"identity"}) | categories_of({k: data[k] for k in FIELD_NAMES}),
            ),
        )
        uow.commit()
        return data


def update_profile(
    session: Session, inst: Instance, customer_id: str, raw: dict[str, Any], ctx: Context
) -> list[str]:
    """Validate and write the fields in ``raw``; returns the names of fields that changed."""
    with unit_of_work(session) as uow:
        values, errors = clean_profile(raw, current_year=utcnow().year)
        if errors:
            raise ValidationFailed(errors)
        profile = session.get(Profile, customer_id)
        if profile is None:
            raise NotFound("No such customer.")
        key = customer_key(session, inst, customer_id)
        changed: list[str] = []
        for field, value in values.items():
            blob = getattr(profile, field)
            old = (
                None if blob is None else inst.vault.open(key, "profiles", customer_id, field, blob)
            )
            if old == value:
                continue
            new = (
                None
                if value is None
                else inst.vault.seal(key, "profiles", customer_id, field, value)
            )
            setattr(profile, field, new)
            changed.append(field)
        if not changed:
            session.rollback()
            return []
        profile.updated_at = utcnow()
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("profile.edited"),
            **logged_categories(
                inst, key, categories_touched(changed, values), {"fields": changed}
            ),
        )
        matching.sync_member(session, inst, customer_id)
        uow.commit()
        return changed
