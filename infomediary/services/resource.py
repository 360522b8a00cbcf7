"""The scoped, pseudonymous resource API: what a supplier's token may read right now.

Every call: token check (done by the caller) -> policy evaluation -> decrypt only the
allowed fields -> access-log entry (allowed or denied, with the deciding rules) in the
same transaction -> response.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Param, Reason, verdict_param
from infomediary.db import end_read
from infomediary.errors import InvalidRequest, NotFound, PolicyDenied
from infomediary.instance import Instance
from infomediary.models import (
    Agreement,
    ConsentGrant,
    Customer,
    CustomerPolicy,
    DataKey,
    OAuthToken,
    Profile,
    Supplier,
    SupplierBlock,
    utcnow,
)
from infomediary.scopes import CUSTOMER_SCOPES, parse_scopes
from infomediary.services import Context, derived_record
from infomediary.services.customer_keys import customer_key, logged_categories
from infomediary.services.decisions import Facts, decide
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.purchases import open_purchases
from infomediary.services.uow import unit_of_work
from policies.engine import restrict
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


@dataclass(frozen=True)
class _Subject:
    customer: Customer
    profile: Profile | None
    data_key: DataKey | None
    facts: Facts


#: Built once: the statement of :func:`_subject` (only its parameters change).
_SUBJECT = (
    select(
        Customer,
        Profile,
        DataKey,
        CustomerPolicy,
        SupplierBlock.supplier_id,
        ConsentGrant,
        Agreement,
    )
    .outerjoin(Profile, Profile.customer_id == Customer.id)
    .outerjoin(DataKey, DataKey.customer_id == Customer.id)
    .outerjoin(CustomerPolicy, CustomerPolicy.customer_id == Customer.id)
    .outerjoin(
        SupplierBlock,
        and_(
            SupplierBlock.customer_id == Customer.id,
            SupplierBlock.supplier_id == bindparam("supplier_id"),
        ),
    )
    .outerjoin(
        ConsentGrant,
        and_(
            ConsentGrant.customer_id == Customer.id,
            ConsentGrant.supplier_id == bindparam("supplier_id"),
            ConsentGrant.revoked_at.is_(None),
        ),
    )
    .outerjoin(
        Agreement,
        and_(
            Agreement.customer_id == Customer.id,
            Agreement.supplier_id == bindparam("supplier_id"),
            Agreement.revoked_at.is_(None),
        ),
    )
    .where(Customer.id == bindparam("customer_id"))
)


def _subject(session: Session, customer_id: str, supplier_id: str) -> _Subject | None:
    """Everything a read decides and opens, in one query: the customer, the profile, the data
    key (held, so the session's identity map answers the policy's lookup of it), the policy
    row, the supplier's block, the supplier's grants that are not revoked and the MyTerms
    agreements in force with it (a row per grant and agreement; the other columns repeat)."""
    rows = session.execute(_SUBJECT, {"customer_id": customer_id, "supplier_id": supplier_id}).all()
    if not rows:
        return None
    customer, profile, data_key, policy_row, blocked, _, _ = rows[0]
    grants = list({row[5].id: row[5] for row in rows if row[5] is not None}.values())
    agreed = list({row[6].id: row[6] for row in rows if row[6] is not None}.values())
    facts = Facts(policy_row, blocked is not None, grants, agreed)
    return _Subject(customer, profile, data_key, facts)


def _verdict(verdict: Verdict, supplier: Supplier, purpose: str) -> dict[str, Param]:
    """The decision as the entry's reason gives it: the deciding rules, by category."""
    return verdict_param(verdict, supplier=supplier.id, purpose=purpose)


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
        subject = _subject(session, customer_id, supplier.id)
        if subject is None or subject.profile is None:
            raise NotFound("The customer no longer exists.")
        customer, profile, facts = subject.customer, subject.profile, subject.facts
        requested = frozenset(
            s.category
            for name in parse_scopes(token.scope)
            if (s := CUSTOMER_SCOPES.get(name)) and s.action == "read" and s.category
        )
        # One evaluation decides the requested categories and the special ones an interest
        # tag may belong to (each category is decided on its own).
        decided = decide(
            session,
            inst,
            customer_id,
            supplier,
            token.purpose,
            requested | SPECIAL_INTEREST_CATEGORIES,
            facts=facts,
        )
        verdict = restrict(decided, requested)
        allowed = verdict.allowed_categories()
        withheld = [
            {"category": v.category, "reason": v.reason}
            for v in verdict.categories
            if v.decision != Decision.ALLOW
        ]
        if not allowed:
            end_read(session)
            ctx.log(
                session,
                "read",
                customer_id=customer_id,
                reason=Reason(
                    "resource.read_refused", {"verdict": _verdict(verdict, supplier, token.purpose)}
                ),
                categories=requested,
                purpose=token.purpose,
                allowed=False,
            )
            uow.commit()
            raise PolicyDenied("The customer's policy does not allow this access now.", withheld)

        key = customer_key(session, inst, customer_id, subject.data_key)

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
            special_ok = restrict(decided, SPECIAL_INTEREST_CATEGORIES).allowed_categories()
            tags = field("interests") or []
            body["interests"] = [
                t for t in tags if INTEREST_TAGS[t].category in ({"interests"} | special_ok)
            ]
            released |= {INTEREST_TAGS[t].category for t in body["interests"]}
        if "preferences" in allowed:
            body["preferences"] = field("preferences")
        if "interests" in allowed and "purchases" in allowed:
            # Interests the customer's purchases suggest (and they kept) depend on purchases
            # as much as on interests: released only to a grant the policy allows both, and
            # special tags exactly as declared ones above.
            suggested = derived_record.kept(derived_record.load(session, inst, key))
            body["interests_from_purchases"] = [
                t for t in suggested if INTEREST_TAGS[t].category in ({"interests"} | special_ok)
            ]
            released |= {INTEREST_TAGS[t].category for t in body["interests_from_purchases"]}
        if not body.get("interests_from_purchases"):
            # Purchase lines are read a page at a time from /api/v1/purchases, never here: the
            # log entry names purchases only when interests derived from them were released.
            released.discard("purchases")
        body["withheld"] = withheld
        end_read(session)  # the decision is made: only the entry is written, after the reads
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason("resource.read", {"verdict": _verdict(verdict, supplier, token.purpose)}),
            purpose=token.purpose,
            **logged_categories(inst, key, frozenset(released)),
        )
        uow.commit()
        return body


