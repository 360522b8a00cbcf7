"""Changing the e-mail address from the account page: confirmed at the new address, announced
at the old, and never a hint whether the new address already has an account."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from infomediary.models import AccessLogEntry, Customer, EmailToken
from infomediary.services.customer_keys import customer_key
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.log_reasons import code_of, shown
from tests.outbox import messages_to, newest_link

PASSWORD = "correct horse battery"
EMAIL = "ada@example.org"
NEW = "ada.lovelace@example.net"


def ask(client, new_email: str, password: str = PASSWORD):
    return client.post(
        "/account/email",
        data={
            "csrf_token": csrf(client, "/account"),
            "new_email": new_email,
            "email_current_password": password,
        },
    )


def stored_email(inst, customer_id: str) -> tuple[bytes, str]:
    with inst.sessions() as session:
        customer = session.get(Customer, customer_id)
        assert customer is not None
        key = customer_key(session, inst, customer_id)
        return customer.email_index, inst.vault.open(
            key, "customers", customer_id, "email", customer.email
        )


def request_reasons(inst, customer_id: str) -> list[str]:
    with inst.sessions() as session:
        rows = session.execute(
            select(AccessLogEntry)
            .where(AccessLogEntry.customer_id == customer_id)
            .order_by(AccessLogEntry.seq)
        ).scalars()
        return [text for row in rows if (text := shown(row)).startswith("e-mail address change")]


def test_a_new_address_is_confirmed_there_and_announced_at_the_old(client, auth, inst) -> None:
    auth.signup()
    with inst.sessions() as session:
        customer_id = session.execute(select(Customer.id)).scalar_one()
    response = ask(client, NEW)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"
    assert "We sent a confirmation link to the new address" in client.get("/account").get_data(
        as_text=True
    )

    announced = messages_to(inst.settings, EMAIL)[-1]
    assert announced["subject"] == "A change of your e-mail address was requested"
    assert NEW in announced["body"]
    assert newest_link(inst.settings, EMAIL, "/account/email/confirm") is None
    link = newest_link(inst.settings, NEW, "/account/email/confirm")
    assert link is not None

    # nothing changes until the link's form is used; the pending address is sealed
    assert stored_email(inst, customer_id) == (inst.vault.email_index(EMAIL), EMAIL)
    with inst.sessions() as session:
        row = session.execute(select(EmailToken).where(EmailToken.purpose == "change")).scalar_one()
        assert row.new_email is not None
        assert NEW.encode() not in row.new_email
    assert client.get(link).status_code == 200
    assert stored_email(inst, customer_id) == (inst.vault.email_index(EMAIL), EMAIL)

    confirmed = auth.follow(link)
    assert confirmed.status_code == 302
    assert stored_email(inst, customer_id) == (inst.vault.email_index(NEW), NEW)
    with inst.sessions() as session:
        changed = (
            session.execute(select(AccessLogEntry).where(AccessLogEntry.customer_id == customer_id))
            .scalars()
            .all()[-1]
        )
    assert shown(changed) == (
        "e-mail address changed (confirmed from the new address); every session ended"
    )
    assert changed.actor_type == "customer"
    assert client.get("/dashboard").status_code == 302  # the change ended this session too
    assert auth.login(email=EMAIL).status_code == 401
    assert auth.login(email=NEW).status_code == 302
    token = parse_qs(urlsplit(link).query)["token"][0]
    reused = client.post(
        "/account/email/confirm", data={"csrf_token": csrf(client, "/account"), "token": token}
    )
    assert reused.status_code == 400


def test_a_taken_new_address_changes_nothing_and_answers_the_same(app, client, auth, inst) -> None:
    other = make_customer(inst, email="bea@example.org")
    auth.signup()
    with inst.sessions() as session:
        ada = session.execute(
            select(Customer.id).where(Customer.email_index == inst.vault.email_index(EMAIL))
        ).scalar_one()
    taken = ask(client, "bea@example.org")
    taken_page = client.get("/account").get_data(as_text=True)
    free = ask(client, "free@example.org")
    free_page = client.get("/account").get_data(as_text=True)
    assert (taken.status_code, taken.headers["Location"]) == (
        free.status_code,
        free.headers["Location"],
    )
    assert taken_page.replace(csrf(client, "/account"), "") == free_page.replace(
        csrf(client, "/account"), ""
    )
    # the owner of the taken address hears of it; no link goes there
    bea_mail = messages_to(inst.settings, "bea@example.org")
    assert [m["subject"] for m in bea_mail] == ["Someone tried to use your address"]
    assert newest_link(inst.settings, "free@example.org", "/account/email/confirm")
    # the requester's log says the same both times
    first, second = request_reasons(inst, ada)
    assert first == second
    assert stored_email(inst, ada) == (inst.vault.email_index(EMAIL), EMAIL)
    assert stored_email(inst, other) == (
        inst.vault.email_index("bea@example.org"),
        "bea@example.org",
    )


def test_changing_the_address_needs_the_current_password(client, auth, inst) -> None:
    auth.signup()
    response = ask(client, NEW, password="not my password")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "This is not your current password." in body
    assert 'id="email_current_password-error"' in body
    assert messages_to(inst.settings, NEW) == []
    with inst.sessions() as session:
        denied = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.outcome == "denied")
        ).scalar_one()
        assert code_of(denied) == "account.email_change_refused"
        assert shown(denied) == "e-mail change refused: wrong password"
    # a bad address and a wrong password are reported together
    both = ask(client, "not-an-address", password="wrong")
    assert both.status_code == 400
    text = both.get_data(as_text=True)
    assert "email address like" in text
    assert "This is not your current password." in text


def test_a_password_change_cancels_a_pending_address_change(client, auth, inst) -> None:
    auth.signup()
    ask(client, NEW)
    link = newest_link(inst.settings, NEW, "/account/email/confirm")
    assert link is not None
    client.post(
        "/account/password",
        data={
            "csrf_token": csrf(client, "/account"),
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
        },
    )
    assert client.get(link).status_code == 400
    auth.logout()
    assert auth.login(email=NEW, password="a brand new passphrase").status_code == 401
    assert Auth(client).login(email=EMAIL, password="a brand new passphrase").status_code == 302


def test_links_sent_to_the_old_address_and_old_sessions_die_with_the_change(
    client, auth, inst, app
) -> None:
    """A verification or reset link mailed to the old address, and every session opened
    before the change, stop working once the new address is confirmed."""
    auth.signup(verify=False)
    old_verify = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert old_verify is not None
    assert auth.login().status_code == 302
    other = app.test_client()  # a second browser, logged in before the change
    assert Auth(other).login().status_code == 302
    reset = other.post(
        "/password/reset", data={"csrf_token": csrf(other, "/password/reset"), "email": EMAIL}
    )
    assert reset.status_code == 302
    old_reset = newest_link(inst.settings, EMAIL, "/password/reset/new")
    assert old_reset is not None
    assert ask(client, NEW).status_code == 302
    confirm = newest_link(inst.settings, NEW, "/account/email/confirm")
    assert confirm is not None
    assert auth.follow(confirm).status_code == 302

    assert other.get("/account").status_code == 302  # logged out
    assert client.get("/account").status_code == 302
    stranger = app.test_client()
    assert stranger.get(old_verify).status_code == 400
    assert stranger.get(old_reset).status_code == 400
    assert stranger.get("/dashboard").status_code == 302
    assert Auth(stranger).login(email=NEW).status_code == 302
