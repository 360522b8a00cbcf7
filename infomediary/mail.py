"""Outgoing e-mail through one backend: SMTP when ``INFOMEDIARY_SMTP_URL`` is set, otherwise
files in the instance's ``outbox/`` folder (for development and tests; ``infomediary outbox``
prints them).

Messages are RFC 5322 (``email.message.EmailMessage``, written with CRLF line ends) and carry
``Auto-Submitted: auto-generated`` (RFC 3834) so that auto-responders stay quiet. The outbox
folder is 0700 and every message 0600: account mail holds single-use links. SMTP uses
``smtplib``: ``smtps://`` is TLS from the first byte (RFC 8314), ``smtp://`` upgrades with
STARTTLS (RFC 3207) whenever the server offers it, and a password is never sent over a
connection that is not encrypted. Nothing here logs an address, a subject or a body.
"""

from __future__ import annotations

import os
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from infomediary.logs import get_logger

if TYPE_CHECKING:
    from infomediary.config import Settings

OUTBOX = "outbox"
SMTP_TIMEOUT = 15
log = get_logger("mail")


class MailError(RuntimeError):
    """The message could not be handed over; the text names the reason, never the recipient."""


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class Stored:
    """A message in the outbox: its file name (time-ordered) and the parsed message."""

    name: str
    message: EmailMessage

    def as_dict(self) -> dict[str, str]:
        body = self.message.get_body(preferencelist=("plain",))
        return {
            "file": self.name,
            "date": str(self.message["Date"]),
            "from": str(self.message["From"]),
            "to": str(self.message["To"]),
            "subject": str(self.message["Subject"]),
            "body": body.get_content() if body is not None else "",
        }


def outbox_path(settings: Settings) -> Path:
    return settings.instance_path / OUTBOX


def compose(settings: Settings, mail: Mail) -> EmailMessage:
    sender = settings.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "infomediary.invalid"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body)
    return message


def send(settings: Settings, mail: Mail) -> None:
    """Hand the message to the configured backend; raises :class:`MailError` if it cannot."""
    try:
        message = compose(settings, mail)
    except (ValueError, TypeError):
        raise MailError("the message could not be composed") from None
    if settings.smtp_url:
        _send_smtp(settings.smtp_url, message)
        log.info("mail handed to the SMTP server")
    else:
        _write_outbox(outbox_path(settings), message)
        log.info("mail written to the outbox")


def _wire_policy(message: EmailMessage) -> policy.Policy:
    """CRLF line ends; UTF-8 headers (RFC 6531) only when an address needs them."""
    ascii_only = all(str(v).isascii() for v in message.values())
    return policy.SMTP if ascii_only else policy.SMTPUTF8


def _write_outbox(folder: Path, message: EmailMessage) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.eml"
    partial = folder / f".{name}.part"
    data = message.as_bytes(policy=_wire_policy(message))
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, folder / name)  # readers never see half a message


def read_outbox(settings: Settings) -> list[Stored]:
    """Every message in the outbox, oldest first (newest last)."""
    folder = outbox_path(settings)
    if not folder.is_dir():
        return []
    parser = BytesParser(policy=policy.default)
    stored = []
    for path in sorted(folder.glob("*.eml")):
        parsed = parser.parsebytes(path.read_bytes())
        if isinstance(parsed, EmailMessage):
            stored.append(Stored(path.name, parsed))
    return stored


def clear_outbox(settings: Settings, names: list[str]) -> int:
    """Remove the named messages (those just shown, not any that arrived meanwhile)."""
    folder = outbox_path(settings)
    removed = 0
    for name in names:
        path = folder / name
        if path.parent == folder and path.suffix == ".eml" and path.exists():
            path.unlink()
            removed += 1
    return removed


def _send_smtp(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise MailError("INFOMEDIARY_SMTP_URL must be smtp://host or smtps://host")
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT, context=context
            )
        else:
            client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo()
            encrypted = parts.scheme == "smtps"
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                encrypted = True
            if parts.username is not None:
                if not encrypted:
                    raise MailError(
                        "the mail server offers no STARTTLS, so the SMTP password is not sent; "
                        "use smtps:// or a server with STARTTLS"
                    )
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)
    except MailError:
        raise
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"the mail server did not take the message ({type(exc).__name__})"
        ) from None
