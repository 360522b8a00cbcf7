"""Customer use cases: register, authenticate, read and edit the profile, export, erase.

Every function that touches a customer's data appends its access-log entry in the same
transaction and commits once (cosmicpython's service layer: the use case owns the unit
of work).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.crypto.vault import CustomerKey, DecryptionError
from infomediary.errors import EmailTaken, InvalidCredentials, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Customer, DataKey, Profile, WebSession, utcnow
from infomediary.services import Context
from infomediary.services.profile import (
    FIELD_NAMES,
    categories_of,
    categories_touched,
    clean_profile,
    validate_email,
    validate_password,
)
from infomediary.services.refusals import record_refusal
from policies.taxonomy import CATEGORIES

EXPORT_FORMAT = "infomediary-export/1"


def _dummy_hash(inst: Instance) -> str:
    """A hash to verify against for unknown emails, so timing does not reveal accounts."""
    cached = inst.extras.get("dummy_hash")
    if cached is None:
        cached = inst.hasher.hash("not a password of anyone's")
        inst.extras["dummy_hash"] = cached
    return str(cached)


def log_refusal(session: Session, customer_id: str, ctx: Context, reason: str) -> None:
    """A refused change to the customer's own account, logged on its own (see refusals)."""
    record_refusal(
        session,
        LogEvent(
            actor=ctx.actor,
            action="update",
            customer_id=customer_id,
            categories=frozenset({"account"}),
            reason=reason,
            request_id=ctx.request_id,
        ),
    )


def sync_member(session: Session, inst: Instance, customer_id: str) -> None:
    """Recompute the customer's broker match entry (inside the caller's transaction)."""
    from infomediary.services import matching

    matching.sync_member(session, inst, customer_id)


def customer_key(session: Session, inst: Instance, customer_id: str) -> CustomerKey:
    row = session.get(DataKey, customer_id)
    if row is None:
        raise NotFound("No such customer.")
    return inst.vault.unwrap(customer_id, row.dek_version, row.kek_version, row.wrapped_key)


def seal_detail(inst: Instance, key: CustomerKey, detail: dict[str, Any]) -> bytes:
    """Encrypt a log entry's personal detail under the customer's DEK.

    The record id is the customer id (the entry's sequence number is not known until
    the append takes the lock); the field name keeps it apart from profile fields.
    """
    return inst.vault.seal(key, "access_log", key.customer_id, "detail", detail)


