"""Erasure: the data key goes first (crypto-shredding), then the rows; the log keeps its entries,
unreadable.
"""

from __future__ import annotations

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Agreement, Customer, CustomerTerms, DataKey, Profile, WebSession
from infomediary.services import Context, matching, purchases
from infomediary.services.customers import log_refusal
from infomediary.services.uow import unit_of_work


def erase(session: Session, inst: Instance, customer_id: str, password: str, ctx: Context) -> None:
    """Erase the account: destroy the DEK (crypto-shredding), then delete the rows.

    The access log keeps its entries (their hashes commit to ciphertext, so the chain
    still verifies) but their personal detail can no longer be decrypted by anyone.
    """
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("No such customer.")
        if customer.password_hash is not None:
            try:
                inst.hasher.verify(customer.password_hash, password)
            except (VerificationError, InvalidHashError):
                log_refusal(session, customer_id, ctx, Reason("account.erasure_refused"))
                raise ValidationFailed({"password": "This is not your password."}) from None
        ctx.log(
            session,
            "erase",
            customer_id=customer_id,
            reason=Reason("account.erased"),
            categories=frozenset(
                {"account", "identity", "demographics", "interests", "preferences", "purchases"}
            ),
        )
        matching.forget_member(session, customer_id)
        session.execute(delete(DataKey).where(DataKey.customer_id == customer_id))
        session.execute(delete(WebSession).where(WebSession.customer_id == customer_id))
        session.execute(delete(Profile).where(Profile.customer_id == customer_id))
        purchases.forget_customer(session, customer_id)
        # the platform's copies of the MyTerms agreements (each supplier keeps its own)
        session.execute(delete(Agreement).where(Agreement.customer_id == customer_id))
        session.execute(delete(CustomerTerms).where(CustomerTerms.customer_id == customer_id))
        session.execute(delete(Customer).where(Customer.id == customer_id))
        uow.commit()
