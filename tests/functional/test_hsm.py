"""An instance whose KEKs are in a PKCS#11 token (SoftHSM2), served by gunicorn through a rotation.

``init`` generates the first KEK inside a fresh token and writes a keyring file with the
named secrets only. A gunicorn server (``--preload``: the master logs in, then forks its
workers, which log in again) keeps serving while ``keys rotate`` and ``keys prune`` run as
the real command in other processes: it finds the KEK generated meanwhile in the token, wraps
new data keys under the one the database names, and its leases hold back the prune until
they let go of the old KEK, which is then destroyed in the token.

The database is SQLite: these tests bring their own instance (their own token and keyring),
so they do not share the session's PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.config import Settings, load_config
from infomediary.crypto.keyring import KeyringError
from infomediary.crypto.pkcs11_keyring import Pkcs11Keyring
from infomediary.instance import initialise, open_instance
from infomediary.models import Customer, DataKey
from infomediary.services import Context, profiles
from tests.conftest import FAST_ARGON2, csrf_token_in
from tests.factories import make_customer
from tests.softhsm import SoftHsm, Token, softhsm_or_skip

pytestmark = pytest.mark.hsm
ROOT = Path(__file__).resolve().parents[2]
#: The server's lease: short, so that waiting for the prune takes seconds.
LEASE_SECONDS = 6
PHONE = "+61 400 333 444"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class HsmInstance:
    overrides: dict[str, Any]
    token: Token

    @property
    def config(self) -> Settings:
        return load_config(self.overrides, environ={})

    def env(self) -> dict[str, str]:
        """The environment of a command or server on this instance."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
        env.update({f"INFOMEDIARY_{k}": str(v) for k, v in self.overrides.items()})
        env["PYTHONPATH"] = str(ROOT)
        return env


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    yield from softhsm_or_skip(tmp_path_factory)


@pytest.fixture
def hsm_instance(hsm: SoftHsm, tmp_path: Path) -> HsmInstance:
    token = hsm.new_token()
    overrides: dict[str, Any] = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hsm.sqlite3'}",
        "KEY_PROVIDER": "pkcs11",
        "PKCS11_MODULE": hsm.module,
        "PKCS11_TOKEN_LABEL": token.label,
        "PKCS11_PIN": token.pin,
        "KEY_LEASE_SECONDS": LEASE_SECONDS,
        **FAST_ARGON2,
    }
    return HsmInstance(overrides, token)


def cli(
    where: HsmInstance, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from infomediary.cli import main; main()", *args],
        env=env or where.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def last_json(output: str) -> dict[str, Any]:
    return dict(json.loads(output.strip().splitlines()[-1]))


def read_email(where: HsmInstance, customer_id: str) -> str:
    inst = open_instance(where.config)
    try:
        with inst.sessions() as session:
            found = profiles.read_profile(session, inst, customer_id, Context(Actor.system("t")))
        return str(found["email"])
    finally:
        inst.close()


def test_init_generates_the_first_kek_in_the_token_and_customers_decrypt(
    hsm_instance: HsmInstance,
) -> None:
    made = cli(hsm_instance, "init", "--json")
    assert made.returncode == 0, made.stderr
    assert last_json(made.stdout)["created_keyring"] is True
    config = hsm_instance.config
    doc = json.loads(config.keyring_path.read_text())
    assert doc["keks"] == {}
    assert doc["kek_provider"] == "pkcs11"
    again = cli(hsm_instance, "init", "--json")  # idempotent: no second KEK
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout)["created_keyring"] is False
    inst = open_instance(config)
    try:
        assert isinstance(inst.keyring, Pkcs11Keyring)
        assert inst.keyring.kek_versions() == [1]
        ada = make_customer(inst, email="ada@example.org", profile={"phone": PHONE})
        with inst.sessions() as session:
            row = session.get(DataKey, ada)
            assert row is not None
            assert row.kek_version == 1
            read = profiles.read_profile(session, inst, ada, Context(Actor.system("t")))
        assert read["email"] == "ada@example.org"
        assert read["phone"] == PHONE
    finally:
        inst.close()
    # a file-keyring configuration is refused on it, naming the setting
    file_env = {**hsm_instance.env(), "INFOMEDIARY_KEY_PROVIDER": "file"}
    refused = cli(hsm_instance, "keys", "rotate", env=file_env)
    assert refused.returncode == 1
    assert "INFOMEDIARY_KEY_PROVIDER=pkcs11" in refused.stderr


