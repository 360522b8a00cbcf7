"""GET /api/v1/purchases: a supplier's authlib client reads, through the customer's consent and
under their policy, a page at a time, the purchases the customer imported; every call logged."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry
from infomediary.services import Context, customer_policy, purchases
from infomediary.services.customer_keys import customer_key, open_detail
from tests.factories import make_customer
from tests.log_reasons import shown
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

AMAZON = Path(__file__).resolve().parents[1] / "unit" / "connectors" / "fixtures" / "amazon"
EMAIL, OTHER, PASSWORD = "ada@example.org", "grace@example.org", "correct horse battery"
SCOPES = ("profile.identity:read", "profile.interests:read", "purchases:read")
FIELDS = {
    "retailer",
    "order_id",
    "line_key",
    "ordered_at",
    "product_name",
    "product_id",
    "category",
    "quantity",
    "unit_price_minor",
    "currency",
    "status",
}
#: Both Amazon fixtures: 8 lines in 2024 (one of them Amazon.de), 2 in 2023.
ALL_LINES = 10


def _import(inst: Instance, customer_id: str, name: str, format: str | None = None) -> None:
    with inst.sessions() as session, (AMAZON / name).open("rb") as stream:
        purchases.import_file(
            session,
            inst,
            customer_id,
            stream,
            name,
            format=format,
            ctx=Context(Actor.customer(customer_id)),
        )


@pytest.fixture
def customer(inst) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace")
    _import(inst, customer_id, "Retail.OrderHistory.1.csv")
    _import(inst, customer_id, "Retail.OrderHistory.2023.csv")
    return customer_id


@pytest.fixture
def other(inst) -> str:
    """Another customer, whose older Amazon lines no token of Ada's may reach."""
    customer_id = make_customer(inst, email=OTHER, password=PASSWORD, name="Grace Hopper")
    _import(inst, customer_id, "legacy-items.csv", "amazon-legacy")
    return customer_id


def _client(live_server: str, inst: Instance, scope: str, purpose: str = "service") -> Any:
    supplier = make_supplier(inst, scopes=SCOPES)
    client = client_session(live_server, supplier, scope)
    result = consent(
        live_server, browser_login(live_server, EMAIL, PASSWORD), client, purpose=purpose
    )
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    return client


def _reads(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(
                    AccessLogEntry.actor_type == "supplier",
                    AccessLogEntry.customer_id == customer_id,
                )
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


def _detail(inst: Instance, entry: AccessLogEntry) -> Any:
    with inst.sessions() as session:
        return open_detail(inst, customer_key(session, inst, entry.customer_id or ""), entry.detail)


def _all_pages(live_server: str, client: OAuth2Session, query: str) -> list[list[dict[str, Any]]]:
    pages, url = [], f"{live_server}/api/v1/purchases{query}"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"purchases", "next"}
        pages.append(body["purchases"])
        following = body["next"]
        if following is None:
            break
        parts = urlsplit(following)
        assert parts.path == "/api/v1/purchases"
        url = f"{live_server}{parts.path}?{parts.query}"
        assert len(pages) < 20
    return pages


def test_pages_of_purchases_newest_first_each_logged(live_server, inst, customer) -> None:
    client = _client(live_server, inst, "purchases:read")
    pages = _all_pages(live_server, client, "?limit=3")
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    lines = [line for page in pages for line in page]
    assert all(set(line) == FIELDS for line in lines)
    times = [line["ordered_at"] for line in lines]
    assert times == sorted(times, reverse=True)
    assert times[0] == "2024-09-01T00:00:00+00:00"
    assert len({(line["retailer"], line["line_key"]) for line in lines}) == ALL_LINES
    first = lines[0]
    assert first["product_name"] == "Running Shoes"
    assert (first["unit_price_minor"], first["currency"], first["status"]) == (
        4900,
        "USD",
        "returned",
    )
    assert not {"source", "line_number"} & set(first)

    # The default page holds them all; the filters narrow it.
    assert len(client.get(f"{live_server}/api/v1/purchases").json()["purchases"]) == ALL_LINES
    german = client.get(f"{live_server}/api/v1/purchases?retailer=AMAZON.DE").json()
    assert [line["order_id"] for line in german["purchases"]] == ["302-0000005-0000005"]
    spring = _all_pages(live_server, client, "?since=2024-04-01&until=2024-06-01&limit=2")
    assert [len(page) for page in spring] == [2, 2]
    assert [line["ordered_at"][:10] for page in spring for line in page] == [
        "2024-06-01",
        "2024-05-10",
        "2024-04-01",
        "2024-04-01",
    ]
    assert client.get(f"{live_server}/api/v1/purchases?until=2022-12-31").json() == {
        "purchases": [],
        "next": None,
    }

    reads = _reads(inst, customer)
    calls = len(pages) + 1 + 1 + len(spring) + 1
    assert len(reads) == calls
    assert {(r.action, r.categories, r.purpose, r.outcome) for r in reads} == {
        ("read", "purchases", "service", "allowed")
    }
    assert [_detail(inst, r)["purchases_released"] for r in reads[: len(pages)]] == [3, 3, 3, 1]
    assert "3 line(s) released" in shown(reads[0])
    assert _detail(inst, reads[-1])["purchases_released"] == 0


