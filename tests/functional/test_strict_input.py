"""Strict input: whole numbers in ASCII digits, no control characters in any text field,
and never a server error whatever is typed (property tests over arbitrary text)."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infomediary import create_app
from infomediary.instance import Instance
from infomediary.models import Supplier
from infomediary.services import rewards
from infomediary.text import has_control_characters, parse_int
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.oauth_helpers import make_supplier

FIXTURES = settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("20", 20),
        ("-3", None),  # below the bound
        ("0", None),
        ("²", None),  # str.isdigit() says yes, int() says no
        ("١٢", None),  # int() would read Arabic-Indic digits
        ("1_000", None),
        (" 12", None),
        ("12 ", None),
        ("+5", None),
        ("", None),
        ("9" * 4301, None),  # past int()'s digit limit
        ("1000000", 1_000_000),
        ("1000001", None),
    ],
)
def test_parse_int_is_strict(raw: str, expected: int | None) -> None:
    assert parse_int(raw, low=1, high=1_000_000) == expected


@pytest.mark.parametrize(
    ("value", "multiline", "refused"),
    [
        ("plain", False, False),
        ("tab\there", False, True),
        ("tab\there", True, False),
        ("two\nlines\r\n", True, False),
        ("nul\x00", True, True),
        ("bell\x07", True, True),
        ("del\x7f", True, True),
        ("c1\x85", True, True),
        ("émoji 🎉 and 中文", False, False),
    ],
)
def test_control_characters(value: str, multiline: bool, refused: bool) -> None:
    assert has_control_characters(value, multiline=multiline) is refused


#: Property tests send many requests: lift the limits that would otherwise answer 429.
UNLIMITED: dict[str, Any] = {
    "api_rate_limit": "100000/minute",
    "write_rate_limit": "100000/minute",
    "broker_rate_limit": "100000/minute",
    "broker_budget": 1000.0,
    "broker_global_budget": 100000.0,
}


def unlimited_app(inst: Instance) -> Flask:
    app = create_app(replace(inst.settings, **UNLIMITED), instance=inst)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def logged_in(inst: Instance) -> FlaskClient:
    make_customer(inst, email="strict@example.org")
    client = unlimited_app(inst).test_client()
    assert Auth(client).login(email="strict@example.org").status_code == 302
    return client


@pytest.mark.parametrize("page", ["²", "9" * 4301, "1e3", "0x10", "-1", "\uff11"])
def test_activity_page_numbers_that_used_to_fail(logged_in: FlaskClient, page: str) -> None:
    response = logged_in.get("/activity", query_string={"page": page})
    assert response.status_code == 400
    assert "Page must be a positive whole number." in response.get_data(as_text=True)


@FIXTURES
@given(page=st.text(max_size=30))
def test_activity_never_fails_whatever_the_page(logged_in: FlaskClient, page: str) -> None:
    response = logged_in.get("/activity", query_string={"page": page})
    assert response.status_code in (200, 400)


@FIXTURES
@given(name=st.text(max_size=60), household=st.text(max_size=8))
def test_profile_form_never_fails_and_refuses_control_characters(
    logged_in: FlaskClient, name: str, household: str
) -> None:
    token = csrf(logged_in, "/profile")
    response = logged_in.post(
        "/profile", data={"csrf_token": token, "name": name, "household_size": household}
    )
    assert response.status_code in (302, 400)
    if has_control_characters(name) or has_control_characters(household):
        assert response.status_code == 400


def test_nul_in_a_form_field_is_a_friendly_400(logged_in: FlaskClient) -> None:
    token = csrf(logged_in, "/profile")
    response = logged_in.post("/profile", data={"csrf_token": token, "locality": "Syd\x00ney"})
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert "Control characters" in response.get_data(as_text=True)


@pytest.fixture
def offers_client(inst: Instance) -> tuple[FlaskClient, dict[str, str]]:
    app = unlimited_app(inst)
    creds = make_supplier(
        inst,
        name="Strict Offers",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    with inst.sessions() as session:
        supplier = session.get(Supplier, creds.id)
        assert supplier is not None
        rewards.fund_supplier(session, supplier, 100_000_000)
        session.commit()
    client = app.test_client()
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    issued = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "offers:send"},
        headers={"Authorization": f"Basic {basic}"},
    ).get_json()
    token = issued["access_token"]
    return client, {"Authorization": f"Bearer {token}"}


def offer(title: str, body: str) -> dict[str, object]:
    return {
        "purpose": "marketing",
        "where": {"region": ["NSW"]},
        "title": title,
        "body": body,
        "reward_cents": 1,
        "max_recipients": 1,
        "expires_in_days": 1,
    }


@pytest.mark.parametrize(
    ("title", "body", "field"),
    [("Ti\x00tle", "Body", "title"), ("Title", "Bo\x00dy", "body"), ("Tab\tbed", "Body", "title")],
)
def test_control_characters_in_an_offer_are_a_field_error(
    offers_client: tuple[FlaskClient, dict[str, str]], title: str, body: str, field: str
) -> None:
    client, headers = offers_client
    response = client.post("/api/v1/offers", json=offer(title, body), headers=headers)
    assert response.status_code == 400, response.json
    problem = response.get_json()
    assert problem["errors"] == {field: problem["detail"]}
    assert problem["code"] == "invalid_offer"


def test_a_multiline_offer_body_keeps_its_line_breaks(
    offers_client: tuple[FlaskClient, dict[str, str]],
) -> None:
    client, headers = offers_client
    response = client.post(
        "/api/v1/offers", json=offer("Title", "Line one\n\tLine two"), headers=headers
    )
    assert response.status_code == 202, response.json


@FIXTURES
@given(title=st.text(min_size=1, max_size=40), body=st.text(min_size=1, max_size=80))
def test_offers_never_fail_whatever_the_text(
    offers_client: tuple[FlaskClient, dict[str, str]], title: str, body: str
) -> None:
    client, headers = offers_client
    response = client.post("/api/v1/offers", json=offer(title, body), headers=headers)
    assert response.status_code in (202, 400), response.json
    if has_control_characters(title) or has_control_characters(body, multiline=True):
        assert response.status_code == 400


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_nul_in_the_basic_client_id_is_invalid_client(inst: Instance, path: str) -> None:
    client = unlimited_app(inst).test_client()
    basic = base64.b64encode(b"sup_\x00evil:secret").decode()
    response = client.post(
        path,
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("name", ["client_id", "redirect_uri", "state", "scope"])
def test_control_characters_in_an_authorization_request_are_a_400(
    logged_in: FlaskClient, inst: Instance, name: str
) -> None:
    supplier = make_supplier(inst, name="Strict Authorize")
    query = {
        "response_type": "code",
        "client_id": supplier.client_id,
        "redirect_uri": supplier.redirect_uri,
        "scope": "profile.identity:read",
        "state": "s" * 16,
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
        "purpose": "marketing",
    }
    query[name] = query[name] + "\x00"
    response = logged_in.get("/oauth/authorize", query_string=query)
    assert response.status_code == 400


@FIXTURES
@given(
    args=st.dictionaries(
        st.sampled_from(["page", "actor_type", "action", "outcome", "x"]), st.text(max_size=12)
    )
)
def test_activity_never_fails_whatever_the_query(
    logged_in: FlaskClient, args: dict[str, str]
) -> None:
    assert logged_in.get("/activity", query_string=args).status_code in (200, 400)
