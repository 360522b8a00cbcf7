"""A dependency that goes away: the app refuses with 503, in each caller's format, and resumes
by itself when it returns.

- The rate-limit store unreachable (``redis://127.0.0.1:1``, a port nobody listens on): a login,
  a sign-up, a password-reset request and the token, revocation and introspection endpoints
  answer 503, never a 500 and never unlimited (problem+json ``rate_limit_unavailable``, RFC
  6749's ``temporarily_unavailable`` at the OAuth endpoints, a page for people); pages without
  a limit keep working. On both backends: the database is not what fails here.
- PostgreSQL behind a TCP proxy the test cuts: ``/api/v1/me`` with a valid token answers 503
  problem+json ``database_unavailable`` with ``Retry-After`` (nothing of the URL or the
  driver's message), so does a person's page; once the proxy forwards again, the next
  request succeeds through the same app (the pool replaced its dead connections).
- With Redis as the job transport and Redis away, work that enqueues a job still commits:
  the row is the job, and the worker's sweep runs it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from infomediary import create_app
from infomediary.db import is_unavailable, make_engine
from infomediary.instance import Instance, open_instance
from infomediary.models import Job
from infomediary.services import jobs
from infomediary.statuses import JobStatus
from tests.conftest import csrf
from tests.factories import make_customer
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier
from tests.ops.tcp_proxy import TcpProxy

CLOSED = "redis://127.0.0.1:1"
EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROBLEM = "application/problem+json"
KIND = "test.outage.job"
ran: list[str] = []


def _handler(session: Any, inst: Instance, run: jobs.JobRun) -> None:
    ran.append(run.id)


def _store_away(inst: Instance) -> Flask:
    app = create_app(replace(inst.settings, ratelimit_storage_uri=CLOSED), instance=inst)
    app.config["TESTING"] = True
    return app


def _basic(client_id: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _assert_oauth_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable"
    assert set(body) == {"error", "error_description"}
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["Cache-Control"] == "no-store"


def test_login_and_signup_refuse_with_503_when_the_limit_store_is_away(inst: Instance) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    client = _store_away(inst).test_client()
    token = csrf(client)  # GET /login has no limit: the page still opens
    login = client.post("/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert login.status_code == 503
    assert login.mimetype == "text/html"
    page = login.get_data(as_text=True)
    assert "briefly unavailable" in page
    assert "rate_limit_unavailable" in page
    assert "127.0.0.1:1" not in page
    assert login.headers["Retry-After"].isdigit()
    german = client.post(
        "/login",
        data={"csrf_token": token, "email": EMAIL, "password": PASSWORD},
        headers={"Accept-Language": "de"},
    )
    assert german.status_code == 503
    assert "Der Dienst ist kurz nicht erreichbar" in german.get_data(as_text=True)
    for path, data in (
        ("/signup", {"email": "new@example.org", "password": PASSWORD, "name": "N"}),
        ("/password/reset", {"email": EMAIL}),
    ):
        refused = client.post(path, data={"csrf_token": csrf(client, path), **data})
        assert refused.status_code == 503, (path, refused.status_code)
    as_json = client.post(
        "/login",
        data={"csrf_token": token, "email": EMAIL, "password": PASSWORD},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 503
    assert as_json.mimetype == PROBLEM
    problem = as_json.get_json()
    assert problem["code"] == "rate_limit_unavailable"
    assert problem["title"] == "Service unavailable"
    assert problem["status"] == 503
    assert "127.0.0.1" not in json.dumps(problem)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_oauth_endpoints_refuse_with_temporarily_unavailable(inst: Instance, path: str) -> None:
    creds = make_supplier(inst, scopes=("audience:count",), redirect_uris=())
    client = _store_away(inst).test_client()
    data = (
        {"grant_type": "client_credentials", "scope": "audience:count"}
        if path == "/oauth/token"
        else {"token": "x" * 43}
    )
    response = client.post(path, data=data, headers=_basic(creds.client_id, creds.client_secret))
    _assert_oauth_unavailable(response)


def test_the_api_fails_closed_and_the_logs_name_only_the_class(
    inst: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    client = _store_away(inst).test_client()
    with caplog.at_level(logging.WARNING):
        response = client.get("/api/v1/me", headers={"Authorization": "Bearer " + "x" * 43})
    assert response.status_code == 503
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "rate_limit_unavailable"
    lines = [r.getMessage() for r in caplog.records if "rate_limit_unavailable" in r.getMessage()]
    assert lines == ["rate_limit_unavailable: StorageError on GET /api/v1/me"]
    assert "127.0.0.1:1" not in caplog.text


def test_the_same_app_works_with_a_store_that_answers(inst: Instance) -> None:
    # the control: the memory store of the test settings lets the same login through
    make_customer(inst, email=EMAIL, password=PASSWORD)
    app = create_app(inst.settings, instance=inst)
    app.config["TESTING"] = True
    client = app.test_client()
    login = client.post(
        "/login", data={"csrf_token": csrf(client), "email": EMAIL, "password": PASSWORD}
    )
    assert login.status_code == 302


# -- PostgreSQL behind a proxy that the test cuts ------------------------------------------------


@pytest.fixture
def proxy(backend: str, inst: Instance) -> Iterator[TcpProxy]:
    if backend != "postgresql":
        pytest.skip("SQLite has no server to take away")
    url = inst.engine.url
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as running:
        yield running


@pytest.fixture
def proxied(inst: Instance, proxy: TcpProxy) -> Iterator[Instance]:
    url = inst.engine.url.set(port=proxy.port)
    through = open_instance(
        replace(inst.settings, database_url=url.render_as_string(hide_password=False))
    )
    try:
        yield through
    finally:
        through.close()


@pytest.fixture
def bearer(live_server: str, inst: Instance) -> dict[str, str]:
    """A customer's real access token, from the consent screen and the token endpoint."""
    make_customer(inst, email=EMAIL, password=PASSWORD, profile={"name": "Ada Lovelace"})
    supplier = make_supplier(inst, name="Acme Books")
    oauth = client_session(live_server, supplier, "profile.identity:read")
    result = consent(live_server, browser_login(live_server, EMAIL, PASSWORD), oauth)
    token = oauth.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    oauth.close()
    return {"Authorization": f"Bearer {token['access_token']}"}


