"""A customer's second factors: an authenticator app (TOTP) and one-time recovery codes.

The TOTP secret is sealed under the customer's data key and becomes a second factor only
once a code from it was confirmed; the last accepted time step is kept, so no code works
twice (the auditors' scheme, :mod:`infomediary.services.auditors`). Recovery codes are
80-bit random values shown once and stored as SHA-256; each works once, and a new set
replaces the old. Every change and every second-step attempt is logged.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.errors import InvalidCredentials, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, CustomerTotp, RecoveryCode, utcnow
from infomediary.services import Context, passkeys
from infomediary.services.auditors import _matching_step
from infomediary.services.customer_keys import customer_key
from infomediary.services.customers import ACCOUNT, confirm_password
from infomediary.services.uow import unit_of_work

ISSUER = "Infomediary"
RECOVERY_CODES = 10
WRONG_CODE = "That code is not right. Please try again."
TOTP = "totp"
RECOVERY = "recovery"
PASSKEY = "passkey"


@dataclass(frozen=True)
class Status:
    totp: bool
    recovery_left: int
    passkeys: int = 0

    @property
    def enabled(self) -> bool:
        return self.totp or self.passkeys > 0


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.strip().replace("-", "").replace(" ", "").lower().encode()).digest()


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def status(session: Session, customer_id: str) -> Status:
    """What the security page and the login step need (no personal data: not logged)."""
    row = session.get(CustomerTotp, customer_id)
    left = session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.customer_id == customer_id, RecoveryCode.used_at.is_(None))
    )
    return Status(
        totp=row is not None and row.confirmed_at is not None,
        recovery_left=left or 0,
        passkeys=passkeys.count(session, customer_id),
    )


def required(session: Session, customer_id: str) -> bool:
    """Whether the login needs a second step."""
    return status(session, customer_id).enabled


def _replace_codes(session: Session, customer_id: str) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.customer_id == customer_id))
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    now = utcnow()
    session.add_all(
        RecoveryCode(code_hash=_hash(c), customer_id=customer_id, created_at=now) for c in codes
    )
    return codes


def _code_of(code: str) -> str | None:
    code = (code or "").replace(" ", "")
    return code if len(code) == 6 and code.isascii() and code.isdigit() else None


def start_totp(
    session: Session, inst: Instance, customer_id: str, ctx: Context, password: str
) -> Enrolment:
    """A new authenticator secret, waiting for its first code (replaces one not confirmed),
    after the customer's ``password``: a session alone cannot add a factor."""
    with unit_of_work(session) as uow:
        confirm_password(session, inst, uow, customer_id, password, ctx)
        row = session.get(CustomerTotp, customer_id)
        if row is not None and row.confirmed_at is not None:
            raise ValidationFailed({"code": "An authenticator app is already set up."})
        secret = pyotp.random_base32()
        sealed = inst.vault.seal(
            customer_key(session, inst, customer_id), "customer_totp", customer_id, "secret", secret
        )
        if row is None:
            session.add(CustomerTotp(customer_id=customer_id, secret=sealed, created_at=utcnow()))
        else:
            row.secret, row.last_step, row.created_at = sealed, None, utcnow()
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.totp_started"),
            categories=ACCOUNT,
        )
        uow.commit()
    return Enrolment(
        secret, pyotp.TOTP(secret).provisioning_uri(name="account", issuer_name=ISSUER)
    )


def pending_totp(session: Session, inst: Instance, customer_id: str) -> Enrolment | None:
    """The customer's own unconfirmed secret, to show again while they type the code."""
    row = session.get(CustomerTotp, customer_id)
    if row is None or row.confirmed_at is not None:
        return None
    key = customer_key(session, inst, customer_id)
    secret = str(inst.vault.open(key, "customer_totp", customer_id, "secret", row.secret))
    return Enrolment(
        secret, pyotp.TOTP(secret).provisioning_uri(name="account", issuer_name=ISSUER)
    )


def _check_totp(
    session: Session, inst: Instance, row: CustomerTotp, code: str
) -> tuple[int | None, bool]:
    """(step, replayed) of a code against the row's secret."""
    digits = _code_of(code)
    if digits is None:
        return None, False
    key = customer_key(session, inst, row.customer_id)
    secret = str(inst.vault.open(key, "customer_totp", row.customer_id, "secret", row.secret))
    step = _matching_step(secret, digits, utcnow())
    if step is None:
        return None, False
    return step, row.last_step is not None and step <= row.last_step


