"""Two database roles on PostgreSQL: the owner migrates, the app's role only appends to the log.

The module works in databases of its own, named after ``INFOMEDIARY_TEST_DATABASE_URL``'s
(``<name>_roles``, ``<name>_roles_bare``), created and dropped as that URL's role, which is the
owner here; the app's role (``INFOMEDIARY_TEST_APP_ROLE``, default ``infomediary_app``, a plain
login role without a password, as ``.ci/run`` creates it) is created when missing. Everything
the app does runs as that role, through the app itself; only the checks of what the database
holds, and the grants a test adds by hand, run as the owner.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from infomediary import create_app
from infomediary.audit.log import Actor, LogEvent, append, verify
from infomediary.cli import main
from infomediary.config import ConfigError, Settings, load_config
from infomediary.db import make_engine, normalise_url
from infomediary.db_roles import ORDINARY, TABLE_PRIVILEGES, RoleError
from infomediary.instance import Instance, initialise, open_instance
from infomediary.models import AccessLogEntry, LogHead, LogNode
from tests.conftest import FAST_ARGON2, PG_ENV, Auth, csrf, need_service

ROLE = os.environ.get("INFOMEDIARY_TEST_APP_ROLE", "infomediary_app")
INSUFFICIENT_PRIVILEGE = "42501"


def _base_url() -> URL:
    raw = os.environ.get(PG_ENV)
    if not raw:
        need_service(
            f"the two-role tests need PostgreSQL at {PG_ENV} "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
        raise AssertionError("unreachable")
    return normalise_url(raw)


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


@contextmanager
def fresh_database(suffix: str) -> Iterator[URL]:
    """A new, empty database owned by the test URL's role, and the app's role; dropped after."""
    base = _base_url()
    name = f"{base.database}_{suffix}"
    server = make_engine(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote(server, name)} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {_quote(server, name)}"))
            known = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE})
            if known.first() is None:
                conn.execute(
                    text(
                        f"DO $$ BEGIN CREATE ROLE {_quote(server, ROLE)} LOGIN; "
                        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                    )
                )
    except DBAPIError as exc:
        server.dispose()
        need_service(f"PostgreSQL at {PG_ENV} cannot make a database or role: {type(exc).__name__}")
    try:
        yield base.set(database=name)
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote(server, name)} WITH (FORCE)"))
        server.dispose()


def as_role(url: URL, role: str = ROLE) -> str:
    return url.set(username=role, password=None).render_as_string(hide_password=False)


@dataclass(frozen=True)
class Roles:
    owner_url: str
    app_url: str
    #: What ``init`` is given: both URLs.
    init: Settings
    #: What the app is given: its own URL only.
    app: Settings


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    with fresh_database("roles") as url:
        folder = tmp_path_factory.mktemp("roles-instance")
        owner_url = url.render_as_string(hide_password=False)
        app_url = as_role(url)
        common = {"INSTANCE_PATH": str(folder), "DATABASE_URL": app_url, **FAST_ARGON2}
        init = load_config({**common, "ADMIN_DATABASE_URL": owner_url}, environ={})
        report = initialise(init)
        assert report.granted_role == ROLE
        yield Roles(owner_url, app_url, init, load_config(common, environ={}))


@pytest.fixture(scope="module")
def owner(roles: Roles) -> Iterator[Engine]:
    engine = make_engine(roles.owner_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def app_inst(roles: Roles) -> Iterator[Instance]:
    instance = open_instance(roles.app)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def app_client(app_inst: Instance) -> FlaskClient:
    flask_app = create_app(app_inst.settings, instance=app_inst)
    flask_app.config["TESTING"] = True
    return flask_app.test_client()


def held(owner: Engine, table: str, role: str = ROLE) -> set[str]:
    """The privileges ``role`` holds on ``table``, by any path, as PostgreSQL counts them."""
    with owner.connect() as conn:
        return {
            privilege
            for privilege in TABLE_PRIVILEGES
            if conn.execute(
                text("SELECT has_table_privilege(:r, CAST(:t AS text), :p)"),
                {"r": role, "t": table, "p": privilege},
            ).scalar_one()
        }


def log_size(owner: Engine) -> int:
    with owner.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(AccessLogEntry)).scalar_one())


def appended(inst: Instance, action: str = "verify") -> int:
    """One entry appended the way the app appends (its session, its keys), committed."""
    with inst.sessions() as session, session.begin():
        entry = append(session, LogEvent(Actor.system("roles-test"), action, customer_id=None))
        return int(entry.seq)


def test_init_grants_the_app_role_appending_only_on_the_log(roles: Roles, owner: Engine) -> None:
    assert held(owner, "access_log") == {"SELECT", "INSERT"}
    assert held(owner, "log_nodes") == {"SELECT", "INSERT"}
    assert held(owner, "log_checkpoints") == {"SELECT", "INSERT"}
    assert held(owner, "log_head") == {"SELECT", "UPDATE"}
    assert held(owner, "alembic_version") == {"SELECT"}
    for table in ("customers", "profiles", "web_sessions", "consent_grants", "jobs"):
        assert held(owner, table) == set(ORDINARY), table
    with owner.connect() as conn:
        owners = set(
            conn.execute(
                text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert ROLE not in owners  # the owner migrated: the app's role owns nothing


def test_every_init_takes_back_a_right_given_by_hand(roles: Roles, owner: Engine) -> None:
    with owner.begin() as conn:
        conn.execute(text(f"GRANT UPDATE, DELETE, TRUNCATE ON access_log TO {ROLE}"))
        conn.execute(text(f"GRANT TRUNCATE ON customers TO {ROLE}"))
    assert {"UPDATE", "DELETE", "TRUNCATE"} <= held(owner, "access_log")
    report = initialise(roles.init)
    assert report.granted_role == ROLE
    assert report.migrated_from == report.migrated_to
    assert held(owner, "access_log") == {"SELECT", "INSERT"}
    assert held(owner, "customers") == set(ORDINARY)


def test_init_refuses_an_app_role_that_may_still_change_the_log(
    roles: Roles, owner: Engine
) -> None:
    """A right through PUBLIC is not the app role's own grant: init cannot take it back, so
    it names it and stops."""
    with owner.begin() as conn:
        conn.execute(text("GRANT DELETE ON log_nodes TO PUBLIC"))
    try:
        with pytest.raises(RoleError, match=rf"the role {ROLE} may still DELETE on log_nodes"):
            initialise(roles.init)
    finally:
        with owner.begin() as conn:
            conn.execute(text("REVOKE DELETE ON log_nodes FROM PUBLIC"))
    assert held(owner, "log_nodes") == {"SELECT", "INSERT"}


def cli_env(
    monkeypatch: pytest.MonkeyPatch, folder: Path, app_url: str, owner_url: str = ""
) -> None:
    for name, value in FAST_ARGON2.items():
        monkeypatch.setenv(f"INFOMEDIARY_{name}", str(value))
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(folder))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", app_url)
    if owner_url:
        monkeypatch.setenv("INFOMEDIARY_ADMIN_DATABASE_URL", owner_url)
    else:
        monkeypatch.delenv("INFOMEDIARY_ADMIN_DATABASE_URL", raising=False)


def test_the_init_command_grants_with_both_urls(
    roles: Roles, owner: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_env(monkeypatch, roles.init.instance_path, roles.app_url, roles.owner_url)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"; role {ROLE} granted the app's rights")
    assert held(owner, "access_log") == {"SELECT", "INSERT"}


def test_init_names_an_app_role_that_does_not_exist(
    roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = as_role(normalise_url(roles.owner_url), "infomediary_no_such_role")
    cli_env(monkeypatch, roles.init.instance_path, missing, roles.owner_url)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [
        "error: the role infomediary_no_such_role of INFOMEDIARY_DATABASE_URL does not exist: "
        "create it (CREATE ROLE infomediary_no_such_role LOGIN) and run `infomediary init` again"
    ]


def test_the_app_runs_as_its_role(app_inst: Instance, app_client, owner: Engine) -> None:
    """Sign-up, e-mail verification, login session, profile read and update, each access
    logged: all as the app's role, given its own URL only."""
    assert app_inst.engine.url.username == ROLE
    before = log_size(owner)
    auth = Auth(app_client)
    assert auth.signup().status_code == 302
    page = app_client.get("/profile")
    assert page.status_code == 200
    assert 'value="Ada Lovelace"' in page.get_data(as_text=True)
    response = app_client.post(
        "/profile",
        data={
            "csrf_token": csrf(app_client, "/profile"),
            "name": "Ada L",
            "postcode": "3000",
            "birth_year": "1990",
            "household_size": "2",
            "interests": ["books"],
            "pref_contact_channel": "post",
            "pref_offer_frequency": "weekly",
            "pref_language": "it",
        },
    )
    assert response.status_code == 302
    assert 'value="3000"' in app_client.get("/profile").get_data(as_text=True)
    assert auth.logout().status_code == 302
    with app_inst.sessions() as session:
        actions = set(
            session.execute(
                select(AccessLogEntry.action).where(AccessLogEntry.seq >= before)
            ).scalars()
        )
        assert {"create", "update"} <= actions
        assert verify(session).ok
    assert log_size(owner) > before


