"""Passkeys (WebAuthn) as a second factor: register one, sign in with one, remove one.

The relying party id is the site's host; the challenge of each ceremony is made here and
kept by the caller (the login session) for one use. Options and responses are the JSON the
browser's ``navigator.credentials`` speaks (the ``webauthn`` package's). The name a customer
gives a passkey is sealed under their data key.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from infomediary.audit.reasons import Reason
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, CustomerTotp, Passkey, RecoveryCode, utcnow
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.customers import ACCOUNT, confirm_password
from infomediary.services.uow import unit_of_work

RP_NAME = "Infomediary"
NAME_MAX = 60


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser (JSON) and the challenge the caller keeps for one use."""

    options: str
    challenge: bytes


@dataclass(frozen=True)
class PasskeyInfo:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Site:
    rp_id: str
    origin: str


def _descriptors(session: Session, customer_id: str) -> list[PublicKeyCredentialDescriptor]:
    rows = session.scalars(select(Passkey).where(Passkey.customer_id == customer_id))
    out = []
    for row in rows:
        transports = [
            AuthenticatorTransport(t)
            for t in row.transports.split(",")
            if t in {m.value for m in AuthenticatorTransport}
        ]
        out.append(PublicKeyCredentialDescriptor(id=row.credential_id, transports=transports))
    return out


def count(session: Session, customer_id: str) -> int:
    return len(_descriptors(session, customer_id))


def list_passkeys(session: Session, inst: Instance, customer_id: str) -> list[PasskeyInfo]:
    """The customer's own passkeys for their security page (not logged, like the session list)."""
    rows = list(
        session.scalars(
            select(Passkey).where(Passkey.customer_id == customer_id).order_by(Passkey.created_at)
        )
    )
    if not rows:
        return []
    key = customer_key(session, inst, customer_id)
    return [
        PasskeyInfo(
            r.id,
            str(inst.vault.open(key, "passkeys", r.id, "name", r.name)),
            r.created_at,
            r.last_used_at,
        )
        for r in rows
    ]


def registration_options(
    session: Session, inst: Instance, customer_id: str, site: Site, password: str, ctx: Context
) -> Ceremony:
    """A new passkey's ceremony; needs the password (a wrong one is logged, no challenge)."""
    with unit_of_work(session) as uow:
        confirm_password(session, inst, uow, customer_id, password, ctx)
    options = generate_registration_options(
        rp_id=site.rp_id,
        rp_name=RP_NAME,
        user_id=customer_id.encode(),
        user_name="account",
        user_display_name="Infomediary account",
        exclude_credentials=_descriptors(session, customer_id),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    return Ceremony(options_to_json(options), options.challenge)


def register(
    session: Session,
    inst: Instance,
    customer_id: str,
    site: Site,
    challenge: bytes | None,
    credential: str,
    name: str,
    ctx: Context,
) -> str:
    """Store a verified new passkey; returns its id."""
    label = (name or "").strip()
    errors = {}
    if not label or len(label) > NAME_MAX:
        errors["name"] = f"Give the passkey a name of 1 to {NAME_MAX} characters."
    if challenge is None or not credential:
        errors["credential"] = "The passkey was not created. Please try again."
    if errors or challenge is None:
        raise ValidationFailed(errors)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=site.rp_id,
            expected_origin=site.origin,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError):
        raise ValidationFailed(
            {"credential": "The passkey was not created. Please try again."}
        ) from None
    try:
        transports = ",".join(str(t) for t in json.loads(credential)["response"]["transports"])
    except (KeyError, TypeError, ValueError):
        transports = ""
    not_created = ValidationFailed({"credential": "The passkey was not created. Please try again."})
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        taken = select(Passkey.id).where(Passkey.credential_id == verified.credential_id)
        if session.scalar(taken) is not None:
            raise not_created  # this customer's, or someone else's: either way not a new one
        passkey_id = str(uuid.uuid4())
        key = customer_key(session, inst, customer_id)
        session.add(
            Passkey(
                id=passkey_id,
                customer_id=customer_id,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=transports[:200],
                name=inst.vault.seal(key, "passkeys", passkey_id, "name", label),
                created_at=utcnow(),
            )
        )
        try:
            session.flush()
        except IntegrityError:
            raise not_created from None  # registered at the same moment by another request
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.passkey_added"),
            categories=ACCOUNT,
        )
        uow.commit()
    return passkey_id


def login_options(session: Session, customer_id: str, site: Site) -> Ceremony:
    options = generate_authentication_options(
        rp_id=site.rp_id,
        allow_credentials=_descriptors(session, customer_id),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return Ceremony(options_to_json(options), options.challenge)


def check_assertion(
    session: Session, customer_id: str, site: Site, challenge: bytes | None, credential: str
) -> bool:
    """Verify a sign-in with one of the customer's passkeys and advance its counter (the
    caller's unit of work commits it with the step's log entry)."""
    if challenge is None or not credential:
        return False
    try:
        raw_id = json.loads(credential)["rawId"]
        credential_id = base64url_to_bytes(raw_id)
    except (KeyError, TypeError, ValueError):
        return False
    row = session.execute(
        select(Passkey)
        .where(Passkey.customer_id == customer_id, Passkey.credential_id == credential_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        return False
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=site.rp_id,
            expected_origin=site.origin,
            credential_public_key=row.public_key,
            credential_current_sign_count=row.sign_count,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        return False
    row.sign_count = verified.new_sign_count
    row.last_used_at = utcnow()
    return True


def remove(
    session: Session, inst: Instance, customer_id: str, passkey_id: str, password: str, ctx: Context
) -> None:
    """Remove one passkey; needs the password."""
    with unit_of_work(session) as uow:
        row = session.get(Passkey, passkey_id)
        if row is None or row.customer_id != customer_id:
            raise NotFound("No such passkey.")
        confirm_password(
            session,
            inst,
            uow,
            customer_id,
            password,
            ctx,
            refused=Reason("security.removal_refused"),
        )
        session.delete(row)
        session.flush()
        totp = session.get(CustomerTotp, customer_id)
        if not count(session, customer_id) and (totp is None or totp.confirmed_at is None):
            # no second factor left: its recovery codes go with it
            session.execute(delete(RecoveryCode).where(RecoveryCode.customer_id == customer_id))
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.passkey_removed"),
            categories=ACCOUNT,
        )
        uow.commit()
