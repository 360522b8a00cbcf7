"""Key rotation and pruning while a server runs.

A live server (the app over real HTTP in a thread) keeps serving through ``keys rotate``
and ``keys prune`` run as the real command in other processes: it re-reads the keyring
when a data key names a KEK it has not loaded, wraps new data keys under the KEK the
database names active, and its lease stops ``keys prune`` from removing a KEK it might
still wrap with. A process killed without closing leaves a lease that lapses on its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.config import Settings
from infomediary.crypto.keyring import KeyringError
from infomediary.errors import KeysInUse
from infomediary.instance import Instance, open_instance
from infomediary.leases import active_kek
from infomediary.models import Customer, DataKey, ProcessLease, utcnow
from infomediary.services import Context, customer_keys, profiles
from infomediary.services import keys as key_service
from tests.conftest import csrf_token_in, empty_tables
from tests.factories import make_customer

ROOT = Path(__file__).resolve().parents[2]
#: The server's lease in these tests: short, so that waiting for it takes seconds, and
#: longer than starting the command-line processes takes on a busy machine.
LEASE_SECONDS = 8
#: The lease of a process killed during the rotation: it lapses before the server's.
HOLDER_LEASE_SECONDS = 4
PHONE = "+61 400 111 222"


def cli_env(config: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
    env.update(
        INFOMEDIARY_INSTANCE_PATH=str(config.instance_path),
        INFOMEDIARY_DATABASE_URL=config.database_url,
        INFOMEDIARY_ARGON2_TIME_COST="1",
        INFOMEDIARY_ARGON2_MEMORY_KIB="1024",
        INFOMEDIARY_ARGON2_PARALLELISM="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def cli(config: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``infomediary`` command in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", "from infomediary.cli import main; main()", *args],
        env=cli_env(config),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def last_json(output: str) -> dict[str, Any]:
    return dict(json.loads(output.strip().splitlines()[-1]))


def keyring_versions(config: Settings) -> set[int]:
    return {int(v) for v in json.loads(config.keyring_path.read_text())["keks"]}


@pytest.fixture
def inst(base_config: Settings) -> Iterator[Instance]:
    """The server's instance, with a short lease."""
    instance = open_instance(replace(base_config, key_lease_seconds=LEASE_SECONDS))
    empty_tables(instance)
    settle(instance)
    instance.leases.refresh()  # emptying the tables removed its lease row
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def server(inst: Instance) -> Iterator[str]:
    app: Flask = create_app(inst.settings, instance=inst)
    app.config["TESTING"] = True
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def token(http: requests.Session, url: str) -> str:
    page = http.get(url, timeout=30)
    assert page.status_code == 200, page.status_code
    return csrf_token_in(page.text, url)


