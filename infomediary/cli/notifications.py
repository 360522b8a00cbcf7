"""``notifications digest``: e-mail the notification digest now to every customer due one."""

from __future__ import annotations

import click

from infomediary.cli.common import _emit, _using
from infomediary.services.notifications import send_digests


@click.group(name="notifications")
def notifications_group() -> None:
    """The customers' notifications."""


@notifications_group.command("digest")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def digest(as_json: bool) -> None:
    """Send the e-mail digest now to each customer who turned it on, whose last one is at least
    INFOMEDIARY_DIGEST_SECONDS old and who has something new of its kinds (what the recurring
    job does); each digest sent is logged."""
    with _using() as (inst, session):
        sent = send_digests(session, inst)
    _emit(as_json, {"sent": sent}, f"{sent} digest(s) sent")
