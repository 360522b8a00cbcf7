"""The demo customers who can log in and the demo supplier, each created once."""

from __future__ import annotations

import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.demo.synthetic import synthetic_profile
from infomediary.errors import EmailTaken
from infomediary.instance import Instance
from infomediary.models import utcnow
from infomediary.services import Context, customers, profiles

DEMO_LOGINS: tuple[tuple[str, str, str], ...] = (
    ("alice@example.com", "alice-demo-passphrase", "Alice Nguyen"),
    ("bob@example.com", "bob-demo-passphrase", "Bob Smith"),
)


def ensure_demo_logins(session: Session, inst: Instance) -> list[tuple[str, str]]:
    """Create the demo customers that can log in (idempotent); returns (email, password)."""
    rng = random.Random(7)
    ctx = Context(Actor.system("demo"))
    year = utcnow().year
    for email, password, name in DEMO_LOGINS:
        try:
            customer_id = customers.register(
                session, inst, email=email, password=password, name=name, ctx=ctx
            )
        except EmailTaken:
            continue
        profile = synthetic_profile(rng, year)
        profile["name"] = name
        profiles.update_profile(session, inst, customer_id, profile, ctx)
    return [(email, password) for email, password, _ in DEMO_LOGINS]


DEMO_SUPPLIER = "Demo Books"
DEMO_BROKER_SCOPES = ("audience:count", "offers:send")


def ensure_demo_supplier(session: Session) -> dict[str, str] | None:
    """A funded, operator-verified demo supplier approved for the broker (idempotent);
    returns its credentials only when just created."""
    from infomediary.models import Supplier
    from infomediary.services.rewards import fund_supplier
    from infomediary.services.suppliers import approve_broker, create_supplier, verify_supplier

    if session.execute(select(Supplier.id).where(Supplier.name == DEMO_SUPPLIER)).first():
        session.rollback()
        return None
    ctx = Context(Actor.system("demo"))
    created = create_supplier(
        session,
        name=DEMO_SUPPLIER,
        sector="retail",
        redirect_uris=["http://127.0.0.1:8000/callback"],
        scopes=["profile.identity:read", "profile.interests:read"],
        purposes=["marketing", "service", "analytics"],
        privacy_policy_url="https://books.example/privacy",
        ctx=ctx,
    )
    # the broker's scopes and the sector as the operator grants them (suppliers approve-broker)
    approve_broker(
        session, created.supplier.id, sector="retail", scopes=DEMO_BROKER_SCOPES, ctx=ctx
    )
    fund_supplier(session, created.supplier, 100_000)
    session.commit()
    verify_supplier(session, created.supplier.id, ctx)
    return {
        "name": DEMO_SUPPLIER,
        "client_id": created.supplier.client_id,
        "client_secret": created.client_secret,
    }
