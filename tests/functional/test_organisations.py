"""Organisations: one privacy budget for all of an organisation's clients, and the broker's
scopes and the sector granted by the operator only (``suppliers approve-broker``), never
through dynamic registration; re-checked at every request."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.cli import main
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, BudgetAccount, BudgetCharge, OAuthToken, Supplier
from infomediary.services import Context, customer_policy
from infomediary.services.budgets import budget_remaining
from infomediary.services.suppliers import issue_initial_access_token
from policies.model import Mode, Policy, Recipient, Rule
from policies.templates import load_template
from tests.factories import SupplierCreds, make_customer, make_supplier
from tests.log_reasons import shown
from tests.oauth_helpers import browser_login, client_session, consent

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROFILE = {"name": "Ada Lovelace", "postcode": "2000", "birth_year": 1985, "interests": ["books"]}
REGIONS = ("ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA")
#: Distinct queries: none is answered from another's cache.
QUERIES = [
    {"purpose": "marketing", "where": {"region": [region], "household": [household]}}
    for region in REGIONS
    for household in ("1", "2", "3")
]
NOT_APPROVED_REASON = "refused: supplier not approved for the broker"


# -- helpers ------------------------------------------------------------------------------------


def budget_app(inst: Instance, monkeypatch: pytest.MonkeyPatch, budget: float) -> Flask:
    """The app with rate limits out of the way and an organisation budget of ``budget``."""
    settings = replace(
        inst.settings,
        broker_budget=budget,
        broker_global_budget=1_000.0,
        api_rate_limit="100000/minute",
        broker_rate_limit="100000/minute",
    )
    monkeypatch.setattr(inst, "settings", settings)  # the use cases read the instance's
    app = create_app(settings, instance=inst)
    app.config["TESTING"] = True
    return app


def broker_client(inst: Instance, name: str, organisation: str | None = None) -> SupplierCreds:
    return make_supplier(
        inst,
        name=name,
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
        organisation=organisation,
    )


def token_headers(client: FlaskClient, creds: SupplierCreds) -> dict[str, str]:
    """A client-credentials token from the token endpoint, as a bearer header."""
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    issued = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "audience:count"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    return {"Authorization": f"Bearer {issued.get_json()['access_token']}"}


def rows(inst: Instance, model: Any) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def charges_by_supplier(inst: Instance) -> dict[str, int]:
    with inst.sessions() as session:
        found = session.execute(
            select(BudgetCharge.supplier_id, func.count()).group_by(BudgetCharge.supplier_id)
        ).all()
    return {str(supplier): int(n) for supplier, n in found}


def spent_by(inst: Instance, holder: str) -> int:
    with inst.sessions() as session:
        return int(
            session.execute(
                select(func.coalesce(func.sum(BudgetAccount.spent_micro), 0)).where(
                    BudgetAccount.supplier_id == holder
                )
            ).scalar_one()
        )


def remaining(inst: Instance, supplier_id: str) -> float:
    with inst.sessions() as session:
        return budget_remaining(session, inst.settings, supplier_id)


def supplier_row(inst: Instance, supplier_id: str) -> Supplier:
    with inst.sessions() as session:
        row = session.get_one(Supplier, supplier_id)
        session.expunge(row)
        return row


def denied_reasons(inst: Instance, supplier_id: str) -> list[str]:
    with inst.sessions() as session:
        rows = session.execute(
            select(AccessLogEntry)
            .where(
                AccessLogEntry.actor_id == supplier_id,
                AccessLogEntry.outcome == "denied",
            )
            .order_by(AccessLogEntry.seq)
        ).scalars()
        return [shown(row) for row in rows]


@pytest.fixture
def cli_env(base_config, inst, monkeypatch) -> None:
    """Point the ``infomediary`` command at the test instance."""
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)


def cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


# -- one budget per organisation ----------------------------------------------------------------


def test_two_clients_of_one_organisation_share_one_budget(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = budget_app(inst, monkeypatch, budget=0.3)
    north = broker_client(inst, "Shop North")
    south = broker_client(inst, "Shop South", organisation=north.organisation_id)
    elsewhere = broker_client(inst, "Elsewhere Ltd")
    assert south.organisation_id == north.organisation_id != elsewhere.organisation_id
    client = app.test_client()
    as_north, as_south, as_elsewhere = (token_headers(client, c) for c in (north, south, elsewhere))

    def count(headers: dict[str, str], query: dict[str, Any]) -> Any:
        return client.post("/api/v1/audiences/count", json=query, headers=headers)

    first = count(as_north, QUERIES[0])
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["budget_remaining"] == pytest.approx(0.2)
    # spending by one client lowers what the other has left
    assert remaining(inst, south.id) == pytest.approx(0.2)
    assert remaining(inst, elsewhere.id) == pytest.approx(0.3)
    second = count(as_south, QUERIES[1])
    assert second.status_code == 200, second.get_data(as_text=True)
    assert second.get_json()["budget_remaining"] == pytest.approx(0.1)
    assert remaining(inst, north.id) == pytest.approx(0.1)
    assert count(as_north, QUERIES[2]).get_json()["budget_remaining"] == pytest.approx(0.0)

    # the organisation's cap stops both of its clients
    for headers, query in ((as_north, QUERIES[3]), (as_south, QUERIES[4])):
        refused = count(headers, query)
        assert refused.status_code == 429
        assert refused.get_json()["code"] == "budget_exhausted"
    assert remaining(inst, north.id) == remaining(inst, south.id) == 0
    # ... and no other organisation
    other = count(as_elsewhere, QUERIES[5])
    assert other.status_code == 200
    assert other.get_json()["budget_remaining"] == pytest.approx(0.2)

    assert spent_by(inst, north.organisation_id) == 300_000
    assert spent_by(inst, north.id) == spent_by(inst, south.id) == 0  # no row per client
    # the ledger keeps which client spent
    assert charges_by_supplier(inst) == {north.id: 2, south.id: 1, elsewhere.id: 1}


def test_ten_clients_of_one_organisation_cannot_spend_more_than_one_budget(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = budget_app(inst, monkeypatch, budget=0.5)
    first = broker_client(inst, "Client 0")
    clients = [first] + [
        broker_client(inst, f"Client {n}", organisation=first.organisation_id) for n in range(1, 10)
    ]
    assert {c.organisation_id for c in clients} == {first.organisation_id}
    headers = [token_headers(app.test_client(), c) for c in clients]

    def attempts(n: int) -> list[int]:
        client = app.test_client()  # one per thread
        return [
            client.post("/api/v1/audiences/count", json=query, headers=headers[n]).status_code
            for query in QUERIES[2 * n : 2 * n + 2]
        ]

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = [status for answers in pool.map(attempts, range(10)) for status in answers]
    assert sorted(statuses) == [200] * 5 + [429] * 15
    assert rows(inst, BudgetCharge) == 5
    assert spent_by(inst, first.organisation_id) == 500_000
    assert all(remaining(inst, c.id) == 0 for c in clients)


# -- the broker's scopes and the sector, from the operator only ---------------------------------


def register(live_server: str, inst: Instance, scope: str, sector: str) -> dict[str, Any]:
    """RFC 7591 registration with an operator-issued initial access token."""
    with inst.sessions() as session:
        iat = issue_initial_access_token(session)
    response = requests.post(
        f"{live_server}/oauth/register",
        json={
            "client_name": "Self Registered Bank",
            "redirect_uris": ["https://bank.example/cb"],
            "scope": scope,
            "purposes": ["marketing"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "sector": sector,
        },
        headers={"Authorization": f"Bearer {iat}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def supplier_id_of(inst: Instance, client_id: str) -> str:
    with inst.sessions() as session:
        return str(
            session.execute(select(Supplier.id).where(Supplier.client_id == client_id)).scalar_one()
        )


def client_credentials_error(live_server: str, client_id: str, secret: str) -> str:
    response = requests.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "audience:count"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert response.status_code in (400, 401), response.text
    return str(response.json()["error"])


def customer_token(live_server: str, creds: SupplierCreds) -> OAuth2Session:
    """The customer consents to the client in their browser; the client's session holds the
    authorization-code token."""
    session = client_session(live_server, creds, "profile.demographics:read")
    authorized = consent(
        live_server, browser_login(live_server, EMAIL, PASSWORD), session, purpose="marketing"
    )
    session.fetch_token(
        authorization_response=authorized.authorization_response, code_verifier=authorized.verifier
    )
    return session


def test_a_self_registered_client_gets_no_broker_scope_until_the_operator_approves_it(
    live_server: str, inst: Instance, cli_env: None
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    body = register(
        live_server, inst, "profile.demographics:read audience:count offers:send", "finance"
    )
    # RFC 7591 §3.2.1: registered with less than asked, and answered with what was granted
    assert body["scope"] == "profile.demographics:read"
    supplier_id = supplier_id_of(inst, body["client_id"])
    row = supplier_row(inst, supplier_id)
    assert (row.sector, row.claimed_sector) == ("other", "finance")
    assert row.requested_scopes == "audience:count offers:send"
    listed = cli("suppliers", "list")["suppliers"]
    assert [(s["sector"], s["claimed_sector"], s["requested_scope"]) for s in listed] == [
        ("other", "finance", "audience:count offers:send")
    ]
    secret = body["client_secret"]
    assert client_credentials_error(live_server, body["client_id"], secret) == "unauthorized_client"

    creds = SupplierCreds(supplier_id, body["client_id"], secret, "https://bank.example/cb")
    session = customer_token(live_server, creds)
    api = f"{live_server}/api/v1"
    refused = [
        session.post(f"{api}/audiences/count", json=QUERIES[0]),
        session.post(f"{api}/audiences/count", json={"purpose": "no such purpose"}),
        session.post(f"{api}/audiences/count", data="not json"),
        session.get(f"{api}/audiences/attributes"),
        session.get(f"{api}/offers"),
        session.post(f"{api}/offers", json={"purpose": "marketing"}),
        session.get(f"{api}/offers/any"),
        session.get(f"{api}/offers/any/contacts/psn_x"),
    ]
    # the same answer whatever the request holds, before anything depends on it
    assert [r.status_code for r in refused] == [403] * len(refused)
    problems = [r.json() for r in refused]
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in refused)
    assert {p["code"] for p in problems} == {"broker_not_approved"}
    assert len({json.dumps(p, sort_keys=True) for p in problems}) == 1
    assert rows(inst, BudgetCharge) == rows(inst, BudgetAccount) == 0
    assert denied_reasons(inst, supplier_id) == [NOT_APPROVED_REASON] * len(refused)

    approved = cli("suppliers", "approve-broker", body["client_id"], "--sector", "retail")
    assert approved["scope"] == "audience:count offers:send profile.demographics:read"
    assert approved["sector"] == "retail"
    assert supplier_row(inst, supplier_id).requested_scopes == ""
    broker = OAuth2Session(body["client_id"], secret, scope="audience:count")
    broker.fetch_token(f"{live_server}/oauth/token", grant_type="client_credentials")
    counted = broker.post(f"{api}/audiences/count", json=QUERIES[0])
    assert counted.status_code == 200, counted.text
    assert counted.json()["epsilon_spent"] > 0
    assert rows(inst, BudgetCharge) == 1

    revoked = cli("suppliers", "revoke-broker", body["client_id"])
    assert revoked["scope"] == "profile.demographics:read"
    assert revoked["tokens_revoked"] == 1  # the broker token; the customer's stays
    stopped = broker.post(f"{api}/audiences/count", json=QUERIES[1])
    assert stopped.status_code == 401
    assert stopped.json()["code"] == "invalid_token"
    again = session.post(f"{api}/audiences/count", json=QUERIES[1])
    assert again.status_code == 403
    assert again.json()["code"] == "broker_not_approved"
    assert client_credentials_error(live_server, body["client_id"], secret) == "unauthorized_client"
    assert rows(inst, BudgetCharge) == 1
    with inst.sessions() as db:
        live = db.execute(
            select(func.count())
            .select_from(OAuthToken)
            .where(OAuthToken.supplier_id == supplier_id, OAuthToken.revoked_at.is_(None))
        ).scalar_one()
    assert live == 1


def test_a_token_still_carrying_a_broker_scope_taken_back_is_refused(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request re-checks the client's row, not only the token: a broker scope taken
    back stops a token that still carries it, even one revocation missed."""
    app = budget_app(inst, monkeypatch, budget=1.0)
    creds = broker_client(inst, "Counting Co")
    client = app.test_client()
    headers = token_headers(client, creds)
    assert (
        client.post("/api/v1/audiences/count", json=QUERIES[0], headers=headers).status_code == 200
    )
    with inst.sessions() as session, session.begin():  # as if the revocation never happened
        session.get_one(Supplier, creds.id).scopes = ""
    refused = client.post("/api/v1/audiences/count", json=QUERIES[1], headers=headers)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "broker_not_approved"
    assert rows(inst, BudgetCharge) == 1
    assert denied_reasons(inst, creds.id) == [NOT_APPROVED_REASON]


