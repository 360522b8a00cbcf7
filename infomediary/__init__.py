"""Infomediary: customers own their profile and broker it to suppliers on their own terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from infomediary.config import load_config
from infomediary.instance import Instance, open_instance, secret_key
from infomediary.logs import configure_logging

__all__ = ["create_app"]


def create_app(
    config: Mapping[str, Any] | None = None, *, instance: Instance | None = None
) -> Flask:
    """Application factory: settings, then the instance (keyring and schema checked), then web.

    Refuses to start on unsafe production settings, a missing or foreign keyring, or an
    unmigrated database, each with a message naming what to fix.
    """
    settings = load_config(config)
    inst = instance or open_instance(settings)
    app = Flask(
        __name__,
        instance_path=settings["INSTANCE_PATH"],
        static_folder="web/static",
        template_folder="web/templates",
    )
    app.config.update(settings)
    app.config["SECRET_KEY"] = secret_key(settings, inst.keyring)
    app.config["RATELIMIT_STORAGE_URI"] = settings["RATELIMIT_STORAGE_URI"]
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.extensions["infomediary"] = inst
    configure_logging(app)

    from infomediary import web

    web.init_app(app)
    return app
