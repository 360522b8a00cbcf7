"""Supplier impersonation: registration refuses look-alike names, invisible characters and
floods of redirect URIs; the consent screen shows what a look-alike cannot fake.

Dynamic registration goes over real HTTP (RFC 7591, RFC 7591 §3.2.2 error bodies), the
operator's path through the ``infomediary`` command, the consent screen through a customer's
logged-in browser session. Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from infomediary.cli import main
from infomediary.errors import ValidationFailed
from infomediary.models import AccessLogEntry, Supplier
from infomediary.services.suppliers import (
    MAX_REDIRECT_URIS,
    create_supplier,
    issue_initial_access_token,
    redirect_host,
    verify_supplier,
)
from tests.factories import make_customer
from tests.log_reasons import shown
from tests.oauth_helpers import CSRF_RE, browser_login, client_session, make_supplier

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
METADATA: dict[str, Any] = {
    "client_name": "Registered Shop",
    "redirect_uris": ["https://registered.example/cb"],
    "scope": "profile.identity:read",
    "purposes": ["service"],
    "sector": "retail",
}


@pytest.fixture
def env(base_config, inst, monkeypatch) -> None:
    """Point the command at the test instance (emptied by ``inst``)."""
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)
    for key, value in (("TIME_COST", "1"), ("MEMORY_KIB", "1024"), ("PARALLELISM", "1")):
        monkeypatch.setenv(f"INFOMEDIARY_ARGON2_{key}", value)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def register(live_server: str, inst, **changes: Any) -> requests.Response:
    with inst.sessions() as session:
        token = issue_initial_access_token(session)
    return requests.post(
        f"{live_server}/oauth/register",
        json={**METADATA, **changes},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def supplier_names(inst) -> list[str]:
    with inst.sessions() as session:
        return sorted(session.execute(select(Supplier.name)).scalars())


# -- dynamic registration ----------------------------------------------------------------------

REFUSED_REGISTRATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "the same name": ({"client_name": "Demo Books"}, "client_name: Too similar"),
    "another case": ({"client_name": "demo books"}, "client_name: Too similar"),
    "capitals and zeros": ({"client_name": "DEM0 B00KS"}, "client_name: Too similar"),
    "cyrillic e": ({"client_name": "D\u0435mo Books"}, "client_name: Too similar"),
    "fullwidth": ({"client_name": "\uff24emo Books"}, "client_name: Too similar"),
    "zero width space": ({"client_name": "Demo\u200bBooks"}, "U+200B ZERO WIDTH SPACE"),
    "zero width joiner": ({"client_name": "Demo Bo\u200dks"}, "U+200D ZERO WIDTH JOINER"),
    "bidi override": ({"client_name": "Demo \u202eskooB"}, "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "bidi isolate": ({"client_name": "\u2067Demo Books\u2069"}, "U+2067"),
    "no letter": ({"client_name": "!!!"}, "client_name: Must contain at least one letter"),
    "1,000 redirect URIs": (
        {"redirect_uris": [f"https://flood.example/cb/{n}" for n in range(1000)]},
        f"redirect_uris: At most {MAX_REDIRECT_URIS} redirect URIs",
    ),
    "one too many redirect URIs": (
        {"redirect_uris": [f"https://shop.example/{n}" for n in range(MAX_REDIRECT_URIS + 1)]},
        f"At most {MAX_REDIRECT_URIS}",
    ),
}


def test_registration_refuses_impersonation_with_rfc7591_errors(live_server, inst) -> None:
    make_supplier(inst, name="Demo Books")
    log_before = count_log(inst)
    for label, (change, description) in REFUSED_REGISTRATIONS.items():
        response = register(live_server, inst, **change)
        assert response.status_code == 400, (label, response.status_code, response.text)
        assert response.headers["Cache-Control"] == "no-store", label
        body = response.json()
        assert body["error"] == "invalid_client_metadata", (label, body)
        assert description in body["error_description"], (label, body)
        assert "Demo Books" not in body["error_description"], label  # no name oracle
    assert supplier_names(inst) == ["Demo Books"]
    # A refused registration leaves no entry: the only new ones record the issued tokens.
    assert new_reasons(inst, log_before) == ["initial access token issued"] * len(
        REFUSED_REGISTRATIONS
    )


def test_registration_stores_the_normalised_name_and_up_to_the_cap(live_server, inst) -> None:
    uris = [f"https://shop.example/cb/{n}" for n in range(MAX_REDIRECT_URIS)]
    response = register(
        live_server, inst, client_name="  \uff2eorth\u00a0\u00a0Star  Books ", redirect_uris=uris
    )
    assert response.status_code == 201, response.text
    assert response.json()["client_name"] == "North Star Books"
    assert sorted(response.json()["redirect_uris"]) == sorted(uris)
    assert supplier_names(inst) == ["North Star Books"]
    again = register(live_server, inst, client_name="NORTH STAR BOOKS")
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_client_metadata"


def test_redirect_uris_hiding_their_host_are_refused(live_server, inst) -> None:
    for uri in ("https://demo-books.example@evil.example/cb", "https://a:b@shop.example/cb"):
        response = register(live_server, inst, redirect_uris=[uri])
        assert response.status_code == 400, uri
        assert response.json()["error"] == "invalid_redirect_uri"
        assert "user information" in response.json()["error_description"]
    long_uri = "https://shop.example/" + "a" * 2000
    response = register(live_server, inst, redirect_uris=[long_uri])
    assert response.json()["error"] == "invalid_redirect_uri"
    assert supplier_names(inst) == []


def test_concurrent_look_alike_registrations_let_exactly_one_through(inst) -> None:
    names = ["Race Books", "RACE BOOKS", "R\u0430ce Books", "race  books"]

    def attempt(name: str) -> str:
        with inst.sessions() as session:
            try:
                create_supplier(
                    session,
                    name=name,
                    redirect_uris=["https://race.example/cb"],
                    scopes=["profile.identity:read"],
                    purposes=["service"],
                )
            except ValidationFailed as exc:
                return exc.errors["name"]
            return "created"

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        outcomes = list(pool.map(attempt, names))
    assert outcomes.count("created") == 1, outcomes
    assert all(o == "created" or o.startswith("Too similar") for o in outcomes), outcomes
    assert len(supplier_names(inst)) == 1


def new_reasons(inst, size_before: int) -> list[str]:
    """Reasons of the entries appended since the log held ``size_before`` (seq counts from 0),
    with the issued token's id cut off."""
    with inst.sessions() as session:
        rows = session.execute(
            select(AccessLogEntry)
            .where(AccessLogEntry.seq >= size_before)
            .order_by(AccessLogEntry.seq)
        ).scalars()
        return [
            re.sub(r"^initial access token \w+ issued.*", "initial access token issued", shown(r))
            for r in rows
        ]


