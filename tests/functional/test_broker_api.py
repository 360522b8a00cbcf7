"""Audience counts through the real API with a client-credentials token."""

from __future__ import annotations

import json
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import func, select

from infomediary.demo import seed_synthetic
from infomediary.models import AccessLogEntry, BudgetCharge
from tests.oauth_helpers import make_supplier


@pytest.fixture
def population(inst) -> int:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 400, workers=1)
    return 400


@pytest.fixture
def broker_client(live_server, inst):
    creds = make_supplier(
        inst,
        name="Counting Co",
        scopes=("audience:count",),
        purposes=("marketing", "analytics"),
        redirect_uris=(),
    )
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="audience:count",
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client, creds


def test_count_is_noisy_budgeted_cached_and_logged(
    live_server, inst, population, broker_client
) -> None:
    client, _ = broker_client
    query = {"purpose": "marketing", "where": {"age_band": ["25-34", "35-44", "45-54"]}}
    first = client.post(f"{live_server}/api/v1/audiences/count", json=query)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["epsilon_spent"] == pytest.approx(0.1)
    assert body["budget_remaining"] == pytest.approx(1.9)
    assert body["cached"] is False
    assert body["suppressed"] is False
    assert 50 <= body["count"] <= 400
    again = client.post(f"{live_server}/api/v1/audiences/count", json=query)
    assert again.json()["count"] == body["count"]
    assert again.json()["cached"] is True
    assert again.json()["epsilon_spent"] == 0
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one() == 1
        counts = (
            session.execute(select(AccessLogEntry).where(AccessLogEntry.action == "count"))
            .scalars()
            .all()
        )
    assert len(counts) == 2  # the release, then its replay
    release, replay = sorted(counts, key=lambda e: e.seq)
    assert release.customer_id is None
    assert release.members is not None  # the contributing ordinals, hashed into the chain
    assert replay.members is None  # a replay refers to its release and charges nobody
    assert json.loads(replay.detail or b"{}")["epsilon"] == 0


def test_breakdown_cells(live_server, population, broker_client) -> None:
    client, _ = broker_client
    response = client.post(
        f"{live_server}/api/v1/audiences/count",
        json={
            "purpose": "marketing",
            "where": {"interests": ["books", "travel", "music"]},
            "breakdown": "region",
        },
    )
    assert response.status_code == 200, response.text
    cells = response.json()["cells"]
    assert [c["value"] for c in cells] == ["ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA"]
    for cell in cells:
        assert (cell["count"] is None) == cell["suppressed"]
        assert cell["count"] is None or cell["count"] >= 50


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"purpose": "marketing", "where": {"shoe_size": ["9"]}}, "unknown_attribute"),
        ({"purpose": "marketing", "where": {"region": ["Narnia"]}}, "unknown_value"),
        ({"purpose": "research", "where": {"region": ["NSW"]}}, "undeclared_purpose"),
        ({"purpose": "marketing", "where": {}}, "invalid_query"),
        ({"purpose": "marketing", "where": {"region": "NSW"}}, "invalid_values"),
        ({"purpose": "marketing", "where": {"region": []}}, "invalid_values"),
        ({"purpose": "spying", "where": {"region": ["NSW"]}}, "unknown_purpose"),
        ({"purpose": 7, "where": {"region": ["NSW"]}}, "unknown_purpose"),
        ({"purpose": "marketing", "where": {"region": ["NSW"]}, "limit": 5}, "invalid_query"),
        ({"purpose": "marketing", "where": ["region"]}, "invalid_query"),
        ({"purpose": "marketing"}, "invalid_query"),
        (
            {"purpose": "marketing", "where": {"region": ["NSW"]}, "breakdown": 3},
            "invalid_breakdown",
        ),
        (
            {"purpose": "marketing", "where": {"region": ["NSW"]}, "breakdown": "interests"},
            "invalid_breakdown",
        ),
        ({"purpose": "marketing", "where": {"customer_id": ["1"]}}, "unknown_attribute"),
        (
            {
                "purpose": "marketing",
                "where": {
                    "age_band": ["18-24"],
                    "region": ["NSW"],
                    "household": ["1"],
                    "interests": ["books"],
                    "x": ["y"],
                    "z": ["w"],
                },
            },
            "too_many_predicates",
        ),
    ],
)
def test_bad_queries_are_400_and_cost_nothing(live_server, inst, broker_client, body, code) -> None:
    client, _ = broker_client
    response = client.post(f"{live_server}/api/v1/audiences/count", json=body)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["type"] == f"tag:infomediary.example,2026:problems/{code}"
    assert problem["status"] == 400
    assert problem["title"]
    assert problem["detail"] in problem["errors"].values()
    assert set(problem["errors"]) <= {*body, "body", "purpose", "where"}
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one() == 0