def test_audit_verify_runs_as_the_app_role(
    roles: Roles, app_inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended(app_inst)
    cli_env(monkeypatch, roles.app.instance_path, roles.app_url)
    result = CliRunner().invoke(main, ["audit", "verify", "--json"])
    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output
    with app_inst.sessions() as session:
        size = session.execute(select(LogHead.size)).scalar_one()
    assert f'"size": {size}' in result.output


def test_an_app_role_without_its_rights_is_told_in_one_line(
    roles: Roles, owner: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with owner.begin() as conn:
        conn.execute(text(f"REVOKE ALL ON alembic_version FROM {ROLE}"))
    try:
        cli_env(monkeypatch, roles.app.instance_path, roles.app_url)
        result = CliRunner().invoke(main, ["audit", "verify"])
    finally:
        initialise(roles.init)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.output.strip().splitlines() == [
        "error: permission denied for table alembic_version: run `infomediary init` with "
        f"INFOMEDIARY_ADMIN_DATABASE_URL set to grant the role {ROLE} what the app needs"
    ]
    assert held(owner, "alembic_version") == {"SELECT"}


REFUSED = [
    "UPDATE access_log SET reason = 'nothing happened'",
    "UPDATE access_log SET customer_id = NULL",
    "DELETE FROM access_log",
    "TRUNCATE access_log",
    "UPDATE log_nodes SET hash = hash",
    "DELETE FROM log_nodes",
    "TRUNCATE log_nodes",
    "UPDATE log_checkpoints SET note = ''",
    "DELETE FROM log_checkpoints",
    "TRUNCATE log_checkpoints",
    "DELETE FROM log_head",
    "TRUNCATE log_head",
    "INSERT INTO log_head (id, size, last_hash) VALUES (2, 0, '\\x00')",
    "UPDATE alembic_version SET version_num = '0001'",
    "DROP TABLE access_log",
    "ALTER TABLE access_log DROP COLUMN reason",
    "CREATE TABLE forged_log (seq bigint)",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_app_role_cannot_change_the_log(
    statement: str, app_inst: Instance, owner: Engine
) -> None:
    seq = appended(app_inst)
    with owner.connect() as conn:
        nodes = conn.execute(select(func.count()).select_from(LogNode)).scalar_one()
    with app_inst.engine.connect() as conn, pytest.raises(DBAPIError) as refused:
        conn.execute(text(statement))
    assert getattr(refused.value.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE, refused.value
    assert log_size(owner) == seq + 1
    with owner.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LogNode)).scalar_one() == nodes
    with app_inst.sessions() as session:
        assert verify(session).ok


def test_the_app_role_appends_and_moves_the_head(app_inst: Instance, owner: Engine) -> None:
    first = appended(app_inst, "read")
    second = appended(app_inst, "read")
    assert second == first + 1
    with owner.connect() as conn:
        size = conn.execute(select(LogHead.size)).scalar_one()
    assert size == second + 1
    assert log_size(owner) == size
    with app_inst.sessions() as session:
        assert verify(session).ok


def test_init_without_the_owners_url_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_database("roles_bare") as url:
        server = make_engine(url.render_as_string(hide_password=False))
        try:
            with server.begin() as conn:  # as before PostgreSQL 15: nobody else may create
                conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        finally:
            server.dispose()
        cli_env(monkeypatch, tmp_path / "bare", as_role(url))
        result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: permission denied for schema public (as role {ROLE}): ")
    assert "INFOMEDIARY_ADMIN_DATABASE_URL" in lines[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"DATABASE_URL": "", "ADMIN_DATABASE_URL": "postgresql://owner@db/x"},
            "INFOMEDIARY_ADMIN_DATABASE_URL is for PostgreSQL",
        ),
        (
            {"DATABASE_URL": "postgresql://app@db/x", "ADMIN_DATABASE_URL": "sqlite:///x.db"},
            "INFOMEDIARY_ADMIN_DATABASE_URL is for PostgreSQL",
        ),
        (
            {"DATABASE_URL": "postgresql://db/x", "ADMIN_DATABASE_URL": "postgresql://owner@db/x"},
            "INFOMEDIARY_DATABASE_URL must name the app's role",
        ),
        (
            {
                "DATABASE_URL": "postgresql://app@db/x",
                "ADMIN_DATABASE_URL": "postgresql://app@db/x",
            },
            "INFOMEDIARY_ADMIN_DATABASE_URL must name another role",
        ),
        (
            {"DATABASE_URL": "postgresql://app@db/x", "ADMIN_DATABASE_URL": "mysql://o@db/x"},
            "INFOMEDIARY_ADMIN_DATABASE_URL names mysql",
        ),
    ],
)
def test_the_owners_url_is_checked_at_start(
    overrides: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"INSTANCE_PATH": str(tmp_path), **overrides}, environ={})
