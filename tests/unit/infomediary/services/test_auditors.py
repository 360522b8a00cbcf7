"""Auditors' accounts: what is stored (nothing in plaintext), and the two steps of a login."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.audit.reasons import render
from infomediary.errors import EmailTaken, InvalidCredentials, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Auditor, utcnow
from infomediary.services import Context, auditors

CTX = Context(Actor.system("test"))
EMAIL = "Audra.Auditor@Example.org"
PASSWORD = "a long auditor passphrase"


def make(inst: Instance, email: str = EMAIL) -> auditors.CreatedAuditor:
    with inst.sessions() as session:
        return auditors.create(session, inst, email=email, password=PASSWORD, ctx=CTX)


def entries(inst: Instance) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars())


def said(entry: AccessLogEntry) -> str:
    return render(entry.reason_data, entry.reason)


def test_create_stores_nothing_in_plaintext(inst: Instance) -> None:
    created = make(inst)
    assert created.provisioning_uri.startswith("otpauth://totp/")
    assert f"secret={created.totp_secret}" in created.provisioning_uri
    with inst.sessions() as session:
        row = session.get_one(Auditor, created.id)
        stored = b"".join([row.email, row.email_index, row.totp_secret, row.password_hash.encode()])
    for needle in (b"audra", b"Audra", b"example", created.totp_secret.encode()):
        assert needle not in stored
    assert row.password_hash.startswith("$argon2id$")
    assert row.email_index == auditors.email_index(inst, "  audra.auditor@example.ORG ")
    # the index is not a customer's: another domain of the blind-index key
    assert row.email_index != inst.vault.email_index(EMAIL)
    [entry] = entries(inst)
    assert entry.action == "create"
    assert entry.customer_id is None
    assert said(entry) == "auditor account created"


def test_the_sealed_values_are_bound_to_their_row(inst: Instance) -> None:
    first, second = make(inst), make(inst, "other.auditor@example.org")
    with inst.sessions() as session:
        a, b = session.get_one(Auditor, first.id), session.get_one(Auditor, second.id)
        a.totp_secret = b.totp_secret  # moved from another row
        session.commit()
    with inst.sessions() as session, pytest.raises(ValueError, match="does not authenticate"):
        auditors.check_code(session, inst, first.id, pyotp.TOTP(second.totp_secret).now())


def test_create_refuses_a_taken_address_and_a_weak_password(inst: Instance) -> None:
    make(inst)
    with inst.sessions() as session, pytest.raises(EmailTaken):
        auditors.create(session, inst, email=EMAIL.lower(), password=PASSWORD, ctx=CTX)
    with inst.sessions() as session, pytest.raises(ValidationFailed) as caught:
        auditors.create(session, inst, email="x@example.org", password="short", ctx=CTX)
    assert "password" in caught.value.errors
    with inst.sessions() as session, pytest.raises(ValidationFailed) as caught:
        auditors.create(session, inst, email="not an address", password=PASSWORD, ctx=CTX)
    assert "email" in caught.value.errors


def test_list_opens_the_addresses_and_disable_ends_logins(inst: Instance) -> None:
    created = make(inst)
    with inst.sessions() as session:
        [info] = auditors.list_auditors(session, inst)
    assert (info.id, info.email, info.disabled) == (created.id, EMAIL, False)
    with inst.sessions() as session:
        assert auditors.disable(session, inst, EMAIL, CTX) == created.id
    with inst.sessions() as session:
        assert auditors.list_auditors(session, inst)[0].disabled
        assert not auditors.active(session, created.id)
        with pytest.raises(InvalidCredentials):
            auditors.check_password(session, inst, EMAIL, PASSWORD)
    with inst.sessions() as session, pytest.raises(NotFound):
        auditors.disable(session, inst, "nobody@example.org", CTX)
    assert said(entries(inst)[-1]) == "auditor login refused: account disabled"


def test_password_step_logs_refusals_without_personal_data(inst: Instance) -> None:
    created = make(inst)
    with inst.sessions() as session:
        assert auditors.check_password(session, inst, EMAIL, PASSWORD) == created.id
        with pytest.raises(InvalidCredentials):
            auditors.check_password(session, inst, EMAIL, "wrong password!!")
        with pytest.raises(InvalidCredentials):
            auditors.check_password(session, inst, "nobody@example.org", PASSWORD)
    wrong, unknown = entries(inst)[-2:]
    assert (wrong.actor_type, wrong.actor_id, wrong.outcome) == ("auditor", created.id, "denied")
    assert said(wrong) == "auditor login refused: wrong password"
    assert (unknown.actor_id, said(unknown)) == (
        "unknown",
        "auditor login refused: unknown account",
    )
    for entry in (wrong, unknown):
        assert "example" not in said(entry)
        assert entry.customer_id is None


def test_a_code_is_accepted_once_and_never_an_older_one(inst: Instance) -> None:
    created = make(inst)
    totp = pyotp.TOTP(created.totp_secret)
    now = utcnow()
    with inst.sessions() as session:
        auditors.check_code(session, inst, created.id, totp.at(now), now=now)
        with pytest.raises(InvalidCredentials):  # replayed
            auditors.check_code(session, inst, created.id, totp.at(now), now=now)
        with pytest.raises(InvalidCredentials):  # the step before: older than the one used
            auditors.check_code(
                session, inst, created.id, totp.at(now - timedelta(seconds=30)), now=now
            )
        later = now + timedelta(seconds=30)
        auditors.check_code(session, inst, created.id, totp.at(later), now=later)
        row = session.get_one(Auditor, created.id)
        assert row.totp_last_step == totp.timecode(later)
    reasons = [said(e) for e in entries(inst)[1:]]
    assert reasons == [
        "auditor logged in with password and one-time code",
        "auditor login refused: code already used",
        "auditor login refused: code already used",
        "auditor logged in with password and one-time code",
    ]


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"])
def test_a_malformed_or_wrong_code_is_refused(inst: Instance, code: str) -> None:
    created = make(inst)
    with inst.sessions() as session, pytest.raises(InvalidCredentials):
        auditors.check_code(session, inst, created.id, code)
    assert said(entries(inst)[-1]) == "auditor login refused: wrong code"


def test_codes_far_from_now_are_refused(inst: Instance) -> None:
    created = make(inst)
    totp = pyotp.TOTP(created.totp_secret)
    now = utcnow()
    with inst.sessions() as session:
        for offset in (-90, 90):
            code = totp.at(now + timedelta(seconds=offset))
            if code == totp.at(now):  # pragma: no cover - one chance in a million
                continue
            with pytest.raises(InvalidCredentials):
                auditors.check_code(session, inst, created.id, code, now=now)
        auditors.check_code(
            session, inst, created.id, totp.at(now + timedelta(seconds=30)), now=now
        )
