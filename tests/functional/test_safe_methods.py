"""HEAD and OPTIONS have exactly the effects of a GET, on every route (RFC 9110 §9.2.1).

Generated from ``app.url_map``: every rule is requested with HEAD and OPTIONS carrying a form
body that would, if any POST code ran, sign up, log in, approve a consent, share contact
details, change a setting or erase the account (with a valid CSRF token, so that only the
method stands between the body and the POST code). The database is snapshotted around each
request; the effects of a HEAD must equal those of a GET of the same URL (a logged read stays
a logged read), and those of an OPTIONS, or a HEAD of a route with no GET, must be nothing.
Each rule is tried anonymously and logged in.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from base64 import urlsafe_b64encode
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from werkzeug.routing import Rule

from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Base, ConsentGrant, ConsentReceipt
from infomediary.web.security import MixedMethods, check_method_split
from tests.conftest import Auth, csrf
from tests.factories import make_customer
from tests.functional.test_idor import deliver_offer
from tests.oauth_helpers import REDIRECT, make_supplier

PASSWORD = "correct horse battery"
EMAIL = "hedda.head@example.org"
#: Rows these tables gain or lose are effects; their rows also change on every request
#: (a session's last-seen time, the log head's size), which is compared through other tables.
TOUCHED_ON_READ = {"web_sessions", "log_head", "broker_state"}
#: Tables written on their own clock, not by requests: a process's key lease is taken and
#: refreshed by its background refresher (infomediary/leases.py), whenever that runs.
NOT_REQUEST_STATE = {"process_leases"}
#: Rules served by the library or holding no view of ours.
SKIPPED_ENDPOINTS = {"static"}


@dataclass
class World:
    customer_id: str
    grant_id: str
    receipt_id: str
    offer_id: str
    authorize_query: str
    supplier_id: str = ""


Snapshot = dict[str, dict[str, tuple[Any, ...]]]


def snapshot(inst: Instance) -> tuple[Snapshot, Counter[tuple[str, str, str]]]:
    tables: Snapshot = {}
    with inst.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("access_log", "log_nodes"):  # the tree follows the entries
                continue
            if table.name in NOT_REQUEST_STATE:
                continue
            rows = session.execute(select(table)).all()
            key_columns = [c.name for c in table.primary_key.columns]
            tables[table.name] = {
                repr(tuple(row._mapping[c] for c in key_columns)): tuple(row) for row in rows
            }
        log = Counter(
            (row.action, row.outcome, row.actor_type)
            for row in session.execute(select(AccessLogEntry)).scalars()
        )
    return tables, log


def effects(
    before: tuple[Snapshot, Counter[tuple[str, str, str]]],
    after: tuple[Snapshot, Counter[tuple[str, str, str]]],
) -> dict[str, Any]:
    """What a request changed: per table rows added, removed and changed; new log entries."""
    changed: dict[str, Any] = {}
    for name, rows in after[0].items():
        old = before[0][name]
        added = len(rows.keys() - old.keys())
        removed = len(old.keys() - rows.keys())
        altered = sum(1 for key in rows.keys() & old.keys() if rows[key] != old[key])
        if name in TOUCHED_ON_READ:
            altered = 0
        if added or removed or altered:
            changed[name] = (added, removed, altered)
    new_entries = after[1] - before[1]
    if new_entries:
        changed["access_log"] = sorted(new_entries.items())
    return changed


@pytest.fixture
def world(app: Flask, inst: Instance) -> World:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, name="Hedda Head")
    supplier = make_supplier(inst, name="Head Start Books")
    offer_id = deliver_offer(inst, supplier.id, customer_id)
    verifier = secrets.token_urlsafe(48)
    challenge = urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": supplier.client_id,
            "redirect_uri": REDIRECT,
            "scope": "profile.identity:read profile.interests:read",
            "state": "s" * 16,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "purpose": "marketing",
        }
    )
    client = app.test_client()
    assert Auth(client).login(email=EMAIL, password=PASSWORD).status_code == 302
    token = csrf(client, f"/oauth/authorize?{query}")
    approved = client.post(
        f"/oauth/authorize?{query}",
        data={
            "csrf_token": token,
            "approve_scope": ["profile.identity:read"],
            "expiry": "30d",
            "decision": "approve",
        },
    )
    assert approved.status_code == 302, approved.get_data(as_text=True)
    with inst.sessions() as session:
        grant = session.execute(select(ConsentGrant)).scalar_one()
        receipt = session.execute(select(ConsentReceipt)).scalars().first()
        assert receipt is not None
        return World(customer_id, grant.id, receipt.id, offer_id, query, supplier.id)


FILLERS: dict[str, Callable[[World], str]] = {
    "grant_id": lambda w: w.grant_id,
    "receipt_id": lambda w: w.receipt_id,
    "offer_id": lambda w: w.offer_id,
    "action": lambda w: "accept",
    "sub": lambda w: "off_unknown",
    "job_id": lambda w: str(uuid.uuid4()),  # a bearer-token API: no token, no effect
    "payout_id": lambda w: str(uuid.uuid4()),  # a POST route: only OPTIONS is tried
    "supplier_id": lambda w: w.supplier_id,
    "erasure_id": lambda w: str(uuid.uuid4()),  # a POST route: only OPTIONS is tried
    "public_id": lambda w: "no-such-session",  # a POST route: only OPTIONS is tried
    "passkey_id": lambda w: str(uuid.uuid4()),  # a POST route: only OPTIONS is tried
    "agreement_id": lambda w: "sd-base",  # the public roster's
    "record_id": lambda w: str(uuid.uuid4()),  # someone else's agreement: 404, no effect
    "intent_id": lambda w: str(uuid.uuid4()),  # a bearer-token API: no token, no effect
    "bid_id": lambda w: str(uuid.uuid4()),  # a POST route: only OPTIONS is tried
}


def url_of(rule: Rule, world: World) -> str:
    missing = rule.arguments - FILLERS.keys()
    assert not missing, f"add a filler for {sorted(missing)} ({rule.rule}) to FILLERS"
    built = rule.build({name: FILLERS[name](world) for name in rule.arguments})
    assert built is not None
    path = built[1]
    if rule.endpoint.startswith("oauth.") and "authorize" in rule.rule:
        path = f"{path}?{world.authorize_query}"
    return path


def hostile_body(client: FlaskClient, logged_in: bool) -> dict[str, Any]:
    """Everything any form of ours takes, with a valid CSRF token for this client."""
    return {
        "csrf_token": csrf(client, "/dashboard" if logged_in else "/login"),
        "email": EMAIL,
        "password": PASSWORD,
        "name": "Mallory",
        "accept_notice": "yes",
        "decision": "approve",
        "approve_scope": ["profile.identity:read", "profile.interests:read"],
        "expiry": "never",
        "template": "rewarded",
        "category": "identity",
        "purpose": "marketing",
        "mode": "direct",
        "confirm": "DELETE",
        "current_password": PASSWORD,
        "new_password": "an entirely new passphrase",
        "phone": "0400 000 000",
    }


def rules_of(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint not in SKIPPED_ENDPOINTS),
        key=lambda r: (r.rule, r.endpoint),
    )


def paths_of(app: Flask) -> dict[str, tuple[Rule, bool]]:
    """One rule per path, and whether some rule serves GET there (a HEAD goes to that one)."""
    paths: dict[str, tuple[Rule, bool]] = {}
    for rule in rules_of(app):
        serves_get = "GET" in (rule.methods or set())
        previous = paths.get(rule.rule)
        paths[rule.rule] = (rule, serves_get or (previous is not None and previous[1]))
    return paths


def client_for(app: Flask, logged_in: bool) -> FlaskClient:
    client = app.test_client()
    if logged_in:
        assert Auth(client).login(email=EMAIL, password=PASSWORD).status_code == 302
    return client


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_head_and_options_have_exactly_the_effects_of_get(
    app: Flask, inst: Instance, world: World, logged_in: bool
) -> None:
    client = client_for(app, logged_in)
    tried = set()
    for rule, serves_get in paths_of(app).values():
        url = url_of(rule, world)
        for method in ("HEAD", "OPTIONS"):
            body = hostile_body(client, logged_in)
            before = snapshot(inst)
            response = client.open(url, method=method, data=body)
            done = effects(before, snapshot(inst))
            assert response.status_code < 500, (method, rule.rule)
            if method == "HEAD" and serves_get:
                before = snapshot(inst)
                got = client.get(url)
                expected = effects(before, snapshot(inst))
                assert got.status_code == response.status_code, (rule.rule, got.status_code)
            else:
                expected = {}
                if method == "HEAD":
                    assert response.status_code == 405, rule.rule
            assert done == expected, f"{method} {rule.rule} had effects {done}, not {expected}"
            tried.add((method, rule.rule))
    # The routes the review exploited are among those tried.
    for path in ("/login", "/signup", "/oauth/authorize", "/inbox/<offer_id>/share"):
        assert ("HEAD", path) in tried
    # Still logged in (or out) as before, the account intact, and nobody new.
    assert (client.get("/dashboard").status_code == 200) is logged_in
    assert Auth(app.test_client()).login(email=EMAIL, password=PASSWORD).status_code == 302
    with inst.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM customers")).scalar_one() == 1
        assert session.execute(select(ConsentGrant)).scalars().all()[0].id == world.grant_id


def test_every_route_serves_safe_and_unsafe_methods_from_different_views(app: Flask) -> None:
    for rule in rules_of(app):
        methods = rule.methods or set()
        assert not ({"GET"} & methods and methods - {"GET", "HEAD", "OPTIONS"}), rule.rule


def test_a_view_that_mixes_get_and_post_stops_the_start() -> None:
    app = Flask("mixed")

    @app.route("/both", methods=["GET", "POST"])
    def both() -> str:
        return "x"

    with pytest.raises(MixedMethods, match="/both"):
        check_method_split(app)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_csrf_guards_every_unsafe_method(app: Flask, method: str) -> None:
    """A route that declares another unsafe method gets the same CSRF check as POST."""
    app.add_url_rule("/test-unsafe", "test_unsafe", lambda: "changed", methods=[method])
    client = app.test_client()
    refused = client.open("/test-unsafe", method=method, data={"x": "1"})
    assert refused.status_code == 403
    token = csrf(client, "/login")
    assert client.open("/test-unsafe", method=method, data={"csrf_token": token}).status_code == 200
