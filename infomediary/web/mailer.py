"""What the account views share: the site's own URL for links, mail delivery with a cap per
recipient, and starting a login session.

Links in account mail are built from ``INFOMEDIARY_ISSUER`` when it is set (it must be in
production), never from the request's ``Host`` header alone: a forged host would otherwise
send a reset link, token and all, to someone else's server ("password reset poisoning").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from flask import redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from limits import parse_many

from infomediary.errors import ValidationFailed
from infomediary.logs import get_logger
from infomediary.mail import Mail
from infomediary.services import accounts
from infomediary.web.db import db
from infomediary.web.limits import limiter
from infomediary.web.security import context, instance, settings
from infomediary.web.sessions import ServerSession

log = get_logger("mail")


def site_url() -> str:
    return settings().issuer.rstrip("/") or request.host_url.rstrip("/")


def deliver(message: Mail) -> None:
    """Send, unless the recipient's cap is reached.

    Two caps: ``MAIL_RATE_LIMIT`` per recipient *and requesting address*, so a stranger who
    asks for mail to someone else's address uses up only their own allowance, never the
    owner's; and ``MAIL_RECIPIENT_RATE_LIMIT`` per recipient from everywhere, so nobody can
    flood an inbox through our forms. Past a cap the page still answers as usual (so the cap
    tells nothing about accounts) but nothing is sent.
    """
    recipient = instance().vault.email_index(message.to).hex()
    strategy = limiter.limiter
    per_requester = [
        strategy.hit(item, "account-mail", recipient, get_remote_address())
        for item in parse_many(settings().mail_rate_limit)
    ]
    overall = [
        strategy.hit(item, "account-mail-all", recipient)
        for item in parse_many(settings().mail_recipient_rate_limit)
    ]
    if not all(per_requester + overall):
        log.info("account mail not sent: the recipient's cap is reached")
        return
    accounts.sender(settings())(message)


def start_session(customer_id: str) -> None:
    """Log in: a new session token (no fixation), nothing carried over from before."""
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    sess["customer_id"] = customer_id


def request_link(ask: Callable[..., None], template: str, sent: str) -> ResponseReturnValue:
    """A form that asks for a link by address (resend, password reset): the service mails it
    (or a note), and the answer is the same "check your e-mail" whatever the address."""
    form = {"email": request.form.get("email", "")}
    try:
        ask(
            db(),
            instance(),
            deliver,
            email=form["email"],
            base_url=site_url(),
            request_id=context().request_id,
        )
    except ValidationFailed as exc:
        return render_template(template, errors=exc.errors, form=form), 400
    return redirect(url_for("auth.check_email", sent=sent))
