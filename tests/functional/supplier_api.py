"""A supplier's view of the API for functional tests: the app with limits and budgets out of
the way, a funded supplier that may count and send offers, and its real bearer token
(client credentials at the token endpoint)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from infomediary import create_app
from infomediary.instance import Instance
from tests.factories import make_supplier

#: Rate limits and privacy budgets far above what a test sends: what is tested is the contract.
UNLIMITED: dict[str, Any] = {
    "api_rate_limit": "100000/minute",
    "write_rate_limit": "100000/minute",
    "broker_rate_limit": "100000/minute",
    "broker_budget": 100_000.0,
    "broker_global_budget": 1_000_000.0,
}
SCOPES = "audience:count offers:send"


@dataclass
class SupplierApi:
    app: Flask
    client: FlaskClient
    headers: dict[str, str]


def supplier_api(inst: Instance) -> SupplierApi:
    app = create_app(replace(inst.settings, **UNLIMITED), instance=inst)
    app.config["TESTING"] = True
    creds = make_supplier(
        inst,
        name="Contract Co",
        scopes=tuple(SCOPES.split()),
        purposes=("marketing", "analytics"),
        redirect_uris=(),
        fund_cents=1_000_000_000,
    )
    client = app.test_client()
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    issued = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": SCOPES},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    token = issued.get_json()["access_token"]
    return SupplierApi(app, client, {"Authorization": f"Bearer {token}"})
