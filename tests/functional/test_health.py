"""Liveness and readiness: what each check answers when its dependency is there, behind, foreign,
unreachable or hanging. Real databases, a real Redis, real keyrings; no mocks."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Engine, func, select, text

from infomediary import create_app
from infomediary.crypto.keyring import FileKeyring
from infomediary.db import make_engine, make_sessionmaker
from infomediary.instance import Instance, alembic_config
from infomediary.models import AccessLogEntry
from tests.conftest import Auth, need_service

REDIS_ENV = "INFOMEDIARY_TEST_REDIS_URL"
#: Nothing listens here: connections are refused at once.
CLOSED_REDIS = "redis://:hunter2-secret@127.0.0.1:1/0"
PROBLEM = "application/problem+json"


def test_healthz_is_alive(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_ready_when_every_check_passes(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "schema": "ok", "keyring": "ok"},
    }


def test_probes_open_no_session_set_no_cookie_log_nothing_and_are_get_only(
    client, auth: Auth, inst: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    auth.signup()  # a logged-in browser: its cookie must not reach the probes
    assert client.get_cookie("infomediary_session") is not None
    with inst.sessions() as session:
        entries = session.execute(select(func.count()).select_from(AccessLogEntry)).scalar_one()
    caplog.set_level(logging.INFO, logger="infomediary.access")
    caplog.clear()
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Set-Cookie" not in response.headers, path
        assert "Cookie" not in response.headers.get("Vary", ""), path
    assert not [r for r in caplog.records if r.name == "infomediary.access"]
    for path in ("/healthz", "/readyz"):
        refused = client.post(path)
        assert refused.status_code == 405, path  # GET only: no form, so no CSRF token
        assert "Set-Cookie" not in refused.headers, path
    with inst.sessions() as session:
        after = session.execute(select(func.count()).select_from(AccessLogEntry)).scalar_one()
    assert after == entries


def _problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    assert body["type"].endswith("not_ready")
    assert (body["title"], body["status"], body["code"]) == ("Not ready", 503, "not_ready")
    return body


def variant(inst: Instance, *, engine: Engine | None = None, keyring: Any = None) -> Instance:
    """The test's instance with another database or keyring (both still its own objects)."""
    return Instance(
        settings=inst.settings,
        engine=engine or inst.engine,
        sessions=make_sessionmaker(engine) if engine is not None else inst.sessions,
        keyring=keyring or inst.keyring,
        vault=inst.vault,
        hasher=inst.hasher,
        leases=inst.leases,
    )


def app_of(instance: Instance, **settings: Any) -> Flask:
    app = create_app(replace(instance.settings, **settings), instance=instance)
    app.config["TESTING"] = True
    return app


def test_a_schema_behind_head_is_not_ready(inst: Instance) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    with inst.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": previous})
    try:
        body = _problem(app_of(inst).test_client().get("/readyz"))
    finally:
        with inst.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["schema"] == (
        f"not at head: the database is at {previous}, this version needs {head}"
    )
    assert "schema" in body["detail"]


