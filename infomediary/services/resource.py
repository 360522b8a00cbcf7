"""The scoped, pseudonymous resource API: what a supplier's token may read right now.

Every call: token check (done by the caller) -> policy evaluation -> decrypt only the
allowed fields -> access-log entry (allowed or denied, with the deciding rules) in the
same transaction -> response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from infomediary.errors import NotFound, PolicyDenied
from infomediary.instance import Instance
from infomediary.models import Customer, OAuthToken, Profile, Supplier, utcnow
from infomediary.scopes import CUSTOMER_SCOPES, parse_scopes
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key, logged_categories
from infomediary.services.decisions import decide
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.uow import unit_of_work
from policies.engine import describe_rule
from policies.model import Decision, Verdict
from policies.taxonomy import CATEGORIES, INTEREST_TAGS, age_band, region_for_postcode

#: The special categories an interest tag can belong to (health, religion, ...).
SPECIAL_INTEREST_CATEGORIES = frozenset(
    tag.category for tag in INTEREST_TAGS.values() if CATEGORIES[tag.category].special
)


@dataclass(frozen=True)
class _Request:
    scope: str
    purpose: str


@dataclass(frozen=True)
class Released:
    body: dict[str, Any]
    categories: frozenset[str]


def _reason(verdict: Verdict) -> str:
    rules = "; ".join(describe_rule(r) for r in verdict.deciding_rules()[:3])
    return (verdict.reason + (f" [rules: {rules}]" if rules else ""))[:255]


def read_me(session: Session, inst: Instance, token: OAuthToken, ctx: Context) -> dict[str, Any]:
    """What ``token`` may read now; ``ctx`` is its supplier's (:meth:`Context.supplier`)."""
    supplier = session.get(Supplier, token.supplier_id)
    if supplier is None or token.customer_id is None:
        raise NotFound("This token is not bound to a customer.")
    return release(
        session,
        inst,
        supplier,
        token.customer_id,
        parse_scopes(token.scope),
        token.purpose,
        ctx,
    )


def release(
    session: Session,
    inst: Instance,
    supplier: Supplier,
    customer_id: str,
    scopes: list[str],
    purpose: str,
    ctx: Context,
) -> dict[str, Any]:
    """Policy check, decrypt only what is allowed, log, answer: every identified read, by the
    supplier whose ``ctx`` this is."""
    with unit_of_work(session) as uow:
        token = _Request(scope=" ".join(scopes), purpose=purpose)
        customer = session.get(Customer, customer_id)
        profile = session.get(Profile, customer_id)
        if customer is None or profile is None:
            raise NotFound("The customer no longer exists.")
        requested = frozenset(
            s.category
            for name in parse_scopes(token.scope)
            if (s := CUSTOMER_SCOPES.get(name)) and s.action == "read" and s.category
        )
        verdict = decide(session, inst, customer_id, supplier, token.purpose, requested)
        allowed = verdict.allowed_categories()
        withheld = [
            {"category": v.category, "reason": v.reason}
            for v in verdict.categories
            if v.decision != Decision.ALLOW
        ]
        if not allowed:
            ctx.log(
                session,
                "read",
                customer_id=customer_id,
                reason=_reason(verdict),
                categories=requested,
                purpose=token.purpose,
                allowed=False,
            )
            uow.commit()
            raise PolicyDenied("The customer's policy does not allow this access now.", withheld)

        key = customer_key(session, inst, customer_id)

        def field(name: str) -> Any:
            blob = getattr(profile, name)
            return (
                None if blob is None else inst.vault.open(key, "profiles", customer_id, name, blob)
            )

        body: dict[str, Any] = {
            "sub": pairwise_pseudonym(inst, supplier.id, customer_id),
            "purpose": token.purpose,
        }
        released = set(allowed)
        if "identity" in allowed:
            body["identity"] = {
                "name": field("name"),
                "email": inst.vault.open(key, "customers", customer_id, "email", customer.email),
                "phone": field("phone"),
                "address": {
                    "street": field("street_address"),
                    "locality": field("locality"),
                    "postcode": field("postcode"),
                },
            }
        if "demographics" in allowed:
            birth_year, postcode = field("birth_year"), field("postcode")
            body["demographics"] = {
                "age_band": age_band(birth_year, utcnow().year) if birth_year else None,
                "region": region_for_postcode(postcode) if postcode else None,
                "household_size": field("household_size"),
            }
        if "interests" in allowed:
            # Special-category tags need a rule of the customer's own for this supplier. Which of
            # them the customer holds is exactly what the supplier may not learn, so the decision
            # covers every special category whether or not the customer has such a tag, and a
            # refused one is dropped silently: `withheld` names only categories the supplier
            # asked for, the same for every customer whatever their interests.
            special_ok = decide(
                session, inst, customer_id, supplier, token.purpose, SPECIAL_INTEREST_CATEGORIES
            ).allowed_categories()
            tags = field("interests") or []
            body["interests"] = [
                t for t in tags if INTEREST_TAGS[t].category in ({"interests"} | special_ok)
            ]
            released |= {INTEREST_TAGS[t].category for t in body["interests"]}
        if "preferences" in allowed:
            body["preferences"] = field("preferences")
        if "purchases" in allowed:
            body["purchases"] = []  # filled by the connectors feature
        body["withheld"] = withheld
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=_reason(verdict),
            purpose=token.purpose,
            **logged_categories(inst, key, frozenset(released)),
        )
        uow.commit()
        return body