def logged_categories(
    inst: Instance,
    key: CustomerKey,
    categories: frozenset[str],
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A log entry's categories: special ones (health, religion, ...) never in plaintext.

    The plaintext column says "interests" instead, and the exact set goes into the entry's
    encrypted detail, so the customer still sees it and erasure leaves nothing sensitive.
    """
    special = {c for c in categories if CATEGORIES[c].special}
    if not special:
        sealed = seal_detail(inst, key, detail) if detail else None
        return {"categories": categories, "detail": sealed}
    full = {**(detail or {}), "categories": sorted(categories)}
    return {
        "categories": (categories - special) | {"interests"},
        "detail": seal_detail(inst, key, full),
    }


def open_detail(inst: Instance, key: CustomerKey | None, blob: bytes | None) -> Any:
    if blob is None or key is None:
        return None
    try:
        return inst.vault.open(key, "access_log", key.customer_id, "detail", blob)
    except DecryptionError:
        return None


def is_verified(customer: Customer) -> bool:
    """Whether the customer may grant consents and be counted or reached by the broker.

    Synthetic customers (the demo population) cannot log in and count as verified for the
    broker; everyone else needs a confirmed address (operator-created accounts are confirmed
    at creation).
    """
    return customer.synthetic or customer.verified_at is not None


def password_matches(inst: Instance, customer: Customer, password: str) -> bool:
    """argon2id check of the customer's password (False for an account without one)."""
    if customer.password_hash is None:
        return False
    try:
        return bool(inst.hasher.verify(customer.password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def credential_epoch(session: Session, inst: Instance, email: str) -> str:
    """When the password of the account at ``email`` last changed (empty if never, or if
    there is no such account): a device cookie binds it, so a new password retires them all."""
    changed = session.execute(
        select(Customer.password_changed_at).where(
            Customer.email_index == inst.vault.email_index(email)
        )
    ).scalar_one_or_none()
    return changed.isoformat() if changed else ""


def is_confirmed(session: Session, customer_id: str) -> bool:
    """:func:`is_verified` for the customer with this id (False if there is none)."""
    customer = session.get(Customer, customer_id)
    return customer is not None and is_verified(customer)


def create(
    session: Session,
    inst: Instance,
    customer_id: str,
    *,
    email: str,
    password: str | None,
    name: str | None,
    verified: bool,
    ctx: Context,
) -> None:
    """Insert a customer with a fresh DEK and log it, without committing (the caller does).

    Raises :class:`EmailTaken` if the address has an account (checked and, for a concurrent
    insert, enforced by the unique blind index).
    """
    errors: dict[str, str] = {}
    if message := validate_email(email):
        errors["email"] = message
    if password is not None and (message := validate_password(password, email)):
        errors["password"] = message
    values, field_errors = clean_profile({"name": name} if name else {}, current_year=utcnow().year)
    errors.update(field_errors)
    if errors:
        raise ValidationFailed(errors)
    index = inst.vault.email_index(email)
    if session.execute(select(Customer.id).where(Customer.email_index == index)).first():
        raise EmailTaken("An account with this email address already exists.")
    key, kek_version, wrapped = inst.vault.new_data_key(customer_id)
    now = utcnow()
    session.add(
        Customer(
            id=customer_id,
            email_index=index,
            email=inst.vault.seal(key, "customers", customer_id, "email", email.strip()),
            password_hash=inst.hasher.hash(password) if password is not None else None,
            synthetic=password is None,
            created_at=now,
            verified_at=now if verified else None,
        )
    )
    session.add(DataKey(customer_id=customer_id, kek_version=kek_version, wrapped_key=wrapped))
    profile = Profile(customer_id=customer_id)
    for field, value in values.items():
        setattr(profile, field, inst.vault.seal(key, "profiles", customer_id, field, value))
    session.add(profile)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise EmailTaken("An account with this email address already exists.") from None
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="create",
            customer_id=customer_id,
            categories=frozenset({"account"}) | categories_of(values),
            reason="account created",
            request_id=ctx.request_id,
        ),
    )
    sync_member(session, inst, customer_id)


def register(
    session: Session,
    inst: Instance,
    *,
    email: str,
    password: str | None,
    name: str | None = None,
    ctx: Context | None = None,
    request_id: str = "-",
    verified: bool = True,
) -> str:
    """Create a customer the operator (or the demo) vouches for; ``password=None`` makes an
    account that cannot log in.

    Such accounts count as verified unless ``verified=False``; self sign-up goes through
    :func:`infomediary.services.accounts.sign_up` instead, which proves the address first.
    Without ``ctx`` the new customer is the actor.
    """
    customer_id = str(uuid.uuid4())
    ctx = ctx or Context(Actor.customer(customer_id), request_id)
    create(
        session,
        inst,
        customer_id,
        email=email,
        password=password,
        name=name,
        verified=verified,
        ctx=ctx,
    )
    session.commit()
    return customer_id


def authenticate(session: Session, inst: Instance, email: str, password: str, ctx: Context) -> str:
    """Return the customer id for a correct email and password; log every attempt on an account."""
    row = session.execute(
        select(Customer).where(Customer.email_index == inst.vault.email_index(email or ""))
    ).scalar_one_or_none()
    if row is None or row.password_hash is None:
        with contextlib.suppress(VerificationError):
            inst.hasher.verify(_dummy_hash(inst), password or "")
        raise InvalidCredentials("Email address or password is wrong.")
    try:
        inst.hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        append(
            session,
            LogEvent(
                actor=Actor.customer(row.id),
                action="login",
                customer_id=row.id,
                categories=frozenset({"account"}),
                allowed=False,
                reason="wrong password",
                request_id=ctx.request_id,
            ),
        )
        session.commit()
        raise InvalidCredentials("Email address or password is wrong.") from None
    if inst.hasher.check_needs_rehash(row.password_hash):
        row.password_hash = inst.hasher.hash(password)
    append(
        session,
        LogEvent(
            actor=Actor.customer(row.id),
            action="login",
            customer_id=row.id,
            categories=frozenset({"account"}),
            reason="password accepted",
            request_id=ctx.request_id,
        ),
    )
    session.commit()
    return row.id


def _decrypt_profile(
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
    customer = session.get(Customer, customer_id)
    profile = session.get(Profile, customer_id)
    if customer is None or profile is None:
        raise NotFound("No such customer.")
    key = customer_key(session, inst, customer_id)
    data = _decrypt_profile(inst, key, customer, profile)
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="read",
            customer_id=customer_id,
            purpose=purpose,
            reason="profile viewed",
            request_id=ctx.request_id,
            **logged_categories(
                inst,
                key,
                frozenset({"identity"}) | categories_of({k: data[k] for k in FIELD_NAMES}),
            ),
        ),
    )
    session.commit()
    return data


def update_profile(
    session: Session, inst: Instance, customer_id: str, raw: dict[str, Any], ctx: Context
) -> list[str]:
    """Validate and write the fields in ``raw``; returns the names of fields that changed."""
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
        old = None if blob is None else inst.vault.open(key, "profiles", customer_id, field, blob)
        if old == value:
            continue
        new = None if value is None else inst.vault.seal(key, "profiles", customer_id, field, value)
        setattr(profile, field, new)
        changed.append(field)
    if not changed:
        session.rollback()
        return []
    profile.updated_at = utcnow()
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="update",
            customer_id=customer_id,
            reason="profile edited",
            request_id=ctx.request_id,
            **logged_categories(
                inst, key, categories_touched(changed, values), {"fields": changed}
            ),
        ),
    )
    sync_member(session, inst, customer_id)
    session.commit()
    return changed


