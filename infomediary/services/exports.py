"""The customer's complete export and their timeline items.

Format 2 (``infomediary-export/2``, described by ``infomediary/web/static/export.schema.json``
and ``docs/EXPORT.md``) is one JSON document with a section per family of the customer's rows:
each section is one small function of :data:`SECTIONS`, and :data:`TABLES` says which section
holds each table with a ``customer_id`` (:data:`NOT_EXPORTED` the few that hold nothing of
theirs to read, each with its reason), so a new table cannot be left out unnoticed. Suppliers
are named wherever their id appears (``supplier_id`` beside ``supplier_name``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.log import append
from infomediary.audit.reasons import Reason, render, supplier_ids
from infomediary.crypto.receipts import ReceiptError, verify_receipt
from infomediary.crypto.vault import CustomerKey, DecryptionError
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Agreement,
    ConsentGrant,
    ConsentReceipt,
    Customer,
    CustomerPolicy,
    CustomerSettings,
    CustomerTotp,
    DataKey,
    DerivedInterests,
    EmailToken,
    ErasureRequest,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    NotificationSettings,
    OAuthToken,
    Offer,
    OfferDelivery,
    Passkey,
    PayoutRequest,
    Profile,
    PurchaseImport,
    PurchaseOrderReview,
    PurchaseUpload,
    RecoveryCode,
    Release,
    ReleaseReplay,
    Supplier,
    SupplierBlock,
    WebSession,
    utcnow,
)
from infomediary.scopes import categories_for, parse_scopes
from infomediary.services import (
    Context,
    agreements,
    derived_interests,
    derived_record,
    exposure,
    intents,
    offer_inbox,
    purchases,
)
from infomediary.services.customer_keys import (
    customer_key,
    logged_categories,
    open_detail,
)
from infomediary.services.policy_store import load_policy
from infomediary.services.profile_fields import (
    FIELD_NAMES,
    categories_of,
)
from infomediary.services.profiles import decrypt_profile
from infomediary.services.uow import unit_of_work
from infomediary.statuses import LedgerAccountKind
from policies.codec import policy_to_dict
from policies.model import PURPOSES, Recipient, RecipientKind
from policies.validation import describe_rule

EXPORT_FORMAT = "infomediary-export/2"
#: Where the document's JSON Schema is published (the view makes it absolute).
SCHEMA_PATH = "/static/export.schema.json"
#: How a reason names a supplier whose row is gone (or an id that names none).
UNKNOWN_SUPPLIER = "a supplier no longer registered"


def display_name(name: str, verified: bool) -> str:
    """A supplier as a reason names it to a customer: its name, marked when we verified it."""
    return f"{name} (verified)" if verified else name


@dataclass(frozen=True, slots=True)
class SupplierNames:
    """The suppliers a page names, looked up in one query: their names, and whether verified."""

    found: dict[str, tuple[str, bool]]

    @classmethod
    def lookup(cls, session: Session, ids: Iterable[str]) -> SupplierNames:
        wanted = set(ids)
        if not wanted:
            return cls({})
        rows = session.execute(
            select(Supplier.id, Supplier.name, Supplier.verified_at).where(Supplier.id.in_(wanted))
        ).all()
        return cls({str(sid): (str(name), verified is not None) for sid, name, verified in rows})

    def name(self, supplier_id: str) -> str | None:
        """The supplier's plain name, or None when no such supplier is registered."""
        found = self.found.get(supplier_id)
        return None if found is None else found[0]

    def shown(self, supplier_id: str) -> str:
        """``render``'s ``name_of``: the display name, or a supplier no longer registered."""
        found = self.found.get(supplier_id)
        return UNKNOWN_SUPPLIER if found is None else display_name(*found)


def suppliers_named(rows: Iterable[AccessLogEntry]) -> set[str]:
    """Every supplier id the rows' reasons name, and the suppliers among their actors."""
    found: set[str] = set()
    for row in rows:
        found |= supplier_ids(row.reason_data)
        if row.actor_type == "supplier":
            found.add(row.actor_id)
    return found