def count_log(inst) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AccessLogEntry)) or 0)


# -- the operator's command ------------------------------------------------------------------


def test_cli_create_applies_the_same_name_rules(env, inst) -> None:
    base = ["suppliers", "create", "--redirect-uri", "https://books.example/cb"]
    base += ["--scope", "profile.identity:read", "--purpose", "service", "--json"]
    code, out = run(*base, "--name", "Demo Books")
    assert code == 0, out
    for name, message in (
        ("D\u0435mo Books", "error: name: Too similar to the name of the registered supplier"),
        ("Demo Books\u202e", "error: name: Must not contain control, formatting, bidirectional"),
        ("Demo\u200bBooks", "U+200B ZERO WIDTH SPACE"),
    ):
        code, out = run(*base, "--name", name)
        assert code == 1, (name, out)
        assert message in out, (name, out)
        assert len(out.strip().splitlines()) == 1, out  # one line, no traceback
    flood = [
        arg
        for n in range(MAX_REDIRECT_URIS + 1)
        for arg in ("--redirect-uri", f"https://x.example/{n}")
    ]
    code, out = run(
        "suppliers",
        "create",
        "--name",
        "Flood Co",
        *flood,
        "--scope",
        "profile.identity:read",
        "--purpose",
        "service",
    )
    assert code == 1
    assert f"error: redirect_uris: At most {MAX_REDIRECT_URIS} redirect URIs" in out
    assert supplier_names(inst) == ["Demo Books"]