#: Purchase lines per page: the default, and the most a page holds.
PURCHASE_PAGE = 50
MAX_PURCHASE_PAGE = 200
PURCHASES = frozenset({"purchases"})
#: The fields of a line a supplier reads (its source file and line number stay the customer's).
PURCHASE_FIELDS = (
    "retailer",
    "order_id",
    "line_key",
    "ordered_at",
    "product_name",
    "product_id",
    "category",
    "quantity",
    "unit_price_minor",
    "currency",
    "status",
)
_BAD_CURSOR = {"cursor": "Unknown cursor: pass the cursor of a next link unchanged."}


@dataclass(frozen=True)
class PurchaseQuery:
    """A page of the customer's purchases: ordered on ``since`` to ``until`` (UTC days, both
    included), of ``retailer`` (case folded), at most ``limit``, after ``cursor`` (the
    position a ``next`` link carries), newest first."""

    since: date | None = None
    until: date | None = None
    retailer: str | None = None
    limit: int = PURCHASE_PAGE
    cursor: str | None = None


_Position = tuple[datetime, str, str]


def _position(line: dict[str, Any]) -> _Position:
    """A line's place in the order, newest first: its time, then retailer and line key (a
    customer's line is one per retailer and key)."""
    return (line["ordered_at"], line["retailer"], line["line_key"])


def purchase_cursor(line: dict[str, Any]) -> str:
    at, retailer, line_key = _position(line)
    raw = json.dumps([at.isoformat(), retailer, line_key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _after(cursor: str) -> _Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, retailer, line_key = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(retailer, str) or not isinstance(line_key, str):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidRequest("invalid_request", _BAD_CURSOR) from None
    return moment.astimezone(UTC), retailer, line_key


def _released_line(record: dict[str, Any]) -> dict[str, Any]:
    line = {name: record.get(name) for name in PURCHASE_FIELDS}
    line["ordered_at"] = datetime.fromisoformat(record["ordered_at"]).astimezone(UTC)
    return line


def read_purchases(
    session: Session, inst: Instance, token: OAuthToken, query: PurchaseQuery, ctx: Context
) -> dict[str, Any]:
    """A page of the purchases ``token`` may read now (it holds ``purchases:read``): the
    customer's policy decides the ``purchases`` category for the grant's purpose, identified,
    as for every other category; one log entry, allowed (with the lines released) or denied.

    ``{"purchases": [...], "next": cursor or None}``, newest first; ``ordered_at`` is an aware
    UTC datetime."""
    supplier = session.get(Supplier, token.supplier_id)
    if supplier is None or token.customer_id is None:
        raise NotFound("This token is not bound to a customer.")
    customer_id, purpose = token.customer_id, token.purpose
    after = _after(query.cursor) if query.cursor is not None else None
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("The customer no longer exists.")
        verdict = decide(session, inst, customer_id, supplier, purpose, PURCHASES)
        if "purchases" not in verdict.allowed_categories():
            withheld = [
                {"category": v.category, "reason": v.reason}
                for v in verdict.categories
                if v.decision != Decision.ALLOW
            ]
            ctx.log(
                session,
                "read",
                customer_id=customer_id,
                reason=Reason(
                    "resource.purchases_refused", {"verdict": _verdict(verdict, supplier, purpose)}
                ),
                categories=PURCHASES,
                purpose=purpose,
                allowed=False,
            )
            uow.commit()
            raise PolicyDenied("The customer's policy does not allow this access now.", withheld)
        key = customer_key(session, inst, customer_id)
        lines = [
            _released_line(record)
            for record in open_purchases(session, inst, key, retailer=query.retailer)
        ]
        lines = [
            line
            for line in lines
            if (query.since is None or line["ordered_at"].date() >= query.since)
            and (query.until is None or line["ordered_at"].date() <= query.until)
            and (after is None or _position(line) < after)
        ]
        lines.sort(key=_position, reverse=True)
        page = lines[: query.limit]
        ctx.log(
            session,
            "read",
            customer_id=customer_id,
            reason=Reason(
                "resource.purchases_released",
                {"lines": len(page), "verdict": _verdict(verdict, supplier, purpose)},
            ),
            purpose=purpose,
            **logged_categories(inst, key, PURCHASES, {"purchases_released": len(page)}),
        )
        uow.commit()
    return {
        "purchases": page,
        "next": purchase_cursor(page[-1]) if len(lines) > query.limit else None,
    }
