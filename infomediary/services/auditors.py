"""Auditors' accounts: create, list, disable; the two steps of a login (password, TOTP code).

An auditor's address is personal data: it is kept only as a keyed blind index (domain
``auditor-email``, so it never matches a customer's) and sealed for the operator's list. The
TOTP secret (RFC 6238, 30-second steps, six digits) is sealed too, under an AES-256-GCM key
derived with HKDF (RFC 5869) from the keyring's own ``auditor_sealing`` key (no other use
shares it), with the auditor's id and
the field as associated data. A code is accepted in the step it belongs to or one either
side (clock drift), and only for a step later than the last one accepted (RFC 6238 §5.2:
"the verifier MUST NOT accept the second attempt of the OTP after the successful validation
has been issued"). Every refused login is logged, naming the account by id only.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, ActorType
from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import normalise_email
from infomediary.errors import EmailTaken, InvalidCredentials, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Auditor, utcnow
from infomediary.services import Context
from infomediary.services.profile_fields import validate_email, validate_password
from infomediary.services.uow import unit_of_work

ISSUER = "Infomediary"
ACCOUNT = frozenset({"account"})
#: Steps either side of now in which a code is still accepted (RFC 6238 §5.2 drift).
DRIFT_STEPS = 1
_SEAL_VERSION = 1
_NONCE = 12
_KEY_INFO = b"infomediary/auditor-secrets/v1"
WRONG = "Email address, password or code is wrong."


@dataclass(frozen=True, slots=True)
class CreatedAuditor:
    id: str
    totp_secret: str
    provisioning_uri: str


@dataclass(frozen=True, slots=True)
class AuditorInfo:
    id: str
    email: str
    created_at: datetime
    last_login_at: datetime | None
    disabled: bool


def context(auditor_id: str, request_id: str = "-") -> Context:
    return Context(Actor(ActorType.AUDITOR, auditor_id), request_id)


def email_index(inst: Instance, email: str) -> bytes:
    return inst.vault.blind_index("auditor-email", normalise_email(email or ""))


def _aead(inst: Instance) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
        inst.keyring.secret("auditor_sealing")
    )
    return AESGCM(key)


def _ad(auditor_id: str, field: str) -> bytes:
    return f"v{_SEAL_VERSION}|auditors|{auditor_id}|{field}".encode()


def _seal(inst: Instance, auditor_id: str, field: str, value: str) -> bytes:
    nonce = os.urandom(_NONCE)
    sealed = _aead(inst).encrypt(nonce, value.encode(), _ad(auditor_id, field))
    return bytes([_SEAL_VERSION]) + nonce + sealed


def _open(inst: Instance, auditor_id: str, field: str, blob: bytes) -> str:
    if len(blob) < 1 + _NONCE + 16 or blob[0] != _SEAL_VERSION:
        raise ValueError(f"auditors.{field} of {auditor_id} is not a sealed value")
    try:
        nonce, sealed = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        plain = _aead(inst).decrypt(nonce, sealed, _ad(auditor_id, field))
    except InvalidTag:
        raise ValueError(f"auditors.{field} of {auditor_id} does not authenticate") from None
    return plain.decode()


def create(
    session: Session, inst: Instance, *, email: str, password: str, ctx: Context
) -> CreatedAuditor:
    """A new auditor with a fresh TOTP secret, returned once (it is stored only sealed)."""
    errors: dict[str, str] = {}
    if message := validate_email(email):
        errors["email"] = message
    if message := validate_password(password, email):
        errors["password"] = message
    if errors:
        raise ValidationFailed(errors)
    with unit_of_work(session) as uow:
        index = email_index(inst, email)
        if session.execute(select(Auditor.id).where(Auditor.email_index == index)).first():
            raise EmailTaken("An auditor with this email address already exists.")
        auditor_id = str(uuid.uuid4())
        secret = pyotp.random_base32()
        session.add(
            Auditor(
                id=auditor_id,
                email_index=index,
                email=_seal(inst, auditor_id, "email", email.strip()),
                password_hash=inst.hasher.hash(password),
                totp_secret=_seal(inst, auditor_id, "totp_secret", secret),
                created_at=utcnow(),
            )
        )
        try:
            session.flush()
        except IntegrityError:
            raise EmailTaken("An auditor with this email address already exists.") from None
        ctx.log(
            session,
            "create",
            reason=Reason("auditor.created", {"auditor": auditor_id}),
            categories=ACCOUNT,
        )
        uow.commit()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email.strip(), issuer_name=ISSUER)
    return CreatedAuditor(auditor_id, secret, uri)


def list_auditors(session: Session, inst: Instance) -> list[AuditorInfo]:
    """Every auditor, oldest first, with the address opened for the operator."""
    with unit_of_work(session):
        rows = session.execute(select(Auditor).order_by(Auditor.created_at, Auditor.id)).scalars()
        return [
            AuditorInfo(
                row.id,
                _open(inst, row.id, "email", row.email),
                row.created_at,
                row.last_login_at,
                row.disabled_at is not None,
            )
            for row in rows
        ]


def disable(session: Session, inst: Instance, email: str, ctx: Context) -> str:
    """Disable the auditor at ``email``: no login from now on, and every open session of
    theirs ends at its next request (the dashboard re-reads the account on each)."""
    with unit_of_work(session) as uow:
        row = session.execute(
            select(Auditor).where(Auditor.email_index == email_index(inst, email))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("No auditor has this email address.")
        if row.disabled_at is None:
            row.disabled_at = utcnow()
        ctx.log(
            session,
            "update",
            reason=Reason("auditor.disabled", {"auditor": row.id}),
            categories=ACCOUNT,
        )
        uow.commit()
        return row.id


def active(session: Session, auditor_id: str) -> bool:
    """Whether ``auditor_id`` names an account that may use the dashboard now."""
    row = session.get(Auditor, auditor_id)
    return row is not None and row.disabled_at is None


def _refuse(session: Session, auditor_id: str, request_id: str, why: str) -> None:
    context(auditor_id, request_id).log(
        session,
        "login",
        reason=Reason("auditor.login_refused", {"why": why}),
        categories=ACCOUNT,
        allowed=False,
    )


def check_password(
    session: Session, inst: Instance, email: str, password: str, request_id: str = "-"
) -> str:
    """The first step: the auditor's id for a right address and password (the code is asked
    next). A refusal of a known account is logged under its id; an unknown address costs the
    same argon2id work and is logged as an unknown auditor."""
    with unit_of_work(session) as uow:
        row = session.execute(
            select(Auditor).where(Auditor.email_index == email_index(inst, email))
        ).scalar_one_or_none()
        if row is None:
            with contextlib.suppress(VerificationError):
                inst.hasher.verify(inst.dummy_hash, password or "")
            _refuse(session, "unknown", request_id, "unknown account")
            uow.commit()
            raise InvalidCredentials(WRONG)
        try:
            inst.hasher.verify(row.password_hash, password or "")
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            _refuse(session, row.id, request_id, "wrong password")
            uow.commit()
            raise InvalidCredentials(WRONG) from None
        if row.disabled_at is not None:
            _refuse(session, row.id, request_id, "account disabled")
            uow.commit()
            raise InvalidCredentials(WRONG)
        if inst.hasher.check_needs_rehash(row.password_hash):
            row.password_hash = inst.hasher.hash(password)
        uow.commit()
        return row.id


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in sorted(range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1), reverse=True):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def check_code(
    session: Session,
    inst: Instance,
    auditor_id: str,
    code: str,
    request_id: str = "-",
    *,
    now: datetime | None = None,
) -> None:
    """The second step: accept a TOTP code of a step later than the last one accepted, or
    log the refusal and raise :class:`InvalidCredentials`."""
    code = (code or "").replace(" ", "")
    with unit_of_work(session) as uow:
        row = session.execute(
            select(Auditor).where(Auditor.id == auditor_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise InvalidCredentials(WRONG)
        if row.disabled_at is not None:
            _refuse(session, row.id, request_id, "account disabled")
            uow.commit()
            raise InvalidCredentials(WRONG)
        step = None
        if len(code) == 6 and code.isascii() and code.isdigit():
            secret = _open(inst, row.id, "totp_secret", row.totp_secret)
            step = _matching_step(secret, code, now or utcnow())
        if step is None:
            _refuse(session, row.id, request_id, "wrong code")
            uow.commit()
            raise InvalidCredentials(WRONG)
        if row.totp_last_step is not None and step <= row.totp_last_step:
            _refuse(session, row.id, request_id, "code already used")
            uow.commit()
            raise InvalidCredentials(WRONG)
        row.totp_last_step = step
        row.last_login_at = now or utcnow()
        context(row.id, request_id).log(
            session, "login", reason=Reason("auditor.login"), categories=ACCOUNT
        )
        uow.commit()
