"""The application factory: settings, the instance, logging, then the web edge."""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from typing import Any

from flask import Flask

from infomediary.config import Settings, load_config, validate
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
    configure_logging(settings.log_level)

    from infomediary import web

    web.init_app(app)
    if settings.redis_url:  # jobs go to RQ; `infomediary worker` processes run them (and sign)
        from infomediary.services.jobs import use_redis

        use_redis(inst, settings.redis_url)
    elif instance is None if run_jobs is None else run_jobs:
        from infomediary.services import checkpoints
        from infomediary.services.jobs import Worker

        checkpoints.schedule(inst)
        worker = Worker(inst).start()
        app.extensions["infomediary.jobs"] = worker
        atexit.register(worker.stop)
    return app
