"""``init``, ``demo`` and ``serve``: create the instance, seed it, serve it."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from infomediary.cli.common import _emit, _fail, _settings, _using
from infomediary.config import ConfigError
from infomediary.crypto.keyring import KeyringError
from infomediary.db_roles import RoleError, permission_denied
from infomediary.instance import NotInitialised, initialise
from infomediary.logs import LOGGER_NAME


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(as_json: bool) -> None:
    """Create the instance folder, keyring and schema (idempotent; also migrates)."""
    settings = _settings()
    url = make_url(settings.admin_database_url or settings.database_url)
    try:
        report = initialise(settings)
    except (KeyringError, RoleError) as exc:
        _fail(str(exc))
        return
    except OperationalError as exc:
        where = url.render_as_string(hide_password=True)
        _fail(f"cannot reach the database at {where}: {type(exc.orig).__name__}")
        return
    except DBAPIError as exc:
        denied = permission_denied(exc)
        if denied is None:
            raise
        hint = (
            "INFOMEDIARY_ADMIN_DATABASE_URL must name the role that owns the schema"
            if settings.admin_database_url
            else "set INFOMEDIARY_ADMIN_DATABASE_URL to the role that owns the schema: init "
            "migrates as it and grants this one what the app needs"
        )
        _fail(f"{denied} (as role {url.username or 'of the URL'}): {hint}")
        return
    data = {
        "instance_path": str(settings.instance_path),
        "created_keyring": report.created_keyring,
        "schema_from": report.migrated_from,
        "schema_to": report.migrated_to,
        "granted_role": report.granted_role,
    }
    text = (
        f"instance {settings.instance_path}: "
        f"{'new keyring created' if report.created_keyring else 'keyring present'}; "
        f"schema {report.migrated_from or 'empty'} -> {report.migrated_to}"
    )
    if report.granted_role:
        text += f"; role {report.granted_role} granted the app's rights"
    _emit(as_json, data, text)


@click.command()
@click.option(
    "--customers",
    "count",
    type=click.IntRange(0, 10_000_000),
    default=0,
    help="Also top the synthetic population up to this many customers.",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of the synthetic population."
)
@click.option("--json", "as_json", is_flag=True)
def demo(count: int, seed: int, as_json: bool) -> None:
    """Seed demo logins and, with --customers N, N synthetic customers (no password)."""
    from infomediary.demo import (
        ensure_demo_logins,
        ensure_demo_supplier,
        seed_synthetic,
        synthetic_count,
    )

    with _using() as (inst, session):
        logins = ensure_demo_logins(session, inst)
        supplier = ensure_demo_supplier(session)
        before = synthetic_count(session)
        if count > before:
            with click.progressbar(
                length=count - before, label="synthetic customers", file=sys.stderr
            ) as bar:
                seed_synthetic(session, inst, count, seed=seed, progress=bar.update)
        total = synthetic_count(session)
    data: dict[str, Any] = {
        "logins": [{"email": e, "password": p} for e, p in logins],
        "synthetic_customers": total,
        "supplier": supplier,
    }
    text = "Demo logins:\n" + "\n".join(f"  {e}  /  {p}" for e, p in logins)
    text += f"\nSynthetic customers: {total}"
    if supplier:
        text += (
            f"\nDemo supplier {supplier['name']} (funded, shown once):\n"
            f"  client_id     {supplier['client_id']}\n"
            f"  client_secret {supplier['client_secret']}"
        )
    _emit(as_json, data, text)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the dashboard with waitress (production WSGI server)."""
    from waitress import serve as waitress_serve

    from infomediary import create_app

    try:
        app = create_app()
    except (ConfigError, KeyringError, NotInitialised) as exc:
        _fail(str(exc))
        return
    # waitress configures the root logger; ours already has a handler with the request id
    logging.getLogger(LOGGER_NAME).propagate = False
    app.extensions["infomediary.warm"]()  # the index and caches, before the first request
    click.echo(f"Infomediary on http://{host}:{port}/", err=True)
    waitress_serve(app, host=host, port=port, threads=threads, ident="infomediary")
