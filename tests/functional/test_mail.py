"""The one mail backend: private RFC 5322 files in the outbox, or a real SMTP server (plain,
STARTTLS, or TLS from the first byte), and a per-recipient cap."""

from __future__ import annotations

import socket
from dataclasses import replace
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from infomediary import create_app, mail
from infomediary.config import Settings
from infomediary.mail import Mail, MailError
from tests.conftest import Auth, csrf
from tests.outbox import messages_to
from tests.smtp_server import Mailbox, SmtpServer, self_signed, server_context

NOTE = Mail("someone@example.org", "A subject", "A body with a link.\n")


def config_for(tmp_path: Path, smtp_url: str = "") -> Settings:
    return Settings(
        instance_path=tmp_path,
        smtp_url=smtp_url,
        mail_from="Infomediary <no-reply@infomediary.example>",
    )


def test_outbox_messages_are_private_rfc5322_files(client, auth, inst) -> None:
    auth.signup(verify=False)
    folder = mail.outbox_path(inst.settings)
    assert folder.stat().st_mode & 0o777 == 0o700
    (path,) = folder.glob("*.eml")
    assert path.stat().st_mode & 0o777 == 0o600
    raw = path.read_bytes()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends throughout (RFC 5322 §2.1)
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "ada@example.org"
    assert message["From"] == inst.settings.mail_from
    assert message["Subject"] == "Confirm your e-mail address"
    assert message["Date"]
    assert message["Message-ID"].endswith("@infomediary.invalid>")
    assert message["Auto-Submitted"] == "auto-generated"
    assert "/signup/verify?token=" in message.get_content()


def test_outbox_lists_newest_last_and_clears_only_what_it_listed(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    for n in range(3):
        mail.send(config, Mail(f"r{n}@example.org", f"number {n}", "body\n"))
    listed = mail.read_outbox(config)
    assert [m.as_dict()["subject"] for m in listed] == ["number 0", "number 1", "number 2"]
    mail.send(config, Mail("late@example.org", "late", "body\n"))
    assert mail.clear_outbox(config, [m.name for m in listed]) == 3
    assert [m.as_dict()["to"] for m in mail.read_outbox(config)] == ["late@example.org"]


def test_smtp_without_starttls_delivers_when_there_is_no_password(tmp_path: Path) -> None:
    box = Mailbox()
    with SmtpServer(box) as port:
        mail.send(config_for(tmp_path, f"smtp://127.0.0.1:{port}"), NOTE)
    (received,) = box.messages
    assert received.recipients == ["<someone@example.org>"]
    assert b"Subject: A subject" in received.data
    assert not received.encrypted
    assert not mail.outbox_path(config_for(tmp_path)).exists()  # nothing went to the outbox


def test_smtp_upgrades_with_starttls_before_the_password(tmp_path: Path, monkeypatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    box = Mailbox(tls=server_context(cert, key), starttls=True, credentials=("mailer", "p@ss w"))
    with SmtpServer(box) as port:
        mail.send(config_for(tmp_path, f"smtp://mailer:p%40ss%20w@127.0.0.1:{port}"), NOTE)
    assert box.logins == [("mailer", "p@ss w", True)]
    (received,) = box.messages
    assert received.encrypted


def test_smtps_is_tls_from_the_first_byte(tmp_path: Path, monkeypatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    box = Mailbox(tls=server_context(cert, key), implicit_tls=True, credentials=("u", "pw"))
    with SmtpServer(box) as port:
        mail.send(config_for(tmp_path, f"smtps://u:pw@127.0.0.1:{port}"), NOTE)
    assert box.logins == [("u", "pw", True)]
    assert box.messages[0].encrypted


def test_a_password_is_never_sent_unencrypted(tmp_path: Path) -> None:
    box = Mailbox(credentials=("mailer", "secret"))  # offers AUTH but no STARTTLS
    with SmtpServer(box) as port, pytest.raises(MailError, match="STARTTLS"):
        mail.send(config_for(tmp_path, f"smtp://mailer:secret@127.0.0.1:{port}"), NOTE)
    assert box.logins == []
    assert box.messages == []


def test_an_unreachable_mail_server_is_a_friendly_503(inst) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(replace(inst.settings, smtp_url=f"smtp://127.0.0.1:{port}"), instance=inst)
    response = Auth(app.test_client()).signup(verify=False)
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "could not send the e-mail" in body
    assert "Traceback" not in body


def test_config_refuses_a_mail_url_of_another_kind_and_production_without_one(tmp_path) -> None:
    from infomediary.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="SMTP_URL"):
        load_config({"INSTANCE_PATH": str(tmp_path), "SMTP_URL": "http://mail"}, environ={})
    production = {
        "INSTANCE_PATH": str(tmp_path),
        "PRODUCTION": True,
        "SECRET_KEY": "s" * 48,
        "ISSUER": "https://infomediary.example",
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
    }
    with pytest.raises(ConfigError, match="SMTP_URL must be set in production"):
        load_config(production, environ={})
    assert load_config({**production, "SMTP_URL": "smtps://mail.example"}, environ={})


def _reset_request(client, address: str, remote: str):
    return client.post(
        "/password/reset",
        data={"csrf_token": csrf(client, "/password/reset"), "email": address},
        environ_base={"REMOTE_ADDR": remote},
    )


def test_each_recipient_gets_at_most_the_capped_number_of_mails(inst) -> None:
    app = create_app(replace(inst.settings, mail_recipient_rate_limit="5 per hour"), instance=inst)
    client = app.test_client()
    answers = []
    for n in range(7):
        response = _reset_request(client, "flood@example.org", f"203.0.113.{n + 1}")
        answers.append((response.status_code, response.headers.get("Location")))
    assert answers == [(302, "/check-email?sent=reset")] * 7  # the page answers as usual
    assert len(messages_to(inst.settings, "flood@example.org")) == 5  # 5 per hour


def test_a_stranger_spends_only_their_own_mail_allowance(inst) -> None:
    """Asking for mail to someone else's address from one place uses up that place's
    allowance for the address (5 an hour), not the owner's."""
    app = create_app(replace(inst.settings, login_rate_limit="100 per minute"), instance=inst)
    client = app.test_client()
    for _ in range(7):
        assert _reset_request(client, "victim@example.org", "198.51.100.7").status_code == 302
    assert len(messages_to(inst.settings, "victim@example.org")) == 5
    assert _reset_request(client, "victim@example.org", "192.0.2.44").status_code == 302
    assert len(messages_to(inst.settings, "victim@example.org")) == 6