@dataclass(frozen=True, slots=True)
class TimelineItem:
    seq: int
    time: datetime
    actor_type: str
    actor_id: str
    action: str
    categories: tuple[str, ...]
    purpose: str
    outcome: str
    reason: str
    detail: Any
    actor_name: str | None = None
    #: The structured reason (code and parameters) of a format-2 entry; None for format 1.
    reason_data: dict[str, Any] | None = None


def _structured(reason_data: str | None) -> dict[str, Any] | None:
    if not reason_data:
        return None
    try:
        body = json.loads(reason_data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def timeline_item(
    inst: Instance,
    key: CustomerKey | None,
    row: AccessLogEntry,
    names: Callable[[str], str] | None = None,
) -> TimelineItem:
    """One entry as the customer reads it: its reason rendered (``names`` names suppliers),
    whole, from the structured reason of a format-2 entry or the sentence of a format-1 one."""
    return TimelineItem(
        seq=row.seq,
        time=row.created_at,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        categories=tuple(
            detail["categories"]
            if isinstance(detail := open_detail(inst, key, row.detail, row.detail_hash), dict)
            and "categories" in detail
            else (c for c in row.categories.split(",") if c)
        ),
        purpose=row.purpose,
        outcome=row.outcome,
        reason=render(row.reason_data, row.reason, names),
        detail=detail,
        reason_data=_structured(row.reason_data),
    )


# -- the complete export (format 2) ------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass
class _Reader:
    """What every section reads through: the session, the customer's key, and the names of
    the suppliers the sections mention (looked up in one query per section)."""

    session: Session
    inst: Instance
    customer: Customer
    key: CustomerKey
    names: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @property
    def customer_id(self) -> str:
        return self.customer.id

    def name(self, ids: Iterable[str | None]) -> None:
        """Look up, in one query, the suppliers among ``ids`` not looked up yet."""
        wanted = {i for i in ids if i} - set(self.names)
        if wanted:
            self.names |= SupplierNames.lookup(self.session, wanted).found
            self.names |= dict.fromkeys(wanted - set(self.names), (UNKNOWN_SUPPLIER, False))

    def supplier(self, supplier_id: str | None) -> dict[str, Any]:
        """A supplier as every section names it: its id and its name (both None for none)."""
        if supplier_id is None:
            return {"supplier_id": None, "supplier_name": None}
        self.name([supplier_id])
        return {"supplier_id": supplier_id, "supplier_name": self.names[supplier_id][0]}

    def verified(self, supplier_id: str) -> bool:
        self.name([supplier_id])
        return self.names[supplier_id][1]


def _account(r: _Reader) -> dict[str, Any]:
    c = r.customer
    return {
        "id": c.id,
        "email": r.inst.vault.open(r.key, "customers", c.id, "email", c.email),
        "created_at": c.created_at.isoformat(),
        "confirmed_at": _iso(c.verified_at),
        "password_changed_at": _iso(c.password_changed_at),
    }


def _site_settings(r: _Reader) -> dict[str, Any]:
    row = r.session.get(CustomerSettings, r.customer_id)
    zone = None
    if row is not None and row.time_zone is not None:
        zone = r.inst.vault.open(
            r.key, "customer_settings", r.customer_id, "time_zone", row.time_zone
        )
    return {
        "site_language": row.site_language if row else None,
        "time_zone": zone,
        "updated_at": _iso(row.updated_at) if row else None,
    }


def _notification_choices(r: _Reader) -> dict[str, Any]:
    """The notification kinds chosen for the site and the digest, and how far they were read;
    no row: never chosen, so the defaults apply (every kind shown in the site, no digest), and
    the lists are empty."""
    row = r.session.get(NotificationSettings, r.customer_id)
    if row is None:
        return dict.fromkeys(_NOTIFICATION_TIMES) | {
            "chosen": False,
            "in_app": [],
            "digest": False,
            "digest_kinds": [],
        }
    return {
        "chosen": True,
        "in_app": sorted(row.in_app.split()),
        "digest": row.digest,
        "digest_kinds": sorted(row.digest_kinds.split()),
        "seen_through": _iso(row.seen_through),
        "digest_sent_at": _iso(row.digest_sent_at),
        "updated_at": row.updated_at.isoformat(),
    }


_NOTIFICATION_TIMES = ("seen_through", "digest_sent_at", "updated_at")


def _encryption(r: _Reader) -> dict[str, Any]:
    row = r.session.get_one(DataKey, r.customer_id)
    return {
        "data_key_created_at": row.created_at.isoformat(),
        "data_key_version": row.dek_version,
        "wrapped_by_kek_version": row.kek_version,
    }


#: The profile's preferences as the export lists them (every one, None when never chosen).
PREFERENCES = ("contact_channel", "offer_frequency", "language")


def _profile(r: _Reader) -> dict[str, Any]:
    profile = r.session.get_one(Profile, r.customer_id)
    data = decrypt_profile(r.inst, r.key, r.customer, profile)
    preferences = data.get("preferences") or {}
    return {
        **{name: data[name] for name in FIELD_NAMES if name not in ("interests", "preferences")},
        "interests": list(data.get("interests") or []),
        "preferences": {name: preferences.get(name) for name in PREFERENCES},
        "updated_at": profile.updated_at.isoformat(),
    }


def _purchases(r: _Reader) -> list[dict[str, Any]]:
    return [
        {**line, "total_minor": line["quantity"] * line["unit_price_minor"]}
        for line in sorted(
            purchases.open_purchases(r.session, r.inst, r.key),
            key=lambda line: (line["ordered_at"], line["line_number"], line["id"]),
        )
    ]


def _purchase_imports(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(PurchaseImport)
        .where(PurchaseImport.customer_id == r.customer_id)
        .order_by(PurchaseImport.created_at, PurchaseImport.id)
    ).scalars()
    found = []
    for row in rows:
        opened = r.inst.vault.open(r.key, purchases.IMPORTS, row.id, "detail", row.detail)
        found.append(
            {
                "id": row.id,
                "status": row.status,
                "format": row.format,
                "source": str(opened.get("source", "")),
                "retailers": list(opened.get("retailers", [])),
                "imported": row.imported,
                "duplicates": row.duplicates,
                "rejected": row.rejected,
                **r.supplier(row.supplier_id),
                "created_at": row.created_at.isoformat(),
                "finished_at": _iso(row.finished_at),
            }
        )
    return found


def _purchase_uploads(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(PurchaseUpload)
        .where(PurchaseUpload.customer_id == r.customer_id)
        .order_by(PurchaseUpload.created_at, PurchaseUpload.id)
    ).scalars()
    found = []
    for row in rows:
        counts = json.loads(row.result) if row.result else {}
        found.append(
            {
                "id": row.id,
                "origin": row.origin,
                "status": row.status,
                "size": row.size,
                **r.supplier(row.supplier_id),
                "imported": counts.get("imported"),
                "duplicates": counts.get("duplicates"),
                "rejected": counts.get("rejected"),
                "error": (row.error or "").split(":")[0] or None,
                "import_id": row.import_id,
                "created_at": row.created_at.isoformat(),
                "finished_at": _iso(row.finished_at),
            }
        )
    return found


def _order_reviews(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(PurchaseOrderReview)
        .where(PurchaseOrderReview.customer_id == r.customer_id)
        .order_by(PurchaseOrderReview.created_at, PurchaseOrderReview.order_token)
    ).scalars()
    return [
        {"order_token": row.order_token.hex(), "created_at": row.created_at.isoformat()}
        for row in rows
    ]


def _interests_from_purchases(r: _Reader) -> dict[str, Any]:
    record = derived_record.load(r.session, r.inst, r.key)
    held = derived_interests.export(record)
    row = r.session.get(DerivedInterests, r.customer_id)
    return {
        "evidence": [
            {
                "interest": tag,
                "month": month,
                "lines": int(cell.get("lines", 0)),
                "spend": [
                    {"currency": currency, "amount_minor": int(amount)}
                    for currency, amount in sorted(cell.get("spend", {}).items())
                ],
            }
            for tag, months in sorted(held["evidence"].items())
            for month, cell in sorted(months.items())
        ],
        "removed": held["removed"],
        "mapping": held["mapping"],
        "updated_at": _iso(row.updated_at if row else None),
    }


def _grant_status(grant: ConsentGrant, now: datetime) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    return "active" if grant.is_active(now) else "expired"


def _claims(r: _Reader, jws: str) -> tuple[dict[str, Any], bool]:
    """A receipt's claims, and whether its signature verifies against our published keys."""
    try:
        return verify_receipt(jws, r.inst.receipt_signer.jwks()), True
    except ReceiptError:
        payload = jws.split(".")[1] if jws.count(".") == 2 else ""
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            claims = {}
        return (claims if isinstance(claims, dict) else {}), False


def _consents(r: _Reader) -> list[dict[str, Any]]:
    grants = list(
        r.session.execute(
            select(ConsentGrant)
            .where(ConsentGrant.customer_id == r.customer_id)
            .order_by(ConsentGrant.created_at, ConsentGrant.id)
        ).scalars()
    )
    r.name(g.supplier_id for g in grants)
    receipts: dict[str, list[ConsentReceipt]] = {}
    for receipt in r.session.execute(
        select(ConsentReceipt)
        .where(ConsentReceipt.customer_id == r.customer_id)
        .order_by(ConsentReceipt.created_at, ConsentReceipt.id)
    ).scalars():
        receipts.setdefault(receipt.grant_id, []).append(receipt)
    now = utcnow()
    found = []
    for grant in grants:
        scopes = list(parse_scopes(grant.scopes))
        signed = []
        for receipt in receipts.get(grant.id, []):
            claims, valid = _claims(r, receipt.jws)
            signed.append(
                {
                    "id": receipt.id,
                    "event": receipt.event,
                    "created_at": receipt.created_at.isoformat(),
                    "jws": receipt.jws,
                    "signature_verified": valid,
                    "claims": claims,
                }
            )
        found.append(
            {
                "id": grant.id,
                **r.supplier(grant.supplier_id),
                "supplier_verified": r.verified(grant.supplier_id),
                "scopes": scopes,
                "categories": sorted(categories_for(scopes)),
                "purpose": grant.purpose,
                "purpose_in_words": PURPOSES.get(grant.purpose, grant.purpose),
                "consent_text_version": grant.consent_text_version,
                "offer_id": grant.offer_id,
                "created_at": grant.created_at.isoformat(),
                "updated_at": grant.updated_at.isoformat(),
                "expires_at": _iso(grant.expires_at),
                "revoked_at": _iso(grant.revoked_at),
                "status": _grant_status(grant, now),
                "receipts": signed,
            }
        )
    return found


def _myterms(r: _Reader) -> dict[str, Any]:
    """The terms the customer proffers by default and every agreement made under them."""
    rows = list(
        r.session.execute(
            select(Agreement)
            .where(Agreement.customer_id == r.customer_id)
            .order_by(Agreement.created_at, Agreement.id)
        ).scalars()
    )
    r.name(row.supplier_id for row in rows)
    made = []
    for row in rows:
        terms = agreements.roster(r.inst).get(row.agreement_id)
        try:
            claims, valid = agreements.verify_agreement(row.jws, r.inst), True
        except agreements.AgreementInvalid:
            claims, valid = {}, False
        made.append(
            {
                "id": row.id,
                **r.supplier(row.supplier_id),
                "agreement_id": row.agreement_id,
                "title": terms.title if terms else None,
                "summary": terms.summary if terms else None,
                "context": agreements.open_context(r.session, r.inst, row),
                "created_at": row.created_at.isoformat(),
                "revoked_at": _iso(row.revoked_at),
                "jws": row.jws,
                "signature_verified": valid,
                "claims": claims,
            }
        )
    return {
        "default_terms": agreements.default_agreement(r.session, r.customer_id, r.inst),
        "agreements": made,
    }


def _intents(r: _Reader) -> list[dict[str, Any]]:
    """The customer's intents, opened, each with the bids suppliers made on it."""
    rows = intents.export_rows(r.session, r.inst, r.customer_id)
    r.name(bid["supplier_id"] for row in rows for bid in row["bids"])
    for row in rows:
        row["bids"] = [
            {"id": bid["id"], **r.supplier(bid["supplier_id"]), **bid} for bid in row["bids"]
        ]
    return rows


def _policy(r: _Reader) -> dict[str, Any]:
    row = r.session.get(CustomerPolicy, r.customer_id)
    policy = load_policy(r.session, r.inst, r.customer_id)
    stored = policy_to_dict(policy)
    named = [
        rule.recipient.value
        for rule in policy.rules
        if rule.recipient.kind == RecipientKind.SUPPLIER
    ]
    r.name(named)
    rules = []
    for rule, form in zip(policy.rules, stored["rules"], strict=True):
        supplier_id = (
            rule.recipient.value if rule.recipient.kind == RecipientKind.SUPPLIER else None
        )
        shown = r.supplier(supplier_id)
        words = describe_rule(
            replace(rule, recipient=Recipient(RecipientKind.SUPPLIER, shown["supplier_name"]))
            if supplier_id
            else rule
        )
        rules.append({**form, **shown, "in_words": words})
    return {
        "version": stored["version"],
        "template": stored["template"],
        "default": row is None,
        "updated_at": _iso(row.updated_at if row else None),
        "rules": rules,
    }


def _offers(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(OfferDelivery, Offer)
        .join(Offer, Offer.id == OfferDelivery.offer_id)
        .where(OfferDelivery.customer_id == r.customer_id)
        .order_by(OfferDelivery.delivered_at, Offer.id)
    ).all()
    r.name(offer.supplier_id for _, offer in rows)
    shared = {
        str(offer_id)
        for offer_id in r.session.execute(
            select(ConsentGrant.offer_id).where(
                ConsentGrant.customer_id == r.customer_id, ConsentGrant.offer_id.is_not(None)
            )
        ).scalars()
    }
    found = []
    for delivery, offer in rows:
        criteria = json.loads(offer.criteria)
        found.append(
            {
                "offer_id": offer.id,
                **r.supplier(offer.supplier_id),
                "title": offer.title,
                "body": offer.body,
                "purpose": offer.purpose,
                "purpose_in_words": PURPOSES.get(offer.purpose, offer.purpose),
                "criteria": criteria,
                "targeting": [
                    {
                        "attribute": offer_inbox.attribute_label(attribute),
                        "values": " or ".join(
                            offer_inbox.value_label(attribute, v) for v in values
                        ),
                    }
                    for attribute, values in criteria.get("where", {}).items()
                ],
                "reward_cents": offer.reward_cents,
                "expires_at": offer.expires_at.isoformat(),
                "delivered_at": delivery.delivered_at.isoformat(),
                "response": delivery.status,
                "responded_at": _iso(delivery.responded_at),
                "contact_shared": offer.id in shared,
            }
        )
    return found


def _earnings(r: _Reader) -> dict[str, Any]:
    account = r.session.execute(
        select(LedgerAccount).where(
            LedgerAccount.kind == LedgerAccountKind.CUSTOMER,
            LedgerAccount.owner_id == r.customer_id,
        )
    ).scalar_one_or_none()
    rows = (
        r.session.execute(
            select(LedgerEntry, LedgerTransaction)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == account.id)
            .order_by(LedgerTransaction.created_at, LedgerEntry.id)
        ).all()
        if account is not None
        else []
    )
    r.name(txn.supplier_id for _, txn in rows)
    movements = [
        {
            "id": entry.id,
            "transaction_id": txn.id,
            "kind": txn.kind,
            "time": txn.created_at.isoformat(),
            "amount_cents": entry.amount_cents,
            **r.supplier(txn.supplier_id),
            "offer_id": txn.offer_id,
        }
        for entry, txn in rows
    ]
    return {
        "balance_cents": sum(m["amount_cents"] for m in movements),
        "movements": movements,
    }