def test_cli_verify_sets_a_timestamp_once_and_lists_it(env, inst) -> None:
    creds = make_supplier(inst, name="Verified Shop")
    code, out = run("suppliers", "list", "--json")
    assert json.loads(out)["suppliers"][0]["verified_at"] is None
    code, out = run("suppliers", "verify", creds.client_id, "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["client_id"] == creds.client_id
    assert first["verified_at"]
    code, out = run("suppliers", "verify", creds.id)
    assert code == 0
    assert f"since {first['verified_at']}" in out  # idempotent: the first date stays
    code, out = run("suppliers", "list", "--json")
    assert json.loads(out)["suppliers"][0]["verified_at"] == first["verified_at"]
    with inst.sessions() as session:
        rows = session.execute(select(AccessLogEntry)).scalars().all()
        names = {creds.id: "Verified Shop"}
        reasons = [shown(row, lambda sid: names.get(sid, sid)) for row in rows]
    assert reasons.count("supplier Verified Shop verified") == 1
    code, out = run("suppliers", "verify", "sup_nobody")
    assert code == 1
    assert out.strip() == "error: No supplier with id, client_id or name 'sup_nobody'."


def test_demo_supplier_is_verified_and_cannot_be_impersonated(env, inst, live_server) -> None:
    code, out = run("demo", "--json")
    assert code == 0, out
    with inst.sessions() as session:
        demo = session.execute(select(Supplier).where(Supplier.name == "Demo Books")).scalar_one()
        assert demo.verified_at is not None
    response = register(live_server, inst, client_name="Demo Bo\u043eks")
    assert response.json()["error"] == "invalid_client_metadata"
    assert supplier_names(inst) == ["Demo Books"]


# -- the consent screen ----------------------------------------------------------------------


def consent_page(live_server: str, creds) -> str:
    browser = browser_login(live_server, EMAIL, PASSWORD)
    client = client_session(live_server, creds, "profile.identity:read")
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier=secrets.token_urlsafe(48), purpose="service"
    )
    page = browser.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text
    assert CSRF_RE.search(page.text)
    return page.text


def test_consent_screen_shows_host_registration_and_verification(live_server, inst) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    creds = make_supplier(
        inst, name="Look Alike Books", redirect_uris=("https://evil.example:8443/cb",)
    )
    with inst.sessions() as session:
        registered = session.get(Supplier, creds.id).created_at
    page = consent_page(live_server, creds)
    assert '<code class="redirect-host">evil.example:8443</code>' in page
    assert f"{registered.strftime('%b')} {registered.day}, {registered.year}" in page  # localdate
    assert f'datetime="{registered.isoformat()}"' in page
    assert "Not verified by Infomediary" in page

    with inst.sessions() as session:
        verify_supplier(session, creds.id)
        verified = session.get(Supplier, creds.id).verified_at
    page = consent_page(live_server, creds)
    assert "Not verified by Infomediary" not in page
    assert "Verified by Infomediary" in page
    assert f'datetime="{verified.isoformat()}"' in page


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://shop.example/cb", "shop.example"),
        ("https://SHOP.example:8443/cb?x=1", "shop.example:8443"),
        ("http://127.0.0.1:8000/callback", "127.0.0.1:8000"),
        ("https://b\u00fccher.example/cb", "xn--bcher-kva.example"),  # RFC 3492's example
    ],
)
def test_redirect_host_is_shown_in_ascii(uri: str, shown: str) -> None:
    assert redirect_host(uri) == shown


def test_a_look_alike_host_is_shown_as_punycode() -> None:
    shown = redirect_host("https://d\u0435mo-books.example/cb")  # Cyrillic e
    assert shown.isascii()
    assert shown.startswith("xn--")
    assert shown != "demo-books.example"
