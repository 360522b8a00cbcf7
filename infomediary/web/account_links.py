"""Password reset and confirming a new address: the pages e-mailed links open.

A reset request always answers "if an account exists, we sent a link" (OWASP Forgot
Password Cheat Sheet). Every link opens a page that changes nothing; its form POSTs the
token, so mail scanners that prefetch links cannot use them up. Registered under the
``auth`` blueprint (endpoints ``auth.links.*``).
"""

from __future__ import annotations

from typing import cast

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.errors import InvalidLink, ValidationFailed
from infomediary.services import accounts, email_change, email_tokens
from infomediary.web.db import db
from infomediary.web.limits import limiter, login_rate
from infomediary.web.mailer import request_link
from infomediary.web.security import context, instance
from infomediary.web.sessions import ServerSession

bp = Blueprint("links", __name__)


@bp.get("/password/reset")
def reset_request_form() -> ResponseReturnValue:
    return render_template("password_reset.html", errors={}, form={})


@bp.post("/password/reset")
@limiter.limit(login_rate)
def reset_request() -> ResponseReturnValue:
    return request_link(accounts.request_password_reset, "password_reset.html", "reset")


def _new_password_page(
    token: str | None, errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    return render_template("password_new.html", token=token, errors=errors), status


@bp.get("/password/reset/new")
def new_password_form() -> ResponseReturnValue:
    token = request.args.get("token", "")
    try:
        email_tokens.find(db(), token, email_tokens.RESET)
    except InvalidLink as exc:
        return _new_password_page(None, {"token": exc.message}, 400)
    return _new_password_page(token, {})


@bp.post("/password/reset/new")
@limiter.limit(login_rate)
def new_password() -> ResponseReturnValue:
    token = request.form.get("token", "")
    try:
        accounts.reset_password(
            db(),
            instance(),
            token=token,
            new_password=request.form.get("new_password", ""),
            request_id=context().request_id,
        )
    except InvalidLink as exc:
        return _new_password_page(None, {"token": exc.message}, 400)
    except ValidationFailed as exc:
        return _new_password_page(token, exc.errors, 400)
    # This browser's session ended too: nothing of it may be saved back after this request.
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    flash(
        gettext(
            "Your password is changed and every session of your account has ended. Log in again."
        )
    )
    return redirect(url_for("auth.login"))


def link_page(template: str, purpose: str) -> ResponseReturnValue:
    """The page an e-mailed link opens: it checks the link and changes nothing (its form's
    button does), or says why the link cannot be used."""
    token = request.args.get("token", "")
    try:
        email_tokens.find(db(), token, purpose)
    except InvalidLink as exc:
        return render_template(template, token=None, error=exc.message), 400
    return render_template(template, token=token, error=None)


@bp.get("/account/email/confirm")
def email_confirm_form() -> ResponseReturnValue:
    return link_page("email_confirm.html", email_tokens.CHANGE)


@bp.post("/account/email/confirm")
@limiter.limit(login_rate)
def email_confirm() -> ResponseReturnValue:
    try:
        email_change.confirm_email_change(
            db(), instance(), request.form.get("token", ""), context().request_id
        )
    except InvalidLink as exc:
        return render_template("email_confirm.html", token=None, error=exc.message), 400
    # Every session of the account ended with the change, this browser's too.
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    flash(
        gettext("Your e-mail address is changed. Every session ended: log in with the new address.")
    )
    return redirect(url_for("auth.login"))
