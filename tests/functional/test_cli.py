"""The ``infomediary`` command end to end, against a fresh instance per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from infomediary.cli import main
from infomediary.instance import open_instance
from infomediary.models import Customer, DataKey
from infomediary.services import profiles
from tests.conftest import empty_tables
from tests.log_reasons import shown


@pytest.fixture
def env(base_config, inst, monkeypatch) -> dict[str, str]:
    """Point the CLI at the test instance (emptied by ``inst``)."""
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_init_is_idempotent(env) -> None:
    code, out = run("init", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["created_keyring"] is False
    assert data["schema_from"] == data["schema_to"]


def test_init_creates_a_fresh_sqlite_instance(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(tmp_path / "fresh"))
    monkeypatch.delenv("INFOMEDIARY_DATABASE_URL", raising=False)
    code, out = run("init", "--json")
    assert code == 0, out
    assert json.loads(out)["created_keyring"] is True
    keyring = tmp_path / "fresh" / "keyring.json"
    assert keyring.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "fresh" / "infomediary.sqlite3").stat().st_mode & 0o077 == 0
    assert run("init")[0] == 0


def test_customers_create(env, inst) -> None:
    code, out = run(
        "customers",
        "create",
        "--email",
        "cli@example.org",
        "--password",
        "a long enough password",
        "--name",
        "Cli User",
        "--json",
    )
    assert code == 0, out
    customer_id = json.loads(out)["id"]
    with inst.sessions() as session:
        assert session.get(Customer, customer_id) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email", "--password", "a long enough password"], "email:"),
        (["--email", "x@example.org", "--password", "short"], "password:"),
    ],
)
def test_customers_create_rejects_bad_input(env, inst, args, message) -> None:
    code, out = run("customers", "create", *args)
    assert code == 1
    assert message in out
    assert "Traceback" not in out
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(Customer)).scalar_one() == 0


def test_duplicate_customer_is_a_clear_error(env) -> None:
    args = [
        "customers",
        "create",
        "--email",
        "dup@example.org",
        "--password",
        "a long enough password",
    ]
    assert run(*args)[0] == 0
    code, out = run(*args)
    assert code == 1
    assert "already exists" in out


def test_bad_arguments_exit_non_zero(env) -> None:
    assert run("demo", "--customers", "-5")[0] == 2
    assert run("serve", "--port", "99999")[0] == 2
    assert run("no-such-command")[0] == 2


def test_demo_seeds_logins_and_tops_up_synthetic_customers(env, inst) -> None:
    code, out = run("demo", "--customers", "30", "--json")
    assert code == 0, out
    data = json.loads(out.splitlines()[-1])
    assert data["synthetic_customers"] == 30
    assert {login["email"] for login in data["logins"]} == {"alice@example.com", "bob@example.com"}
    assert data["supplier"]["client_id"].startswith("sup_")  # created on the first run only
    code, out = run("demo", "--customers", "45", "--json")
    again = json.loads(out.splitlines()[-1])
    assert again["synthetic_customers"] == 45
    assert again["supplier"] is None
    with inst.sessions() as session:
        synthetic = (
            session.execute(select(Customer).where(Customer.synthetic.is_(True))).scalars().all()
        )
        assert len(synthetic) == 45
        assert all(c.password_hash is None for c in synthetic)
        # the demo logins hold a few purchases, and the interests they suggest
        from infomediary.services import purchases
        from infomediary.services.customer_keys import customer_key
        from infomediary.services.derived_record import kept, load

        alice = purchases.customer_by_email(session, inst, "alice@example.com")
        key = customer_key(session, inst, alice)
        assert len(purchases.open_purchases(session, inst, key)) == 5
        assert {"books", "cooking", "gardening"} <= set(kept(load(session, inst, key)))
    assert run("audit", "verify")[0] == 0


def test_synthetic_population_is_deterministic(env, inst) -> None:
    from infomediary.audit.log import Actor
    from infomediary.services import Context

    run("demo", "--customers", "3")
    with inst.sessions() as session:
        first = sorted(
            session.execute(select(Customer.id).where(Customer.synthetic.is_(True))).scalars()
        )
        first_profiles = [
            profiles.read_profile(session, inst, c, Context(Actor.system("t"))) for c in first
        ]
    empty_tables(inst)
    run("demo", "--customers", "3")
    with inst.sessions() as session:
        again = sorted(
            session.execute(select(Customer.id).where(Customer.synthetic.is_(True))).scalars()
        )
        profiles_again = [
            profiles.read_profile(session, inst, c, Context(Actor.system("t"))) for c in again
        ]
    assert first == again
    assert first_profiles == profiles_again
    assert len({p["name"] for p in first_profiles}) >= 2


def test_keys_rotate_is_resumable_and_prune_removes_old_kek(env, inst, base_config) -> None:
    run("demo", "--customers", "25")
    ring_path = base_config.keyring_path
    before = json.loads(ring_path.read_text())["active_kek"]
    # simulate an interrupted rotation: a new KEK is active, few keys re-wrapped
    inst.keyring.add_kek()
    new = inst.keyring.active_kek_version
    with inst.sessions() as session:
        rows = session.execute(select(DataKey).limit(5)).scalars().all()
        for row in rows:
            row.wrapped_key = inst.vault.rewrap(row.wrapped_key, row.kek_version, new)
            row.kek_version = new
        session.commit()
    inst.close()  # the interrupted process is gone, and its lease with it
    code, out = run("keys", "rotate", "--batch", "7", "--json")
    assert code == 0, out
    data = json.loads(out.splitlines()[-1])
    assert data["active_kek"] == new
    assert data["rewrapped"] == 27 - 5
    assert before in data["removable"]
    code, out = run("keys", "prune", "--json")
    assert code == 0
    assert before in json.loads(out.splitlines()[-1])["removed"]
    assert str(before) not in json.loads(ring_path.read_text())["keks"]
    # everything still decrypts with the pruned keyring
    reopened = open_instance(base_config)
    try:
        from infomediary.audit.log import Actor
        from infomediary.services import Context

        with reopened.sessions() as session:
            ids = session.execute(select(Customer.id)).scalars().all()
            for customer_id in ids:
                assert profiles.read_profile(
                    session, reopened, customer_id, Context(Actor.system("t"))
                )["email"]
    finally:
        reopened.close()
    # a second rotate starts a new KEK version
    code, out = run("keys", "rotate", "--json")
    assert json.loads(out.splitlines()[-1])["active_kek"] == new + 1


def test_commands_on_uninitialised_instance_say_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("INFOMEDIARY_DATABASE_URL", raising=False)
    code, out = run("audit", "verify")
    assert code == 1
    assert "infomediary init" in out


def test_production_refuses_weak_secret(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("INFOMEDIARY_PRODUCTION", "true")
    monkeypatch.setenv("INFOMEDIARY_SECRET_KEY", "short")
    code, out = run("audit", "verify")
    assert code == 1
    assert "INFOMEDIARY_SECRET_KEY" in out


def test_suppliers_create_list_suspend(env, inst) -> None:
    code, out = run(
        "suppliers",
        "create",
        "--name",
        "Acme",
        "--redirect-uri",
        "https://acme.example/cb",
        "--scope",
        "profile.identity:read",
        "--scope",
        "audience:count",
        "--purpose",
        "marketing",
        "--json",
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["client_secret"]
    from infomediary.models import Supplier
    from infomediary.services.suppliers import secret_hash

    with inst.sessions() as session:
        row = session.get(Supplier, created["id"])
        assert row.client_secret_hash == secret_hash(created["client_secret"])
        assert created["client_secret"].encode() not in row.client_secret_hash
    code, out = run("suppliers", "list", "--json")
    assert created["client_secret"] not in out
    assert json.loads(out)["suppliers"][0]["status"] == "active"
    code, out = run("suppliers", "suspend", created["client_id"], "--json")
    assert code == 0
    assert json.loads(out)["suspended"] == created["client_id"]
    code, out = run("suppliers", "suspend", "no-such-supplier")
    assert code == 1
    assert "No supplier" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--redirect-uri",
                "http://evil.example/cb",
                "--scope",
                "profile.identity:read",
                "--purpose",
                "marketing",
            ],
            "https",
        ),
        (
            [
                "--redirect-uri",
                "https://a.example/cb",
                "--scope",
                "profile.everything:read",
                "--purpose",
                "marketing",
            ],
            "Unknown scope",
        ),
        (
            [
                "--redirect-uri",
                "https://a.example/cb",
                "--scope",
                "profile.identity:read",
                "--purpose",
                "surveillance",
            ],
            "Unknown purpose",
        ),
    ],
)
def test_suppliers_create_rejects_bad_input(env, inst, args, message) -> None:
    code, out = run("suppliers", "create", "--name", "Bad", *args)
    assert code == 1
    assert message in out
    from infomediary.models import Supplier

    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(Supplier)).scalar_one() == 0


def _create(name: str, *extra: str) -> dict[str, Any]:
    code, out = run(
        "suppliers",
        "create",
        "--name",
        name,
        "--redirect-uri",
        "https://shop.example/cb",
        "--scope",
        "profile.identity:read",
        "--purpose",
        "marketing",
        *extra,
        "--json",
    )
    assert code == 0, out
    created: dict[str, Any] = json.loads(out)
    return created


def _reasons(inst) -> list[str]:
    from infomediary.models import AccessLogEntry

    with inst.sessions() as session:
        rows = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars()
        return [shown(row) for row in rows]


def test_suppliers_approve_broker_and_revoke_broker(env, inst) -> None:
    acme = _create("Acme")
    beta = _create("Beta")
    assert acme["organisation_id"] != beta["organisation_id"]  # one of its own each
    assert acme["scope"] == "profile.identity:read"
    refused = {
        ("no-such-supplier", "--sector", "retail"): "No supplier with id, client_id or name",
        ("Acme", "--sector", "crypto"): (
            "sector: Unknown sector 'crypto'; choose one of: retail, travel, finance, health, "
            "advertising, media, other."
        ),
        ("Acme", "--sector", "retail", "--organisation", "Nobody"): "No organisation",
        ("Acme", "--sector", "retail", "--scope", "purchases:read"): "broker's scopes",
    }
    for args, message in refused.items():
        code, out = run("suppliers", "approve-broker", *args)
        assert code == 1, args
        assert message in out
        assert out.count("\n") == 1, out  # one line
        assert out.startswith("error: "), out
    code, out = run("suppliers", "list", "--json")
    assert [s["broker_approved"] for s in json.loads(out)["suppliers"]] == [False, False]

    code, out = run(
        "suppliers",
        "approve-broker",
        "Acme",
        "--sector",
        "finance",
        "--organisation",
        "Beta",
        "--json",
    )
    assert code == 0, out
    approved = json.loads(out)
    assert approved["scope"] == "audience:count offers:send profile.identity:read"
    assert (approved["sector"], approved["organisation"]) == ("finance", "Beta")
    assert approved["organisation_id"] == beta["organisation_id"]
    code, out = run("suppliers", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out)["suppliers"]}
    assert listed["Acme"]["organisation_id"] == beta["organisation_id"]
    assert listed["Acme"]["organisation"] == "Beta"
    assert (listed["Acme"]["sector"], listed["Acme"]["broker_approved"]) == ("finance", True)
    assert listed["Beta"]["broker_approved"] is False
    code, out = run("suppliers", "list")
    assert "organisation Beta  sector finance" in out.splitlines()[0]
    assert (
        f"supplier {acme['id']} approved for the broker: scope audience:count offers:send, "
        f"sector finance, organisation {beta['organisation_id']}"
    ) in _reasons(inst)

    code, out = run("suppliers", "revoke-broker", acme["client_id"], "--json")
    assert code == 0, out
    assert json.loads(out) == {
        "id": acme["id"],
        "client_id": acme["client_id"],
        "scope": "profile.identity:read",
        "tokens_revoked": 0,
    }
    assert f"supplier {acme['id']} no longer approved for the broker; 0 tokens revoked" in (
        _reasons(inst)
    )
    code, out = run("suppliers", "revoke-broker", "no-such-supplier")
    assert (code, out.count("\n")) == (1, 1)
    assert run("audit", "verify")[0] == 0


def test_suppliers_create_grants_a_broker_scope_through_the_approval(env, inst) -> None:
    created = _create("Counter", "--scope", "audience:count", "--sector", "travel")
    assert created["scope"] == "audience:count profile.identity:read"
    assert created["sector"] == "travel"
    assert (
        f"supplier {created['id']} approved for the broker: scope audience:count, "
        f"sector travel, organisation {created['organisation_id']}"
    ) in _reasons(inst)


def test_suppliers_list_shows_what_a_self_registered_client_asked_for(env, inst) -> None:
    from infomediary.services.suppliers import issue_initial_access_token, register_client

    with inst.sessions() as session:
        register_client(
            session,
            issue_initial_access_token(session),
            name="Self Made",
            redirect_uris=["https://self.example/cb"],
            scopes=["profile.identity:read", "audience:count", "offers:send"],
            purposes=["marketing"],
            privacy_policy_url=None,
            sector="finance",
        )
    code, out = run("suppliers", "list")
    assert code == 0, out
    assert "[profile.identity:read]" in out
    assert "sector other (claimed finance)" in out
    assert "asks for [audience:count offers:send]: approve-broker grants it" in out
    code, out = run("suppliers", "list", "--json")
    (row,) = json.loads(out)["suppliers"]
    assert (row["sector"], row["claimed_sector"], row["broker_approved"]) == (
        "other",
        "finance",
        False,
    )
    assert row["requested_scope"] == "audience:count offers:send"
    assert row["organisation"] == "Self Made"


def test_initial_access_token_is_printed_once(env) -> None:
    code, out = run("suppliers", "initial-access-token", "--days", "2", "--json")
    assert code == 0
    assert json.loads(out)["initial_access_token"].startswith("iat_")


def test_production_requires_an_https_issuer(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("INFOMEDIARY_PRODUCTION", "true")
    monkeypatch.setenv("INFOMEDIARY_SECRET_KEY", "s" * 48)
    monkeypatch.setenv("INFOMEDIARY_RATELIMIT_STORAGE_URI", "redis://127.0.0.1:6379")
    monkeypatch.setenv("INFOMEDIARY_ISSUER", "http://infomediary.example")
    code, out = run("audit", "verify")
    assert code == 1
    assert "INFOMEDIARY_ISSUER" in out