def _payouts(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(PayoutRequest)
        .where(PayoutRequest.customer_id == r.customer_id)
        .order_by(PayoutRequest.requested_at, PayoutRequest.id)
    ).scalars()
    return [
        {
            "id": row.id,
            "amount_cents": row.amount_cents,
            "currency": row.currency,
            "destination": r.inst.vault.open(
                r.key, "payout_requests", row.id, "destination", row.destination
            ),
            "status": row.status,
            "requested_at": row.requested_at.isoformat(),
            "settled_at": _iso(row.settled_at),
            "cancelled_at": _iso(row.cancelled_at),
        }
        for row in rows
    ]


def _counts_you_were_part_of(r: _Reader) -> dict[str, Any]:
    """``exposure.export_releases``, each release and replay named by supplier id and name."""
    found = exposure.export_releases(r.session, r.inst, r.customer_id)
    seqs = [release["seq"] for release in found["releases"]]
    by_seq: dict[int, str] = {}
    replays: dict[int, list[str]] = {}
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        by_seq |= dict(
            r.session.execute(
                select(Release.seq, Release.supplier_id).where(Release.seq.in_(chunk))
            ).all()
        )
        for seq, supplier_id in r.session.execute(
            select(ReleaseReplay.release_seq, ReleaseReplay.supplier_id)
            .where(ReleaseReplay.release_seq.in_(chunk))
            .order_by(ReleaseReplay.id)
        ).all():
            replays.setdefault(int(seq), []).append(str(supplier_id))
    r.name([*by_seq.values(), *(s for ids in replays.values() for s in ids)])
    return {
        "budget": found["budget"],
        "releases": [
            {
                "seq": release["seq"],
                "time": release["time"],
                **r.supplier(by_seq[release["seq"]]),
                "kind": release["kind"],
                "purpose": release["purpose"],
                "epsilon": release["epsilon"],
                "criteria": release["criteria"],
                "offer_reached_you": release.get("offer_reached_you"),
                "replayed_to": [
                    {**r.supplier(supplier_id), "time": replay["time"]}
                    for supplier_id, replay in zip(
                        replays.get(release["seq"], []), release["replayed_to"], strict=True
                    )
                ],
            }
            for release in found["releases"]
        ],
    }


