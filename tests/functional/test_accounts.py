"""Sign-up, the verification link, new links and password reset, over HTTP, on both backends.

Nothing here may tell a visitor whether an address has an account: answers, redirects,
pages and the work done are compared between a taken and a free address. Links are read
from the instance's outbox, as a customer would read their mail.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from infomediary.models import AccessLogEntry, Customer, EmailToken, WebSession, utcnow
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.log_reasons import shown
from tests.outbox import TOKEN_FIELD_RE, messages_to, newest_link

PASSWORD = "correct horse battery"
EMAIL = "ada@example.org"


class CountingHasher(PasswordHasher):
    """The real argon2id hasher, counting how often it hashes."""

    def __init__(self, base: PasswordHasher):
        super().__init__(
            time_cost=base.time_cost,
            memory_cost=base.memory_cost,
            parallelism=base.parallelism,
            hash_len=base.hash_len,
            salt_len=base.salt_len,
        )
        self.calls = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.calls += 1
        return super().hash(password, salt=salt)


def customer_by_email(inst, email: str):
    with inst.sessions() as session:
        return session.execute(
            select(Customer).where(Customer.email_index == inst.vault.email_index(email))
        ).scalar_one_or_none()


def reasons(inst, customer_id: str) -> list[str]:
    with inst.sessions() as session:
        rows = session.execute(
            select(AccessLogEntry)
            .where(AccessLogEntry.customer_id == customer_id)
            .order_by(AccessLogEntry.seq)
        ).scalars()
        return [shown(row) for row in rows]


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def test_signup_answers_and_works_alike_whether_or_not_the_address_is_taken(
    client, auth, inst, monkeypatch
) -> None:
    owner = make_customer(inst, email="taken@example.org")
    hasher = CountingHasher(inst.hasher)
    monkeypatch.setattr(inst, "hasher", hasher)
    keys: list[str] = []
    new_data_key = inst.vault.new_data_key

    def counting_new_data_key(customer_id: str) -> Any:
        keys.append(customer_id)
        return new_data_key(customer_id)

    monkeypatch.setattr(inst.vault, "new_data_key", counting_new_data_key)

    fresh = auth.signup(email="fresh@example.org", verify=False)
    work_fresh = (hasher.calls, len(keys))
    taken = auth.signup(email="taken@example.org", verify=False)
    work_taken = (hasher.calls - work_fresh[0], len(keys) - work_fresh[1])

    # one argon2id hash and one fresh data key each: the same work
    assert work_fresh == work_taken == (1, 1)
    assert (fresh.status_code, fresh.headers["Location"]) == (302, "/check-email?sent=signup")
    assert (taken.status_code, taken.headers["Location"]) == (302, "/check-email?sent=signup")
    assert fresh.get_data() == taken.get_data()
    page = client.get(fresh.headers["Location"])
    assert page.status_code == 200
    assert "Check your e-mail" in page.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302  # neither logged in

    new_mail = messages_to(inst.settings, "fresh@example.org")
    assert [m["subject"] for m in new_mail] == ["Confirm your e-mail address"]
    assert newest_link(inst.settings, "fresh@example.org", "/signup/verify")
    taken_mail = messages_to(inst.settings, "taken@example.org")
    assert [m["subject"] for m in taken_mail] == ["Someone tried to sign up with your address"]
    assert newest_link(inst.settings, "taken@example.org", "/signup/verify") is None

    created = customer_by_email(inst, "fresh@example.org")
    assert created is not None
    assert created.verified_at is None
    assert "sign-up refused: this address already has an account" in reasons(inst, owner)


def test_signup_reports_every_field_error_at_once(client, inst) -> None:
    response = client.post(
        "/signup",
        data={
            "csrf_token": csrf(client, "/signup"),
            "email": "nope",
            "password": "short",
            "name": "<script>",
        },
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    for message in ("email address like", "at least 12 characters", "angle brackets", "privacy"):
        assert message in body
    assert messages_to(inst.settings, "nope") == []


def test_the_link_opens_a_page_and_only_its_form_verifies_and_logs_in(client, auth, inst) -> None:
    auth.signup(verify=False)
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None
    # a mail scanner fetching the link, twice, and a HEAD: nothing is used up
    assert client.get(link).status_code == 200
    assert client.get(link).status_code == 200
    assert client.head(link).status_code == 200
    customer = customer_by_email(inst, EMAIL)
    assert customer is not None
    assert customer.verified_at is None
    with inst.sessions() as session:
        row = session.execute(select(EmailToken)).scalar_one()
        assert row.used_at is None
        # only the SHA-256 of the 256-bit token is stored
        assert row.token_hash == hashlib.sha256(token_of(link).encode()).digest()
        assert row.expires_at - row.created_at == timedelta(hours=24)
        stored = b"".join(
            str(v).encode() if not isinstance(v, bytes) else v
            for v in session.execute(select(EmailToken.__table__)).one()
        )
        assert token_of(link).encode() not in stored

    response = auth.follow(link)
    assert response.status_code == 302
    assert response.headers["Location"] == "/profile"
    assert "Welcome." in client.get("/profile").get_data(as_text=True)
    customer = customer_by_email(inst, EMAIL)
    assert customer is not None
    assert customer.verified_at is not None
    assert reasons(inst, customer.id)[-2] == (
        "e-mail address verified; every other session ended; logged in"
    )

    # single use
    again = client.post(
        "/signup/verify", data={"csrf_token": csrf(client, "/signup"), "token": token_of(link)}
    )
    assert again.status_code == 400
    assert "expired or was already used" in again.get_data(as_text=True)
    assert client.get(link).status_code == 400


def test_an_expired_link_verifies_nothing(client, auth, inst) -> None:
    auth.signup(verify=False)
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None
    with inst.sessions() as session:
        session.execute(update(EmailToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    assert client.get(link).status_code == 400
    response = client.post(
        "/signup/verify", data={"csrf_token": csrf(client, "/signup"), "token": token_of(link)}
    )
    assert response.status_code == 400
    assert client.get("/dashboard").status_code == 302
    customer = customer_by_email(inst, EMAIL)
    assert customer is not None
    assert customer.verified_at is None


@pytest.mark.parametrize(
    ("path", "sent", "link_path", "verified"),
    [
        ("/signup/resend", "resend", "/signup/verify", False),
        ("/password/reset", "reset", "/password/reset/new", True),
    ],
)
def test_link_requests_answer_alike_for_known_and_unknown_addresses(
    client, inst, path, sent, link_path, verified
) -> None:
    make_customer(inst, email="known@example.org", verified=verified)
    answers = []
    for address in ("known@example.org", "unknown@example.org"):
        response = client.post(path, data={"csrf_token": csrf(client, path), "email": address})
        answers.append((response.status_code, response.headers.get("Location")))
    assert answers == [(302, f"/check-email?sent={sent}")] * 2
    known = messages_to(inst.settings, "known@example.org")
    unknown = messages_to(inst.settings, "unknown@example.org")
    assert len(known) == len(unknown) == 1  # one message each, whatever the address
    assert newest_link(inst.settings, "known@example.org", link_path)
    assert newest_link(inst.settings, "unknown@example.org", link_path) is None
    assert unknown[0]["subject"] == "About your request to Infomediary"
    page = client.get(f"/check-email?sent={sent}").get_data(as_text=True)
    assert "If an account exists" in page or "If it has an account" in page


def test_a_new_link_replaces_the_old_one(client, auth, inst) -> None:
    auth.signup(verify=False)
    first = newest_link(inst.settings, EMAIL, "/signup/verify")
    client.post(
        "/signup/resend", data={"csrf_token": csrf(client, "/signup/resend"), "email": EMAIL}
    )
    second = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert first
    assert second
    assert first != second
    assert client.get(first).status_code == 400
    assert auth.follow(second).headers["Location"] == "/profile"


def test_password_reset_ends_every_session_and_works_once(app, client, inst) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    elsewhere = app.test_client()
    assert Auth(elsewhere).login().status_code == 302
    assert Auth(client).login().status_code == 302
    client.post(
        "/password/reset", data={"csrf_token": csrf(client, "/password/reset"), "email": EMAIL}
    )
    link = newest_link(inst.settings, EMAIL, "/password/reset/new")
    assert link is not None
    assert client.get(link).status_code == 200  # the form; the link still works after
    assert client.get(link).status_code == 200
    with inst.sessions() as session:
        row = session.execute(select(EmailToken).where(EmailToken.purpose == "reset")).scalar_one()
        assert row.expires_at - row.created_at == timedelta(hours=1)
    weak = client.post(
        "/password/reset/new",
        data={"csrf_token": csrf(client, link), "token": token_of(link), "new_password": "short"},
    )
    assert weak.status_code == 400
    assert "at least 12 characters" in weak.get_data(as_text=True)
    done = client.post(
        "/password/reset/new",
        data={
            "csrf_token": csrf(client, link),
            "token": token_of(link),
            "new_password": "a brand new passphrase",
        },
    )
    assert done.status_code == 302
    assert done.headers["Location"] == "/login"
    with inst.sessions() as session:
        assert (
            session.execute(select(WebSession).where(WebSession.customer_id == customer_id)).first()
            is None
        )
    assert elsewhere.get("/dashboard").status_code == 302
    assert client.get("/dashboard").status_code == 302
    assert Auth(client).login().status_code == 401
    assert Auth(client).login(password="a brand new passphrase").status_code == 302
    reused = client.post(
        "/password/reset/new",
        data={
            "csrf_token": csrf(client, "/dashboard"),
            "token": token_of(link),
            "new_password": "yet another passphrase",
        },
    )
    assert reused.status_code == 400
    assert "password reset by e-mail link; all sessions ended" in reasons(inst, customer_id)


def test_logs_carry_no_address_and_no_token(client, auth, inst, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    auth.signup(email="quiet.marker@example.org")
    auth.logout()
    client.post(
        "/password/reset",
        data={"csrf_token": csrf(client, "/password/reset"), "email": "quiet.marker@example.org"},
    )
    tokens = [
        token
        for m in messages_to(inst.settings, "quiet.marker@example.org")
        for token in re.findall(r"token=([A-Za-z0-9_-]+)", m["body"])
    ]
    assert len(tokens) == 2  # the verification link's and the reset link's
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /signup" in text
    assert "mail written to the outbox" in text
    assert "quiet.marker" not in text
    for token in tokens:
        assert token not in text


def test_someone_who_signed_up_with_anothers_address_keeps_no_way_in(client, app, inst) -> None:
    """The link alone does not confirm: it takes the sign-up password. The owner, who never
    chose one, resets the password instead, which ends the squatter's session and login."""
    squatter = Auth(client)
    assert squatter.signup(email=EMAIL, password="squatters own password", verify=False)
    assert squatter.login(password="squatters own password").status_code == 302
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None

    owner = Auth(app.test_client())
    refused = owner.follow(link, password="the owner never chose one")
    assert refused.status_code == 400
    assert "set a password of your own" in refused.get_data(as_text=True)
    assert owner.client.get("/dashboard").status_code == 302
    customer = customer_by_email(inst, EMAIL)
    assert customer is not None
    assert customer.verified_at is None
    assert "address confirmation refused: wrong password" in reasons(inst, customer.id)

    owner.client.post(
        "/password/reset",
        data={"csrf_token": csrf(owner.client, "/password/reset"), "email": EMAIL},
    )
    reset = newest_link(inst.settings, EMAIL, "/password/reset/new")
    assert reset is not None
    page = owner.client.get(reset).get_data(as_text=True)
    token = TOKEN_FIELD_RE.search(page)
    assert token is not None
    done = owner.client.post(
        "/password/reset/new",
        data={
            "csrf_token": csrf(owner.client, "/password/reset"),
            "token": token.group(1),
            "new_password": "the owners own passphrase",
        },
    )
    assert done.status_code == 302
    assert client.get("/account").status_code == 302  # the squatter's session ended
    assert Auth(app.test_client()).login(password="squatters own password").status_code == 401
    assert owner.login(password="the owners own passphrase").status_code == 302
    # and the first link, mailed before the reset, is dead
    assert app.test_client().get(link).status_code == 400


def test_confirming_the_address_ends_every_other_session(client, app, inst) -> None:
    first = Auth(client)
    first.signup(verify=False)
    assert first.login().status_code == 302
    elsewhere = app.test_client()
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None
    assert Auth(elsewhere).follow(link).status_code == 302
    assert elsewhere.get("/dashboard").status_code == 200
    assert client.get("/dashboard").status_code == 302
