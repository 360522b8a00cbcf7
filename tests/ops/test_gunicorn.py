"""gunicorn with ``gunicorn.conf.py``: the configuration as gunicorn reads it, then real
gunicorn on a free port against a seeded SQLite instance.

- ``forwarded_allow_ips`` follows ``INFOMEDIARY_TRUSTED_PROXIES`` (addresses and networks), and
  gunicorn's own validator accepts what the file makes of it;
- every worker builds the broker's index when it boots, before it takes a request: its log
  line names the members it loaded, and it is there before any broker request was made;
- ``X-Forwarded-For`` is honoured from a trusted proxy address and not from any other: the
  per-address rate limit of the token endpoint counts the forwarded client from 127.0.0.1
  (trusted) and the peer itself from 127.0.0.2 (not trusted), and the issuer the metadata
  names follows ``X-Forwarded-Proto``/``-Host`` only from the trusted peer.
"""

from __future__ import annotations

import http.client
import json
import re
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]

from infomediary import create_app
from tests.ops.support import ROOT, Gunicorn, Missing, instance, tool, wait_for

CONFIG = ROOT / "gunicorn.conf.py"


def loaded(monkeypatch: pytest.MonkeyPatch, **env: str) -> Config:
    """``gunicorn.conf.py`` run as gunicorn runs it, its settings set through gunicorn's own
    validators (a value gunicorn would refuse fails here)."""
    for name in ("INFOMEDIARY_TRUSTED_PROXIES", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    values = runpy.run_path(str(CONFIG))
    cfg = Config()
    for name, value in values.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_forwarded_allow_ips_follows_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = loaded(monkeypatch, INFOMEDIARY_TRUSTED_PROXIES=" 10.0.0.5, 10.1.0.0/16 ,fd00::/8")
    assert cfg.forwarded_allow_ips == ["10.0.0.5/32", "10.1.0.0/16", "fd00::/8"]
    networks = [str(n) for n in cfg.forwarded_allow_networks()]
    assert networks == ["10.0.0.5/32", "10.1.0.0/16", "fd00::/8"]
    assert cfg.proxy_allow_ips == cfg.forwarded_allow_ips
    assert cfg.wsgi_app == "wsgi:app"
    assert (cfg.worker_class_str, cfg.threads, cfg.preload_app) == ("gthread", 4, False)
    assert cfg.accesslog is None  # its lines would carry query strings

    default = loaded(monkeypatch)
    assert default.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert loaded(monkeypatch, WEB_CONCURRENCY="3").workers == 3


def test_a_wrong_trusted_proxy_stops_gunicorn_at_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit, match=r"^error: INFOMEDIARY_TRUSTED_PROXIES must list"):
        loaded(monkeypatch, INFOMEDIARY_TRUSTED_PROXIES="10.0.0.5,proxy.internal")


MEMBERS = 30


@contextmanager
def served(workers: int, **settings: str) -> Iterator[Gunicorn]:
    """gunicorn with the repository's configuration on a seeded SQLite instance."""
    try:
        tool("gunicorn")
    except Missing as missing:
        pytest.skip(str(missing))
    from infomediary.demo import seed_synthetic

    with instance("", LOG_LEVEL="INFO", **settings) as ops:
        inst = ops.open()
        try:
            with inst.sessions() as session:
                seed_synthetic(session, inst, MEMBERS, workers=1)
        finally:
            inst.close()
        server = Gunicorn(ops, workers=workers)
        with server:
            yield server


def warmed_lines(server: Gunicorn) -> list[str]:
    assert server.log_path is not None
    text = Path(server.log_path).read_text(errors="replace")
    return re.findall(r"index warmed: \d+ member\(s\) at version \d+", text)


@pytest.mark.ops
def test_every_worker_builds_the_index_at_boot_before_any_broker_request() -> None:
    with served(workers=2) as server:
        # no broker request has been made: only /healthz, which reads no index
        lines = wait_for("both workers warmed", lambda: len(warmed_lines(server)) >= 2 or None, 60)
        assert lines is True
        found = warmed_lines(server)
        assert len(found) == 2, server.log()
        assert all(line.startswith(f"index warmed: {MEMBERS} member(s)") for line in found)
        assert len(server.worker_pids()) == 2


def _post_token(port: int, source: str, forwarded_for: str) -> int:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/oauth/token",
            body="grant_type=client_credentials",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-For": forwarded_for,
            },
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _issuer(port: int, source: str) -> Any:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "GET",
            "/.well-known/oauth-authorization-server",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "id.shop.example"},
        )
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200, body
        return body["issuer"]
    finally:
        connection.close()


@pytest.mark.ops
def test_forwarded_for_is_honoured_from_a_trusted_proxy_only() -> None:
    with served(
        workers=1,  # the limiter's memory store is per process
        PROXY_HOPS="1",
        TRUSTED_PROXIES="127.0.0.1",
        OAUTH_RATE_LIMIT="2 per minute",
    ) as server:
        port = server.port
        # from the trusted proxy: each forwarded client has its own count
        assert [_post_token(port, "127.0.0.1", "203.0.113.7") for _ in range(3)][-1] == 429
        assert _post_token(port, "127.0.0.1", "203.0.113.8") != 429
        # from a peer that is not a proxy: the header is ignored, the peer is the client
        statuses = [_post_token(port, "127.0.0.2", f"198.51.100.{n}") for n in range(3)]
        assert 429 not in statuses[:2]
        assert statuses[-1] == 429
        assert _post_token(port, "127.0.0.3", "203.0.113.9") != 429

        assert _issuer(port, "127.0.0.1") == "https://id.shop.example"
        assert _issuer(port, "127.0.0.2") == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("peer", "issuer"),
    [
        ("10.1.2.3", "https://id.shop.example"),  # inside a trusted network
        ("10.0.0.5", "https://id.shop.example"),  # a trusted address
        ("10.0.0.6", "http://localhost"),  # anyone else: the headers are dropped
        ("192.0.2.1", "http://localhost"),
    ],
)
def test_the_app_takes_forwarded_headers_from_trusted_proxies_only(
    inst: Any, peer: str, issuer: str
) -> None:
    settings = replace(inst.settings, proxy_hops=1, trusted_proxies="10.0.0.5,10.1.0.0/16")
    client = create_app(settings, instance=inst).test_client()
    response = client.get(
        "/.well-known/oauth-authorization-server",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "id.shop.example"},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert response.status_code == 200
    assert response.get_json()["issuer"] == issuer