def _blocks(r: _Reader) -> list[dict[str, Any]]:
    rows = list(
        r.session.execute(
            select(SupplierBlock)
            .where(SupplierBlock.customer_id == r.customer_id)
            .order_by(SupplierBlock.created_at, SupplierBlock.supplier_id)
        ).scalars()
    )
    return [
        {**r.supplier(row.supplier_id), "created_at": row.created_at.isoformat()} for row in rows
    ]


def _erasure_requests(r: _Reader) -> list[dict[str, Any]]:
    """Requests that a supplier delete what it holds about the customer, and how they went."""
    rows = list(
        r.session.execute(
            select(ErasureRequest)
            .where(ErasureRequest.customer_id == r.customer_id)
            .order_by(ErasureRequest.requested_at, ErasureRequest.id)
        ).scalars()
    )
    r.name(row.supplier_id for row in rows)
    return [
        {
            "id": row.id,
            **r.supplier(row.supplier_id),
            "subject": row.subject,
            "status": row.status,
            "attempts": row.attempts,
            "requested_at": row.requested_at.isoformat(),
            "last_attempt_at": _iso(row.last_attempt_at),
            "delivered_at": _iso(row.delivered_at),
            "confirmed_at": _iso(row.confirmed_at),
            "failed_at": _iso(row.failed_at),
        }
        for row in rows
    ]


