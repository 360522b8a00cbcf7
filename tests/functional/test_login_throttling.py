"""Login throttling by device cookie (OWASP): guessing from elsewhere is slowed down and gets
429, but cannot lock the owner out of a browser they logged in from before."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.services import Context, customers
from tests.conftest import csrf
from tests.factories import make_customer

EMAIL = "owner@example.org"
PASSWORD = "correct horse battery"
OWNER_ADDRESS = "192.0.2.10"


def attempt(client, password: str, address: str, email: str = EMAIL) -> int:
    response = client.post(
        "/login",
        data={"csrf_token": csrf(client, "/login"), "email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )
    return int(response.status_code)


def owner_with_device(app, email: str = EMAIL):
    owner = app.test_client()
    assert attempt(owner, PASSWORD, OWNER_ADDRESS, email) == 302
    assert owner.get_cookie("infomediary_device") is not None
    owner.post("/logout", data={"csrf_token": csrf(owner, "/dashboard")})
    return owner


@pytest.mark.parametrize("spread", [True, False], ids=["many-addresses", "one-address"])
def test_fifty_failures_from_elsewhere_do_not_stop_the_owner_on_a_known_device(
    app, inst, spread
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    owner = owner_with_device(app)
    attacker = app.test_client()
    statuses = [
        attempt(attacker, f"wrong guess {n}", f"198.51.100.{n + 1}" if spread else "198.51.100.7")
        for n in range(50)
    ]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}  # throttled, per account (or per address as well)
    # even the right password from the attacker's side is held back now
    assert attempt(attacker, PASSWORD, "198.51.100.99") == 429
    # the owner, on the browser they logged in from before, is not
    assert attempt(owner, PASSWORD, OWNER_ADDRESS) == 302
    assert owner.get("/dashboard").status_code == 200


def test_a_device_cookie_is_limited_itself(app, inst) -> None:
    """A stolen device cookie buys no unlimited guesses: its own failures are limited."""
    make_customer(inst, email=EMAIL, password=PASSWORD)
    owner = owner_with_device(app)
    statuses = [attempt(owner, f"typo {n}", f"192.0.2.{n + 20}") for n in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429


def test_a_device_cookie_of_one_account_is_no_pass_for_another(app, inst) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    make_customer(inst, email="victim@example.org", password=PASSWORD)
    attacker = owner_with_device(app)  # a real customer, with a device cookie of their own
    statuses = [
        attempt(attacker, f"guess {n}", f"198.51.100.{n + 1}", "victim@example.org")
        for n in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    # a forged cookie is no pass either
    forged = app.test_client()
    forged.set_cookie("infomediary_device", "v2." + "A" * 22 + ".1999999999." + "B" * 43)
    assert attempt(forged, "guess", "198.51.100.200", "victim@example.org") == 429
    # their own account is not affected by what they tried on the other
    assert attempt(attacker, PASSWORD, "198.51.100.201") == 302


def test_device_cookie_attributes(app, inst) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    client = app.test_client()
    response = client.post(
        "/login",
        data={"csrf_token": csrf(client, "/login"), "email": EMAIL, "password": PASSWORD},
    )
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "_device=" in c)
    assert cookie.startswith("infomediary_device=v2.")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Max-Age=31536000" in cookie
    assert EMAIL not in cookie
    # a failed attempt sets none
    other = app.test_client()
    failed = other.post(
        "/login",
        data={"csrf_token": csrf(other, "/login"), "email": EMAIL, "password": "wrong!"},
    )
    assert not [c for c in failed.headers.getlist("Set-Cookie") if "_device=" in c]


def test_production_device_cookie_is_host_prefixed_and_secure(inst) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    app = create_app(replace(inst.settings, secret_key="x" * 40), instance=inst)
    # the cookie logic alone (production settings need Redis)
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], production=True)
    client = app.test_client()
    token = csrf(client, "/login")
    response = client.post(
        "/login",
        data={"csrf_token": token, "email": EMAIL, "password": PASSWORD},
        base_url="https://localhost",
    )
    assert response.status_code == 302
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "_device=" in c)
    assert cookie.startswith("__Host-infomediary_device=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def _throttle_the_account(app) -> None:
    attacker = app.test_client()
    statuses = [attempt(attacker, f"guess {n}", f"198.51.100.{n + 1}") for n in range(6)]
    assert statuses[-1] == 429


def test_a_password_change_retires_every_device_cookie(app, inst) -> None:
    """A cookie from a lost machine stops counting as the owner's once the password changes."""
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    lost = owner_with_device(app)
    with inst.sessions() as session:
        customers.change_password(
            session,
            inst,
            customer_id,
            PASSWORD,
            "a brand new passphrase",
            Context(Actor.system("test")),
        )
    _throttle_the_account(app)
    assert attempt(lost, "a brand new passphrase", OWNER_ADDRESS) == 429


def test_a_device_cookie_lapses_after_a_year(app, inst, monkeypatch) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 366 * 86400)
    old = owner_with_device(app)  # its cookie says it was issued a year and a day ago
    monkeypatch.setattr(time, "time", real_time)
    _throttle_the_account(app)
    assert attempt(old, PASSWORD, OWNER_ADDRESS) == 429
