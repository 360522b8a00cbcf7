"""Every refused access by a supplier leaves an ``outcome=denied`` entry that survives it."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from infomediary.demo import seed_synthetic
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, ConsentGrant, Supplier, utcnow
from infomediary.services import rewards
from infomediary.services.jobs import run_pending
from infomediary.services.suppliers import suspend_supplier
from tests.conftest import csrf_token_in
from tests.factories import make_customer
from tests.log_reasons import code_of, shown
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "refused@example.org", "correct horse battery"


def denials(inst: Instance, supplier_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(
                    AccessLogEntry.actor_type == "supplier",
                    AccessLogEntry.actor_id == supplier_id,
                    AccessLogEntry.outcome == "denied",
                )
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


@pytest.fixture
def granted(live_server: str, inst: Instance) -> tuple[OAuth2Session, Any, str]:
    customer_id = make_customer(
        inst, email=EMAIL, password=PASSWORD, profile={"interests": ["books"]}
    )
    supplier = make_supplier(inst, name="Refused Reads")
    client = client_session(live_server, supplier, "profile.identity:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="marketing")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert client.get(f"{live_server}/api/v1/me").status_code == 200
    return client, supplier, customer_id


def test_suspended_supplier_refusal_is_logged_on_the_customers_timeline(
    live_server: str, inst: Instance, granted: tuple[OAuth2Session, Any, str]
) -> None:
    client, supplier, customer_id = granted
    with inst.sessions() as session:
        suspend_supplier(session, supplier.id)
        session.commit()
    refused = client.get(f"{live_server}/api/v1/me")
    assert refused.status_code == 401
    [entry] = denials(inst, supplier.id)
    assert entry.customer_id == customer_id
    assert entry.action == "read"
    assert code_of(entry) in ("token.revoked", "token.supplier_inactive")
    assert shown(entry) in ("access token revoked", "supplier suspended")


def test_revoked_consent_refusal_is_logged(
    live_server: str, inst: Instance, granted: tuple[OAuth2Session, Any, str]
) -> None:
    client, supplier, customer_id = granted
    browser = browser_login(live_server, EMAIL, PASSWORD)
    page = browser.get(f"{live_server}/consents").text
    token = csrf_token_in(page)
    with inst.sessions() as session:
        grant_id = session.execute(select(ConsentGrant.id)).scalar_one()
    assert browser.post(f"{live_server}/consents/{grant_id}/revoke", data={"csrf_token": token}).ok
    assert client.get(f"{live_server}/api/v1/me").status_code == 401
    [entry] = denials(inst, supplier.id)
    assert (entry.customer_id, entry.action) == (customer_id, "read")
    assert code_of(entry) in ("token.consent_revoked", "token.revoked")
    assert shown(entry) in ("consent revoked", "access token revoked")


def _broker(
    live_server: str, inst: Instance, scope: str, fund: int = 0
) -> tuple[OAuth2Session, Any]:
    creds = make_supplier(
        inst, name=f"Broker {scope}", scopes=(scope,), purposes=("marketing",), redirect_uris=()
    )
    if fund:
        with inst.sessions() as session:
            supplier = session.get(Supplier, creds.id)
            assert supplier is not None
            rewards.fund_supplier(session, supplier, fund)
            session.commit()
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope=scope,
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client, creds


def test_broker_scope_refusal_is_logged(live_server: str, inst: Instance) -> None:
    client, creds = _broker(live_server, inst, "offers:send")
    refused = client.post(
        f"{live_server}/api/v1/audiences/count", json={"purpose": "marketing", "where": {}}
    )
    assert refused.status_code == 403
    [entry] = denials(inst, creds.id)
    assert entry.action == "count"
    assert entry.customer_id is None
    assert code_of(entry) == "token.scope_not_granted"
    assert shown(entry) == "scope audience:count not granted to this token"


def test_exhausted_budget_refusal_is_logged(live_server: str, inst: Instance) -> None:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 60, workers=1)
    client, creds = _broker(live_server, inst, "audience:count")
    bands = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
    statuses = []
    for number in range(21):  # 20 distinct counts spend the budget of 2.0 at 0.1 each
        where = {"age_band": [bands[number % 6]], "household": [["1", "2", "3", "4"][number // 6]]}
        response = client.post(
            f"{live_server}/api/v1/audiences/count", json={"purpose": "marketing", "where": where}
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    entries = denials(inst, creds.id)
    assert [shown(e) for e in entries] == ["count refused: privacy budget exhausted"]


def test_contact_refusals_are_logged(live_server: str, inst: Instance) -> None:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 300, workers=1)
    make_customer(inst, email=EMAIL, password=PASSWORD, profile={"postcode": "2000"})
    client, creds = _broker(live_server, inst, "offers:send", fund=1_000_000)
    sent = client.post(
        f"{live_server}/api/v1/offers",
        json={
            "purpose": "marketing",
            "where": {"region": ["NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"]},
            "title": "Hello",
            "body": "An offer.",
            "reward_cents": 10,
            "max_recipients": 1000,
            "expires_in_days": 7,
        },
    ).json()
    run_pending(inst)  # the offer's delivery job
    browser = browser_login(live_server, EMAIL, PASSWORD)
    token = csrf_token_in(browser.get(f"{live_server}/inbox").text)
    browser.post(f"{live_server}/inbox/{sent['id']}/accept", data={"csrf_token": token})
    sub = client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()["accepted"][0]["sub"]
    assert client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}").status_code == 403
    assert client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/off_x").status_code == 404
    assert client.get(f"{live_server}/api/v1/offers/no-such-offer").status_code == 404
    entries = denials(inst, creds.id)
    assert [code_of(e) for e in entries] == [
        "contacts.not_shared",
        "contacts.no_accepter",
        "offers.view_refused",
    ]
    assert [shown(e) for e in entries] == [
        "contact details refused: not shared for this offer",
        "contact details refused: no accepter of this offer has that pseudonym",
        "offer view refused: no such offer of this supplier",
    ]
    assert entries[0].customer_id is not None  # on the accepter's own timeline
    assert entries[0].categories == "identity"


def test_a_suspended_client_at_the_token_endpoint_is_logged(
    live_server: str, inst: Instance
) -> None:
    _client, creds = _broker(live_server, inst, "audience:count")
    with inst.sessions() as session:
        suspend_supplier(session, creds.id)
        session.commit()
    refused = requests.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds.client_id, creds.client_secret),
        timeout=10,
    )
    assert refused.status_code == 401
    [entry] = denials(inst, creds.id)
    assert code_of(entry) == "oauth.client_refused"
    assert shown(entry) == "client refused at /oauth/token: supplier suspended"


def test_a_refresh_after_the_consent_was_revoked_is_logged(
    live_server: str, inst: Instance, granted: tuple[OAuth2Session, Any, str]
) -> None:
    client, supplier, customer_id = granted
    with inst.sessions() as session:
        grant = session.execute(select(ConsentGrant)).scalar_one()
        grant.revoked_at = utcnow()
        session.commit()
    refreshed = requests.post(
        f"{live_server}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": client.token["refresh_token"]},
        auth=(supplier.client_id, supplier.client_secret),
        timeout=10,
    )
    assert refreshed.status_code == 400
    [entry] = denials(inst, supplier.id)
    assert (entry.customer_id, shown(entry)) == (
        customer_id,
        "refresh token refused: consent revoked",
    )
