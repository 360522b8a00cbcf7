"""Load: wrk at saturation against gunicorn on PostgreSQL, and every answered read logged.

    python -m tests.ops.load [--customers 8] [--threads 2] [--connections 32] [--duration 3]

A fresh instance on a scratch PostgreSQL database (``INFOMEDIARY_TEST_DATABASE_URL``'s
server), gunicorn with ``--workers`` sync workers, ``--customers`` customers who each gave a
supplier consent on the consent screen, and their access tokens from the token endpoint. wrk
then sends ``GET /api/v1/me`` as fast as the server answers, for ``--duration`` seconds over
``--connections`` connections, rotating through the customers' tokens (a Lua script that
also counts 2xx answers per thread).

Held, or the script fails:

- wrk saw no socket error (connect, read, write, timeout) and no answer outside 2xx;
- the access log's allowed ``read`` entries of that supplier, counted once gunicorn is idle
  again (the count stopped growing), equal the 2xx answers wrk counted, give or take the
  requests in flight when wrk stopped: such a request may have been served and logged, but
  wrk closed its connection before counting the answer. There is at most one per connection,
  so ``0 <= entries - answers <= connections``. An entry short (negative) would be a read
  answered without its entry.
- the log's hash chain verifies over everything the run appended.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from infomediary.audit.log import verify
from infomediary.models import AccessLogEntry
from tests.ops.support import (
    Gunicorn,
    instance,
    main_of,
    scratch_database,
    seed_tokens,
    tool,
)

LUA = """
local tokens = {%(tokens)s}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("first", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  other = 0
  n = first
end

function request()
  n = n + 1
  local token = tokens[(n %% #tokens) + 1]
  return wrk.format("GET", "/api/v1/me", {["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local ok, other = 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("ok")
    other = other + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %%d, "ok": %%d, "other": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "duration_us": %%d, "p50_us": %%d, ' ..
    '"p99_us": %%d}\\n',
    summary.requests, ok, other, e.connect, e.read, e.write, e.status, e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def lua_script(tokens: list[str]) -> str:
    return LUA % {"tokens": ", ".join(json.dumps(t) for t in tokens)}


def run_wrk(
    url: str, script: Path, threads: int, connections: int, duration: int
) -> dict[str, int]:
    wrk = tool("wrk")
    completed = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"{url}/api/v1/me",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    assert completed.returncode == 0, f"wrk failed: {completed.stderr.strip()}"
    line = next((x for x in completed.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    assert line is not None, f"wrk printed no result:\n{completed.stdout}"
    return dict(json.loads(line.removeprefix("WRK_RESULT ")))


def _reads(ops_inst: Any, supplier_id: str) -> int:
    with ops_inst.sessions() as session:
        count = session.execute(
            select(func.count())
            .select_from(AccessLogEntry)
            .where(
                AccessLogEntry.action == "read",
                AccessLogEntry.actor_id == supplier_id,
                AccessLogEntry.outcome == "allowed",
            )
        ).scalar_one()
        session.rollback()
    return int(count)


def settled(read: Any, quiet_seconds: float = 1.0, timeout: float = 60) -> int:
    """The count once it stopped growing for ``quiet_seconds`` (the server is idle)."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the access log still grew after {timeout} s")
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return int(last)


def run(
    customers: int = 8,
    workers: int = 2,
    threads: int = 2,
    connections: int = 32,
    duration: int = 3,
) -> dict[str, Any]:
    tool("wrk")
    with scratch_database("ops_load") as url, instance(url) as ops:
        inst = ops.open()
        try:
            with Gunicorn(ops, workers=workers) as server:
                seeded = seed_tokens(server.url, inst, customers)
                before = _reads(inst, seeded.supplier_id)
                with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
                    handle.write(lua_script(seeded.tokens))
                script = Path(handle.name)
                try:
                    result = run_wrk(server.url, script, threads, connections, duration)
                finally:
                    script.unlink()
                logged = settled(lambda: _reads(inst, seeded.supplier_id)) - before
                server_log = server.log()
            with inst.sessions() as session:
                chain = verify(session)
                session.rollback()
        finally:
            inst.close()
    errors = {k: result[k] for k in ("connect", "read", "write", "timeout", "status")}
    seconds = result["duration_us"] / 1e6
    figures = {
        "workers": workers,
        "connections": connections,
        "seconds": round(seconds, 2),
        "requests": result["requests"],
        "answered_2xx": result["ok"],
        "answered_other": result["other"],
        "socket_errors": errors,
        "requests_per_second": round(result["requests"] / seconds, 1),
        "latency_p50_ms": round(result["p50_us"] / 1000, 1),
        "latency_p99_ms": round(result["p99_us"] / 1000, 1),
        "log_entries": logged,
        "log_entries_minus_2xx": logged - result["ok"],
        "log_chain": f"verified, {chain.size} entries" if chain.ok else chain.problem,
    }
    assert result["ok"] > 0, f"no request succeeded: {figures}\n{server_log}"
    assert not any(errors.values()), f"socket errors under load: {figures}"
    assert result["other"] == 0, f"answers outside 2xx under load: {figures}"
    assert 0 <= logged - result["ok"] <= connections, f"log and answers disagree: {figures}"
    assert chain.ok, f"the log does not verify after the run: {chain}"
    return figures


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ops.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--customers", type=int, default=8, help="customers (tokens) rotated")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--duration", type=int, default=3, help="seconds of load")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main_of(run, options()))
