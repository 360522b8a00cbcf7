"""What the load and fault scripts share: a scratch PostgreSQL database per run, a fresh
instance in a temporary folder, gunicorn and ``infomediary`` subprocesses with the instance's
environment, free ports, and customers with real access tokens.

Each script runs on its own (``python -m tests.ops.<name> --help``) and as a pytest test in a
bounded form. A missing service is :class:`Missing`: the script says so and exits 2, the test
skips with the reason (and fails under ``INFOMEDIARY_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from infomediary.config import Settings, load_config
from infomediary.db import make_engine
from infomediary.instance import Instance, initialise, open_instance

PG_ENV = "INFOMEDIARY_TEST_DATABASE_URL"
ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: Settings every scripted instance runs with: cheap password hashing (the scripts measure the
#: service, not argon2) and limits far above what a script sends, unless it tests them.
BASE_SETTINGS: dict[str, str] = {
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "1024",
    "ARGON2_PARALLELISM": "1",
    "LOGIN_RATE_LIMIT": "100000 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "100000 per minute",
    "WRITE_RATE_LIMIT": "1000000 per minute",
    "API_RATE_LIMIT": "10000000 per minute",
    "OAUTH_RATE_LIMIT": "100000 per minute",
    "OAUTH_CLIENT_RATE_LIMIT": "100000 per minute",
    "LOG_LEVEL": "WARNING",
}


class Missing(Exception):
    """A service or tool the script needs is absent; the message says which and how to get it."""


def postgres_url() -> str:
    """The PostgreSQL server of ``INFOMEDIARY_TEST_DATABASE_URL`` (its database is only the
    door: each run makes a scratch database of its own beside it)."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        raise Missing(f"needs PostgreSQL: set {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/x)")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise Missing(f"PostgreSQL at {PG_ENV} is unreachable: {type(exc).__name__}") from None
    finally:
        engine.dispose()
    return url


def tool(name: str) -> str:
    """The path of an executable (the venv's first), or :class:`Missing`."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise Missing(f"needs {name} on PATH")
    return path


@contextmanager
def scratch_database(prefix: str = "ops") -> Iterator[str]:
    """A new, uniquely named PostgreSQL database on the server of ``PG_ENV``, dropped at the
    end (with whatever still holds a connection to it), so parallel runs never collide."""
    admin_url = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OpsInstance:
    """An initialised instance in ``folder`` and the environment its processes run with."""

    folder: Path
    settings: Settings
    env: dict[str, str]

    def open(self) -> Instance:
        return open_instance(self.settings)


@contextmanager
def instance(database_url: str, **settings: str) -> Iterator[OpsInstance]:
    """``infomediary init`` of a fresh instance on ``database_url`` in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="infomediary-ops-") as folder:
        values = {
            **BASE_SETTINGS,
            "INSTANCE_PATH": folder,
            "DATABASE_URL": database_url,
            **settings,
        }
        config = load_config(values, environ={})
        initialise(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
        env.update({f"INFOMEDIARY_{k}": v for k, v in values.items()})
        env["PYTHONPATH"] = str(ROOT)
        yield OpsInstance(Path(folder), config, env)


def cli(ops: OpsInstance, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``infomediary ARGS`` in a subprocess with the instance's environment."""
    return subprocess.Popen(
        [tool("infomediary"), *args],
        env=ops.env,
        cwd=ROOT,
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=popen.pop("stderr", subprocess.PIPE),
        **popen,
    )


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for ``process``; its exit code and output (killed after ``timeout``)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something true; that value, or ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


@dataclass
class Gunicorn:
    """gunicorn serving ``wsgi:app`` for the instance, on a free loopback port."""

    ops: OpsInstance
    workers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        config = ROOT / "gunicorn.conf.py"
        base = [tool("gunicorn")]
        if config.exists():
            base += ["-c", str(config)]
        return [
            *base,
            "-w",
            str(self.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "5",
            "wsgi:app",
        ]

    def start(self, timeout: float = 60) -> Gunicorn:
        self.port = self.port or free_port()
        self.log_path = self.ops.folder / f"gunicorn-{self.port}.log"
        env = {**self.ops.env, **self.extra_env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for("gunicorn answering /healthz", self._healthy, timeout, every=0.2)
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
        try:
            with requests.get(f"{self.url}/healthz", timeout=2) as response:
                return response.status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# -- customers with real tokens -----------------------------------------------------------------

PASSWORD = "correct horse battery"
SCOPE = "profile.identity:read profile.interests:read"


@dataclass(frozen=True)
class Seeded:
    supplier_id: str
    customer_ids: list[str]
    tokens: list[str]


def seed_tokens(
    base: str, inst: Instance, customers: int, supplier_name: str = "Load Books"
) -> Seeded:
    """``customers`` customers with a profile, one supplier, and for each customer a consent
    given on the consent screen and an access token from the token endpoint, all through
    ``base`` over HTTP (the real dance, as a supplier and a browser do it)."""
    from tests.factories import make_customer
    from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

    supplier = make_supplier(inst, name=supplier_name)
    ids: list[str] = []
    tokens: list[str] = []
    for n in range(customers):
        email = f"load-{n}-{uuid.uuid4().hex[:8]}@example.org"
        profile = {"name": f"Load Customer {n}", "interests": ["books"]}
        ids.append(make_customer(inst, email=email, password=PASSWORD, profile=profile))
        oauth = client_session(base, supplier, SCOPE)
        with browser_login(base, email, PASSWORD) as browser:
            result = consent(base, browser, oauth, purpose="marketing")
        token = oauth.fetch_token(
            authorization_response=result.authorization_response, code_verifier=result.verifier
        )
        oauth.close()
        tokens.append(str(token["access_token"]))
    return Seeded(supplier.id, ids, tokens)


def report(lines: dict[str, Any]) -> str:
    """A script's figures, one ``name: value`` per line."""
    return "\n".join(f"{name}: {value}" for name, value in lines.items())


def main_of(run: Callable[..., dict[str, Any]], options: Any) -> int:
    """Run a script's ``run`` from its command line: its figures, and exit 0 (held), 1 (an
    assertion failed) or 2 (a service is missing)."""
    try:
        figures = run(**vars(options))
    except Missing as missing:
        print(f"skipped: {missing}", file=sys.stderr)
        return 2
    except AssertionError as failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    print(report(figures))
    return 0
