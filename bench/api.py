"""Benchmark: the HTTP hot paths under load, against the durable floor measured in the same run.

    apt-get install wrk
    .venv/bin/python bench/api.py [--seconds 10] [--rounds 1] [--database-url URL]

One run, one process tree, one database (a temporary SQLite file by default; with
``--database-url postgresql://...`` that database, whose tables are dropped and made afresh):

- a fresh instance is initialised and seeded through the services: a verified customer with
  a profile, a supplier with an OAuth client (the customer's consent and an access token are
  obtained over HTTP, through the consent screen and the token endpoint, as a supplier
  would), a supplier the operator approved for the broker (a client-credentials token), and
  400 synthetic customers for the broker to count;
- gunicorn with 2 workers (gthread with 4 threads each, as ``gunicorn.conf.py`` runs the
  app in production; ``--worker-threads 1`` for sync workers) serves the app (``wsgi:app``,
  the instance's settings in the environment, rate limits raised out of the way), and a
  second gunicorn with 2 workers of the same kind
  serves ``bench/floor_app.py``, whose one endpoint inserts one row and commits it in the
  same database (for SQLite the same file, journal mode and ``synchronous`` setting);
- wrk (``-t2 -c16 --latency``) loads the floor, then ``GET /api/v1/me`` with the bearer
  token, a broker count (``POST /api/v1/audiences/count``, the same query each time: what a
  supplier sees once the first answer is released) and the dashboard with the customer's
  session cookie, and prints requests a second, p99 latency and the ratio to the floor;
- after each ``/me`` load, the access log must have grown by exactly the number of ``200``
  answers the app served (counted from its request log, which also covers answers still in
  flight when wrk stopped); the bench prints both and fails when they differ.

The target of the hot path: ``GET /api/v1/me`` (with its access-log entry) at 0.5x the
floor or better on both databases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's packages and tests/
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from infomediary.config import load_config  # noqa: E402
from infomediary.demo import seed_synthetic  # noqa: E402
from infomediary.instance import Instance, initialise, open_instance  # noqa: E402
from infomediary.models import AccessLogEntry  # noqa: E402

WRK_MISSING = "wrk is not installed: apt-get install wrk"
PASSWORD = "correct horse battery"  # noqa: S105 - the seeded customer's, in a temporary instance
#: The floor's table (``bench/floor_app.py`` inserts into it).
TABLE = "bench_floor"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (n BIGINT NOT NULL, at BIGINT NOT NULL)"
UNLIMITED = "100000000 per minute"
#: The app's settings for the run: every rate limit out of the way (they are per address
#: and per supplier, and one address is all wrk has), cheap password hashing for the login.
SETTINGS = {
    "API_RATE_LIMIT": UNLIMITED,
    "BROKER_RATE_LIMIT": UNLIMITED,
    "WRITE_RATE_LIMIT": UNLIMITED,
    "OAUTH_RATE_LIMIT": UNLIMITED,
    "OAUTH_CLIENT_RATE_LIMIT": UNLIMITED,
    "LOGIN_RATE_LIMIT": UNLIMITED,
    "LOGIN_ACCOUNT_RATE_LIMIT": UNLIMITED,
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_KIB": 1024,
    "ARGON2_PARALLELISM": 1,
    "LOG_LEVEL": "INFO",
}
COUNT_QUERY = {"purpose": "marketing", "where": {"age_band": ["25-34", "35-44", "45-54"]}}
#: The app's request line of an answered ``/me`` (``infomediary.web._log_request``).
ME_ANSWERED = re.compile(rb"GET /api/v1/me 200\b")

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.M)
_ERRORS = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run printed: requests a second, their total, how many were not 2xx or
    3xx, socket errors, and latency percentiles in seconds."""

    rate: float
    requests: int
    non_2xx: int
    errors: int
    percentiles: dict[int, float]

    @property
    def p99(self) -> float:
        return self.percentiles[99]

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk 4's report (run with ``--latency``); ValueError when it is not one."""
    rate, total = _RATE.search(output), _TOTAL.search(output)
    percentiles = {int(p): float(v) * _UNITS[u] for p, v, u in _PERCENTILE.findall(output)}
    if rate is None or total is None or 99 not in percentiles:
        raise ValueError(f"not a wrk --latency report: {output[:200]!r}")
    non_2xx = _NON_2XX.search(output)
    errors = _ERRORS.search(output)
    return WrkResult(
        rate=float(rate.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        percentiles=percentiles,
    )


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII is a Lua string literal too


def wrk_script(
    folder: Path, name: str, method: str, headers: dict[str, str], body: str | None = None
) -> Path:
    lines = [f"wrk.method = {lua_string(method)}"]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    url: str, script: Path | None, seconds: int, threads: int, connections: int
) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    done = subprocess.run(  # noqa: S603 - our own arguments
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    return parse_wrk(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A gunicorn in a process group of its own, stopped (group and all) on exit."""

    def __init__(
        self, app: str, env: dict[str, str], log: Path, config: Path, threads: int = 1
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log: IO[bytes] = log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own arguments
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(config),
                "-w",
                "2",
                *(["-k", "gthread", "--threads", str(threads)] if threads > 1 else []),
                "-b",
                f"127.0.0.1:{self.port}",
                app,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def wait_ready(self, path: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited: see {self.log}\n{self.log.read_text()[-2000:]}")
            try:
                with requests.get(self.url + path, timeout=10):
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s: see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        self._log.close()


@contextmanager
def terminated_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: through every ``finally``."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass(frozen=True)
class Seeded:
    customer_email: str
    supplier: Any  # tests.factories.SupplierCreds
    broker: Any


def seed(inst: Instance) -> Seeded:
    from tests.factories import make_customer, make_supplier

    email = "bench.customer@example.org"
    make_customer(
        inst,
        email=email,
        password=PASSWORD,
        name="Ada Lovelace",
        profile={
            "phone": "+61 2 9999 0000",
            "street_address": "1 Bench Street",
            "locality": "Sydney",
            "postcode": "2000",
            "birth_year": 1985,
            "household_size": 2,
            "interests": ["books", "travel"],
        },
    )
    supplier = make_supplier(inst, name="Bench Books")
    broker = make_supplier(
        inst,
        name="Bench Counting",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    with inst.sessions() as session:
        seed_synthetic(session, inst, 400, workers=1)
    return Seeded(email, supplier, broker)


def authorise(base: str, seeded: Seeded) -> tuple[str, requests.Session, str]:
    """The customer's consent and an access token, over HTTP as a supplier gets them; the
    customer's logged-in browser; the broker's client-credentials token."""
    from tests.oauth_helpers import browser_login, client_session, consent

    browser = browser_login(base, seeded.customer_email, PASSWORD)
    client = client_session(
        base,
        seeded.supplier,
        "profile.identity:read profile.interests:read profile.demographics:read",
    )
    with client:
        result = consent(base, browser, client, purpose="marketing")
        token = client.fetch_token(
            authorization_response=result.authorization_response, code_verifier=result.verifier
        )
        me = client.get(f"{base}/api/v1/me")
        if me.status_code != 200:
            raise SystemExit(f"GET /api/v1/me answered {me.status_code}: {me.text[:300]}")
    with OAuth2Session(
        seeded.broker.client_id,
        seeded.broker.client_secret,
        scope="audience:count",
        token_endpoint=f"{base}/oauth/token",
    ) as broker:
        broker_token = broker.fetch_token(grant_type="client_credentials")["access_token"]
        first = broker.post(f"{base}/api/v1/audiences/count", json=COUNT_QUERY)
        if first.status_code != 200:
            raise SystemExit(f"the broker count answered {first.status_code}: {first.text[:300]}")
    return str(token["access_token"]), browser, str(broker_token)


def me_entries(inst: Instance, supplier_id: str) -> int:
    with inst.sessions() as session:
        count = session.execute(
            select(func.count())
            .select_from(AccessLogEntry)
            .where(
                AccessLogEntry.actor_id == supplier_id,
                AccessLogEntry.action == "read",
            )
        ).scalar_one()
        session.rollback()
    return int(count)


def me_answered(log: Path) -> int:
    return len(ME_ANSWERED.findall(log.read_bytes()))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def row(label: str, result: WrkResult, floor: WrkResult) -> None:
    bad = (
        f"  ({result.non_2xx} not 2xx, {result.errors} socket errors)"
        if (result.non_2xx or result.errors)
        else ""
    )
    print(
        f"  {label:<34} {result.rate:9.0f} req/s  p99 {ms(result.p99)}  "
        f"{result.rate / floor.rate:5.2f}x floor{bad}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=1, help="floor and endpoints, again")
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL; default: a temporary SQLite file"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=4,
        help="threads per gunicorn worker, both servers (gthread, as gunicorn.conf.py; 1: sync)",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 1
    with ExitStack() as stack, terminated_on_signals():
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-")))
        return run(args, folder, stack)
    return 1


def run(args: argparse.Namespace, folder: Path, stack: ExitStack) -> int:
    instance_path = folder / "instance"
    if args.database_url:
        from tests.conftest import reset_postgres

        reset_postgres(args.database_url)
    config = load_config(
        {"INSTANCE_PATH": str(instance_path), "DATABASE_URL": args.database_url, **SETTINGS},
        environ={},
    )
    initialise(config)
    inst = open_instance(config)
    stack.callback(inst.close)
    database_url = inst.engine.url.render_as_string(hide_password=False)
    backend = inst.engine.dialect.name
    with inst.engine.begin() as conn:
        conn.execute(text(CREATE))
    print(f"backend {backend}; seeding ...", flush=True)
    seeded = seed(inst)

    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOMEDIARY_")}
    env.update({f"INFOMEDIARY_{k}": str(v) for k, v in SETTINGS.items()})
    env.update(
        INFOMEDIARY_INSTANCE_PATH=str(instance_path),
        INFOMEDIARY_DATABASE_URL=database_url,
        BENCH_FLOOR_DATABASE_URL=database_url,
        PYTHONPATH=str(ROOT),
    )
    config_file = folder / "gunicorn.conf.py"  # the same (default) settings for both servers
    config_file.write_text("")
    threads = args.worker_threads
    app = Server("wsgi:app", env, folder / "app.log", config_file, threads)
    stack.callback(app.stop)
    floor_server = Server("bench.floor_app:app", env, folder / "floor.log", config_file, threads)
    stack.callback(floor_server.stop)
    app.wait_ready("/login")
    floor_server.wait_ready("/insert")
    token, browser, broker_token = authorise(app.url, seeded)
    stack.callback(browser.close)
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    scripts = {
        "floor": wrk_script(folder, "floor", "GET", {}),
        "me": wrk_script(folder, "me", "GET", {"Authorization": f"Bearer {token}"}),
        "count": wrk_script(
            folder,
            "count",
            "POST",
            {"Authorization": f"Bearer {broker_token}", "Content-Type": "application/json"},
            json.dumps(COUNT_QUERY),
        ),
        "dashboard": wrk_script(folder, "dashboard", "GET", {"Cookie": cookie}),
    }
    load = {"seconds": args.seconds, "threads": args.threads, "connections": args.connections}
    print(
        f"gunicorn -w 2 ({'gthread, ' + str(threads) + ' threads' if threads > 1 else 'sync'}) "
        f"for the app and for the floor; wrk -t{args.threads} "
        f"-c{args.connections} -d{args.seconds}s; {os.cpu_count()} CPUs",
        flush=True,
    )
    failures = 0
    for number in range(1, args.rounds + 1):
        print(f"round {number}", flush=True)
        floor = run_wrk(f"{floor_server.url}/insert", scripts["floor"], **load)
        print(
            f"  {'floor: INSERT + COMMIT':<34} {floor.rate:9.0f} req/s  p99 {ms(floor.p99)}",
            flush=True,
        )
        entries, answered = me_entries(inst, seeded.supplier.id), me_answered(app.log)
        me = run_wrk(f"{app.url}/api/v1/me", scripts["me"], **load)
        row("GET /api/v1/me", me, floor)
        time.sleep(1)  # answers in flight when wrk stopped are logged and committed
        grown = me_entries(inst, seeded.supplier.id) - entries
        served = me_answered(app.log) - answered
        same = grown == served
        failures += not same or me.non_2xx > 0
        print(
            f"  {'':<34} access log +{grown} entries, {served} answered 200 "
            f"({me.ok} seen by wrk): {'exactly one entry each' if same else 'MISMATCH'}",
            flush=True,
        )
        row(
            "POST /api/v1/audiences/count",
            run_wrk(f"{app.url}/api/v1/audiences/count", scripts["count"], **load),
            floor,
        )
        row("GET /dashboard", run_wrk(f"{app.url}/dashboard", scripts["dashboard"], **load), floor)
    with inst.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT COUNT(*) FROM {TABLE}")).scalar_one()
    print(f"floor rows inserted: {rows}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
