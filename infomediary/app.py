"""The application factory: settings, the instance, logging, then the web edge."""

from __future__ import annotations

import atexit
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask

from infomediary.config import Settings, load_config, trusted_proxy_networks, validate
from infomediary.instance import Instance, open_instance, secret_key
from infomediary.logs import configure_logging


def create_app(
    config: Settings | Mapping[str, Any] | None = None,
    *,
    instance: Instance | None = None,
    run_jobs: bool | None = None,
) -> Flask:
    """Application factory: settings, then the instance (keyring and schema checked), then web.

    ``config`` is a :class:`Settings` (checked again here) or overrides for
    :func:`load_config`. Refuses to start on an invalid or unsafe setting, a missing or
    foreign keyring, or an unmigrated database, each with a message naming what to fix.

    ``run_jobs`` starts the in-process job worker (``app.extensions["infomediary.jobs"]``,
    stopped at exit or by its ``stop()``). By default an app runs jobs for the instance it
    opens itself; one given an ``instance`` (tests, embedding) leaves them to its caller. With
    ``INFOMEDIARY_REDIS_URL`` set no worker starts: committed jobs are pushed to RQ instead.
    """
    if isinstance(config, Settings):
        settings = config
        validate(settings)
    else:
        settings = load_config(config)
    inst = instance or open_instance(settings)
    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        static_folder="web/static",
        template_folder="web/templates",
    )
    # Flask and its extensions read their own keys; everything of ours is in SETTINGS.
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=secret_key(settings, inst.keyring),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.extensions["infomediary"] = inst
    configure_logging(settings.log_level, settings.log_format)

    from infomediary import web
    from infomediary.services import warmup

    web.init_app(app)
    _forwarded_only_from(app, settings)
    # what a server calls once before it takes traffic (gunicorn.conf.py, `infomediary serve`)
    app.extensions["infomediary.warm"] = functools.partial(warmup.warm, inst)
    if settings.redis_url:  # jobs go to RQ; `infomediary worker` processes run them (and sign)
        from infomediary.services.jobs import use_redis

        use_redis(inst, settings.redis_url)
    elif instance is None if run_jobs is None else run_jobs:
        from infomediary.services import housekeeping
        from infomediary.services.jobs import Worker

        housekeeping.ensure_recurring(inst)
        worker = Worker(inst).start()
        app.extensions["infomediary.jobs"] = worker
        atexit.register(worker.stop)
    return app


#: The headers a reverse proxy sets and ProxyFix reads (WSGI environ keys).
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
#: Where the proxies are when INFOMEDIARY_TRUSTED_PROXIES is empty (gunicorn's default too).
LOCAL_PROXIES = "127.0.0.1,::1"


def _forwarded_only_from(app: Flask, settings: Settings) -> None:
    """With ``INFOMEDIARY_PROXY_HOPS``, ProxyFix takes the client's address, scheme and host
    from ``X-Forwarded-*``: only a peer among ``INFOMEDIARY_TRUSTED_PROXIES`` may set them.
    From anyone else they are dropped before ProxyFix reads them, so a client that reaches
    the server directly cannot pick the address its rate limits count against."""
    if settings.proxy_hops <= 0:
        return
    networks = trusted_proxy_networks(settings.trusted_proxies or LOCAL_PROXIES)
    app.wsgi_app = _ForwardedGate(app.wsgi_app, networks)  # type: ignore[method-assign]


class _ForwardedGate:
    def __init__(
        self,
        wsgi: Callable[..., Iterable[bytes]],
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    ) -> None:
        self.wsgi = wsgi
        self.networks = networks

    def trusted(self, peer: str | None) -> bool:
        if not peer:  # a UNIX socket: only the proxy on this machine can reach it
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not self.trusted(environ.get("REMOTE_ADDR")):
            for header in FORWARDED_HEADERS:
                environ.pop(header, None)
        return self.wsgi(environ, start_response)
