"""End-to-end OAuth flows with authlib's client against the served app."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from infomediary.models import AccessLogEntry, OAuthToken
from infomediary.services import customer_policy
from tests.factories import make_customer
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROFILE = {
    "name": "Ada Lovelace",
    "postcode": "2000",
    "birth_year": 1985,
    "interests": ["books", "faith", "travel"],
    "phone": "+61 400 000 111",
}


@pytest.fixture
def customer(inst) -> str:
    return make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace", profile=PROFILE)


def test_full_flow_reads_only_granted_and_allowed_fields(live_server, inst, customer) -> None:
    supplier = make_supplier(inst)
    client = client_session(live_server, supplier, "profile.identity:read profile.interests:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="service")
    assert result.params["iss"] == [live_server]
    assert result.params["state"] == [result.state]
    token = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] <= 3600
    assert "refresh_token" in token
    me = client.get(f"{live_server}/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["sub"].startswith("psn_")
    assert body["identity"]["name"] == "Ada Lovelace"
    assert body["identity"]["email"] == EMAIL
    assert "demographics" not in body  # not granted
    assert body["interests"] == ["books", "travel"]  # "faith" is a special category: withheld
    # Nothing in the answer tells that the customer holds a special-category interest.
    assert all(w["category"] != "religion" for w in body["withheld"])
    with inst.sessions() as session:
        stored = session.execute(select(OAuthToken)).scalar_one()
        assert stored.access_token_hash != token["access_token"].encode()
        reads = (
            session.execute(
                select(AccessLogEntry).where(
                    AccessLogEntry.actor_type == "supplier", AccessLogEntry.customer_id == customer
                )
            )
            .scalars()
            .all()
        )
    assert len(reads) == 1
    assert reads[0].outcome == "allowed"


def test_pairwise_pseudonyms_differ_per_supplier_and_are_stable(
    live_server, inst, customer
) -> None:
    subs = []
    for name in ("Acme Books", "Zenith Travel", "Acme Books again"):
        supplier = make_supplier(inst, name=name)
        client = client_session(live_server, supplier, "profile.interests:read")
        browser = browser_login(live_server, EMAIL, PASSWORD)
        result = consent(live_server, browser, client, purpose="service")
        client.fetch_token(
            authorization_response=result.authorization_response, code_verifier=result.verifier
        )
        first = client.get(f"{live_server}/api/v1/me").json()["sub"]
        second = client.get(f"{live_server}/api/v1/me").json()["sub"]
        assert first == second
        subs.append(first)
    assert len(set(subs)) == 3


def test_refresh_rotates_and_reuse_revokes_the_family(live_server, inst, customer) -> None:
    supplier = make_supplier(inst)
    client = client_session(live_server, supplier, "profile.interests:read")
    result = consent(
        live_server, browser_login(live_server, EMAIL, PASSWORD), client, purpose="service"
    )
    first = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    second = client.refresh_token(
        f"{live_server}/oauth/token", refresh_token=first["refresh_token"]
    )
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert client.get(f"{live_server}/api/v1/me").status_code == 200
    # the old refresh token is replayed: everything in the family dies
    replay = requests.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(supplier.client_id, supplier.client_secret),
        timeout=10,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    latest = requests.get(
        f"{live_server}/api/v1/me",
        headers={"Authorization": f"Bearer {second['access_token']}"},
        timeout=10,
    )
    assert latest.status_code == 401
    again = requests.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        auth=(supplier.client_id, supplier.client_secret),
        timeout=10,
    )
    assert again.status_code == 400


def test_supplier_reads_show_in_the_customers_timeline_by_name(live_server, inst, customer) -> None:
    supplier = make_supplier(inst, name="Zenith Travel")
    client = client_session(live_server, supplier, "profile.interests:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="service")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert client.get(f"{live_server}/api/v1/me").status_code == 200
    page = browser.get(f"{live_server}/activity?actor=supplier").text
    assert "Zenith Travel (supplier)" in page
    assert page.count('class="entry') == 1


def test_no_token_or_secret_reaches_the_logs(live_server, inst, customer, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    supplier = make_supplier(inst)
    client = client_session(live_server, supplier, "profile.identity:read")
    result = consent(
        live_server, browser_login(live_server, EMAIL, PASSWORD), client, purpose="service"
    )
    token = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    client.refresh_token(f"{live_server}/oauth/token", refresh_token=token["refresh_token"])
    client.get(f"{live_server}/api/v1/me")
    server_lines = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("infomediary", "authlib", "werkzeug", "flask"))
    )
    assert "POST /oauth/token" in server_lines
    for secret in (
        token["access_token"],
        token["refresh_token"],
        result.code,
        supplier.client_secret,
        result.verifier,
        EMAIL,
        "Ada Lovelace",
    ):
        assert secret not in server_lines


def test_consent_screen_blocks_what_the_policy_forbids(live_server, inst, customer) -> None:
    from infomediary.audit.log import Actor
    from infomediary.services import Context

    with inst.sessions() as session:
        customer_policy.set_rule(
            session,
            inst,
            customer,
            category="identity",
            purpose="service",
            mode="never",
            ctx=Context(Actor.customer(customer)),
        )
    supplier = make_supplier(inst)
    client = client_session(live_server, supplier, "profile.identity:read profile.interests:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier="v" * 48, purpose="service"
    )
    page = browser.get(url).text
    assert 'value="profile.identity:read" disabled' in page
    # a forged form that ticks the disabled box still grants only what the policy allows
    result = consent(
        live_server,
        browser,
        client,
        purpose="service",
        approve=["profile.identity:read", "profile.interests:read"],
    )
    token = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert token["scope"] == "profile.interests:read"
    body = client.get(f"{live_server}/api/v1/me").json()
    assert "identity" not in body


@pytest.mark.parametrize(
    "header", ["Basic wq7xrK6VUMOZwoU=", "Basic !!!", "Basic " + "bm9jb2xvbg=="]
)
@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_malformed_client_credentials_are_invalid_client(client, path, header) -> None:
    response = client.post(
        path, data={"grant_type": "refresh_token", "token": "x"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_answer_does_not_depend_on_special_category_data_the_supplier_may_not_see(
    live_server, inst
) -> None:
    """Two customers who differ only in a `diabetes-care` interest get identical answers."""
    supplier = make_supplier(inst)
    answers = []
    for number, interests in enumerate((["books", "travel"], ["books", "diabetes-care", "travel"])):
        email = f"twin{number}@example.org"
        profile = {"postcode": "2000", "birth_year": 1985, "interests": interests}
        make_customer(inst, email=email, password=PASSWORD, name="Twin", profile=profile)
        client = client_session(
            live_server,
            supplier,
            "profile.identity:read profile.interests:read profile.demographics:read",
        )
        browser = browser_login(live_server, email, PASSWORD)
        result = consent(live_server, browser, client, purpose="marketing")
        client.fetch_token(
            authorization_response=result.authorization_response, code_verifier=result.verifier
        )
        response = client.get(f"{live_server}/api/v1/me")
        assert response.status_code == 200, response.text
        body = response.json()
        body.pop("sub")
        body.pop("identity", None)
        answers.append(body)
    assert answers[0] == answers[1]
    assert answers[0]["interests"] == ["books", "travel"]
