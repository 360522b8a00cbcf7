"""Sign up, confirm the address, ask for a new link, log in, log out.

Sign-up never logs in and never says whether the address has an account: it always sends
the visitor to "check your e-mail" (the service mails a link, or tells the address's owner
someone tried). The link opens a page whose button POSTs the token, so a mail scanner that
fetches links cannot use it up; the POST confirms the address and logs the customer in.
Login attempts are slowed per account only for browsers that are not a known device of it
(:mod:`infomediary.web.devices`), so nobody can lock a known customer out.
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
from werkzeug.wrappers import Response

from infomediary.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidLink,
    ValidationFailed,
)
from infomediary.models import Customer
from infomediary.services import (
    accounts,
    customer_keys,
    customers,
    email_tokens,
    second_factors,
)
from infomediary.web import account_links, devices, security
from infomediary.web.db import db
from infomediary.web.limits import limiter, login_rate
from infomediary.web.mailer import deliver, request_link, site_url, start_session
from infomediary.web.security import context, current_customer_id, instance, settings
from infomediary.web.sessions import ServerSession, start_pending

bp = Blueprint("auth", __name__)
bp.register_blueprint(account_links.bp)
SENT = ("signup", "resend", "reset")


def _account_limit() -> str:
    return settings().login_account_rate_limit


def _email_key() -> str:
    """Per-account limit key: the email's blind index, so the limiter never sees the address."""
    return "login:" + instance().vault.email_index(request.form.get("email", "")).hex()


def _failed(response: Response) -> bool:
    return response.status_code == 401


@bp.app_errorhandler(EmailNotVerified)
def verify_first(exc: EmailNotVerified) -> ResponseReturnValue:
    """A friendly page wherever an unverified account tried to share (consent, inbox)."""
    return render_template("verify_first.html", message=exc.message), 403


@bp.get("/signup")
def signup_form() -> ResponseReturnValue:
    return render_template("signup.html", errors={}, form={})


@bp.post("/signup")
@limiter.limit(login_rate)
def signup() -> ResponseReturnValue:
    form = {"email": request.form.get("email", ""), "name": request.form.get("name", "")}
    try:
        accounts.sign_up(
            db(),
            instance(),
            deliver,
            email=form["email"],
            password=request.form.get("password", ""),
            name=form["name"] or None,
            accepted_notice=request.form.get("accept_notice") == "yes",
            base_url=site_url(),
            request_id=context().request_id,
        )
    except ValidationFailed as exc:
        return render_template("signup.html", errors=exc.errors, form=form), 400
    return redirect(url_for("auth.check_email", sent="signup"))


@bp.get("/check-email")
def check_email() -> ResponseReturnValue:
    sent = request.args.get("sent", "")
    return render_template("check_email.html", sent=sent if sent in SENT else "signup")


@bp.get("/signup/verify")
def verify_form() -> ResponseReturnValue:
    """The page a verification link opens: it changes nothing, its button does."""
    return account_links.link_page("verify.html", email_tokens.VERIFY)


@bp.post("/signup/verify")
@limiter.limit(login_rate)
def verify() -> ResponseReturnValue:
    token = request.form.get("token", "")
    try:
        customer_id = accounts.verify_email(
            db(), instance(), token, request.form.get("password", ""), context().request_id
        )
    except InvalidLink as exc:
        return render_template("verify.html", token=None, error=exc.message), 400
    except ValidationFailed as exc:
        return render_template("verify.html", token=token, errors=exc.errors), 400
    start_session(customer_id)
    flash(
        gettext(
            "Welcome. Your address is confirmed and your profile is encrypted with a key of its "
            "own."
        )
    )
    return redirect(url_for("dashboard.profile"))


@bp.get("/signup/resend")
def resend_form() -> ResponseReturnValue:
    return render_template("resend.html", errors={}, form={})


@bp.post("/signup/resend")
@limiter.limit(login_rate)
def resend() -> ResponseReturnValue:
    return request_link(accounts.resend_verification, "resend.html", "resend")


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    if current_customer_id():
        return redirect(url_for("dashboard.overview"))
    return render_template("login.html", error=None, form={})


@bp.post("/login")
@limiter.limit(login_rate)
@limiter.limit(
    login_rate,
    key_func=devices.device_key,
    exempt_when=devices.is_untrusted,
    deduct_when=_failed,
)
@limiter.limit(
    _account_limit, key_func=_email_key, exempt_when=devices.is_trusted, deduct_when=_failed
)
def login() -> ResponseReturnValue:
    form = {"email": request.form.get("email", "")}
    try:
        customer_id = customers.authenticate(
            db(), instance(), form["email"], request.form.get("password", ""), context()
        )
    except InvalidCredentials as exc:
        return render_template("login.html", error=exc.message, form=form), 401
    target = security.login_next_target(request.args.get("next"))
    if second_factors.required(db(), customer_id):
        # Half logged in: nothing of the account opens until the second step.
        start_pending(customer_id, target)
        response = redirect(url_for("security.second_factor_form"))
    else:
        start_session(customer_id)
        response = redirect(target or url_for("dashboard.overview"))
    devices.remember(response, form["email"])
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    cast(ServerSession, session).destroy()
    return redirect(url_for("auth.login", logged_out=1))


@bp.post("/account/verification")
@limiter.limit(login_rate)
def send_link_again() -> ResponseReturnValue:
    """From the Account page: a new verification link for the logged-in, unverified customer."""
    customer_id = current_customer_id()
    if customer_id is None:
        return redirect(url_for("auth.login"))
    customer = db().get(Customer, customer_id)
    if customer is not None and not customer_keys.is_verified(customer):
        accounts.send_verification(db(), instance(), deliver, customer_id, site_url())
    flash(gettext("We sent a new confirmation link to your address. It works for 24 hours."))
    return redirect(url_for("dashboard.account"))
