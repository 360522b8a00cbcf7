"""``infomediary auditors create | list | disable`` end to end."""

from __future__ import annotations

import json

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from infomediary.cli import main
from infomediary.instance import Instance
from infomediary.models import Auditor
from infomediary.services import auditors

PASSWORD = "a long auditor passphrase"


@pytest.fixture
def env(base_config, inst, monkeypatch) -> None:
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_create_with_a_prompted_password_prints_the_secret_once(env, inst: Instance) -> None:
    code, out, err = run(
        "auditors", "create", "--email", "ann@example.org", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert code == 0, err
    secret = out.split("TOTP secret (shown once): ")[1].split()[0]
    uri = out.split("provisioning URI (shown once): ")[1].split()[0]
    assert uri.startswith("otpauth://totp/Infomediary:ann%40example.org?")
    assert f"secret={secret}" in uri
    with inst.sessions() as session:
        row = session.execute(select(Auditor)).scalar_one()
        assert secret.encode() not in row.totp_secret
        assert auditors.check_password(session, inst, "ann@example.org", PASSWORD) == row.id
        auditors.check_code(session, inst, row.id, pyotp.TOTP(secret).now())


def test_create_from_stdin_as_json_then_list_and_disable(env, inst: Instance) -> None:
    code, out, err = run(
        "auditors",
        "create",
        "--email",
        "bo@example.org",
        "--password-stdin",
        "--json",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, err
    created = json.loads(out)
    assert pyotp.parse_uri(created["provisioning_uri"]).secret == created["totp_secret"]
    code, out, _ = run("auditors", "list", "--json")
    [listed] = json.loads(out)["auditors"]
    assert listed["email"] == "bo@example.org"
    assert listed["disabled"] is False
    assert run("auditors", "disable", "--email", "BO@example.org")[0] == 0
    code, out, _ = run("auditors", "list")
    assert "bo@example.org" in out
    assert out.rstrip().endswith("disabled")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create", "--email", "c@example.org", "--password-stdin"], "short\n", "password:"),
        (["create", "--email", "nope", "--password-stdin"], PASSWORD + "\n", "email:"),
        (["create", "--email", "c@example.org", "--password-stdin"], "", "no password on stdin"),
        (
            ["create", "--email", "c@example.org"],
            f"{PASSWORD}\n{PASSWORD}x\n",
            "",  # click asks again after a mismatch, then runs out of input
        ),
        (["disable", "--email", "nobody@example.org"], None, "No auditor has this email"),
    ],
)
def test_failures_are_one_line(env, args: list[str], stdin: str | None, message: str) -> None:
    code, _out, err = run("auditors", *args, stdin=stdin)
    assert code != 0
    if message:
        assert err.startswith("error: ")
        assert message in err
        assert err.count("\n") == 1


def test_a_taken_address_is_refused(env) -> None:
    assert (
        run(
            "auditors",
            "create",
            "--email",
            "d@example.org",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )[0]
        == 0
    )
    code, _, err = run(
        "auditors", "create", "--email", "D@example.org", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 1
    assert err == "error: An auditor with this email address already exists.\n"
