"""``customers create`` and ``outbox``: customer accounts and the mail they are sent."""

from __future__ import annotations

import json

import click

from infomediary.audit.log import Actor
from infomediary.cli.common import _emit, _settings, _using
from infomediary.services import Context, customers


@click.group(name="customers")
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


@click.command()
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