def confirm_totp(
    session: Session, inst: Instance, customer_id: str, code: str, ctx: Context
) -> list[str]:
    """Turn the waiting secret into a second factor with its first code; returns new
    recovery codes (shown once) when the customer had none left."""
    with unit_of_work(session) as uow:
        row = session.execute(
            select(CustomerTotp).where(CustomerTotp.customer_id == customer_id).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.confirmed_at is not None:
            raise ValidationFailed({"code": "Start the set-up again."})
        step, _ = _check_totp(session, inst, row, code)
        if step is None:
            raise ValidationFailed({"code": WRONG_CODE})
        row.confirmed_at = row.last_used_at = utcnow()
        row.last_step = step
        codes: list[str] = []
        if not status(session, customer_id).recovery_left:
            codes = _replace_codes(session, customer_id)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.totp_enabled", {"recovery_codes": len(codes)}),
            categories=ACCOUNT,
        )
        uow.commit()
    return codes


def new_recovery_codes(
    session: Session, inst: Instance, customer_id: str, ctx: Context, password: str | None = None
) -> list[str]:
    """Ten new one-time codes, replacing every earlier one; shown once. Asked for by the
    customer, they need the password (``None``: the first codes of a factor just added)."""
    with unit_of_work(session) as uow:
        if password is not None:
            confirm_password(session, inst, uow, customer_id, password, ctx)
        elif session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        codes = _replace_codes(session, customer_id)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.recovery_codes_new", {"count": len(codes)}),
            categories=ACCOUNT,
        )
        uow.commit()
    return codes


def remove_totp(
    session: Session, inst: Instance, customer_id: str, password: str, ctx: Context
) -> None:
    """Remove the authenticator app (and the recovery codes, when no passkey is left); needs
    the password."""
    with unit_of_work(session) as uow:
        confirm_password(
            session,
            inst,
            uow,
            customer_id,
            password,
            ctx,
            refused=Reason("security.removal_refused"),
        )
        session.execute(delete(CustomerTotp).where(CustomerTotp.customer_id == customer_id))
        if not passkeys.count(session, customer_id):  # the codes stand in for the last factor
            session.execute(delete(RecoveryCode).where(RecoveryCode.customer_id == customer_id))
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("security.totp_removed"),
            categories=ACCOUNT,
        )
        uow.commit()


def second_step(
    session: Session,
    inst: Instance,
    customer_id: str,
    method: str,
    code: str,
    ctx: Context,
    *,
    site: passkeys.Site | None = None,
    challenge: bytes | None = None,
) -> None:
    """The login's second step with a TOTP code, a recovery code or a passkey (``code`` is
    then the browser's assertion JSON, checked against ``challenge``); each attempt is
    logged, a refused one raises :class:`InvalidCredentials`."""
    with unit_of_work(session) as uow:
        why = ""
        if method == PASSKEY:
            if site is None or not passkeys.check_assertion(
                session, customer_id, site, challenge, code
            ):
                why = "wrong_code"
        elif method == RECOVERY:
            found = session.execute(
                select(RecoveryCode)
                .where(
                    RecoveryCode.customer_id == customer_id,
                    RecoveryCode.code_hash == _hash(code or ""),
                    RecoveryCode.used_at.is_(None),
                )
                .with_for_update()
            ).scalar_one_or_none()
            if found is None:
                why = "wrong_code"
            else:
                found.used_at = utcnow()
        else:
            row = session.execute(
                select(CustomerTotp)
                .where(
                    CustomerTotp.customer_id == customer_id, CustomerTotp.confirmed_at.is_not(None)
                )
                .with_for_update()
            ).scalar_one_or_none()
            step, replayed = (None, False) if row is None else _check_totp(session, inst, row, code)
            if row is None or step is None:
                why = "wrong_code"
            elif replayed:
                why = "code_reused"
            else:
                row.last_step, row.last_used_at = step, utcnow()
        method = method if method in (RECOVERY, PASSKEY) else TOTP
        if why:
            ctx.log(
                session,
                "login",
                customer_id=customer_id,
                reason=Reason("security.second_step_refused", {"method": method, "why": why}),
                categories=ACCOUNT,
                allowed=False,
            )
            uow.commit()
            raise InvalidCredentials(WRONG_CODE)
        ctx.log(
            session,
            "login",
            customer_id=customer_id,
            reason=Reason("security.second_step", {"method": method}),
            categories=ACCOUNT,
        )
        uow.commit()
