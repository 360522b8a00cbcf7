"""An ended session stays ended: a request in flight for it, or a half-logged-in session of
the same customer, does not survive logging out everywhere or a password change."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from flask import request
from sqlalchemy import delete, select

from infomediary.models import WebSession
from infomediary.web.sessions import ServerSession
from tests.conftest import csrf
from tests.factories import make_customer
from tests.outbox import newest_link

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery"


def test_a_session_ended_while_its_request_is_in_flight_does_not_come_back(
    app, client, auth, inst
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    token = client.get_cookie("infomediary_session").value
    interface = app.session_interface
    with app.test_request_context("/dashboard", headers={"Cookie": f"infomediary_session={token}"}):
        loaded = interface.open_session(app, request)
        assert isinstance(loaded, ServerSession)
        assert loaded.stored
        assert loaded.get("customer_id")
        # "log out everywhere" in another request, while this one runs
        with inst.sessions() as db, db.begin():
            db.execute(delete(WebSession))
        loaded["_flashes"] = [("message", "written by the request in flight")]
        loaded.touch = True
        response = app.response_class()
        interface.save_session(app, loaded, response)
    with inst.sessions() as db:
        assert db.scalars(select(WebSession)).all() == []
    assert token not in response.headers.get("Set-Cookie", "")
    assert client.get("/dashboard").status_code == 302


def set_up_totp(client) -> str:
    page = "/account/security"
    client.post(
        "/account/security/totp", data={"csrf_token": csrf(client, page), "password": PASSWORD}
    )
    body = client.get(page).get_data(as_text=True)
    match = re.search(r'id="totp-secret" type="text" readonly value="([A-Z2-7]+)"', body)
    assert match
    secret = match.group(1)
    confirmed = client.post(
        "/account/security/totp/confirm",
        data={"csrf_token": csrf(client, page), "code": pyotp.TOTP(secret).now()},
    )
    assert confirmed.status_code == 200
    return secret


def half_logged_in(app):
    """Another browser that knows the password and now stands at the second step."""
    other = app.test_client()
    answer = other.post(
        "/login", data={"csrf_token": csrf(other, "/login"), "email": EMAIL, "password": PASSWORD}
    )
    assert answer.headers["Location"].endswith("/login/second-factor")
    return other


def second_step(other, secret: str):
    return other.post(
        "/login/second-factor",
        data={
            "csrf_token": csrf(other, "/login"),
            "method": "totp",
            "code": pyotp.TOTP(secret).at(time.time() + 30),  # the enrolment used this step's
        },
    )


@pytest.mark.parametrize("how", ["logout_everywhere", "password_change", "email_change"])
def test_ending_a_customers_sessions_ends_a_half_logged_in_one_too(
    app, client, auth, inst, how: str
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    secret = set_up_totp(client)
    other = half_logged_in(app)
    if how == "logout_everywhere":
        ended = client.post(
            "/account/security/sessions/logout-all",
            data={"csrf_token": csrf(client, "/account/security")},
        )
    elif how == "email_change":
        asked = client.post(
            "/account/email",
            data={
                "csrf_token": csrf(client, "/account"),
                "new_email": "moved@example.org",
                "email_current_password": PASSWORD,
            },
        )
        assert asked.status_code == 302
        link = newest_link(inst.settings, "moved@example.org", "/account/email/confirm")
        assert link is not None
        ended = auth.follow(link)
    else:
        ended = client.post(
            "/account/password",
            data={
                "csrf_token": csrf(client, "/account"),
                "current_password": PASSWORD,
                "new_password": PASSWORD + " and more",
            },
        )
    assert ended.status_code == 302
    late = second_step(other, secret)
    assert late.status_code == 302
    assert late.headers["Location"].endswith("/login")
    assert other.get("/dashboard").status_code == 302
    with inst.sessions() as db:
        assert not [r for r in db.scalars(select(WebSession)) if "pending_customer_id" in r.data]
