"""``GET /api/v1/me``, the API's hot path: how many statements a call makes, and that every check
stays live once the per-process caches are warm (a revoked token, a revoked consent, a blocked
or suspended supplier and a changed policy take effect on the very next call, each logged).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from infomediary.audit.log import Actor
from infomediary.db import SNAPSHOT
from infomediary.models import AccessLogEntry, ConsentGrant, utcnow
from infomediary.services import Context, customer_policy
from infomediary.services.consent_grants import revoke_grant
from infomediary.services.offer_inbox import block_supplier
from infomediary.services.policy_store import OPENED
from infomediary.services.suppliers import suspend_supplier
from tests.conftest import need_service
from tests.factories import make_customer
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "hot.path@example.org", "correct horse battery"
SCOPES = "profile.identity:read profile.interests:read profile.demographics:read"
#: Statements of one warm call: the token with its supplier and grant; the customer with the
#: profile, data key, policy, block and grants; the log head's lock, the entry, the head's
#: update, and the Merkle tree's completed nodes (every other entry completes some).
MAX_STATEMENTS = 6
MAX_SELECTS = 3
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader(live_server, inst):
    """A supplier's OAuth client holding an access token to the customer's data, the
    customer's id and logged-in browser, with a policy of the customer's own (sealed)."""
    customer_id = make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        name="Ada Lovelace",
        profile={"postcode": "2000", "birth_year": 1985, "interests": ["books", "travel"]},
    )
    with inst.sessions() as session:
        customer_policy.apply_template(
            session, inst, customer_id, "balanced", Context(Actor.customer(customer_id))
        )
    supplier = make_supplier(inst)
    client = client_session(live_server, supplier, SCOPES)
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="marketing")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    try:
        yield client, supplier, customer_id
    finally:
        client.close()
        browser.close()


@contextmanager
def statements(inst) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "SAVEPOINT", "RELEASE"):
            seen.append(statement)

    event.listen(inst.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(inst.engine, "before_cursor_execute", record)


def entries(inst, supplier_id: str, outcome: str) -> int:
    with inst.sessions() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(AccessLogEntry)
                .where(AccessLogEntry.actor_id == supplier_id, AccessLogEntry.outcome == outcome)
            ).scalar_one()
        )


def me(live_server, client):
    return client.get(f"{live_server}/api/v1/me")


def test_a_warm_call_makes_few_statements(live_server, inst, reader) -> None:
    client, supplier, _ = reader
    assert me(live_server, client).status_code == 200  # warm: the policy opened once
    for _ in range(2):  # an entry that completes Merkle nodes, and one that does not
        with statements(inst) as seen:
            response = me(live_server, client)
        assert response.status_code == 200, response.text
        selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        assert len(seen) <= MAX_STATEMENTS, seen
        assert len(selects) <= MAX_SELECTS, selects
        assert sum("INSERT INTO access_log" in s for s in seen) == 1
    assert entries(inst, supplier.id, "allowed") == 3


def test_a_changed_policy_applies_on_the_next_call(live_server, inst, reader) -> None:
    client, _, customer_id = reader
    first = me(live_server, client)
    assert first.status_code == 200
    assert first.json()["identity"]["name"] == "Ada Lovelace"
    assert len(OPENED) > 0  # the sealed policy is cached now
    with inst.sessions() as session:
        customer_policy.set_rule(
            session,
            inst,
            customer_id,
            category="identity",
            purpose="marketing",
            mode="never",
            ctx=Context(Actor.customer(customer_id)),
        )
    second = me(live_server, client)
    assert second.status_code == 200, second.text
    assert "identity" not in second.json()
    assert "identity" in {w["category"] for w in second.json()["withheld"]}
    with inst.sessions() as session:
        customer_policy.apply_template(
            session, inst, customer_id, "balanced", Context(Actor.customer(customer_id))
        )
    assert me(live_server, client).json()["identity"]["name"] == "Ada Lovelace"


def test_a_revoked_token_is_refused_on_the_next_call(live_server, inst, reader) -> None:
    client, supplier, _ = reader
    assert me(live_server, client).status_code == 200
    revoked = client.revoke_token(f"{live_server}/oauth/revoke", token=client.token["access_token"])
    assert revoked.status_code == 200
    refused = entries(inst, supplier.id, "denied")
    response = me(live_server, client)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert entries(inst, supplier.id, "denied") == refused + 1


def test_a_revoked_consent_is_refused_on_the_next_call(live_server, inst, reader) -> None:
    client, supplier, customer_id = reader
    assert me(live_server, client).status_code == 200
    with inst.sessions() as session:
        grant_id = session.execute(
            select(ConsentGrant.id).where(ConsentGrant.customer_id == customer_id)
        ).scalar_one()
        revoke_grant(
            session,
            inst,
            customer_id,
            grant_id,
            Context(Actor.customer(customer_id)),
            base_url=live_server,
        )
    refused = entries(inst, supplier.id, "denied")
    response = me(live_server, client)
    assert response.status_code == 401
    assert entries(inst, supplier.id, "denied") == refused + 1


def test_an_expired_consent_is_refused_on_the_next_call(live_server, inst, reader) -> None:
    client, supplier, customer_id = reader
    assert me(live_server, client).status_code == 200
    with inst.sessions() as session:
        grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.customer_id == customer_id)
        ).scalar_one()
        grant.expires_at = utcnow()
        session.commit()
    refused = entries(inst, supplier.id, "denied")
    assert me(live_server, client).status_code == 401
    assert entries(inst, supplier.id, "denied") == refused + 1


def test_a_blocked_supplier_is_refused_on_the_next_call(live_server, inst, reader) -> None:
    client, supplier, customer_id = reader
    assert me(live_server, client).status_code == 200
    with inst.sessions() as session:
        block_supplier(
            session,
            inst,
            customer_id,
            supplier.id,
            revoke_grants=False,
            ctx=Context(Actor.customer(customer_id)),
            base_url=live_server,
        )
    refused = entries(inst, supplier.id, "denied")
    response = me(live_server, client)
    assert response.status_code == 403
    assert response.json()["code"] == "policy_denied"
    assert entries(inst, supplier.id, "denied") == refused + 1


def test_a_suspended_supplier_is_refused_on_the_next_call(live_server, inst, reader) -> None:
    client, supplier, _ = reader
    assert me(live_server, client).status_code == 200
    with inst.sessions() as session:
        suspend_supplier(session, supplier.id)
    refused = entries(inst, supplier.id, "denied")
    assert me(live_server, client).status_code == 401
    assert entries(inst, supplier.id, "denied") == refused + 1


def test_bench_api_smoke_run_on_sqlite() -> None:
    """bench/api.py end to end for a second a load: both servers, wrk, its parsed report and
    the access log's count of one entry per answered call."""
    if shutil.which("wrk") is None:
        need_service("bench/api.py needs wrk (apt-get install wrk)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api.py"), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exactly one entry each" in done.stdout, done.stdout
    lines = done.stdout.splitlines()
    for label in ("GET /api/v1/me", "POST /api/v1/audiences/count", "GET /dashboard"):
        measured = [line for line in lines if line.strip().startswith(label)]
        assert len(measured) == 1, done.stdout
        assert "req/s" in measured[0], done.stdout
        assert "x floor" in measured[0], done.stdout