@pytest.fixture
def empty_database(backend: str, database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A database that answers but holds no schema: a new SQLite file, or on PostgreSQL the
    test database seen through a schema that does not exist."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    else:
        engine = make_engine(database_url, connect_args={"options": "-csearch_path=no_such_one"})
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_database_without_migrations_is_not_ready(inst: Instance, empty_database: Engine) -> None:
    body = _problem(app_of(variant(inst, engine=empty_database)).test_client().get("/readyz"))
    checks = body["checks"]
    assert checks["database"] == "ok"
    assert checks["schema"] == "missing: the database has no schema"
    assert checks["keyring"].startswith("failed: ")  # its tables are not there


def test_another_keyring_is_not_ready(inst: Instance, tmp_path: Path) -> None:
    other = FileKeyring.create(tmp_path / "keyring.json")
    body = _problem(app_of(variant(inst, keyring=other)).test_client().get("/readyz"))
    assert body["checks"] == {"database": "ok", "schema": "ok", "keyring": "mismatch: KeyringError"}
    assert body["detail"] == "Not ready: keyring: mismatch: KeyringError."


@pytest.fixture
def unreachable_database(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A database nobody can reach: a closed port, or a SQLite file in a folder that is not."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite3'}")
    else:
        engine = make_engine("postgresql://postgres:pw-secret@127.0.0.1:1/nowhere")
    try:
        yield engine
    finally:
        engine.dispose()


def test_an_unreachable_database_is_not_ready(inst: Instance, unreachable_database: Engine) -> None:
    app = app_of(variant(inst, engine=unreachable_database))
    response = app.test_client().get("/readyz")
    body = _problem(response)
    assert body["checks"] == {
        "database": "unreachable: OperationalError",
        "schema": "not checked: the database is unreachable",
        "keyring": "not checked: the database is unreachable",
    }
    assert "pw-secret" not in response.get_data(as_text=True)


@pytest.fixture
def hanging_database(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A database that never answers while the fixture lasts: on PostgreSQL a port that
    accepts connections and says nothing; on SQLite a file another connection holds locked."""
    if backend == "sqlite":
        path = tmp_path / "locked.sqlite3"
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO t VALUES (1)")
        engine = make_engine(f"sqlite:///{path}")
        try:
            yield engine
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            engine.dispose()
        return
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{port}/nowhere")
    try:
        yield engine
    finally:
        listener.close()  # the waiting connection is reset: the check's thread ends
        engine.dispose()


def test_a_hanging_database_answers_503_within_the_timeout(
    inst: Instance, hanging_database: Engine
) -> None:
    app = app_of(variant(inst, engine=hanging_database))
    client = app.test_client()
    first = _problem(client.get("/readyz"))
    assert first["checks"] == {"database": "timeout", "schema": "timeout", "keyring": "timeout"}
    # the check still running is not started again: the next probe answers at once
    again = _problem(client.get("/readyz"))
    assert again["checks"]["database"] == "timeout"
    assert [t.name for t in threading.enumerate()].count("readyz-storage") == 1


@pytest.fixture(autouse=True)
def _no_check_left() -> Iterator[None]:
    """Every check a test started has ended before the next test (set up first, so it is
    torn down after the fixtures that release a hanging database)."""
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("readyz-"):
            thread.join(30)
            assert not thread.is_alive(), "a readiness check is still running"


@pytest.mark.parametrize("setting", ["redis_url", "ratelimit_storage_uri"])
def test_an_unreachable_redis_is_not_ready(inst: Instance, setting: str) -> None:
    response = app_of(inst, **{setting: CLOSED_REDIS}).test_client().get("/readyz")
    body = _problem(response)
    assert body["checks"] == {
        "database": "ok",
        "schema": "ok",
        "keyring": "ok",
        "redis": "unreachable: ConnectionError",
    }
    assert body["detail"] == "Not ready: redis: unreachable: ConnectionError."
    text_ = response.get_data(as_text=True)
    assert "hunter2" not in text_
    assert "127.0.0.1:1" not in text_


def test_each_redis_in_use_is_named_when_only_one_fails(inst: Instance, redis_url: str) -> None:
    app = app_of(inst, redis_url=redis_url, ratelimit_storage_uri=CLOSED_REDIS)
    body = _problem(app.test_client().get("/readyz"))
    assert body["checks"]["redis"] == "unreachable: ConnectionError (rate limits)"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV, "")
    if not url:
        need_service(f"Redis tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/15)")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need_service(f"Redis at {REDIS_ENV} is unreachable: {type(exc).__name__}")
    finally:
        client.close()
    return url


@pytest.mark.parametrize("setting", ["redis_url", "ratelimit_storage_uri"])
def test_a_reachable_redis_is_checked(inst: Instance, redis_url: str, setting: str) -> None:
    response = app_of(inst, **{setting: redis_url}).test_client().get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["checks"] == {
        "database": "ok",
        "schema": "ok",
        "keyring": "ok",
        "redis": "ok",
    }
