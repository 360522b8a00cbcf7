"""What every command shares: one-line failures, the settings, the open instance, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.orm import Session

from infomediary.config import ConfigError, Settings, load_config
from infomediary.crypto.keyring import KeyringError
from infomediary.errors import ServiceError, ValidationFailed
from infomediary.instance import Instance, NotInitialised, open_instance
from infomediary.logs import configure_logging
from infomediary.services.jobs import use_redis


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    """The settings, checked; a wrong one ends the command with one line naming it."""
    try:
        return load_config()
    except ConfigError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc


def _open() -> Instance:
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        inst = open_instance(settings)
    except (KeyringError, NotInitialised) as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    use_redis(inst)  # with INFOMEDIARY_REDIS_URL, jobs a command commits go to the RQ workers
    return inst


@contextmanager
def _using() -> Iterator[tuple[Instance, Session]]:
    """The instance and a session for one command; domain errors become one-line failures."""
    inst = _open()
    try:
        with inst.sessions() as session:
            yield inst, session
    except ValidationFailed as exc:
        _fail("; ".join(f"{field}: {message}" for field, message in exc.errors.items()))
    except ServiceError as exc:
        _fail(exc.message)
    finally:
        inst.close()


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, sort_keys=True) if as_json else text)
