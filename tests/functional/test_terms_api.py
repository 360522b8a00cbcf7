"""The MyTerms API: the public roster, one agreement, and a supplier publishing the agreements it
accepts with its own real OAuth credentials (client credentials at the token endpoint)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.audit.reasons import Reason
from infomediary.config import ConfigError, load_config
from infomediary.instance import Instance, open_instance
from infomediary.models import AccessLogEntry, SupplierTerms
from infomediary.services import agreements
from infomediary.web.errors import PROBLEM_TYPE
from tests.factories import SupplierCreds, make_supplier

IDS = ["sd-base", "sd-base-dp", "no-ai-training", "goods-services-only", "intent"]


def token_for(
    client: FlaskClient, creds: SupplierCreds, scope: str = "audience:count"
) -> dict[str, str]:
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    data = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    issued = client.post("/oauth/token", data=data, headers={"Authorization": f"Basic {basic}"})
    assert issued.status_code == 200, issued.get_data(as_text=True)
    return {"Authorization": f"Bearer {issued.get_json()['access_token']}"}


def rows(inst: Instance, model: type) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def entries(inst: Instance, code: str) -> list[AccessLogEntry]:
    """The access-log entries whose structured reason has ``code``."""
    with inst.sessions() as session:
        every = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars()
        return [e for e in every if e.reason_data and Reason.from_json(e.reason_data).code == code]


def test_the_roster_is_public_and_lists_the_five_agreements(client: FlaskClient) -> None:
    response = client.get("/api/v1/terms")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    body = response.get_json()
    assert [a["id"] for a in body["agreements"]] == IDS
    for agreement in body["agreements"]:
        assert set(agreement) >= {"id", "title", "summary", "kind", "official", "rules", "note"}
        assert agreement["official"] is False
        assert "not the official text" in agreement["note"]
        assert agreement["rules"]
        assert {r["mode"] for r in agreement["rules"]} == {"never"}
    no_ai = body["agreements"][2]
    assert no_ai["rules"] == [{"category": "*", "purpose": "ai_training", "mode": "never"}]
    assert "supplier" not in body


def test_one_agreement_and_an_unknown_one(client: FlaskClient) -> None:
    one = client.get("/api/v1/terms/sd-base-dp")
    assert one.status_code == 200
    assert one.get_json()["id"] == "sd-base-dp"
    assert {"category": "health", "purpose": "*", "mode": "never"} in one.get_json()["rules"]
    missing = client.get("/api/v1/terms/my-own-terms")
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"
    problem = missing.get_json()
    assert problem["code"] == "not_found"
    assert problem["type"] == PROBLEM_TYPE + "not_found"
    too_long = client.get("/api/v1/terms/" + "a" * 65)
    assert too_long.status_code == 400
    assert too_long.get_json()["code"] == "invalid_request"


def test_a_supplier_publishes_what_it_accepts_with_its_own_token(
    client: FlaskClient, inst: Instance
) -> None:
    acme = make_supplier(
        inst,
        name="Acme Books",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    headers = token_for(client, acme)
    published = client.post(
        "/api/v1/supplier/terms",
        json={"accepted": ["no-ai-training", "sd-base", "sd-base"]},
        headers=headers,
    )
    assert published.status_code == 200, published.get_data(as_text=True)
    assert published.get_json() == {
        "supplier": acme.client_id,
        "accepted": ["sd-base", "no-ai-training"],  # roster order, once each
    }
    listed = client.get(f"/api/v1/terms?supplier={acme.client_id}").get_json()
    assert listed["supplier"] == acme.client_id
    assert listed["accepted"] == ["sd-base", "no-ai-training"]
    (entry,) = entries(inst, "terms.supplier_accepts")
    assert entry.actor_type == "supplier"
    assert entry.actor_id == acme.id
    assert entry.outcome == "allowed"
    # a new list replaces the old one; an empty one withdraws every acceptance
    again = client.post("/api/v1/supplier/terms", json={"accepted": []}, headers=headers)
    assert again.status_code == 200
    assert client.get(f"/api/v1/terms?supplier={acme.client_id}").get_json()["accepted"] == []
    assert rows(inst, SupplierTerms) == 0


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"accepted": ["sd-base", "my-own-terms"]}, 422, "unknown_terms", "accepted"),
        ({"accepted": "sd-base"}, 400, "invalid_request", "accepted"),
        ({"accepted": [""]}, 400, "invalid_request", "accepted"),
        ({"accepted": ["x" * 65]}, 400, "invalid_request", "accepted"),
        ({"accepted": ["sd-base"], "also": 1}, 400, "invalid_request", "also"),
        ({}, 400, "invalid_request", "accepted"),
    ],
)
def test_bad_input_is_a_problem_and_writes_nothing(
    client: FlaskClient, inst: Instance, body: dict[str, object], status: int, code: str, field: str
) -> None:
    acme = make_supplier(
        inst,
        name="Acme Books",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    headers = token_for(client, acme)
    assert (
        client.post(
            "/api/v1/supplier/terms", json={"accepted": ["intent"]}, headers=headers
        ).status_code
        == 200
    )
    before = len(entries(inst, "terms.supplier_accepts"))
    response = client.post("/api/v1/supplier/terms", json=body, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code
    assert field in problem["errors"]
    assert rows(inst, SupplierTerms) == 1  # what was published stands
    assert len(entries(inst, "terms.supplier_accepts")) == before


def test_publishing_needs_a_valid_token(client: FlaskClient, inst: Instance) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = client.post("/api/v1/supplier/terms", json={"accepted": []}, headers=headers)
        assert response.status_code == 401
        assert response.content_type == "application/problem+json"
        assert "WWW-Authenticate" in response.headers
    assert rows(inst, SupplierTerms) == 0


def test_the_supplier_filter_refuses_unknown_and_malformed_suppliers(client: FlaskClient) -> None:
    unknown = client.get("/api/v1/terms?supplier=nobody")
    assert unknown.status_code == 404
    assert unknown.get_json()["code"] == "not_found"
    empty = client.get("/api/v1/terms?supplier=")
    assert empty.status_code == 400
    assert empty.get_json()["errors"] == {"supplier": "Give a supplier's client_id."}


def test_the_roster_is_rate_limited(inst: Instance) -> None:
    app = create_app(replace(inst.settings, api_rate_limit="2 per minute"), instance=inst)
    client = app.test_client()
    assert [client.get("/api/v1/terms").status_code for _ in range(3)] == [200, 200, 429]
    one = [client.get("/api/v1/terms/sd-base") for _ in range(3)]
    assert [r.status_code for r in one] == [200, 200, 429]
    limited = one[-1]
    assert limited.content_type == "application/problem+json"


def _roster_file(tmp_path: Path, **change: object) -> Path:
    data = json.loads(
        (Path(agreements.__file__).parents[2] / "policies" / "myterms" / "roster.json").read_text()
    )
    data["agreements"] = [a for a in data["agreements"] if a["id"] in ("intent", "sd-base")]
    data["agreements"][0].update(change)
    path = tmp_path / "published.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_operator_replaces_the_roster(inst: Instance, tmp_path: Path) -> None:
    path = _roster_file(tmp_path, title="Service only (published)")
    settings = replace(inst.settings, terms_roster=str(path))
    replaced = open_instance(settings)
    try:
        app = create_app(settings, instance=replaced)
        listed = app.test_client().get("/api/v1/terms").get_json()
    finally:
        replaced.close()
    assert [a["id"] for a in listed["agreements"]] == ["sd-base", "intent"]
    assert listed["agreements"][0]["title"] == "Service only (published)"


def test_a_broken_roster_stops_the_start_with_one_line(tmp_path: Path) -> None:
    path = _roster_file(tmp_path, rules=[{"category": "*", "purpose": "*", "mode": "direct"}])
    with pytest.raises(ConfigError, match="TERMS_ROSTER") as caught:
        load_config(environ={"INFOMEDIARY_TERMS_ROSTER": str(path)})
    message = str(caught.value)
    assert message.startswith("INFOMEDIARY_TERMS_ROSTER: terms roster ")
    assert "only restricts" in message
    assert "\n" not in message
