"""Anti-automation: the OAuth endpoints, failed client authentications, the bearer API and
every state change are limited, with ``Retry-After``; a correct client secret never is."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from infomediary import create_app
from infomediary.config import ConfigError, load_config
from infomediary.instance import Instance
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.oauth_helpers import SupplierCreds, make_supplier


def app_with(inst: Instance, **limits: Any) -> Flask:
    app = create_app(replace(inst.settings, **limits), instance=inst)
    app.config["TESTING"] = True
    return app


def broker_supplier(inst: Instance, name: str = "Throttle Counts") -> SupplierCreds:
    return make_supplier(
        inst, name=name, scopes=("audience:count",), purposes=("marketing",), redirect_uris=()
    )


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def token_request(client: FlaskClient, client_id: str, secret: str) -> Any:
    return client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "audience:count"},
        headers=basic(client_id, secret),
    )


def test_failed_client_authentications_slow_down_but_a_correct_secret_always_passes(
    inst: Instance,
) -> None:
    app = app_with(inst, client_auth_failure_limit="10 per minute")
    creds = broker_supplier(inst)
    client = app.test_client()
    statuses = []
    for _ in range(30):
        response = token_request(client, creds.client_id, "wrong-" + "x" * 40)
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert response.json["error"] == "invalid_client"  # RFC 6749 §5.2 body
    assert 0 < int(response.headers["Retry-After"]) <= 60
    # The right secret, from the same address, in the middle of the attack: never refused.
    ok = token_request(client, creds.client_id, creds.client_secret)
    assert ok.status_code == 200, ok.json
    assert ok.json["access_token"]
    # Another client from the same address is not slowed by failures against the first.
    other = broker_supplier(inst, "Other Counts")
    assert token_request(client, other.client_id, "wrong").status_code == 401


def test_unknown_client_ids_are_throttled_too(inst: Instance) -> None:
    app = app_with(inst, client_auth_failure_limit="3 per minute")
    client = app.test_client()
    statuses = [token_request(client, "no-such-client", "guess").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_oauth_endpoints_are_limited_per_address(inst: Instance, path: str) -> None:
    app = app_with(inst, oauth_rate_limit="3 per minute", client_auth_failure_limit="100/minute")
    creds = broker_supplier(inst)
    client = app.test_client()
    statuses = [
        client.post(path, data={"token": "x"}, headers=basic(creds.client_id, "bad")).status_code
        for _ in range(4)
    ]
    assert 429 not in statuses[:3]
    assert statuses[3] == 429
    last = client.post(path, data={"token": "x"}, headers=basic(creds.client_id, "bad"))
    assert last.headers["Retry-After"]


def test_registration_is_limited_per_address(inst: Instance) -> None:
    app = app_with(inst, oauth_rate_limit="2 per minute")
    client = app.test_client()
    statuses = [
        client.post(
            "/oauth/register", json={}, headers={"Authorization": "Bearer nope"}
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_per_client_allowance_is_spent_only_by_the_authenticated_client(inst: Instance) -> None:
    app = app_with(
        inst,
        oauth_client_rate_limit="3 per minute",
        oauth_rate_limit="1000 per minute",
        client_auth_failure_limit="1000 per minute",
    )
    creds = broker_supplier(inst)
    client = app.test_client()
    # Someone claiming the client's id without its secret spends none of its allowance.
    for _ in range(10):
        assert token_request(client, creds.client_id, "not-the-secret").status_code == 401
    statuses = [
        token_request(client, creds.client_id, creds.client_secret).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_bearer_api_is_limited_per_client(inst: Instance) -> None:
    app = app_with(inst, api_rate_limit="3 per minute")
    creds = broker_supplier(inst)
    client = app.test_client()
    token = token_request(client, creds.client_id, creds.client_secret).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [
        client.get("/api/v1/audiences/attributes", headers=headers).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_every_state_change_is_limited_per_address_and_reads_are_not(inst: Instance) -> None:
    app = app_with(inst, write_rate_limit="4 per minute")
    make_customer(inst, email="limit@example.org")
    client = app.test_client()
    assert Auth(client).login(email="limit@example.org").status_code == 302  # 1
    token = csrf(client, "/consents")
    statuses = [
        client.post(
            "/policy/template", data={"csrf_token": token, "template": "private", "confirm": "yes"}
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [302, 302, 302, 429]
    assert all(client.get("/consents").status_code == 200 for _ in range(10))


@pytest.mark.parametrize(
    "name",
    [
        "LOGIN_RATE_LIMIT",
        "WRITE_RATE_LIMIT",
        "OAUTH_RATE_LIMIT",
        "API_RATE_LIMIT",
        "CLIENT_AUTH_FAILURE_LIMIT",
    ],
)
def test_a_mistyped_rate_limit_stops_the_start(name: str) -> None:
    with pytest.raises(ConfigError, match=f"INFOMEDIARY_{name}"):
        load_config(environ={f"INFOMEDIARY_{name}": "5 per minut"})


def test_requests_failing_before_client_authentication_spend_no_client_allowance(
    inst: Instance,
) -> None:
    """A wrong grant type is refused before the secret is checked: it must not count."""
    app = app_with(
        inst,
        oauth_client_rate_limit="3 per minute",
        oauth_rate_limit="1000 per minute",
        client_auth_failure_limit="1000 per minute",
    )
    creds = broker_supplier(inst)
    client = app.test_client()
    for _ in range(10):
        refused = client.post(
            "/oauth/token",
            data={"grant_type": "bogus"},
            headers=basic(creds.client_id, "not-the-secret"),
        )
        assert refused.status_code == 400
    statuses = [
        token_request(client, creds.client_id, creds.client_secret).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
