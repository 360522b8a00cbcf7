"""A small real SMTP server for tests (RFC 5321 subset, STARTTLS per RFC 3207, AUTH PLAIN
per RFC 4954, or TLS from the first byte as with smtps://), on a loopback port.

It keeps what it received, and whether each login and message came over TLS, so tests can
check that the mail backend upgrades the connection and never sends a password in clear.
"""

from __future__ import annotations

import base64
import ipaddress
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files in ``folder``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    encrypted: bool


@dataclass
class Mailbox:
    tls: ssl.SSLContext | None = None
    starttls: bool = False
    implicit_tls: bool = False
    credentials: tuple[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        box = self.server.box
        if box.implicit_tls and box.tls is not None:
            self.request = box.tls.wrap_socket(self.request, server_side=True)
            self.encrypted = True
        else:
            self.encrypted = False
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()  # the TLS-wrapped socket, which the server does not know

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        box = self.server.box
        reader: Any = self.rfile
        self.reply("220 127.0.0.1 test SMTP")
        sender, recipients = "", list[str]()
        while line := reader.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                lines = ["250-127.0.0.1", "250-8BITMIME"]
                if box.starttls and not self.encrypted:
                    lines.append("250-STARTTLS")
                if box.credentials:
                    lines.append("250-AUTH PLAIN")
                self.reply("\r\n".join([*lines, "250 OK"]))
            elif verb == "STARTTLS" and box.starttls and box.tls is not None:
                self.reply("220 go ahead")
                self.request = box.tls.wrap_socket(self.request, server_side=True)
                self.encrypted = True
                self.rfile = reader = self.request.makefile("rb")
                self.wfile = self.request.makefile("wb")
            elif verb == "AUTH" and box.credentials:
                _, user, password = base64.b64decode(command.split(" ")[2]).decode().split("\0")
                box.logins.append((user, password, self.encrypted))
                ok = (user, password) == box.credentials
                self.reply("235 accepted" if ok else "535 rejected")
            elif verb == "MAIL":
                sender, recipients = command.split(":", 1)[1].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = b""
                while (chunk := reader.readline()) not in (b".\r\n", b""):
                    data += chunk
                box.messages.append(Received(sender, recipients, data, self.encrypted))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, box: Mailbox):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.box = box


class SmtpServer:
    """``with SmtpServer(box) as port:`` serves ``box`` on 127.0.0.1:port until the block ends."""

    def __init__(self, box: Mailbox):
        self.server = _Server(box)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        return int(self.server.server_address[1])

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
