"""Factory functions for test data, going through the real services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import ConsentGrant, Offer, Supplier
from infomediary.services import Context, customers, profiles
from infomediary.services.consent_grants import grant_consent
from infomediary.services.jobs import run_pending
from infomediary.services.offers import DELIVER, OfferInput, send_offer
from infomediary.services.rewards import fund_supplier
from infomediary.services.suppliers import create_supplier
from infomediary.statuses import SupplierKind
from infomediary.web.schemas import OfferRequestSchema, load


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


REDIRECT = "https://shop.example/callback"
#: Every region: an audience the synthetic population fills well past the broker's k.
EVERYWHERE = {"region": ["NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"]}


@dataclass
class SupplierCreds:
    id: str
    client_id: str
    client_secret: str
    redirect_uri: str
    organisation_id: str = ""


def make_supplier(
    inst: Instance,
    *,
    name: str = "Acme Books",
    scopes: tuple[str, ...] = (
        "profile.identity:read",
        "profile.interests:read",
        "profile.demographics:read",
    ),
    purposes: tuple[str, ...] = ("marketing", "service"),
    redirect_uris: tuple[str, ...] = (REDIRECT,),
    kind: str = SupplierKind.SUPPLIER,
    sector: str = "retail",
    fund_cents: int = 0,
    organisation: str | None = None,
) -> SupplierCreds:
    """Register a supplier as the operator does (and credit its rewards account, if asked):
    in a new organisation of its own, or in ``organisation`` (an existing one's id or name).
    Broker scopes are granted as ``suppliers create`` grants them, through the approval."""
    with inst.sessions() as session:
        created = create_supplier(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            scopes=list(scopes),
            purposes=list(purposes),
            sector=sector,
            privacy_policy_url="https://shop.example/privacy",
            kind=kind,
            organisation=organisation,
        )
        creds = SupplierCreds(
            created.supplier.id,
            created.supplier.client_id,
            created.client_secret,
            redirect_uris[0] if redirect_uris else "",
            created.supplier.organisation_id,
        )
        if fund_cents:
            fund_supplier(session, created.supplier, fund_cents)
            session.commit()
    return creds


def make_grant(
    inst: Instance,
    customer_id: str,
    supplier_id: str,
    *,
    scopes: tuple[str, ...] = ("profile.identity:read",),
    purpose: str = "service",
    expires_at: datetime | None = None,
    offer_id: str | None = None,
) -> ConsentGrant:
    """The customer's consent to the supplier, as the consent screen records it (with its
    signed receipt and log entry)."""
    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None, f"no supplier {supplier_id}"
        grant = grant_consent(
            session,
            inst,
            customer_id,
            supplier,
            scopes=list(scopes),
            purpose=purpose,
            expires_at=expires_at,
            ctx=Context(Actor.customer(customer_id), "test"),
            base_url="http://localhost",
            offer_id=offer_id,
        )
        session.commit()
    return grant


def make_offer(inst: Instance, supplier_id: str, **fields: Any) -> dict[str, Any]:
    """Send an offer through the broker as the API does (its schema, then the service).

    ``fields`` override the request's: by default a marketing offer to everyone, 150 cents a
    reward, 100 recipients at most, open for 7 days. The supplier needs ``offers:send``,
    the purpose declared and the funds for the escrow. Runs the delivery job, and returns the
    service's answer (``id``, ...) with the decided ``status`` and ``reach``."""
    request = {
        "purpose": "marketing",
        "where": EVERYWHERE,
        "title": "10% off books",
        "body": "Show this at the counter.",
        "reward_cents": 150,
        "max_recipients": 100,
        "expires_in_days": 7,
        **fields,
    }
    offer_in = load(OfferRequestSchema(), request, OfferInput)
    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None, f"no supplier {supplier_id}"
        sent = send_offer(session, inst, supplier, offer_in, Context.supplier(supplier_id))
    run_pending(inst, kinds=[DELIVER])  # the delivery job decides, as the worker would
    with inst.sessions() as session:
        offer = session.get_one(Offer, sent["id"])
        return {**sent, "status": offer.status, "reach": offer.noisy_reach}