def _passkey_name(r: _Reader, passkey: Passkey) -> str | None:
    """The name the customer gave a passkey (sealed under their key), never its key."""
    try:
        return str(r.inst.vault.open(r.key, "passkeys", passkey.id, "name", passkey.name))
    except DecryptionError:
        return None


def _second_factors(r: _Reader) -> dict[str, Any]:
    """That passkeys, an authenticator app and recovery codes exist, with their names and
    dates: never a key, a secret or a code."""
    totp = r.session.get(CustomerTotp, r.customer_id)
    codes = r.session.execute(
        select(RecoveryCode)
        .where(RecoveryCode.customer_id == r.customer_id)
        .order_by(RecoveryCode.created_at, RecoveryCode.code_hash)
    ).scalars()
    passkeys = r.session.execute(
        select(Passkey)
        .where(Passkey.customer_id == r.customer_id)
        .order_by(Passkey.created_at, Passkey.id)
    ).scalars()
    return {
        "passkeys": [
            {
                "id": passkey.id,
                "name": _passkey_name(r, passkey),
                "transports": [t for t in passkey.transports.split(",") if t],
                "created_at": passkey.created_at.isoformat(),
                "last_used_at": _iso(passkey.last_used_at),
            }
            for passkey in passkeys
        ],
        "authenticator_app": [
            {
                "created_at": totp.created_at.isoformat(),
                "confirmed_at": _iso(totp.confirmed_at),
                "last_used_at": _iso(totp.last_used_at),
            }
        ]
        if totp is not None
        else [],
        "recovery_codes": [
            {"created_at": code.created_at.isoformat(), "used_at": _iso(code.used_at)}
            for code in codes
        ],
    }