def log_in(base: str, email: str, password: str) -> requests.Session:
    http = requests.Session()
    answer = http.post(
        f"{base}/login",
        data={"csrf_token": token(http, f"{base}/login"), "email": email, "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.status_code
    return http


def sign_up(base: str, email: str) -> None:
    http = requests.Session()
    answer = http.post(
        f"{base}/signup",
        data={
            "csrf_token": token(http, f"{base}/signup"),
            "email": email,
            "password": "correct horse battery",
            "name": "Late Comer",
            "accept_notice": "yes",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code < 400, answer.status_code


def start_holder(config: Settings) -> subprocess.Popen[str]:
    """A process that opens the instance with a short lease, says so, and waits to be killed."""
    script = (
        "import sys, time\n"
        "from infomediary.config import load_config\n"
        "from infomediary.instance import open_instance\n"
        f"inst = open_instance(load_config({{'KEY_LEASE_SECONDS': {HOLDER_LEASE_SECONDS}}}))\n"
        "print('open', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        env=cli_env(config),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "open"
    holder.stdout.close()
    return holder


def kek_of(inst: Instance, customer_id: str) -> int:
    with inst.sessions() as session:
        row = session.get(DataKey, customer_id)
        assert row is not None
        return row.kek_version


def settle(inst: Instance) -> None:
    """Finish any rotation an earlier test left half done (the keyring lives for the session)."""
    with inst.sessions() as session:
        if active_kek(session) != inst.keyring.active_kek_version:
            key_service.rotate(session, inst)


def customer_id_of(inst: Instance, email: str) -> str:
    with inst.sessions() as session:
        found = session.execute(
            select(Customer.id).where(Customer.email_index == inst.vault.email_index(email))
        ).scalar_one()
    return str(found)


def test_live_server_keeps_serving_through_rotate_and_prune(
    inst: Instance, server: str, base_config: Settings
) -> None:
    old = inst.keyring.active_kek_version
    ada = make_customer(inst, email="ada@example.org", profile={"phone": PHONE})
    http = log_in(server, "ada@example.org", "correct horse battery")
    assert PHONE in http.get(f"{server}/profile", timeout=30).text
    holder = start_holder(base_config)  # killed below without closing: its lease goes stale
    try:
        rotated = cli(base_config, "keys", "rotate", "--json")
        assert rotated.returncode == 0, rotated.stderr
        new = last_json(rotated.stdout)["active_kek"]
        assert new == old + 1
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)

    # the running server reads Ada's data key, now wrapped under a KEK it had not loaded
    page = http.get(f"{server}/profile", timeout=30)
    assert page.status_code == 200
    assert PHONE in page.text
    # a sign-up after the rotation is wrapped under the KEK the database names active
    sign_up(server, "bea@example.org")
    bea = customer_id_of(inst, "bea@example.org")
    assert kek_of(inst, bea) == new

    # the old KEK may still be in use: the server and the killed holder hold leases on it
    refused = cli(base_config, "keys", "prune")
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert len(message.splitlines()) == 1
    assert f"[{old}]" in message
    assert f"pid {os.getpid()} " in message  # the server
    assert f"pid {holder.pid} " in message  # the killed process
    assert re.search(r"again in \d+ s$", message), message
    assert old in keyring_versions(base_config)

    # the server lets go of the old KEK while it keeps running; the killed one's lease lapses
    refusals = []
    deadline = time.monotonic() + 4 * LEASE_SECONDS + 30
    while (pruned := cli(base_config, "keys", "prune", "--json")).returncode != 0:
        assert "lease" in pruned.stderr
        refusals.append(pruned.stderr)
        assert time.monotonic() < deadline, pruned.stderr
        time.sleep(0.5)
    assert old in last_json(pruned.stdout)["removed"]
    assert old not in keyring_versions(base_config)
    with inst.sessions() as session:
        leases = {lease.pid: lease for lease in session.execute(select(ProcessLease)).scalars()}
    assert holder.pid not in leases  # lapsed, then removed by the prune
    assert leases[os.getpid()].expires_at > utcnow()  # the server's lease is live ...
    assert old not in leases[os.getpid()].versions()  # ... and no longer names the old KEK

    # the server still serves, and signs people up, after the prune
    page = http.get(f"{server}/profile", timeout=30)
    assert page.status_code == 200
    assert PHONE in page.text
    sign_up(server, "cyd@example.org")
    cyd = customer_id_of(inst, "cyd@example.org")
    assert kek_of(inst, cyd) == new

    # a fresh process starts, and everything decrypts in it: nothing is lost
    verified = cli(base_config, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    fresh = open_instance(base_config)
    try:
        with fresh.sessions() as session:
            ids = set(session.execute(select(Customer.id)).scalars())
            assert ids == {ada, bea, cyd}
            emails = {
                profiles.read_profile(session, fresh, cid, Context(Actor.system("test")))["email"]
                for cid in ids
            }
            assert emails == {"ada@example.org", "bea@example.org", "cyd@example.org"}
            versions = set(session.execute(select(DataKey.kek_version)).scalars())
            assert versions == {new}
    finally:
        fresh.close()


def test_a_process_with_an_old_keyring_wraps_under_the_database_active_kek(
    inst: Instance, base_config: Settings
) -> None:
    stale = open_instance(base_config)  # loaded before the rotation
    try:
        old = stale.keyring.active_kek_version
        first = make_customer(stale)
        rotator = open_instance(base_config)
        try:
            with rotator.sessions() as session:
                report = key_service.rotate(session, rotator)
        finally:
            rotator.close()
        assert report.active_kek > old
        assert stale.keyring.active_kek_version == old  # it has not looked yet
        second = make_customer(stale)
        assert kek_of(stale, first) == kek_of(stale, second) == report.active_kek
        with stale.sessions() as session:
            # and it reads both, though it loaded the new KEK only when it needed it
            for customer_id in (first, second):
                key = customer_keys.customer_key(session, stale, customer_id)
                assert key.customer_id == customer_id
    finally:
        stale.close()


def test_prune_refuses_while_a_live_lease_names_the_kek_and_not_after_it_lapses(
    inst: Instance, base_config: Settings
) -> None:
    inst.leases.close()  # only the two instances below hold leases
    make_customer(inst)
    holder = open_instance(base_config)  # default lease: not refreshed during the test
    other = open_instance(base_config)
    try:
        old = holder.keyring.active_kek_version
        with other.sessions() as session:
            key_service.rotate(session, other)
            with pytest.raises(KeysInUse) as refused:
                key_service.prune(session, other)
        assert f"[{old}]" in refused.value.message
        assert f"pid {os.getpid()} " in refused.value.message
        assert old in other.keyring.kek_versions()
        # a process killed mid-way never refreshes its lease: once it expires, it stops counting
        with other.sessions() as session, session.begin():
            lease = session.get(ProcessLease, holder.leases.lease_id)
            assert lease is not None
            assert lease.versions() == [old]
            lease.expires_at = utcnow() - timedelta(seconds=1)
        with other.sessions() as session:
            report = key_service.prune(session, other)
            assert session.get(ProcessLease, holder.leases.lease_id) is None
        assert old in report.removed
        assert old not in other.keyring.kek_versions()
    finally:
        other.close()
        holder.close()


def test_a_keyring_copied_before_the_last_rotation_is_refused(
    inst: Instance, base_config: Settings, tmp_path: Path
) -> None:
    copy = tmp_path / "before.json"
    shutil.copy(base_config.keyring_path, copy)
    copy.chmod(0o600)
    with inst.sessions() as session:
        key_service.rotate(session, inst)
    with pytest.raises(KeyringError, match="copy the keyring from where"):
        open_instance(replace(base_config, keyring_path=copy))


def test_a_lease_is_registered_at_open_and_removed_at_close(base_config: Settings) -> None:
    opened = open_instance(base_config)
    lease_id = opened.leases.lease_id
    with opened.sessions() as session:
        lease = session.get(ProcessLease, lease_id)
        assert lease is not None
        assert lease.pid == os.getpid()
        assert lease.versions() == [opened.keyring.active_kek_version]
        assert lease.expires_at > utcnow()
    opened.close()
    opened.close()  # idempotent
    check = open_instance(base_config)
    try:
        with check.sessions() as session:
            assert session.get(ProcessLease, lease_id) is None
    finally:
        check.close()


def test_bulk_seeding_stores_a_chunk_under_the_kek_named_active_at_insert(
    inst: Instance, base_config: Settings
) -> None:
    """A chunk encrypted before a rotation and inserted after it lands under the new KEK."""
    from infomediary.demo import population as demo

    old = inst.keyring.active_kek_version
    rows = demo._rows(inst.vault, old, 7, 0, 3, utcnow().year)
    rotator = open_instance(base_config)
    try:
        with rotator.sessions() as session:
            report = key_service.rotate(session, rotator)
    finally:
        rotator.close()
    assert report.active_kek > old
    with inst.sessions() as session:
        demo._insert_chunk(session, inst.vault, rows, 0)
    for customer, *_rest in rows:
        assert kek_of(inst, customer["id"]) == report.active_kek
        with inst.sessions() as session:
            key = customer_keys.customer_key(session, inst, customer["id"])
            assert key.customer_id == customer["id"]
