"""The demo customers who can log in and the demo supplier, each created once."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.lines import LineStatus, PurchaseLine
from infomediary.audit.log import Actor
from infomediary.demo.synthetic import synthetic_profile
from infomediary.errors import EmailTaken
from infomediary.instance import Instance
from infomediary.models import utcnow
from infomediary.services import Context, customers, profiles, purchases

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
        purchases.import_lines(
            session, inst, customer_id, demo_lines(rng), "demo", "demo order history", ctx=ctx
        )
    return [(email, password) for email, password, _ in DEMO_LOGINS]


#: What the demo customers bought: (product, the retailer's category, price in cents).
_DEMO_PRODUCTS: tuple[tuple[str, str, int], ...] = (
    ("The Overstory: A Novel", "Books", 2_499),
    ("Cast Iron Skillet, 26 cm", "Kitchen & Dining", 5_995),
    ("Heirloom Tomato Seeds", "Patio, Lawn & Garden", 450),
    ("Travel Adapter, Universal", "Luggage & Travel Gear", 2_999),
    ("Wireless Headphones", "Electronics", 12_900),
)


def demo_lines(rng: random.Random) -> list[PurchaseLine]:
    """A few months of orders from one retailer, for the "My purchases" page and the broker."""
    now = utcnow()
    found = []
    for n, (name, category, price) in enumerate(_DEMO_PRODUCTS):
        when = now - timedelta(days=rng.randrange(5, 300))
        found.append(
            PurchaseLine(
                retailer="Demo Market",
                order_id=f"DM-{rng.randrange(10**6, 10**7)}",
                line_key=f"demo-{n}",
                ordered_at=when,
                product_name=name,
                product_id=None,
                category=category,
                quantity=1 + rng.randrange(2),
                unit_price_minor=price,
                currency="AUD",
                status=LineStatus.SHIPPED,
                source="demo order history",
                line_number=n + 1,
            )
        )
    return found


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
