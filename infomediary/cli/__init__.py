"""The ``infomediary`` command: init, demo, customers, keys, audit, serve.

Every command reads the same ``INFOMEDIARY_*`` settings as the web app. Errors print one
clear line on stderr and exit non-zero; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor, verify
from infomediary.config import ConfigError, Settings, load_config
from infomediary.crypto.keyring import KeyringError
from infomediary.errors import ServiceError, ValidationFailed
from infomediary.instance import (
    Instance,
    NotInitialised,
    initialise,
    open_instance,
)
from infomediary.logs import LOGGER_NAME
from infomediary.services import Context, customers
from infomediary.services import keys as key_service
from infomediary.statuses import SupplierKind


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
    try:
        return open_instance(settings)
    except (KeyringError, NotInitialised) as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc


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


@click.group(help=__doc__)
@click.version_option(package_name="infomediary", prog_name="infomediary")
def main() -> None:
    pass


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(as_json: bool) -> None:
    """Create the instance folder, keyring and schema (idempotent; also migrates)."""
    settings = _settings()
    try:
        report = initialise(settings)
    except KeyringError as exc:
        _fail(str(exc))
        return
    except OperationalError as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        _fail(f"cannot reach the database at {where}: {type(exc.orig).__name__}")
        return
    data = {
        "instance_path": str(settings.instance_path),
        "created_keyring": report.created_keyring,
        "schema_from": report.migrated_from,
        "schema_to": report.migrated_to,
    }
    text = (
        f"instance {settings.instance_path}: "
        f"{'new keyring created' if report.created_keyring else 'keyring present'}; "
        f"schema {report.migrated_from or 'empty'} -> {report.migrated_to}"
    )
    _emit(as_json, data, text)


@main.command()
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


@main.group(name="customers")
def customers_group() -> None:
    """Manage customers."""


@customers_group.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 12 characters.")
@click.option("--name", default=None)
@click.option(
    "--unverified",
    is_flag=True,
    help="The customer must confirm the address first (the link is mailed, or put in the outbox).",
)
@click.option("--json", "as_json", is_flag=True)
def customers_create(
    email: str, password: str, name: str | None, unverified: bool, as_json: bool
) -> None:
    """Create a customer who can log in (the operator vouches for the address)."""
    from infomediary.services import accounts

    with _using() as (inst, session):
        customer_id = customers.register(
            session,
            inst,
            email=email,
            password=password,
            name=name,
            ctx=Context(Actor.system("cli")),
            verified=not unverified,
        )
        if unverified:
            base_url = inst.settings.issuer or "http://127.0.0.1:5000"
            deliver = accounts.sender(inst.settings)
            accounts.send_verification(session, inst, deliver, customer_id, base_url)
    data = {"id": customer_id, "verified": not unverified}
    text = f"created customer {customer_id}"
    if unverified:
        text += "; a confirmation link was sent to the address"
    _emit(as_json, data, text)


@main.command()
@click.option("--clear", is_flag=True, help="Remove the messages shown.")
@click.option("--json", "as_json", is_flag=True)
def outbox(clear: bool, as_json: bool) -> None:
    """Print the mail in the instance's outbox folder (no SMTP server set), newest last."""
    from infomediary import mail

    settings = _settings()
    messages = [m.as_dict() for m in mail.read_outbox(settings)]
    if clear:
        mail.clear_outbox(settings, [m["file"] for m in messages])
    if as_json:
        click.echo(json.dumps(messages, indent=2, ensure_ascii=False))
        return
    if not messages:
        click.echo("the outbox is empty")
    for m in messages:
        click.echo(
            f"--- {m['file']}\nDate: {m['date']}\nFrom: {m['from']}\nTo: {m['to']}\n"
            f"Subject: {m['subject']}\n\n{m['body'].rstrip()}\n"
        )


@main.group(name="suppliers")
def suppliers_group() -> None:
    """Register, verify and suspend suppliers (OAuth clients)."""


