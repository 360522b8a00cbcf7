"""Account e-mail flows: sign-up, verification, a new link, password reset (a new address:
:mod:`infomediary.services.email_change`).

None of them tells anyone whether an address has an account (OWASP Authentication Cheat
Sheet, "Authentication and Error Messages"; Forgot Password Cheat Sheet). Each answers the
same, and sends exactly one message to the address it was given: a link when there is
something to confirm, otherwise a note saying what was asked and that nothing happened. A
sign-up with a taken address does the same cryptographic work as a new one (argon2id, a
fresh data key, sealed fields) so that its timing tells nothing either. Sign-up never logs
in: following the link does. Until then the account may fill in its profile but neither
grant consents nor be counted or reached by the broker (:func:`customer_keys.is_verified`).

Mail goes out after the commit through ``deliver`` (:func:`sender` for the configured
backend), so a slow mail server holds no database lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from infomediary import mail
from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.config import Settings
from infomediary.errors import (
    EmailTaken,
    InvalidLink,
    MailUnavailable,
    NotFound,
    ValidationFailed,
)
from infomediary.instance import Instance
from infomediary.logs import get_logger
from infomediary.models import Customer, WebSession, utcnow
from infomediary.services import (
    Context,
    account_mail,
    customer_keys,
    customers,
    email_tokens,
    matching,
)
from infomediary.services.email_tokens import RESET, VERIFY
from infomediary.services.profile_fields import clean_profile, validate_email, validate_password
from infomediary.services.uow import unit_of_work

Deliver = Callable[[mail.Mail], None]
log = get_logger("accounts")
ACCOUNT = frozenset({"account"})


def sender(settings: Settings) -> Deliver:
    """Deliver through the configured backend; a failure is :class:`MailUnavailable`."""

    def deliver(message: mail.Mail) -> None:
        try:
            mail.send(settings, message)
        except mail.MailError as exc:
            log.warning("account mail not sent: %s", exc)
            raise MailUnavailable(
                "We could not send the e-mail just now. Please try again in a few minutes."
            ) from None

    return deliver


def by_web(request_id: str) -> Context:
    """The site acting for someone not (or not yet) logged in: links sent, sign-ups refused."""
    return Context(Actor.system("web"), request_id)


def by_customer(customer_id: str, request_id: str) -> Context:
    return Context(Actor.customer(customer_id), request_id)


def _by_address(session: Session, inst: Instance, address: str) -> Customer | None:
    """The account that can use this address (synthetic customers cannot log in)."""
    found = session.execute(
        select(Customer).where(Customer.email_index == inst.vault.email_index(address))
    ).scalar_one_or_none()
    return None if found is None or found.synthetic else found


def _decoy(inst: Instance, address: str, password: str, name: str | None) -> None:
    """The cryptography a new account costs, spent for a sign-up whose address is taken."""
    inst.hasher.hash(password)
    key, _, _ = inst.vault.new_data_key(str(uuid.uuid4()))
    inst.vault.seal(key, "customers", key.customer_id, "email", address)
    if name:
        inst.vault.seal(key, "profiles", key.customer_id, "name", name)


def sign_up(
    session: Session,
    inst: Instance,
    deliver: Deliver,
    *,
    email: str,
    password: str,
    name: str | None,
    accepted_notice: bool,
    base_url: str,
    request_id: str = "-",
) -> None:
    """Create an unverified account and mail its link, or tell the address's owner someone
    tried; the caller answers "check your e-mail" either way. Reports every field error."""
    with unit_of_work(session) as uow:
        errors: dict[str, str] = {}
        if message := validate_email(email):
            errors["email"] = message
        if message := validate_password(password, email if isinstance(email, str) else None):
            errors["password"] = message
        errors.update(clean_profile({"name": name} if name else {}, current_year=utcnow().year)[1])
        if not accepted_notice:
            errors["accept_notice"] = "Please read and accept the privacy notice."
        if errors:
            raise ValidationFailed(errors)
        address = email.strip()
        customer_id = str(uuid.uuid4())
        try:
            customers.create(
                session,
                inst,
                customer_id,
                email=address,
                password=password,
                name=name,
                verified=False,
                ctx=by_customer(customer_id, request_id),
            )
            token = email_tokens.issue(session, inst, customer_id, VERIFY)
            uow.commit()
            outgoing = account_mail.verify(address, base_url, token)
        except EmailTaken:
            session.rollback()
            _decoy(inst, address, password, name)
            owner = session.execute(
                select(Customer.id).where(Customer.email_index == inst.vault.email_index(address))
            ).scalar_one_or_none()
            if owner is not None:
                by_web(request_id).log(
                    session,
                    "create",
                    customer_id=owner,
                    reason=Reason("account.signup_refused"),
                    categories=ACCOUNT,
                    allowed=False,
                )
            uow.commit()
            outgoing = account_mail.already_registered(address, base_url)
        deliver(outgoing)


def send_verification(
    session: Session, inst: Instance, deliver: Deliver, customer_id: str, base_url: str
) -> None:
    """A fresh verification link for an unverified account (earlier links stop working)."""
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise NotFound("No such customer.")
        key = customer_keys.customer_key(session, inst, customer_id)
        address = str(inst.vault.open(key, "customers", customer_id, "email", customer.email))
        token = email_tokens.issue(session, inst, customer_id, VERIFY)
        uow.commit()
        deliver(account_mail.verify(address, base_url, token))


SQUATTED_ADDRESS_MESSAGE = (
    "That is not the password this account was created with. If you did not sign up "
    "yourself, someone else used your address: set a password of your own instead."
)


def verify_email(
    session: Session, inst: Instance, token: str, password: str, request_id: str = "-"
) -> str:
    """Use a verification link with the password chosen at sign-up: the address is confirmed
    and the caller logs the customer in.

    The mailbox alone is not enough. Someone may have signed up with another person's
    address: if the link confirmed the address without the password, the one who chose it
    would keep a working login to an account its owner then fills in. So the link takes the
    sign-up password (the owner who did not sign up resets the password instead), and
    confirming ends every other session and retires every other link of the account.
    """
    with unit_of_work(session) as uow:
        row = email_tokens.find(session, token, VERIFY)
        customer = session.get(Customer, row.customer_id)
        if customer is None:
            raise InvalidLink(email_tokens.EXPIRED)
        if not customers.password_matches(inst, customer, password):
            customers.log_refusal(
                session,
                customer.id,
                by_web(request_id),
                Reason("account.address_confirmation_refused"),
            )
            raise ValidationFailed({"password": SQUATTED_ADDRESS_MESSAGE})
        email_tokens.consume(session, token, VERIFY)
        customer.verified_at = customer.verified_at or utcnow()
        email_tokens.retire(session, customer.id)
        session.execute(delete(WebSession).where(WebSession.of_customer(customer.id)))
        by_customer(customer.id, request_id).log(
            session,
            "login",
            customer_id=customer.id,
            reason=Reason("account.address_confirmed"),
            categories=ACCOUNT,
        )
        session.flush()
        matching.sync_member(session, inst, customer.id)
        uow.commit()
        return customer.id


def _as_much_work_for_nobody(session: Session, purpose: str, request_id: str) -> None:
    """The writes a link for an account costs (retire older links, a log entry, a commit),
    made when there is no account to send one to, so the time taken does not tell whether
    an address has an account. The entry names no address and no customer."""
    with unit_of_work(session) as uow:
        email_tokens.retire(session, str(uuid.uuid4()), purpose)
        by_web(request_id).log(
            session,
            "update",
            reason=Reason(
                "account.confirmation_not_sent" if purpose == VERIFY else "account.reset_not_sent"
            ),
            categories=ACCOUNT,
        )
        uow.commit()


def resend_verification(
    session: Session,
    inst: Instance,
    deliver: Deliver,
    *,
    email: str,
    base_url: str,
    request_id: str = "-",
) -> None:
    if message := validate_email(email):
        raise ValidationFailed({"email": message})
    address = email.strip()
    customer = _by_address(session, inst, address)
    if customer is None:
        _as_much_work_for_nobody(session, VERIFY, request_id)
        deliver(account_mail.no_account(address, base_url, "a new confirmation link"))
    elif customer_keys.is_verified(customer):
        _as_much_work_for_nobody(session, VERIFY, request_id)
        deliver(account_mail.already_verified(address, base_url))
    else:
        by_web(request_id).log(
            session,
            "update",
            customer_id=customer.id,
            reason=Reason("account.confirmation_resent"),
            categories=ACCOUNT,
        )
        send_verification(session, inst, deliver, customer.id, base_url)


def request_password_reset(
    session: Session,
    inst: Instance,
    deliver: Deliver,
    *,
    email: str,
    base_url: str,
    request_id: str = "-",
) -> None:
    with unit_of_work(session) as uow:
        if message := validate_email(email):
            raise ValidationFailed({"email": message})
        address = email.strip()
        customer = _by_address(session, inst, address)
        if customer is None or customer.password_hash is None:
            _as_much_work_for_nobody(session, RESET, request_id)
            deliver(account_mail.no_account(address, base_url, "a password reset"))
            return
        token = email_tokens.issue(session, inst, customer.id, RESET)
        by_web(request_id).log(
            session,
            "update",
            customer_id=customer.id,
            reason=Reason("account.reset_sent"),
            categories=ACCOUNT,
        )
        uow.commit()
        deliver(account_mail.reset(address, base_url, token))


def reset_password(
    session: Session, inst: Instance, *, token: str, new_password: str, request_id: str = "-"
) -> None:
    """Set a new password from a reset link; every session and every other link ends.

    The link proves the customer reads mail at the address, so it also verifies it.
    """
    with unit_of_work(session) as uow:
        row = email_tokens.find(session, token, RESET)
        customer = session.get(Customer, row.customer_id)
        if customer is None:
            raise InvalidLink(email_tokens.EXPIRED)
        key = customer_keys.customer_key(session, inst, customer.id)
        address = inst.vault.open(key, "customers", customer.id, "email", customer.email)
        if message := validate_password(new_password, address):
            session.rollback()
            raise ValidationFailed({"new_password": message})
        email_tokens.consume(session, token, RESET)
        now = utcnow()
        customer.password_hash = inst.hasher.hash(new_password)
        customer.password_changed_at = now
        customer.verified_at = customer.verified_at or now
        email_tokens.retire(session, customer.id)
        session.execute(delete(WebSession).where(WebSession.of_customer(customer.id)))
        by_customer(customer.id, request_id).log(
            session,
            "update",
            customer_id=customer.id,
            reason=Reason("account.password_reset"),
            categories=ACCOUNT,
        )
        session.flush()
        matching.sync_member(session, inst, customer.id)
        uow.commit()