def _app_on(inst: Instance) -> FlaskClient:
    app = create_app(inst.settings, instance=inst)
    app.config["TESTING"] = True
    # As in production: an error raised before any view (the login session's read) goes to
    # the error handlers instead of out of the test client.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app.test_client()


def test_a_cut_database_answers_503_fast_and_service_resumes_without_restart(
    proxied: Instance, proxy: TcpProxy, bearer: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    client = _app_on(proxied)
    before = client.get("/api/v1/me", headers=bearer)
    assert before.status_code == 200, before.get_data(as_text=True)
    assert before.get_json()["identity"]["name"] == "Ada Lovelace"

    proxy.cut()
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        down = client.get("/api/v1/me", headers=bearer)
        took = time.monotonic() - started
    assert down.status_code == 503, down.get_data(as_text=True)
    assert down.mimetype == PROBLEM
    problem = down.get_json()
    assert problem["code"] == "database_unavailable"
    assert problem["title"] == "Service unavailable"
    assert problem["type"].endswith("/database_unavailable")
    assert down.headers["Retry-After"].isdigit()
    text = down.get_data(as_text=True)
    assert str(proxy.port) not in text
    assert "postgres" not in text.lower()
    assert took < 30, took  # a bound against hanging, not a measure of speed
    logged = [r.getMessage() for r in caplog.records if "database_unavailable" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].startswith("database_unavailable: OperationalError on GET")
    assert str(proxy.port) not in caplog.text

    token = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic("a", "b")
    )
    _assert_oauth_unavailable(token)

    proxy.restore()
    after = client.get("/api/v1/me", headers=bearer)
    assert after.status_code == 200, after.get_data(as_text=True)
    assert after.get_json()["identity"]["name"] == "Ada Lovelace"


def test_a_person_sees_a_page_when_the_database_is_away(
    live_server: str, proxied: Instance, proxy: TcpProxy
) -> None:
    make_customer(proxied, email=EMAIL, password=PASSWORD)
    client = _app_on(proxied)
    login = client.post(
        "/login", data={"csrf_token": csrf(client), "email": EMAIL, "password": PASSWORD}
    )
    assert login.status_code == 302
    proxy.cut()
    # the login session's row is read before any view runs: still a page, still a 503
    page = client.get("/dashboard")
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    assert "briefly unavailable" in page.get_data(as_text=True)
    assert "database_unavailable" in page.get_data(as_text=True)
    proxy.restore()
    assert client.get("/dashboard").status_code == 200


# -- jobs with Redis away ------------------------------------------------------------------------


@pytest.fixture
def kind() -> Iterator[None]:
    ran.clear()
    jobs.register(KIND, _handler, max_attempts=2)
    yield
    ran.clear()


def test_enqueueing_with_redis_away_commits_and_the_sweep_runs_the_job(
    inst: Instance, kind: None, caplog: pytest.LogCaptureFixture
) -> None:
    transport = jobs.use_redis(inst, CLOSED + "/0")
    assert transport is not None
    with caplog.at_level(logging.WARNING), inst.sessions() as session:
        started = time.monotonic()
        job_id = jobs.enqueue(session, KIND, {"n": 1})
        session.commit()  # the push after the commit fails; the commit stands
        assert time.monotonic() - started < 30
    assert "not pushed to Redis" in caplog.text
    assert "127.0.0.1:1/0" in caplog.text  # the redacted URL, no password in it anyway
    with inst.sessions() as session:
        assert session.get_one(Job, job_id).status == JobStatus.QUEUED
    assert jobs.sweep(inst) == 1
    assert ran == [job_id]
    with inst.sessions() as session:
        assert session.get_one(Job, job_id).status == JobStatus.DONE


# -- what counts as "unavailable" ----------------------------------------------------------------


def test_only_a_lost_connection_counts_as_the_database_being_unavailable(inst: Instance) -> None:
    def raised(engine: Any, *statements: str) -> SQLAlchemyError:
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        except SQLAlchemyError as exc:
            return exc
        raise AssertionError(f"no error from {statements}")

    # a statement the database refuses is not an outage, on either backend
    assert not is_unavailable(raised(inst.engine, "SELECT * FROM no_such_table"))
    if inst.engine.dialect.name != "postgresql":
        return
    cancelled = raised(inst.engine, "SET statement_timeout = 1", "SELECT pg_sleep(1)")
    assert type(cancelled).__name__ == "OperationalError"  # QueryCanceled, SQLSTATE 57014
    assert not is_unavailable(cancelled)
    nobody = make_engine(inst.engine.url.set(port=1).render_as_string(hide_password=False))
    try:
        assert is_unavailable(raised(nobody, "SELECT 1"))
    finally:
        nobody.dispose()