def change_password(
    session: Session, inst: Instance, customer_id: str, current: str, new: str, ctx: Context
) -> None:
    """Change the password and end every session of the customer (the caller opens a new one)."""
    customer = session.get(Customer, customer_id)
    if customer is None or customer.password_hash is None:
        raise NotFound("No such customer.")
    try:
        inst.hasher.verify(customer.password_hash, current)
    except (VerificationError, InvalidHashError):
        log_refusal(session, customer_id, ctx, "password change refused: wrong password")
        raise ValidationFailed({"current_password": "This is not your current password."}) from None
    key = customer_key(session, inst, customer_id)
    email = inst.vault.open(key, "customers", customer_id, "email", customer.email)
    if message := validate_password(new, email):
        raise ValidationFailed({"new_password": message})
    customer.password_hash = inst.hasher.hash(new)
    customer.password_changed_at = utcnow()
    session.execute(delete(WebSession).where(WebSession.customer_id == customer_id))
    from infomediary.services.email_tokens import CHANGE, RESET, retire

    for purpose in (CHANGE, RESET):  # a pending address change or reset link dies with it
        retire(session, customer_id, purpose)
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="update",
            customer_id=customer_id,
            categories=frozenset({"account"}),
            reason="password changed; all sessions ended",
            request_id=ctx.request_id,
        ),
    )
    session.commit()


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


def timeline_item(inst: Instance, key: CustomerKey | None, row: AccessLogEntry) -> TimelineItem:
    return TimelineItem(
        seq=row.seq,
        time=row.created_at,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        categories=tuple(
            detail["categories"]
            if isinstance(detail := open_detail(inst, key, row.detail), dict)
            and "categories" in detail
            else (c for c in row.categories.split(",") if c)
        ),
        purpose=row.purpose,
        outcome=row.outcome,
        reason=row.reason,
        detail=detail,
    )


def export(session: Session, inst: Instance, customer_id: str, ctx: Context) -> dict[str, Any]:
    """Everything we hold about the customer, decrypted, in one document (GDPR Art. 15, 20)."""
    customer = session.get(Customer, customer_id)
    profile = session.get(Profile, customer_id)
    key_row = session.get(DataKey, customer_id)
    if customer is None or profile is None or key_row is None:
        raise NotFound("No such customer.")
    key = customer_key(session, inst, customer_id)
    data = _decrypt_profile(inst, key, customer, profile)
    entries = session.execute(
        select(AccessLogEntry)
        .where(AccessLogEntry.customer_id == customer_id)
        .order_by(AccessLogEntry.seq)
    ).scalars()
    log = []
    for row in entries:
        item = timeline_item(inst, key, row)
        log.append(
            {
                "seq": item.seq,
                "time": item.time.isoformat(),
                "actor": {"type": item.actor_type, "id": item.actor_id},
                "action": item.action,
                "categories": list(item.categories),
                "purpose": item.purpose,
                "outcome": item.outcome,
                "reason": item.reason,
                "detail": item.detail,
                "leaf_hash": row.leaf_hash.hex(),
            }
        )
    entry = append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="export",
            customer_id=customer_id,
            reason="full export downloaded",
            request_id=ctx.request_id,
            **logged_categories(
                inst,
                key,
                frozenset({"account", "identity"})
                | categories_of({k: data[k] for k in FIELD_NAMES}),
            ),
        ),
    )
    session.commit()
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
    }


def erase(session: Session, inst: Instance, customer_id: str, password: str, ctx: Context) -> None:
    """Erase the account: destroy the DEK (crypto-shredding), then delete the rows.

    The access log keeps its entries (their hashes commit to ciphertext, so the chain
    still verifies) but their personal detail can no longer be decrypted by anyone.
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("No such customer.")
    if customer.password_hash is not None:
        try:
            inst.hasher.verify(customer.password_hash, password)
        except (VerificationError, InvalidHashError):
            log_refusal(session, customer_id, ctx, "erasure refused: wrong password")
            raise ValidationFailed({"password": "This is not your password."}) from None
    append(
        session,
        LogEvent(
            actor=ctx.actor,
            action="erase",
            customer_id=customer_id,
            categories=frozenset(
                {"account", "identity", "demographics", "interests", "preferences"}
            ),
            reason="account erased; data key destroyed",
            request_id=ctx.request_id,
        ),
    )
    from infomediary.services.matching import forget_member

    forget_member(session, customer_id)
    session.execute(delete(DataKey).where(DataKey.customer_id == customer_id))
    session.execute(delete(WebSession).where(WebSession.customer_id == customer_id))
    session.execute(delete(Profile).where(Profile.customer_id == customer_id))
    session.execute(delete(Customer).where(Customer.id == customer_id))
    session.commit()