def _authorizations(r: _Reader) -> list[dict[str, Any]]:
    """The suppliers' access tokens on the customer's data: when, what, until when (never the
    tokens, which are stored only as hashes)."""
    rows = list(
        r.session.execute(
            select(OAuthToken)
            .where(OAuthToken.customer_id == r.customer_id)
            .order_by(OAuthToken.issued_at, OAuthToken.id)
        ).scalars()
    )
    r.name(row.supplier_id for row in rows)
    return [
        {
            "id": row.id,
            **r.supplier(row.supplier_id),
            "grant_id": row.grant_id,
            "scopes": list(parse_scopes(row.scope)),
            "purpose": row.purpose,
            "issued_at": row.issued_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "refresh_expires_at": _iso(row.refresh_expires_at),
            "rotated_at": _iso(row.rotated_at),
            "revoked_at": _iso(row.revoked_at),
        }
        for row in rows
    ]


def _sessions(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(WebSession)
        .where(WebSession.customer_id == r.customer_id)
        .order_by(WebSession.created_at)
    ).scalars()
    return [
        {
            "created_at": row.created_at.isoformat(),
            "last_seen_at": row.last_seen_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            **_device(r, row),
        }
        for row in rows
    ]


def _device(r: _Reader, row: WebSession) -> dict[str, str | None]:
    """The session's coarse device label, sealed under the customer's key by its public id."""
    if row.device is None or row.public_id is None:
        return {"browser": None, "system": None}
    label = r.inst.vault.open(r.key, "web_sessions", str(row.public_id), "device", row.device)
    return {"browser": label.get("browser") or None, "system": label.get("system") or None}