@suppliers_group.command("create")
@click.option("--name", required=True)
@click.option(
    "--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI; repeatable."
)
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope; repeatable.")
@click.option("--purpose", "purposes", multiple=True, help="Declared purpose; repeatable.")
@click.option("--privacy-policy-url", default=None)
@click.option("--sector", default="retail", show_default=True)
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in SupplierKind]),
    default=SupplierKind.SUPPLIER.value,
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True)
def suppliers_create(
    name: str,
    redirect_uris: tuple[str, ...],
    scopes: tuple[str, ...],
    purposes: tuple[str, ...],
    privacy_policy_url: str | None,
    sector: str,
    kind: str,
    as_json: bool,
) -> None:
    """Register a supplier; prints client_id and client_secret (shown once, stored hashed)."""
    from infomediary.services.suppliers import create_supplier

    with _using() as (_inst, session):
        created = create_supplier(
            session,
            name=name,
            redirect_uris=list(redirect_uris),
            scopes=[p for s in scopes for p in s.split()],
            purposes=list(purposes),
            privacy_policy_url=privacy_policy_url,
            sector=sector,
            kind=kind,
        )
        supplier = created.supplier
    data = {
        "id": supplier.id,
        "client_id": supplier.client_id,
        "client_secret": created.client_secret,
        "scope": supplier.scopes,
        "purposes": supplier.purposes.split(),
    }
    _emit(
        as_json,
        data,
        f"supplier {supplier.id}\nclient_id:     {supplier.client_id}\n"
        f"client_secret: {created.client_secret}\n(shown once; only its hash is kept)",
    )


@suppliers_group.command("suspend")
@click.argument("supplier")
@click.option("--json", "as_json", is_flag=True)
def suppliers_suspend(supplier: str, as_json: bool) -> None:
    """Suspend SUPPLIER (id or client_id): all its tokens stop working at once."""
    from infomediary.services.suppliers import suspend_supplier

    with _using() as (_inst, session):
        revoked = suspend_supplier(session, supplier)
    _emit(
        as_json,
        {"suspended": supplier, "tokens_revoked": revoked},
        f"suspended {supplier}; {revoked} tokens revoked",
    )


@suppliers_group.command("verify")
@click.argument("supplier")
@click.option("--json", "as_json", is_flag=True)
def suppliers_verify(supplier: str, as_json: bool) -> None:
    """Mark SUPPLIER (id or client_id) as verified by the operator; the consent screen says so.

    Verify only after checking who runs the supplier and that its redirect hosts are theirs.
    """
    from infomediary.services.suppliers import verify_supplier

    with _using() as (_inst, session):
        row = verify_supplier(session, supplier)
        verified_at = row.verified_at.isoformat() if row.verified_at else None
        data = {"id": row.id, "client_id": row.client_id, "name": row.name}
    _emit(
        as_json,
        {**data, "verified_at": verified_at},
        f"verified {data['client_id']} ({data['name']}) since {verified_at}",
    )


@suppliers_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def suppliers_list(as_json: bool) -> None:
    """List suppliers (never their secrets)."""
    from infomediary.services.suppliers import all_suppliers

    with _using() as (_inst, session):
        rows = [
            {
                "id": s.id,
                "client_id": s.client_id,
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "scope": s.scopes,
                "purposes": s.purposes.split(),
                "verified_at": s.verified_at.isoformat() if s.verified_at else None,
            }
            for s in all_suppliers(session)
        ]
    text = "\n".join(
        f"{r['client_id']}  {r['status']:9}  {r['name']}  [{r['scope']}]" for r in rows
    )
    _emit(as_json, {"suppliers": rows}, text or "no suppliers")