def test_a_wrong_pin_is_one_line_naming_the_setting(hsm_instance: HsmInstance) -> None:
    initialise(hsm_instance.config)
    wrong = "wrong-pin-98765"
    env = {**hsm_instance.env(), "INFOMEDIARY_PKCS11_PIN": wrong}
    refused = cli(hsm_instance, "keys", "rotate", env=env)
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "INFOMEDIARY_PKCS11_PIN" in message
    assert wrong not in message
    assert hsm_instance.token.pin not in message
    env["INFOMEDIARY_PKCS11_TOKEN_LABEL"] = "no-such-token"
    env["INFOMEDIARY_PKCS11_PIN"] = hsm_instance.token.pin
    missing = cli(hsm_instance, "keys", "prune", env=env)
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "INFOMEDIARY_PKCS11_TOKEN_LABEL" in missing.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gunicorn(hsm_instance: HsmInstance, tmp_path: Path) -> Iterator[str]:
    """gunicorn with two forked workers on the instance; its log kept for a failure."""
    initialise(hsm_instance.config)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--preload", "--workers", "2"),
                *("--bind", f"127.0.0.1:{port}", "--graceful-timeout", "5", "wsgi:app"),
            ],
            env=hsm_instance.env(),
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if requests.get(f"{base}/login", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass  # still starting
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def log_in(base: str, email: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=30)
    answer = http.post(
        f"{base}/login",
        data={"csrf_token": csrf_token_in(page.text), "email": email, "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.status_code
    return http


def profile_pages(http: requests.Session, base: str, times: int = 6) -> list[str]:
    """The profile page several times: gunicorn's sync workers close each connection, so the
    requests reach both workers."""
    pages = []
    for _ in range(times):
        page = http.get(f"{base}/profile", timeout=30)
        assert page.status_code == 200, page.status_code
        pages.append(page.text)
    return pages


def sign_up(base: str, email: str) -> None:
    http = requests.Session()
    page = http.get(f"{base}/signup", timeout=30)
    answer = http.post(
        f"{base}/signup",
        data={
            "csrf_token": csrf_token_in(page.text),
            "email": email,
            "password": PASSWORD,
            "name": "Late Comer",
            "accept_notice": "yes",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code < 400, answer.status_code


def test_gunicorn_keeps_serving_through_rotate_and_prune_with_the_token(
    hsm_instance: HsmInstance, gunicorn: str
) -> None:
    config = hsm_instance.config
    inst = open_instance(config)
    try:
        ada = make_customer(inst, email="ada@example.org", profile={"phone": PHONE})
        assert inst.keyring.kek_versions() == [1]
    finally:
        inst.close()
    http = log_in(gunicorn, "ada@example.org")
    assert all(PHONE in page for page in profile_pages(http, gunicorn))

    rotated = cli(hsm_instance, "keys", "rotate", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert last_json(rotated.stdout)["active_kek"] == 2
    assert last_json(rotated.stdout)["rewrapped"] == 1

    # the workers read Ada's key, now under a KEK generated in the token after they started
    assert all(PHONE in page for page in profile_pages(http, gunicorn))
    sign_up(gunicorn, "bea@example.org")

    # the servers' leases name KEK 1 until they have seen the rotation: prune waits for them
    deadline = time.monotonic() + 4 * LEASE_SECONDS + 90
    while (pruned := cli(hsm_instance, "keys", "prune", "--json")).returncode != 0:
        assert "lease" in pruned.stderr, pruned.stderr
        assert len(pruned.stderr.strip().splitlines()) == 1
        assert time.monotonic() < deadline, pruned.stderr
        time.sleep(1)
    assert last_json(pruned.stdout)["removed"] == [1]

    inst = open_instance(config)
    try:
        assert inst.keyring.kek_versions() == [2]  # KEK 1 is destroyed in the token
        with inst.sessions() as session:
            keys = {
                row.customer_id: row.kek_version
                for row in session.execute(select(DataKey)).scalars()
            }
            bea = session.execute(
                select(Customer.id).where(
                    Customer.email_index == inst.vault.email_index("bea@example.org")
                )
            ).scalar_one()
    finally:
        inst.close()
    assert keys == {ada: 2, bea: 2}  # Bea's key was stored under the KEK the database names
    # the server still serves after the prune, and nothing is lost
    assert all(PHONE in page for page in profile_pages(http, gunicorn))
    assert read_email(hsm_instance, ada) == "ada@example.org"
    assert read_email(hsm_instance, bea) == "bea@example.org"


def test_a_token_without_the_instance_kek_is_refused(
    hsm: SoftHsm, hsm_instance: HsmInstance, tmp_path: Path
) -> None:
    initialise(hsm_instance.config)
    other = hsm.new_token()
    foreign = {
        **hsm_instance.overrides,
        "PKCS11_TOKEN_LABEL": other.label,
        "PKCS11_PIN": other.pin,
    }
    with pytest.raises(KeyringError, match="holds no infomediary-kek"):
        open_instance(load_config(foreign, environ={}))
    # another instance's token: a KEK 1 of its own, which the fingerprints tell apart
    Pkcs11Keyring.open(
        tmp_path / "other.json", hsm.module, other.label, other.pin, create=True
    ).close()
    with pytest.raises(KeyringError, match="another instance"):
        open_instance(load_config(foreign, environ={}))


def test_demo_seeds_synthetic_customers_with_their_keys_wrapped_in_the_token(
    hsm_instance: HsmInstance,
) -> None:
    """``demo --customers`` wraps every data key through the token (no KEK leaves it), and
    each synthetic customer's profile opens."""
    made = cli(hsm_instance, "init", "--json")
    assert made.returncode == 0, made.stderr
    seeded = cli(hsm_instance, "demo", "--customers", "30", "--json")
    assert seeded.returncode == 0, seeded.stderr
    inst = open_instance(hsm_instance.config)
    try:
        with inst.sessions() as session:
            synthetic = list(
                session.execute(
                    select(Customer.id)
                    .join(DataKey, DataKey.customer_id == Customer.id)
                    .where(Customer.synthetic.is_(True), DataKey.kek_version == 1)
                ).scalars()
            )
            assert len(synthetic) == 30
            for customer_id in synthetic[:5]:
                read = profiles.read_profile(session, inst, customer_id, Context(Actor.system("t")))
                assert read["email"].startswith("customer")
    finally:
        inst.close()
