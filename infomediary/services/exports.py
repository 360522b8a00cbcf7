"""The customer's complete export (profile, policy, grants, receipts, access log with their details
opened) and their timeline items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary.audit.log import append
from infomediary.audit.reasons import Reason, render, supplier_ids
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import NotFound
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Customer, DataKey, Profile, Supplier
from infomediary.services import (
    Context,
    derived_interests,
    derived_record,
    exposure,
    purchase_uploads,
    purchases,
)
from infomediary.services.customer_keys import (
    customer_key,
    logged_categories,
    open_detail,
)
from infomediary.services.profile_fields import (
    FIELD_NAMES,
    categories_of,
)
from infomediary.services.profiles import decrypt_profile
from infomediary.services.uow import unit_of_work

EXPORT_FORMAT = "infomediary-export/1"
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


def export(session: Session, inst: Instance, customer_id: str, ctx: Context) -> dict[str, Any]:
    """Everything we hold about the customer, decrypted, in one document (GDPR Art. 15, 20)."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        profile = session.get(Profile, customer_id)
        key_row = session.get(DataKey, customer_id)
        if customer is None or profile is None or key_row is None:
            raise NotFound("No such customer.")
        key = customer_key(session, inst, customer_id)
        data = decrypt_profile(inst, key, customer, profile)
        entries = (
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            )
            .scalars()
            .all()
        )
        names = SupplierNames.lookup(session, suppliers_named(entries))
        log = []
        for row in entries:
            item = timeline_item(inst, key, row, names.shown)
            actor: dict[str, Any] = {"type": item.actor_type, "id": item.actor_id}
            if item.actor_type == "supplier":
                actor["name"] = names.shown(item.actor_id)
            log.append(
                {
                    "seq": item.seq,
                    "time": item.time.isoformat(),
                    "actor": actor,
                    "action": item.action,
                    "categories": list(item.categories),
                    "purpose": item.purpose,
                    "outcome": item.outcome,
                    # the sentence as shown, and what the entry commits to, for a machine
                    "reason": item.reason,
                    "reason_data": item.reason_data,
                    "suppliers": [
                        {"id": sid, "name": names.shown(sid)}
                        for sid in sorted(supplier_ids(row.reason_data))
                    ],
                    "detail": item.detail,
                    "leaf_hash": row.leaf_hash.hex(),
                }
            )
        releases = exposure.export_releases(session, inst, customer_id)
        bought = purchases.open_purchases(session, inst, key)
        uploads = purchase_uploads.export_uploads(session, customer_id)
        derived = derived_record.load(session, inst, key)
        # appended here rather than through ctx.log: the export states the entry's own time
        entry = append(
            session,
            ctx.event(
                "export",
                customer_id=customer_id,
                reason=Reason("account.exported"),
                **logged_categories(
                    inst,
                    key,
                    frozenset({"account", "identity"} | ({"purchases"} if bought else set()))
                    | categories_of({k: data[k] for k in FIELD_NAMES}),
                ),
            ),
        )
        uow.commit()
        return {
            "format": EXPORT_FORMAT,
            "exported_at": entry.created_at.isoformat(),
            "customer": {
                "id": customer_id,
                "email": data.pop("email"),
                "created_at": customer.created_at.isoformat(),
                "password_changed_at": customer.password_changed_at.isoformat()
                if customer.password_changed_at
                else None,
            },
            "profile": data,
            "encryption": {
                "data_key_created_at": key_row.created_at.isoformat(),
                "data_key_version": key_row.dek_version,
                "wrapped_by_kek_version": key_row.kek_version,
            },
            "access_log": log,
            "counts_you_were_part_of": releases,
            "purchases": bought,
            "interests_from_purchases": derived_interests.export(derived),
            "purchase_uploads": uploads,
        }
