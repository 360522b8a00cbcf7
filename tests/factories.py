"""Factory functions for test data, going through the real services."""

from __future__ import annotations

import uuid
from typing import Any

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.services import Context, customers, profiles


def make_customer(
    inst: Instance,
    *,
    password: str | None = "correct horse battery",
    profile: dict[str, Any] | None = None,
    verified: bool = True,
    **overrides: Any,
) -> str:
    """Register a customer (unique email unless given) and optionally fill the profile.

    The operator's path: the address counts as confirmed unless ``verified=False``.
    """
    email = overrides.pop("email", f"c-{uuid.uuid4().hex[:12]}@example.org")
    name = overrides.pop("name", "Test Customer")
    with inst.sessions() as session:
        customer_id = customers.register(
            session,
            inst,
            email=email,
            password=password,
            name=name,
            ctx=Context(Actor.system("test")),
            verified=verified,
        )
        if profile:
            profiles.update_profile(
                session, inst, customer_id, profile, Context(Actor.system("test"))
            )
    return customer_id
