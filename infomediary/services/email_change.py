"""Moving an account to another e-mail address: confirmed at the new address, announced at
the old, and never a hint whether the new address already has an account.

The request takes the current password. A link to the new address confirms the move, and
only then are the blind index and the sealed address rewritten; until then the pending
address lives sealed under the customer's data key in the link's row. A taken new address
gets a note instead of a link, after the same database work and with the same log entry, so
neither the answer nor the requester's own log tells them anything about it.
"""

from __future__ import annotations

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.errors import InvalidLink, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, WebSession, utcnow
from infomediary.services import (
    Context,
    account_mail,
    customer_keys,
    customers,
    email_tokens,
    matching,
)
from infomediary.services.accounts import ACCOUNT, Deliver, by_customer
from infomediary.services.email_tokens import CHANGE
from infomediary.services.profile_fields import validate_email
from infomediary.services.uow import unit_of_work


def request_email_change(
    session: Session,
    inst: Instance,
    deliver: Deliver,
    customer_id: str,
    *,
    password: str,
    new_email: str,
    base_url: str,
    ctx: Context,
) -> None:
    """Ask to move the account to ``new_email``: a link to the new address confirms it, the
    old address hears of it. A taken new address gets a note instead, and nothing changes;
    the database work, the log entry and this function's answer are the same either way."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        if customer is None or customer.password_hash is None:
            raise NotFound("No such customer.")
        errors: dict[str, str] = {}
        if message := validate_email(new_email):
            errors["new_email"] = message
        elif inst.vault.email_index(new_email) == customer.email_index:
            errors["new_email"] = "This is already your address."
        try:
            inst.hasher.verify(customer.password_hash, password)
        except (VerificationError, InvalidHashError):
            customers.log_refusal(session, customer_id, ctx, Reason("account.email_change_refused"))
            errors["current_password"] = "This is not your current password."  # noqa: S105
        if errors:
            session.rollback()
            raise ValidationFailed(errors)
        address = new_email.strip()
        key = customer_keys.customer_key(session, inst, customer_id)
        old = str(inst.vault.open(key, "customers", customer_id, "email", customer.email))
        taken = session.execute(
            select(Customer.id).where(Customer.email_index == inst.vault.email_index(address))
        ).first()
        token = email_tokens.issue(session, inst, customer_id, CHANGE, new_email=address)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("account.email_change_requested"),
            categories=ACCOUNT,
        )
        uow.commit()
        deliver(account_mail.change_announced(old, base_url, address))
        if taken:
            deliver(account_mail.change_taken(address, base_url))
        else:
            deliver(account_mail.change_confirm(address, base_url, token))


def confirm_email_change(
    session: Session, inst: Instance, token: str, request_id: str = "-"
) -> str:
    """Use a link sent to the new address: the blind index and the sealed address change."""
    with unit_of_work(session) as uow:
        row = email_tokens.consume(session, token, CHANGE)
        address = email_tokens.new_email_of(inst, session, row)
        customer = session.get(Customer, row.customer_id)
        if customer is None:
            raise InvalidLink(email_tokens.EXPIRED)
        index = inst.vault.email_index(address)
        unusable = InvalidLink("This address cannot be used for your account any more.")
        if session.execute(
            select(Customer.id).where(Customer.email_index == index, Customer.id != customer.id)
        ).first():
            uow.commit()  # the link is used up all the same
            raise unusable
        key = customer_keys.customer_key(session, inst, customer.id)
        customer.email_index = index
        customer.email = inst.vault.seal(key, "customers", customer.id, "email", address)
        customer.verified_at = customer.verified_at or utcnow()
        # Whatever was sent to the old address (a reset link, a pending confirmation) and every
        # session opened before the change stop working: the old mailbox is often why one moves.
        email_tokens.retire(session, customer.id)
        session.execute(delete(WebSession).where(WebSession.of_customer(customer.id)))
        by_customer(customer.id, request_id).log(
            session,
            "update",
            customer_id=customer.id,
            reason=Reason("account.email_changed"),
            categories=frozenset({"account", "identity"}),
        )
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            raise unusable from None
        matching.sync_member(session, inst, customer.id)
        uow.commit()
        return customer.id
