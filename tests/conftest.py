"""Shared fixtures.

Every storage test runs on SQLite and on PostgreSQL: ``database_url`` is parametrised by
backend, session-scoped, so the schema is migrated once per backend and each test starts
from emptied tables (real commits, real locks; no mocks). PostgreSQL comes from
``INFOMEDIARY_TEST_DATABASE_URL``; without it those tests skip, naming the variable. With
``INFOMEDIARY_REQUIRE_SERVICES=1`` (CI) a missing service fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from sqlalchemy import MetaData, Table, text
from werkzeug.serving import make_server

from infomediary import create_app
from infomediary.audit.log import ensure_head
from infomediary.broker.members import ensure_broker_state
from infomediary.config import Settings, load_config
from infomediary.db import make_engine
from infomediary.instance import Instance, initialise, open_instance
from infomediary.mail import outbox_path
from infomediary.models import Base
from infomediary.web.security import settings as app_settings
from tests.outbox import TOKEN_FIELD_RE, newest_link

# Property tests check invariants, not speed: no per-example deadline (a busy 2-core machine
# would otherwise fail them at random); speed is for bench/.
settings.register_profile("infomediary", deadline=None)
settings.load_profile("infomediary")

PG_ENV = "INFOMEDIARY_TEST_DATABASE_URL"
FAST_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}
#: Tables that keep their rows from one test to the next, each for a reason: the keyring
#: lives for the whole session, so the fingerprints of its keys and the active KEK version
#: that ``initialise`` wrote stay true. Every other table of the models is emptied before
#: each test (``log_head`` and ``broker_state`` are then seeded again). ``alembic_version``
#: is no model's table, so it stays too.
KEPT_TABLES = {
    "key_fingerprints": "fingerprints of the session's keyring",
    "keyring_state": "the session's keyring's active KEK version",
}


def cleaned_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """The tables emptied between tests: all of ``metadata``'s but the kept ones, children
    before their parents (so SQLite's DELETEs never break a foreign key)."""
    return [t for t in reversed(metadata.sorted_tables) if t.name not in KEPT_TABLES]


def need_service(reason: str) -> None:
    if os.environ.get("INFOMEDIARY_REQUIRE_SERVICES"):
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
    url = os.environ.get(PG_ENV)
    if not url:
        need_service(
            f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
        raise AssertionError("unreachable")
    try:
        reset_postgres(url)
    except Exception as exc:
        need_service(f"PostgreSQL at {PG_ENV} is unreachable: {type(exc).__name__}")
    return url


@pytest.fixture(scope="session")
def base_config(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("instance")
    config = load_config(
        {"INSTANCE_PATH": str(folder), "DATABASE_URL": database_url, **FAST_ARGON2},
        environ={},
    )
    initialise(config)
    return config


def empty_outbox(settings: Settings) -> None:
    shutil.rmtree(outbox_path(settings), ignore_errors=True)


def empty_tables(inst: Instance) -> None:
    tables = cleaned_tables()
    with inst.sessions() as session, session.begin():
        if inst.engine.dialect.name == "postgresql":
            names = ", ".join(
                inst.engine.dialect.identifier_preparer.format_table(t) for t in tables
            )
            session.execute(text(f"TRUNCATE {names}"))
        else:
            for table in tables:
                session.execute(table.delete())
        ensure_head(session)
        ensure_broker_state(session)


@pytest.fixture
def inst(base_config: Settings) -> Iterator[Instance]:
    instance = open_instance(base_config)
    empty_tables(instance)
    empty_outbox(base_config)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def app(inst: Instance) -> Flask:
    flask_app = create_app(inst.settings, instance=inst)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_RE = re.compile(r'<form method="post" action="([^"]+)"')


def csrf_token_in(page: str, where: str = "the page") -> str:
    """The CSRF token in a page's form: the one way tests read it, whatever fetched the page
    (Flask's test client through :func:`csrf`, a ``requests`` browser, Playwright)."""
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {where}"
    return match.group(1)


def csrf(client: FlaskClient, path: str = "/login") -> str:
    return csrf_token_in(client.get(path).get_data(as_text=True), path)


class Auth:
    """The flaskr-style helper: sign up, log in and out through the real forms."""

    def __init__(self, client: FlaskClient):
        self.client = client

    def signup(
        self,
        email: str = "ada@example.org",
        password: str = "correct horse battery",
        name: str | None = "Ada Lovelace",
        *,
        verify: bool = True,
    ) -> Any:
        """Sign up and, unless ``verify=False``, follow the link the outbox got: the answer
        is then the verification's (a redirect to the profile, logged in)."""
        response = self.client.post(
            "/signup",
            data={
                "csrf_token": csrf(self.client, "/signup"),
                "email": email,
                "password": password,
                "name": name or "",
                "accept_notice": "yes",
            },
        )
        if not verify or response.status_code != 302:
            return response
        link = newest_link(app_settings(self.client.application), email, "/signup/verify")
        return self.follow(link, password) if link else response

    def follow(self, link: str, password: str = "correct horse battery") -> Any:
        """Open an e-mailed link's page and press its button (which POSTs the token)."""
        page = self.client.get(link)
        assert page.status_code == 200, page.status_code
        body = page.get_data(as_text=True)
        field = TOKEN_FIELD_RE.search(body)
        assert field, "no confirmation form on the linked page"
        forms = [m for m in FORM_RE.finditer(body) if m.start() < field.start()]
        token = csrf_token_in(body, link)
        assert forms
        data = {"csrf_token": token, "token": field.group(1)}
        if 'name="password"' in body[forms[-1].start() :]:
            data["password"] = password  # a verification link takes the sign-up password
        return self.client.post(forms[-1].group(1), data=data)

    def login(self, email: str = "ada@example.org", password: str = "correct horse battery") -> Any:
        return self.client.post(
            "/login",
            data={
                "csrf_token": csrf(self.client, "/login"),
                "email": email,
                "password": password,
            },
        )

    def logout(self) -> Any:
        return self.client.post("/logout", data={"csrf_token": csrf(self.client, "/dashboard")})


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


@pytest.fixture
def chromium_path() -> str:
    for candidate in (
        os.environ.get("CHROMIUM_PATH"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    need_service("browser tests need Debian's chromium package (apt-get install chromium)")
    raise AssertionError("unreachable")


def _buffered(app: Any) -> Any:
    """The app with each response read whole and its iterable closed before it is sent.

    Werkzeug's development server closes a response's iterable only after draining the
    request socket, and a browser that drops a connection early (Chromium cancelling a
    favicon on navigation) makes that drain raise first: the static file stays open until
    the garbage collector warns about it in whichever test runs then. Production servers
    (waitress, gunicorn) close it; the live server of the tests does so here."""

    def wsgi(environ: Any, start_response: Any) -> Any:
        iterable = app(environ, start_response)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return [body]

    return wsgi


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app over real HTTP on a free loopback port; shut down and closed at teardown."""
    server = make_server("127.0.0.1", 0, _buffered(app), threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server"
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()