def _email_links(r: _Reader) -> list[dict[str, Any]]:
    rows = r.session.execute(
        select(EmailToken)
        .where(EmailToken.customer_id == r.customer_id)
        .order_by(EmailToken.created_at, EmailToken.token_hash)
    ).scalars()
    return [
        {
            "purpose": row.purpose,
            "new_email": None
            if row.new_email is None
            else r.inst.vault.open(
                r.key, "email_tokens", row.token_hash.hex(), "new_email", row.new_email
            ),
            "created_at": row.created_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "used_at": _iso(row.used_at),
        }
        for row in rows
    ]


def _actor_name(actor_type: str, actor_id: str, names: SupplierNames) -> str:
    """Who acted, in the words of "Who accessed my data"."""
    if actor_type == "customer":
        return "you"
    if actor_type == "system":
        return f"Infomediary ({actor_id})"
    if actor_type == "auditor":
        return "an auditor"
    if actor_type == "supplier":
        return names.shown(actor_id)
    return f"{actor_type} {actor_id}"


def _access_log(r: _Reader) -> list[dict[str, Any]]:
    entries = (
        r.session.execute(
            select(AccessLogEntry)
            .where(AccessLogEntry.customer_id == r.customer_id)
            .order_by(AccessLogEntry.seq)
        )
        .scalars()
        .all()
    )
    names = SupplierNames.lookup(r.session, suppliers_named(entries))
    log = []
    for row in entries:
        item = timeline_item(r.inst, r.key, row, names.shown)
        structured = item.reason_data or {}
        log.append(
            {
                "seq": item.seq,
                "time": item.time.isoformat(),
                "actor_type": item.actor_type,
                "actor_id": item.actor_id,
                "actor_name": _actor_name(item.actor_type, item.actor_id, names),
                "action": item.action,
                "categories": list(item.categories),
                "purpose": item.purpose,
                "outcome": item.outcome,
                # the sentence as shown, and what the entry commits to, for a machine
                "reason": item.reason,
                "reason_code": structured.get("code"),
                "reason_params": structured.get("params", {}),
                "suppliers": [
                    {"supplier_id": sid, "supplier_name": names.shown(sid)}
                    for sid in sorted(supplier_ids(row.reason_data))
                ],
                "detail": item.detail,
                "leaf_hash": row.leaf_hash.hex(),
            }
        )
    return log