def test_me_releases_no_purchases(live_server, inst, customer) -> None:
    client = _client(live_server, inst, "profile.interests:read purchases:read")
    me = client.get(f"{live_server}/api/v1/me")
    assert me.status_code == 200, me.text
    assert "purchases" not in me.json()  # never the lines
    derived = me.json()["interests_from_purchases"]  # what the lines suggest, under the policy
    logged = "purchases" in _reads(inst, customer)[-1].categories
    assert logged == bool(derived)


def test_a_policy_that_denies_purchases_is_a_logged_refusal(live_server, inst, customer) -> None:
    client = _client(live_server, inst, "purchases:read")
    assert client.get(f"{live_server}/api/v1/purchases").status_code == 200
    with inst.sessions() as session:
        customer_policy.set_rule(
            session,
            inst,
            customer,
            category="purchases",
            purpose="service",
            mode="never",
            ctx=Context(Actor.customer(customer)),
        )
    denied = client.get(f"{live_server}/api/v1/purchases?limit=5")
    assert denied.status_code == 403
    assert denied.headers["Content-Type"].startswith("application/problem+json")
    body = denied.json()
    assert body["code"] == "policy_denied"
    assert [w["category"] for w in body["withheld"]] == ["purchases"]
    assert body["withheld"][0]["reason"]
    assert "purchases" not in body
    assert "Running Shoes" not in denied.text
    last = _reads(inst, customer)[-1]
    assert (last.categories, last.purpose, last.outcome) == ("purchases", "service", "denied")
    assert len(_reads(inst, customer)) == 2


def test_a_token_without_purchases_read_is_refused(live_server, inst, customer) -> None:
    client = _client(live_server, inst, "profile.interests:read")
    refused = client.get(f"{live_server}/api/v1/purchases")
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert 'scope="purchases:read"' in refused.headers["WWW-Authenticate"]
    assert "Running Shoes" not in refused.text
    assert [r.outcome for r in _reads(inst, customer)] == ["denied"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2024-13-01", "since"),
        ("since=20240101", "since"),
        ("until=2024-W01-1", "until"),
        ("until=yesterday", "until"),
        ("since=2024-06-02&until=2024-06-01", "until"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + _b64(b"[1,2]"), "cursor"),
        ("cursor=" + _b64(b'["2024-01-01T00:00:00","a","b"]'), "cursor"),
        ("retailer=", "retailer"),
        ("customer=someone-else", "customer"),
    ],
)
def test_bad_parameters_are_refused_with_a_code(live_server, inst, customer, query, field) -> None:
    client = _client(live_server, inst, "purchases:read")
    refused = client.get(f"{live_server}/api/v1/purchases?{query}")
    assert refused.status_code == 400, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    body = refused.json()
    assert body["code"] == "invalid_request"
    assert set(body["errors"]) == {field}
    assert "purchases" not in body
    assert "Amazon" not in refused.text


def test_another_customers_purchases_never_appear(live_server, inst, customer, other) -> None:
    client = _client(live_server, inst, "purchases:read")
    lines = [line for page in _all_pages(live_server, client, "?limit=4") for line in page]
    assert len(lines) == ALL_LINES
    names = {line["product_name"] for line in lines}
    assert not names & {"The Pragmatic Programmer", "Garden Hose 50 ft", 'Monitor 27", 4K'}
    assert min(line["ordered_at"] for line in lines) >= "2023"
    older = client.get(f"{live_server}/api/v1/purchases?until=2022-12-31&retailer=amazon.com")
    assert older.json() == {"purchases": [], "next": None}
    assert _reads(inst, other) == []
