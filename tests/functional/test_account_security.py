"""Account security: an authenticator app (TOTP) and recovery codes as second factors, the
half-logged-in state between the password and the second step, and the session list."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pyotp
from sqlalchemy import select

from infomediary.models import AccessLogEntry, CustomerTotp, Passkey, RecoveryCode, WebSession
from tests.conftest import csrf
from tests.factories import make_customer
from tests.webauthn_support import SoftAuthenticator, b64url

EMAIL = "ada@example.org"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PASSWORD = "correct horse battery"
SECRET_RE = re.compile(r'id="totp-secret" type="text" readonly value="([A-Z2-7]+)"')
CODE_RE = re.compile(r"<li><code>([a-z2-7-]+)</code></li>")


def post(client, path: str, data: dict[str, str] | None = None, page: str = "/account/security"):
    return client.post(path, data={"csrf_token": csrf(client, page), **(data or {})})


def enrol(client) -> tuple[str, list[str]]:
    """Set up TOTP through the pages; returns the secret and the recovery codes shown."""
    assert post(client, "/account/security/totp", {"password": PASSWORD}).status_code == 302
    page = client.get("/account/security").get_data(as_text=True)
    match = SECRET_RE.search(page)
    assert match, "the secret is shown as text"
    secret = match.group(1)
    assert f"otpauth://totp/Infomediary:account?secret={secret}" in page
    wrong = post(client, "/account/security/totp/confirm", {"code": "000000"})
    assert wrong.status_code == 400
    assert "That code is not right" in wrong.get_data(as_text=True)
    shown = post(client, "/account/security/totp/confirm", {"code": pyotp.TOTP(secret).now()})
    assert shown.status_code == 200
    codes = CODE_RE.findall(shown.get_data(as_text=True))
    assert len(codes) == 10
    assert len(set(codes)) == 10
    return secret, codes


def logged_in_customer(inst, auth) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    return customer_id


def test_totp_enrol_then_login_needs_a_code_and_refuses_a_replay(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    secret, _ = enrol(client)
    with inst.sessions() as db:
        row = db.get(CustomerTotp, customer_id)
        assert row is not None
        assert row.confirmed_at is not None
        assert secret.encode() not in row.secret  # sealed, never in plaintext
        assert db.scalar(
            select(RecoveryCode.code_hash).where(RecoveryCode.customer_id == customer_id)
        ) not in (None, b"")
    auth.logout()

    answer = auth.login(EMAIL, PASSWORD)
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/login/second-factor")
    # half logged in: the dashboard does not open
    assert client.get("/dashboard").status_code == 302
    assert client.get("/account/security").status_code == 302
    wrong = post(
        client, "/login/second-factor", {"method": "totp", "code": "123456"}, "/login/second-factor"
    )
    assert wrong.status_code == 401
    with inst.sessions() as db:
        enrolled_at = db.get_one(CustomerTotp, customer_id).last_step
    assert enrolled_at is not None
    # the code of the step the enrolment used (not "now": a 30 s boundary may have passed)
    code = pyotp.TOTP(secret).at(enrolled_at * pyotp.TOTP(secret).interval)
    # the code the enrolment used is refused again (same time step)
    replay = post(
        client, "/login/second-factor", {"method": "totp", "code": code}, "/login/second-factor"
    )
    assert replay.status_code == 401
    with inst.sessions() as db:
        row = db.get(CustomerTotp, customer_id)
        assert row is not None
        row.last_step = (row.last_step or 0) - 1  # as if the enrolment was a step earlier
        db.commit()
    ok = post(
        client, "/login/second-factor", {"method": "totp", "code": code}, "/login/second-factor"
    )
    assert ok.status_code == 302
    assert client.get("/dashboard").status_code == 200
    auth.logout()
    # the same code again, in a new login: a replay
    auth.login(EMAIL, PASSWORD)
    again = post(
        client, "/login/second-factor", {"method": "totp", "code": code}, "/login/second-factor"
    )
    assert again.status_code == 401
    with inst.sessions() as db:
        reasons = db.scalars(
            select(AccessLogEntry.reason_data).where(AccessLogEntry.customer_id == customer_id)
        ).all()
    joined = " ".join(r or "" for r in reasons)
    assert "security.totp_enabled" in joined
    assert "code_reused" in joined
    assert "security.second_step" in joined


def test_a_recovery_code_works_once(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    _, codes = enrol(client)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    used = post(
        client,
        "/login/second-factor",
        {"method": "recovery", "code": codes[3].upper()},
        "/login/second-factor",
    )
    assert used.status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert "9 unused recovery codes" in client.get("/account/security").get_data(as_text=True)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    twice = post(
        client,
        "/login/second-factor",
        {"method": "recovery", "code": codes[3]},
        "/login/second-factor",
    )
    assert twice.status_code == 401
    assert client.get("/dashboard").status_code == 302
    # new codes replace the old ones
    post(
        client,
        "/login/second-factor",
        {"method": "recovery", "code": codes[4]},
        "/login/second-factor",
    )
    fresh = post(client, "/account/security/recovery-codes", {"password": PASSWORD})
    new_codes = CODE_RE.findall(fresh.get_data(as_text=True))
    assert len(new_codes) == 10
    assert not set(new_codes) & set(codes)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    old = post(
        client,
        "/login/second-factor",
        {"method": "recovery", "code": codes[5]},
        "/login/second-factor",
    )
    assert old.status_code == 401
    with inst.sessions() as db:
        assert db.scalars(select(RecoveryCode).where(RecoveryCode.customer_id == customer_id)).all()


def test_the_pending_step_expires(app, client, auth, inst) -> None:
    logged_in_customer(inst, auth)
    secret, _ = enrol(client)
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    with client.session_transaction() as sess:
        sess["pending_until"] = 0
    late = post(
        client,
        "/login/second-factor",
        {"method": "totp", "code": pyotp.TOTP(secret).now()},
        "/login",
    )
    assert late.status_code == 302
    assert late.headers["Location"].endswith("/login")
    assert client.get("/dashboard").status_code == 302


def test_removing_the_app_needs_the_password(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    enrol(client)
    refused = post(client, "/account/security/totp/remove", {"password": "not my password"})
    assert refused.status_code == 400
    assert "That password is not right" in refused.get_data(as_text=True)
    assert post(client, "/account/security/totp/remove", {"password": PASSWORD}).status_code == 302
    with inst.sessions() as db:
        assert db.get(CustomerTotp, customer_id) is None
        assert not db.scalars(
            select(RecoveryCode).where(RecoveryCode.customer_id == customer_id)
        ).all()
    auth.logout()
    assert auth.login(EMAIL, PASSWORD).headers["Location"].endswith("/dashboard")


def test_session_list_and_logging_out_one_and_everywhere(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    other = app.test_client()
    assert (
        other.post(
            "/login",
            data={"csrf_token": csrf(other, "/login"), "email": EMAIL, "password": PASSWORD},
        ).status_code
        == 302
    )
    third = app.test_client()
    third.environ_base["HTTP_USER_AGENT"] = FIREFOX
    third.post(
        "/login", data={"csrf_token": csrf(third, "/login"), "email": EMAIL, "password": PASSWORD}
    )
    page = client.get("/account/security").get_data(as_text=True)
    ids = re.findall(r"/account/security/sessions/([A-Za-z0-9_-]+)/logout", page)
    assert len(ids) == 3
    assert "This device" in page
    assert "Firefox on Linux" in page
    with inst.sessions() as db:
        hashes = {r.token_hash.hex() for r in db.scalars(select(WebSession))}
        devices = [r.device for r in db.scalars(select(WebSession)) if r.device]
    assert len(devices) == 3
    assert not [d for d in devices if b"Firefox" in d]  # sealed
    assert not set(ids) & hashes
    # log out another browser by its id (not this one's)
    others = set(ids)
    current = re.search(
        r"This device</strong>.*?/account/security/sessions/([A-Za-z0-9_-]+)/logout", page, re.S
    )
    assert current
    others.discard(current.group(1))
    target = sorted(others)[0]
    assert post(client, f"/account/security/sessions/{target}/logout").status_code == 302
    still = [c.get("/dashboard").status_code for c in (other, third)]
    assert sorted(still) == [200, 302]
    # someone else's id is not found
    assert post(client, "/account/security/sessions/nosuchid/logout").status_code == 404
    assert post(client, "/account/security/sessions/logout-others").status_code == 302
    assert other.get("/dashboard").status_code == 302
    assert third.get("/dashboard").status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert post(client, "/account/security/sessions/logout-all").status_code == 302
    assert client.get("/dashboard").status_code == 302
    with inst.sessions() as db:
        left = db.scalars(select(WebSession).where(WebSession.customer_id == customer_id)).all()
        assert left == []
        reasons = db.scalars(
            select(AccessLogEntry.reason_data).where(AccessLogEntry.customer_id == customer_id)
        ).all()
    joined = " ".join(r or "" for r in reasons)
    assert "security.session_ended" in joined
    assert "security.sessions_ended" in joined


def test_signup_reports_every_error_at_once_and_keeps_the_input(client) -> None:
    answer = client.post(
        "/signup",
        data={
            "csrf_token": csrf(client, "/signup"),
            "email": "not an address",
            "password": "short",
            "name": "Ada",
        },
    )
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert page.count('class="error"') >= 3
    for field in ("email", "password", "accept_notice"):
        assert f'id="{field}-error"' in page
    assert 'value="not an address"' in page
    assert 'value="Ada"' in page
    assert "short" not in page.split("<form", 1)[1].split("</form>")[0].replace("shortcut", "")


def passkey_options(client, path: str, page: str) -> dict[str, Any]:
    answer = client.post(path, data={"csrf_token": csrf(client, page), "password": PASSWORD})
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    options: dict[str, Any] = answer.get_json()
    return options


def test_passkey_registration_and_login_are_verified(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    authenticator = SoftAuthenticator()
    options = passkey_options(client, "/account/security/passkeys/options", "/account/security")
    assert options["rp"]["id"] == "localhost"
    # every field's error at once, the name kept
    bad = post(client, "/account/security/passkeys", {"name": "", "credential": ""})
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert 'id="passkey_name-error"' in body
    assert 'id="credential-error"' in body
    # the refused attempt used up the challenge: the same response is no longer accepted
    options = passkey_options(client, "/account/security/passkeys/options", "/account/security")
    credential = authenticator.create(options)
    added = post(client, "/account/security/passkeys", {"name": "Laptop", "credential": credential})
    assert added.status_code == 200  # the first second factor: its recovery codes, once
    assert len(CODE_RE.findall(added.get_data(as_text=True))) == 10
    again = post(client, "/account/security/passkeys", {"name": "Laptop", "credential": credential})
    assert again.status_code == 400
    with inst.sessions() as db:
        row = db.scalars(select(Passkey).where(Passkey.customer_id == customer_id)).one()
        assert row.credential_id == authenticator.credential_id
        assert row.transports == "internal"  # comma-separated, as the export reads them
        assert b"Laptop" not in row.name
    assert "Laptop" in client.get("/account/security").get_data(as_text=True)
    auth.logout()

    assert auth.login(EMAIL, PASSWORD).headers["Location"].endswith("/login/second-factor")
    assert client.get("/dashboard").status_code == 302
    page = "/login/second-factor"
    options = passkey_options(client, "/login/second-factor/passkey/options", page)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(authenticator.credential_id)]
    # an assertion over another challenge is refused, and logged
    forged = authenticator.get(options, challenge=b64url(b"x" * 32))
    assert (
        post(client, "/login/second-factor/passkey", {"credential": forged}, page).status_code
        == 401
    )
    # another key under the same credential id is refused
    impostor = SoftAuthenticator(credential_id=authenticator.credential_id)
    options = passkey_options(client, "/login/second-factor/passkey/options", page)
    assert (
        post(
            client, "/login/second-factor/passkey", {"credential": impostor.get(options)}, page
        ).status_code
        == 401
    )
    options = passkey_options(client, "/login/second-factor/passkey/options", page)
    good = authenticator.get(options)
    assert (
        post(client, "/login/second-factor/passkey", {"credential": good}, page).status_code == 302
    )
    assert client.get("/dashboard").status_code == 200
    with inst.sessions() as db:
        row = db.scalars(select(Passkey).where(Passkey.customer_id == customer_id)).one()
        assert row.sign_count == authenticator.sign_count
        assert row.last_used_at is not None
        joined = " ".join(
            r or ""
            for r in db.scalars(
                select(AccessLogEntry.reason_data).where(AccessLogEntry.customer_id == customer_id)
            )
        )
    assert "security.passkey_added" in joined
    assert joined.count("security.second_step_refused") == 2
    # removing it needs the password
    passkey_id = row.id
    wrong = post(client, f"/account/security/passkeys/{passkey_id}/remove", {"password": "nope"})
    assert wrong.status_code == 400
    assert (
        post(
            client, f"/account/security/passkeys/{passkey_id}/remove", {"password": PASSWORD}
        ).status_code
        == 302
    )
    auth.logout()
    assert auth.login(EMAIL, PASSWORD).headers["Location"].endswith("/dashboard")


def test_password_change_reports_both_errors_at_once(app, client, auth, inst) -> None:
    logged_in_customer(inst, auth)
    answer = client.post(
        "/account/password",
        data={
            "csrf_token": csrf(client, "/account"),
            "current_password": "not my password",
            "new_password": "short",
        },
    )
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'id="current_password-error"' in page
    assert 'id="new_password-error"' in page


def test_recovery_codes_stay_while_a_factor_is_left(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    enrol(client)
    options = passkey_options(client, "/account/security/passkeys/options", "/account/security")
    credential = SoftAuthenticator().create(options)
    assert (
        post(
            client, "/account/security/passkeys", {"name": "Key", "credential": credential}
        ).status_code
        == 302
    )

    def codes_left() -> int:
        with inst.sessions() as db:
            return len(
                db.scalars(
                    select(RecoveryCode).where(RecoveryCode.customer_id == customer_id)
                ).all()
            )

    assert post(client, "/account/security/totp/remove", {"password": PASSWORD}).status_code == 302
    assert codes_left() == 10  # the passkey still needs them
    with inst.sessions() as db:
        passkey_id = db.scalars(select(Passkey.id).where(Passkey.customer_id == customer_id)).one()
    removed = post(
        client, f"/account/security/passkeys/{passkey_id}/remove", {"password": PASSWORD}
    )
    assert removed.status_code == 302
    assert codes_left() == 0


def test_another_customer_cannot_remove_a_passkey_or_end_a_session(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    options = passkey_options(client, "/account/security/passkeys/options", "/account/security")
    credential = SoftAuthenticator().create(options)
    post(client, "/account/security/passkeys", {"name": "Key", "credential": credential})
    page = client.get("/account/security").get_data(as_text=True)
    session_id = re.findall(r"/account/security/sessions/([A-Za-z0-9_-]+)/logout", page)[0]
    with inst.sessions() as db:
        passkey_id = db.scalars(select(Passkey.id).where(Passkey.customer_id == customer_id)).one()
    make_customer(inst, email="bob@example.org", password=PASSWORD)
    bob = app.test_client()
    bob.post(
        "/login",
        data={"csrf_token": csrf(bob, "/login"), "email": "bob@example.org", "password": PASSWORD},
    )
    token = csrf(bob, "/account/security")
    taken = bob.post(
        f"/account/security/passkeys/{passkey_id}/remove",
        data={"csrf_token": token, "password": PASSWORD},
    )
    assert taken.status_code == 404
    ended = bob.post(f"/account/security/sessions/{session_id}/logout", data={"csrf_token": token})
    assert ended.status_code == 404
    assert client.get("/dashboard").status_code == 200
    with inst.sessions() as db:
        assert db.get(Passkey, passkey_id) is not None


def test_the_passkey_relying_party_is_the_issuer_whatever_the_host_header(
    app, client, auth, inst
) -> None:
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], issuer="https://id.example.org")
    logged_in_customer(inst, auth)
    token = csrf(client, "/account/security")
    # the test client keeps cookies per host: the session's goes to the other host too
    cookie = client.get_cookie("infomediary_session")
    assert cookie is not None
    client.set_cookie("infomediary_session", cookie.value, domain="evil.example")
    answer = client.post(
        "/account/security/passkeys/options",
        data={"csrf_token": token, "password": PASSWORD},
        headers={
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert answer.status_code == 200
    assert answer.get_json()["rp"]["id"] == "id.example.org"


def test_adding_a_factor_or_new_recovery_codes_needs_the_password(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    for password in ({}, {"password": "not my password"}):
        refused = post(client, "/account/security/totp", password)
        assert refused.status_code == 400
        assert "That password is not right" in refused.get_data(as_text=True)
        with inst.sessions() as db:
            assert db.get(CustomerTotp, customer_id) is None
        options = client.post(
            "/account/security/passkeys/options",
            data={"csrf_token": csrf(client, "/account/security"), **password},
        )
        assert options.status_code == 400
        assert options.get_json()["code"] == "wrong_password"
        assert "That password is not right" in options.get_json()["message"]
    # no challenge was issued: a passkey made over one of another session is refused
    other = app.test_client()
    other.post(
        "/login",
        data={"csrf_token": csrf(other, "/login"), "email": EMAIL, "password": PASSWORD},
    )
    credential = SoftAuthenticator().create(
        passkey_options(other, "/account/security/passkeys/options", "/account/security")
    )
    added = post(client, "/account/security/passkeys", {"name": "Key", "credential": credential})
    assert added.status_code == 400
    _, codes = enrol(client)
    for password in ({}, {"password": "not my password"}):
        again = post(client, "/account/security/recovery-codes", password)
        assert again.status_code == 400
        assert "That password is not right" in again.get_data(as_text=True)
        assert not CODE_RE.findall(again.get_data(as_text=True))
    with inst.sessions() as db:
        assert not db.scalars(select(Passkey).where(Passkey.customer_id == customer_id)).all()
        left = db.scalars(
            select(RecoveryCode.code_hash).where(RecoveryCode.customer_id == customer_id)
        ).all()
        assert len(left) == 10
        joined = " ".join(
            r or ""
            for r in db.scalars(
                select(AccessLogEntry.reason_data).where(AccessLogEntry.customer_id == customer_id)
            )
        )
    assert "security.change_refused" in joined
    # the codes shown at enrolment still work
    auth.logout()
    auth.login(EMAIL, PASSWORD)
    used = post(
        client,
        "/login/second-factor",
        {"method": "recovery", "code": codes[0]},
        "/login/second-factor",
    )
    assert used.status_code == 302


def test_a_passkey_whose_credential_id_is_taken_is_not_created(app, client, auth, inst) -> None:
    customer_id = logged_in_customer(inst, auth)
    authenticator = SoftAuthenticator()
    options = passkey_options(client, "/account/security/passkeys/options", "/account/security")
    added = post(
        client,
        "/account/security/passkeys",
        {"name": "Key", "credential": authenticator.create(options)},
    )
    assert added.status_code == 200
    # the same credential id again, for this customer and for another one
    make_customer(inst, email="bob@example.org", password=PASSWORD)
    bob = app.test_client()
    bob.post(
        "/login",
        data={"csrf_token": csrf(bob, "/login"), "email": "bob@example.org", "password": PASSWORD},
    )
    for who in (client, bob):
        copy = SoftAuthenticator(credential_id=authenticator.credential_id)
        options = passkey_options(who, "/account/security/passkeys/options", "/account/security")
        again = post(
            who, "/account/security/passkeys", {"name": "Copy", "credential": copy.create(options)}
        )
        assert again.status_code == 400
        assert "The passkey was not created" in again.get_data(as_text=True)
        assert 'value="Copy"' in again.get_data(as_text=True)
    with inst.sessions() as db:
        rows = db.scalars(select(Passkey)).all()
    assert [r.customer_id for r in rows] == [customer_id]