@suppliers_group.command("fund")
@click.argument("supplier")
@click.option("--cents", type=click.IntRange(1, 10**12), required=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_fund(supplier: str, cents: int, as_json: bool) -> None:
    """Credit SUPPLIER's rewards account (double-entry, from the platform's funding account)."""
    from infomediary.services.rewards import fund

    with _using() as (_inst, session):
        balance = fund(session, supplier, cents)
    _emit(
        as_json,
        {"supplier": supplier, "balance_cents": balance},
        f"{supplier}: balance {balance / 100:.2f}",
    )


@suppliers_group.command("flagged")
@click.option("--threshold", type=click.IntRange(1, 10**6), default=25, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_flagged(threshold: int, as_json: bool) -> None:
    """Suppliers blocked by at least THRESHOLD customers, for review."""
    from infomediary.services.offer_inbox import flagged_suppliers
    from infomediary.services.suppliers import names_of

    with _using() as (_inst, session):
        flagged = flagged_suppliers(session, threshold)
        names = names_of(session, flagged)
    rows = [{"id": k, "name": names.get(k, "?"), "blocks": v} for k, v in flagged.items()]
    _emit(
        as_json,
        {"flagged": rows},
        "\n".join(f"{r['id']}  {r['name']}  blocked by {r['blocks']}" for r in rows) or "none",
    )


@suppliers_group.command("initial-access-token")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def suppliers_iat(days: int, as_json: bool) -> None:
    """Issue a single-use initial access token for dynamic client registration (RFC 7591)."""
    from infomediary.services.suppliers import issue_initial_access_token

    with _using() as (_inst, session):
        token = issue_initial_access_token(session, days=days)
    _emit(
        as_json,
        {"initial_access_token": token, "expires_in_days": days},
        f"{token}\n(single use, valid {days} days; send as 'Authorization: Bearer ...' "
        "to /oauth/register)",
    )


@main.group()
def keys() -> None:
    """Key-encryption-key rotation and pruning."""


@keys.command()
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def rotate(batch: int, as_json: bool) -> None:
    """Re-wrap every data key under a new KEK. Resumable: a rerun finishes an interrupted one."""
    try:
        with _using() as (inst, session):
            rotation = key_service.start_rotation(session, inst)
            version = rotation.active_kek
            click.echo(
                f"resuming rotation to KEK version {version}"
                if rotation.resumed
                else f"new KEK version {version} is active",
                err=True,
            )
            with click.progressbar(
                length=rotation.pending, label="re-wrapping data keys", file=sys.stderr
            ) as bar:
                for count in key_service.rewrap(session, inst, rotation, batch=batch):
                    bar.update(count)
            report = key_service.finish_rotation(session, inst, rotation)
    except KeyringError as exc:
        _fail(str(exc))
        return
    _emit(
        as_json,
        {"active_kek": version, "rewrapped": report.rewrapped, "removable": report.removable},
        f"{report.rewrapped} data keys re-wrapped under KEK version {version}; "
        f"removable with `infomediary keys prune`: {report.removable or 'none'}",
    )


@keys.command()
@click.option("--json", "as_json", is_flag=True)
def prune(as_json: bool) -> None:
    """Remove KEK versions no data key uses, unless a running process may still wrap with them."""
    try:
        with _using() as (inst, session):
            report = key_service.prune(session, inst)
    except KeyringError as exc:
        _fail(str(exc))
        return
    kept = "".join(
        f"; KEK version {v} still wraps {n} data key(s): finish with `infomediary keys rotate`"
        for v, n in sorted(report.still_wrapping.items())
    )
    _emit(
        as_json,
        {
            "removed": report.removed,
            "still_wrapping": {str(v): n for v, n in report.still_wrapping.items()},
        },
        f"removed KEK versions: {report.removed or 'none'}{kept}",
    )


@main.group()
def audit() -> None:
    """Access-log tools."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
def audit_verify(as_json: bool) -> None:
    """Recompute every hash and link of the access log; exit 1 naming the first bad entry."""
    with _using() as (_inst, session):
        result = verify(session)
    data = {
        "ok": result.ok,
        "size": result.size,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
    if result.ok:
        _emit(as_json, data, f"access log intact: {result.size} entries")
        return
    _emit(as_json, data, f"access log BROKEN at entry {result.first_bad_seq}: {result.problem}")
    sys.exit(1)


@main.command()
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
    click.echo(f"Infomediary on http://{host}:{port}/", err=True)
    waitress_serve(app, host=host, port=port, threads=threads, ident="infomediary")
