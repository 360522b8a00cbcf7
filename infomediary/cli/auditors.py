"""``auditors create | list | disable``: the accounts that read the whole access log.

``create`` asks for the password twice (or reads one line from stdin with
``--password-stdin``) and prints the TOTP secret and its ``otpauth://`` provisioning URI
once: they are stored only sealed, and cannot be shown again.
"""

from __future__ import annotations

import sys

import click

from infomediary.audit.log import Actor
from infomediary.cli.common import _emit, _fail, _using
from infomediary.services import Context, auditors

CLI = Context(Actor.system("cli"))


@click.group(name="auditors")
def auditors_group() -> None:
    """Create, list and disable auditors (password plus TOTP code)."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            _fail("no password on stdin")
        return line.rstrip("\r\n")
    value: str = click.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    return value


@auditors_group.command("create")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line.")
@click.option("--json", "as_json", is_flag=True)
def auditors_create(email: str, password_stdin: bool, as_json: bool) -> None:
    """Create an auditor; prints the TOTP secret and otpauth:// URI once."""
    password = _password(password_stdin)
    with _using() as (inst, session):
        created = auditors.create(session, inst, email=email, password=password, ctx=CLI)
    data = {
        "id": created.id,
        "totp_secret": created.totp_secret,
        "provisioning_uri": created.provisioning_uri,
    }
    text = (
        f"created auditor {created.id}\n"
        f"TOTP secret (shown once): {created.totp_secret}\n"
        f"provisioning URI (shown once): {created.provisioning_uri}"
    )
    _emit(as_json, data, text)


@auditors_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def auditors_list(as_json: bool) -> None:
    """Every auditor: id, address, created, last login, disabled."""
    with _using() as (inst, session):
        found = auditors.list_auditors(session, inst)
    rows = [
        {
            "id": a.id,
            "email": a.email,
            "created_at": a.created_at.isoformat(),
            "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None,
            "disabled": a.disabled,
        }
        for a in found
    ]
    lines = [
        f"{r['id']}  {r['email']}  created {r['created_at']}  "
        f"last login {r['last_login_at'] or 'never'}{'  disabled' if r['disabled'] else ''}"
        for r in rows
    ]
    _emit(as_json, {"auditors": rows}, "\n".join(lines) or "no auditors")


@auditors_group.command("disable")
@click.option("--email", required=True)
@click.option("--json", "as_json", is_flag=True)
def auditors_disable(email: str, as_json: bool) -> None:
    """Disable an auditor: no more logins, and open sessions end at their next request."""
    with _using() as (inst, session):
        auditor_id = auditors.disable(session, inst, email, CLI)
    _emit(as_json, {"id": auditor_id, "disabled": True}, f"disabled auditor {auditor_id}")