def test_malformed_json_and_missing_scope(live_server, inst, broker_client) -> None:
    client, _ = broker_client
    bad = client.post(
        f"{live_server}/api/v1/audiences/count",
        data="{oops",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_json"
    assert bad.json()["errors"] == {"body": "Send a JSON object (application/json)."}
    anonymous = requests.post(f"{live_server}/api/v1/audiences/count", json={}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"] == "application/problem+json"
    assert anonymous.json()["code"] == "missing_authorization"
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="infomediary"'


def test_exhausted_budget_is_429(live_server, inst, population, broker_client) -> None:
    client, _ = broker_client
    statuses = []
    for number in range(22):
        response = client.post(
            f"{live_server}/api/v1/audiences/count",
            json={
                "purpose": "marketing",
                "where": {
                    "household": [["1", "2", "3", "4", "5+"][number % 5]],
                    "age_band": [["18-24", "25-34", "35-44", "45-54", "55-64"][number // 5]],
                },
            },
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20
    assert statuses[20:] == [429, 429]
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "budget_exhausted"
    assert response.json()["status"] == 429
    # the same deadline (Flask-Limiter rewrites the header, rounding down)
    assert abs(response.json()["retry_after"] - int(response.headers["Retry-After"])) <= 1
    # Retry-After: the seconds until the budget period ends.
    days = inst.settings.broker_period_days
    period_end = (int(time.time()) // (days * 86400) + 1) * days * 86400
    assert abs(int(response.headers["Retry-After"]) - (period_end - time.time())) <= 5


def test_attributes_listing(live_server, broker_client) -> None:
    client, _ = broker_client
    response = client.get(f"{live_server}/api/v1/audiences/attributes")
    assert response.status_code == 200
    names = {a["name"] for a in response.json()["attributes"]}
    assert names == {"age_band", "region", "area", "household", "interests", "bought", "spend"}
    listed = {a["name"]: a for a in response.json()["attributes"]}
    assert "faith" in listed["interests"]["sensitive_values"]
    assert "faith" in listed["bought"]["sensitive_values"]
    assert "faith:50-199" in listed["spend"]["sensitive_values"]
    assert "books:50-199" in listed["spend"]["values"]
    assert "books:50-199" not in listed["spend"]["sensitive_values"]


def test_customers_see_the_counts_they_were_part_of(
    live_server, inst, population, broker_client
) -> None:
    from tests.factories import make_customer
    from tests.oauth_helpers import browser_login

    make_customer(
        inst,
        email="counted@example.org",
        password="correct horse battery",
        profile={"postcode": "2000", "birth_year": 1990, "interests": ["books"]},
    )
    make_customer(
        inst,
        email="elsewhere@example.org",
        password="correct horse battery",
        profile={"postcode": "6000", "birth_year": 1990, "interests": ["books"]},
    )
    client, _ = broker_client
    response = client.post(
        f"{live_server}/api/v1/audiences/count",
        json={"purpose": "marketing", "where": {"region": ["NSW"]}},
    )
    assert response.status_code == 200
    counted = browser_login(live_server, "counted@example.org", "correct horse battery")
    page = counted.get(f"{live_server}/counts").text
    assert "Counting Co" in page
    assert "region = NSW" in page
    assert "epsilon 0.1" in page
    assert "0.1</strong> of your <strong>10.0</strong>" in page
    outside = browser_login(live_server, "elsewhere@example.org", "correct horse battery")
    assert (
        "You have not been part of any count or offer yet."
        in outside.get(f"{live_server}/counts").text
    )


def test_counting_page_explains_in_plain_words(client) -> None:
    page = client.get("/counting").get_data(as_text=True)
    assert "How your data is counted" in page
    assert "fewer than 50" in page


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"purpose": "marketing", "where": {"region": ["\\ud800"]}}',
        b'{"purpose": ' + b"[" * 40 + b"]" * 40 + b"}",
    ],
    ids=["deep", "lone-surrogate", "nested-purpose"],
)
def test_hostile_json_is_400_and_free(live_server, inst, broker_client, raw) -> None:
    client, _ = broker_client
    response = client.post(
        f"{live_server}/api/v1/audiences/count",
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one() == 0
