"""Customer use cases: register, authenticate, read and edit the profile, export, erase.

Every function that touches a customer's data appends its access-log entry in the same
transaction and commits once (cosmicpython's service layer: the use case owns the unit
of work).
"""

from __future__ import annotations

import contextlib
import uuid

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.errors import EmailTaken, InvalidCredentials, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, DataKey, Profile, WebSession, utcnow
from infomediary.services import Context, matching
from infomediary.services.customer_keys import (
    customer_key,
)
from infomediary.services.email_tokens import CHANGE, RESET, retire
from infomediary.services.profile_fields import (
    categories_of,
    clean_profile,
    validate_email,
    validate_password,
)
from infomediary.services.refusals import record_refusal
from infomediary.services.uow import UnitOfWork, unit_of_work

ACCOUNT = frozenset({"account"})


def log_refusal(session: Session, customer_id: str, ctx: Context, reason: Reason) -> None:
    """A refused change to the customer's own account, logged on its own (see refusals)."""
    record_refusal(
        session, ctx, "update", customer_id=customer_id, reason=reason, categories=ACCOUNT
    )


def password_matches(inst: Instance, customer: Customer, password: str) -> bool:
    """argon2id check of the customer's password (False for an account without one)."""
    if customer.password_hash is None:
        return False
    try:
        return bool(inst.hasher.verify(customer.password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


CHANGE_REFUSED = Reason("security.change_refused")


def confirm_password(
    session: Session,
    inst: Instance,
    uow: UnitOfWork,
    customer_id: str,
    password: str,
    ctx: Context,
    refused: Reason = CHANGE_REFUSED,
) -> Customer:
    """The customer, when ``password`` is theirs (adding or removing a second factor, or new
    recovery codes, needs it, so a stolen session alone cannot lock the owner out); otherwise
    the unit of work commits only the refusal entry (reason ``refused``) and
    :class:`ValidationFailed` is raised."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("No such customer.")
    if not password_matches(inst, customer, password or ""):
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=refused,
            categories=ACCOUNT,
            allowed=False,
        )
        uow.commit()
        raise ValidationFailed({"password": "That password is not right."})
    return customer


def credential_epoch(session: Session, inst: Instance, email: str) -> str:
    """When the password of the account at ``email`` last changed (empty if never, or if
    there is no such account): a device cookie binds it, so a new password retires them all."""
    changed = session.execute(
        select(Customer.password_changed_at).where(
            Customer.email_index == inst.vault.email_index(email)
        )
    ).scalar_one_or_none()
    return changed.isoformat() if changed else ""


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
    ctx.log(
        session,
        "create",
        customer_id=customer_id,
        reason=Reason("account.created"),
        categories=ACCOUNT | categories_of(values),
    )
    matching.sync_member(session, inst, customer_id)


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
    with unit_of_work(session) as uow:
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
        uow.commit()
        return customer_id


def authenticate(session: Session, inst: Instance, email: str, password: str, ctx: Context) -> str:
    """Return the customer id for a correct email and password; log every attempt on an account."""
    with unit_of_work(session) as uow:
        row = session.execute(
            select(Customer).where(Customer.email_index == inst.vault.email_index(email or ""))
        ).scalar_one_or_none()
        if row is None or row.password_hash is None:
            with contextlib.suppress(VerificationError):
                inst.hasher.verify(inst.dummy_hash, password or "")
            raise InvalidCredentials("Email address or password is wrong.")
        own = Context(Actor.customer(row.id), ctx.request_id)  # an attempt is the account's own
        try:
            inst.hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            own.log(
                session,
                "login",
                customer_id=row.id,
                reason=Reason("account.login_refused"),
                categories=ACCOUNT,
                allowed=False,
            )
            uow.commit()
            raise InvalidCredentials("Email address or password is wrong.") from None
        if inst.hasher.check_needs_rehash(row.password_hash):
            row.password_hash = inst.hasher.hash(password)
        own.log(
            session, "login", customer_id=row.id, reason=Reason("account.login"), categories=ACCOUNT
        )
        uow.commit()
        return row.id


def change_password(
    session: Session, inst: Instance, customer_id: str, current: str, new: str, ctx: Context
) -> None:
    """Change the password and end every session of the customer (the caller opens a new one)."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        if customer is None or customer.password_hash is None:
            raise NotFound("No such customer.")
        key = customer_key(session, inst, customer_id)
        email = inst.vault.open(key, "customers", customer_id, "email", customer.email)
        errors: dict[str, str] = {}
        field = "current_password"  # the form's field, not a password
        try:
            inst.hasher.verify(customer.password_hash, current)
        except (VerificationError, InvalidHashError):
            errors[field] = "This is not your current password."
        if message := validate_password(new, email):
            errors["new_password"] = message  # reported with a wrong current one, at once
        if field in errors:
            log_refusal(session, customer_id, ctx, Reason("account.password_change_refused"))
            raise ValidationFailed(errors)
        if errors:
            raise ValidationFailed(errors)
        customer.password_hash = inst.hasher.hash(new)
        customer.password_changed_at = utcnow()
        session.execute(delete(WebSession).where(WebSession.of_customer(customer_id)))
        for purpose in (CHANGE, RESET):  # a pending address change or reset link dies with it
            retire(session, customer_id, purpose)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("account.password_changed"),
            categories=ACCOUNT,
        )
        uow.commit()