def test_an_organisation_given_at_approval_moves_the_client_onto_its_budget(
    inst: Instance, monkeypatch: pytest.MonkeyPatch, cli_env: None
) -> None:
    app = budget_app(inst, monkeypatch, budget=0.2)
    owner = broker_client(inst, "Owner Co")
    newcomer = make_supplier(inst, name="Newcomer Co", purposes=("marketing",))
    with inst.sessions() as session:
        organisation = session.get_one(Supplier, owner.id).organisation_id
    approved = cli(
        "suppliers",
        "approve-broker",
        newcomer.id,
        "--sector",
        "media",
        "--organisation",
        "Owner Co",
    )
    assert approved["organisation_id"] == organisation
    assert approved["organisation"] == "Owner Co"
    client = app.test_client()
    for creds, query in ((owner, QUERIES[0]), (newcomer, QUERIES[1])):
        answer = client.post(
            "/api/v1/audiences/count", json=query, headers=token_headers(client, creds)
        )
        assert answer.status_code == 200, (creds.id, answer.get_data(as_text=True))
    assert remaining(inst, owner.id) == remaining(inst, newcomer.id) == 0


# -- the sector is the operator's ---------------------------------------------------------------


def never_for_finance(inst: Instance, customer_id: str) -> None:
    with inst.sessions() as session:
        policy = load_template("balanced")
        customer_policy.save_policy(
            session,
            inst,
            customer_id,
            Policy(rules=(*policy.rules, Rule("*", "*", Recipient.sector("finance"), Mode.NEVER))),
            Context(Actor.customer(customer_id)),
            "no finance",
        )


def test_a_sector_rule_applies_to_the_sector_the_operator_set_not_to_a_claimed_one(
    live_server: str, inst: Instance, cli_env: None
) -> None:
    customer = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    never_for_finance(inst, customer)
    body = register(live_server, inst, "profile.demographics:read", "finance")
    supplier_id = supplier_id_of(inst, body["client_id"])
    creds = SupplierCreds(
        supplier_id, body["client_id"], body["client_secret"], "https://bank.example/cb"
    )
    session = customer_token(live_server, creds)
    me = session.get(f"{live_server}/api/v1/me")
    assert me.status_code == 200, me.text  # it claimed finance: that decides nothing
    assert me.json()["demographics"]

    cli("suppliers", "approve-broker", body["client_id"], "--sector", "finance")
    denied = session.get(f"{live_server}/api/v1/me")
    assert denied.status_code == 403, denied.text
    assert denied.json()["code"] == "policy_denied"