#: The document's sections, in order: name -> the function that reads it.
SECTIONS: dict[str, Callable[[_Reader], Any]] = {
    "account": _account,
    "encryption": _encryption,
    "profile": _profile,
    "site_settings": _site_settings,
    "notification_choices": _notification_choices,
    "purchases": _purchases,
    "purchase_imports": _purchase_imports,
    "purchase_uploads": _purchase_uploads,
    "purchase_order_reviews": _order_reviews,
    "interests_from_purchases": _interests_from_purchases,
    "consents": _consents,
    "myterms": _myterms,
    "intents": _intents,
    "policy": _policy,
    "offers": _offers,
    "earnings": _earnings,
    "payouts": _payouts,
    "counts_you_were_part_of": _counts_you_were_part_of,
    "blocks": _blocks,
    "erasure_requests": _erasure_requests,
    "authorizations": _authorizations,
    "sessions": _sessions,
    "second_factors": _second_factors,
    "email_links": _email_links,
    "access_log": _access_log,
}

#: Every table with a ``customer_id`` column, and the section that exports its rows.
TABLES: dict[str, str] = {
    "profiles": "profile",
    "customer_settings": "site_settings",
    "notification_settings": "notification_choices",
    "data_keys": "encryption",
    "customer_policies": "policy",
    "purchases": "purchases",
    "purchase_imports": "purchase_imports",
    "purchase_uploads": "purchase_uploads",
    "purchase_order_reviews": "purchase_order_reviews",
    "derived_interests": "interests_from_purchases",
    "consent_grants": "consents",
    "consent_receipts": "consents",
    "agreements": "myterms",
    "intents": "intents",
    "customer_terms": "myterms",
    "offer_deliveries": "offers",
    "supplier_blocks": "blocks",
    "payout_requests": "payouts",
    "oauth_tokens": "authorizations",
    "web_sessions": "sessions",
    "erasure_requests": "erasure_requests",
    "customer_totp": "second_factors",
    "passkeys": "second_factors",
    "recovery_codes": "second_factors",
    "email_tokens": "email_links",
    "access_log": "access_log",
}

#: Tables with a ``customer_id`` whose rows hold nothing of the customer's to read, and why.
NOT_EXPORTED: dict[str, str] = {
    "authorization_codes": "single-use codes living 60 seconds; the grant they carry is exported",
    "match_entries": "keyed hashes of coarsened profile values, derived from exported sections",
}


def export(
    session: Session,
    inst: Instance,
    customer_id: str,
    ctx: Context,
    *,
    schema_url: str = SCHEMA_PATH,
    as_csv: bool = False,
) -> dict[str, Any]:
    """Everything we hold about the customer, decrypted, in one document (GDPR Art. 15, 20):
    one section per family of rows (:data:`SECTIONS`), suppliers named wherever their id is.
    The export's own entry is appended last; ``as_csv`` only changes its reason."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        profile = session.get(Profile, customer_id)
        key_row = session.get(DataKey, customer_id)
        if customer is None or profile is None or key_row is None:
            raise NotFound("No such customer.")
        reader = _Reader(session, inst, customer, customer_key(session, inst, customer_id))
        sections = {name: section(reader) for name, section in SECTIONS.items()}
        data = decrypt_profile(inst, reader.key, customer, profile)
        # appended here rather than through ctx.log: the export states the entry's own time
        entry = append(
            session,
            ctx.event(
                "export",
                customer_id=customer_id,
                reason=Reason("account.exported_csv" if as_csv else "account.exported"),
                **logged_categories(
                    inst,
                    reader.key,
                    frozenset(
                        {"account", "identity"}
                        | ({"purchases"} if sections["purchases"] else set())
                    )
                    | categories_of({k: data[k] for k in FIELD_NAMES}),
                ),
            ),
        )
        uow.commit()
        return {
            "format": EXPORT_FORMAT,
            "schema": schema_url,
            "exported_at": entry.created_at.isoformat(),
            **sections,
        }