def test_on_sqlite_only_the_append_holds_the_write_lock(live_server, inst, reader) -> None:
    """The call's lookups run in a deferred read transaction, which takes no write lock; the
    write lock (``BEGIN IMMEDIATE``) is taken after them, for the entry alone, so two
    workers' lookups, decisions and decryption overlap instead of queueing on the lock."""
    if inst.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's reads take no lock; its append locks the head row only")
    client, supplier, _ = reader
    assert me(live_server, client).status_code == 200
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if not statement.upper().startswith("BEGIN"):  # `began` records those
            seen.append(" ".join(statement.split()).upper())

    def began(conn) -> None:  # the write lock is taken outside the statement events
        seen.append("BEGIN" if conn.get_execution_options().get(SNAPSHOT) else "BEGIN IMMEDIATE")

    event.listen(inst.engine, "before_cursor_execute", record)
    event.listen(inst.engine, "begin", began)
    try:
        assert me(live_server, client).status_code == 200
    finally:
        event.remove(inst.engine, "before_cursor_execute", record)
        event.remove(inst.engine, "begin", began)
    begins = [i for i, s in enumerate(seen) if s.startswith("BEGIN")]
    assert [seen[i] for i in begins] == ["BEGIN", "BEGIN IMMEDIATE"], seen
    locked = seen[begins[1] :]
    assert any("OAUTH_TOKENS" in s for s in seen[: begins[1]]), seen  # read before the lock
    assert not any("OAUTH_TOKENS" in s or "FROM CUSTOMERS" in s for s in locked), locked
    assert sum(s.startswith("INSERT INTO ACCESS_LOG") for s in locked) == 1, locked
    assert entries(inst, supplier.id, "allowed") == 2
