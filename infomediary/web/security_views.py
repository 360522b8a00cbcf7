"""Account security: second factors, recovery codes, sessions.

After a correct password, a customer with a second factor holds a half-logged-in session
(``pending_customer_id``, a few minutes): :func:`current_customer_id` does not know it, so no
page of the account opens, until ``/login/second-factor`` accepts a code from their
authenticator app or a recovery code. That step is throttled like the password step.
"""

from __future__ import annotations

import base64
import json
from typing import cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.audit.log import Actor
from infomediary.errors import InvalidCredentials, ValidationFailed
from infomediary.services import Context, passkeys, second_factors, web_sessions
from infomediary.web import security
from infomediary.web.db import db
from infomediary.web.limits import limiter, login_rate
from infomediary.web.mailer import start_session
from infomediary.web.security import context, current_customer_id, instance, login_required
from infomediary.web.sessions import ServerSession, pending_customer_id, public_id_of

bp = Blueprint("security", __name__)


REGISTER_CHALLENGE = "passkey_register_challenge"
LOGIN_CHALLENGE = "passkey_login_challenge"


def _site() -> passkeys.Site:
    """The relying party: the configured issuer's host and origin, never the request's Host
    header (nor ``X-Forwarded-Host``). Without an issuer (development only, production
    requires one) the request's host."""
    parts = urlsplit(security.settings().issuer.rstrip("/") or request.host_url.rstrip("/"))
    return passkeys.Site(parts.hostname or "", f"{parts.scheme}://{parts.netloc}")


def _keep(name: str, challenge: bytes) -> None:
    session[name] = base64.urlsafe_b64encode(challenge).decode()


def _take(name: str) -> bytes | None:
    """The ceremony's challenge, once: it is gone from the session after this."""
    value = session.pop(name, None)
    if not isinstance(value, str):
        return None
    try:
        return base64.urlsafe_b64decode(value.encode())
    except ValueError:
        return None


def _options(ceremony: passkeys.Ceremony) -> Response:
    return Response(ceremony.options, mimetype="application/json")


def _pending_key() -> str:
    return f"second-step:{session.get('pending_customer_id', '-')}"


def _account_limit() -> str:
    return security.settings().login_account_rate_limit


def _failed(response: ResponseReturnValue) -> bool:
    return getattr(response, "status_code", 200) == 401


@bp.get("/login/second-factor")
def second_factor_form() -> ResponseReturnValue:
    customer_id = pending_customer_id()
    if customer_id is None:
        return redirect(url_for("auth.login"))
    state = second_factors.status(db(), customer_id)
    return render_template("second_factor.html", error=None, state=state)


@bp.post("/login/second-factor")
@limiter.limit(login_rate)
@limiter.limit(_account_limit, key_func=_pending_key, deduct_when=_failed)
def second_factor() -> ResponseReturnValue:
    customer_id = pending_customer_id()
    if customer_id is None:
        flash(gettext("That took too long. Please log in again."))
        return redirect(url_for("auth.login"))
    method = request.form.get("method", second_factors.TOTP)
    own = Context(Actor.customer(customer_id), context().request_id)
    try:
        second_factors.second_step(
            db(), instance(), customer_id, method, request.form.get("code", ""), own
        )
    except InvalidCredentials:
        state = second_factors.status(db(), customer_id)
        error = gettext("That code is not right. Please try again.")
        return render_template("second_factor.html", error=error, state=state), 401
    return _logged_in(customer_id, method)


@bp.post("/login/second-factor/passkey/options")
@limiter.limit(login_rate)
def second_factor_passkey_options() -> ResponseReturnValue:
    customer_id = pending_customer_id()
    if customer_id is None:
        return Response('{"code":"login_expired"}', status=401, mimetype="application/json")
    ceremony = passkeys.login_options(db(), customer_id, _site())
    _keep(LOGIN_CHALLENGE, ceremony.challenge)
    return _options(ceremony)


@bp.post("/login/second-factor/passkey")
@limiter.limit(login_rate)
@limiter.limit(_account_limit, key_func=_pending_key, deduct_when=_failed)
def second_factor_passkey() -> ResponseReturnValue:
    customer_id = pending_customer_id()
    if customer_id is None:
        flash(gettext("That took too long. Please log in again."))
        return redirect(url_for("auth.login"))
    own = Context(Actor.customer(customer_id), context().request_id)
    try:
        second_factors.second_step(
            db(),
            instance(),
            customer_id,
            second_factors.PASSKEY,
            request.form.get("credential", ""),
            own,
            site=_site(),
            challenge=_take(LOGIN_CHALLENGE),
        )
    except InvalidCredentials:
        state = second_factors.status(db(), customer_id)
        error = gettext("That passkey did not work. Please try again or use a code.")
        return render_template("second_factor.html", error=error, state=state), 401
    return _logged_in(customer_id, second_factors.PASSKEY)


def _logged_in(customer_id: str, method: str) -> ResponseReturnValue:
    target = session.get("pending_next")
    start_session(customer_id)
    if method == second_factors.RECOVERY:
        flash(
            gettext(
                "You used a recovery code; it no longer works. You have %(n)s left.",
                n=second_factors.status(db(), customer_id).recovery_left,
            )
        )
    return redirect(
        security.login_next_target(target if isinstance(target, str) else None)
        or url_for("dashboard.overview")
    )


def _page(
    errors: dict[str, str] | None = None, status: int = 200, form: dict[str, str] | None = None
) -> ResponseReturnValue:
    customer_id = cast(str, current_customer_id())
    return (
        render_template(
            "security.html",
            state=second_factors.status(db(), customer_id),
            enrolment=second_factors.pending_totp(db(), instance(), customer_id),
            passkeys=passkeys.list_passkeys(db(), instance(), customer_id),
            form=form or {},
            sessions=web_sessions.list_sessions(
                db(), instance(), customer_id, public_id_of(session)
            ),
            errors=errors or {},
        ),
        status,
    )


@bp.get("/account/security")
@login_required
def page() -> ResponseReturnValue:
    return _page()


@bp.post("/account/security/totp")
@limiter.limit(login_rate)
@login_required
def totp_start() -> ResponseReturnValue:
    try:
        second_factors.start_totp(
            db(),
            instance(),
            cast(str, current_customer_id()),
            context(),
            password=request.form.get("password", ""),
        )
    except ValidationFailed as exc:
        return _page(
            {("totp_password" if k == "password" else k): v for k, v in exc.errors.items()}, 400
        )
    return redirect(url_for("security.page", _anchor="totp"))


@bp.post("/account/security/totp/confirm")
@limiter.limit(login_rate)
@login_required
def totp_confirm() -> ResponseReturnValue:
    try:
        codes = second_factors.confirm_totp(
            db(),
            instance(),
            cast(str, current_customer_id()),
            request.form.get("code", ""),
            context(),
        )
    except ValidationFailed as exc:
        return _page(exc.errors, 400)
    if codes:
        return render_template("recovery_codes.html", codes=codes)
    flash(gettext("Your authenticator app is set up. You will be asked for a code at login."))
    return redirect(url_for("security.page"))


@bp.post("/account/security/totp/remove")
@limiter.limit(login_rate)
@login_required
def totp_remove() -> ResponseReturnValue:
    try:
        second_factors.remove_totp(
            db(),
            instance(),
            cast(str, current_customer_id()),
            request.form.get("password", ""),
            context(),
        )
    except ValidationFailed as exc:
        return _page(exc.errors, 400)
    flash(gettext("Your authenticator app is removed."))
    return redirect(url_for("security.page"))


@bp.post("/account/security/recovery-codes")
@limiter.limit(login_rate)
@login_required
def recovery_codes() -> ResponseReturnValue:
    try:
        codes = second_factors.new_recovery_codes(
            db(),
            instance(),
            cast(str, current_customer_id()),
            context(),
            password=request.form.get("password", ""),
        )
    except ValidationFailed as exc:
        return _page(
            {("recovery_password" if k == "password" else k): v for k, v in exc.errors.items()}, 400
        )
    return render_template("recovery_codes.html", codes=codes)


@bp.post("/account/security/passkeys/options")
@limiter.limit(login_rate)
@login_required
def passkey_options() -> ResponseReturnValue:
    try:
        ceremony = passkeys.registration_options(
            db(),
            instance(),
            cast(str, current_customer_id()),
            _site(),
            request.form.get("password", ""),
            context(),
        )
    except ValidationFailed as exc:
        # the page stays as it is (the name typed is kept); the script shows the message
        message = gettext(next(iter(exc.errors.values()), "That password is not right."))
        body = json.dumps({"code": "wrong_password", "message": message})
        return Response(body, status=400, mimetype="application/json")
    _keep(REGISTER_CHALLENGE, ceremony.challenge)
    return _options(ceremony)


@bp.post("/account/security/passkeys")
@limiter.limit(login_rate)
@login_required
def passkey_add() -> ResponseReturnValue:
    form = {"passkey_name": request.form.get("name", "")}
    try:
        passkeys.register(
            db(),
            instance(),
            cast(str, current_customer_id()),
            _site(),
            _take(REGISTER_CHALLENGE),
            request.form.get("credential", ""),
            form["passkey_name"],
            context(),
        )
    except ValidationFailed as exc:
        errors = {("passkey_name" if k == "name" else k): v for k, v in exc.errors.items()}
        return _page(errors, 400, form)
    customer_id = cast(str, current_customer_id())
    if not second_factors.status(db(), customer_id).recovery_left:
        # the first second factor: recovery codes for the day the passkey is lost
        codes = second_factors.new_recovery_codes(db(), instance(), customer_id, context())
        return render_template("recovery_codes.html", codes=codes)
    flash(gettext("Your passkey is added. You can use it after your password at login."))
    return redirect(url_for("security.page", _anchor="passkeys"))


@bp.post("/account/security/passkeys/<passkey_id>/remove")
@limiter.limit(login_rate)
@login_required
def passkey_remove(passkey_id: str) -> ResponseReturnValue:
    try:
        passkeys.remove(
            db(),
            instance(),
            cast(str, current_customer_id()),
            passkey_id,
            request.form.get("password", ""),
            context(),
        )
    except ValidationFailed as exc:
        errors = {f"passkey_password_{passkey_id}": v for v in exc.errors.values()}
        return _page(errors, 400)
    flash(gettext("That passkey is removed."))
    return redirect(url_for("security.page", _anchor="passkeys"))


@bp.post("/account/security/sessions/<public_id>/logout")
@limiter.limit(login_rate)
@login_required
def session_logout(public_id: str) -> ResponseReturnValue:
    customer_id = cast(str, current_customer_id())
    if public_id == public_id_of(session):
        cast(ServerSession, session).destroy()
        web_sessions.end_one(db(), customer_id, public_id, context())
        return redirect(url_for("auth.login", logged_out=1))
    web_sessions.end_one(db(), customer_id, public_id, context())
    flash(gettext("That session is logged out."))
    return redirect(url_for("security.page", _anchor="sessions"))


@bp.post("/account/security/sessions/logout-others")
@limiter.limit(login_rate)
@login_required
def sessions_logout_others() -> ResponseReturnValue:
    customer_id = cast(str, current_customer_id())
    web_sessions.end_all(db(), customer_id, public_id_of(session), context())
    flash(gettext("Every other session is logged out."))
    return redirect(url_for("security.page", _anchor="sessions"))


@bp.post("/account/security/sessions/logout-all")
@limiter.limit(login_rate)
@login_required
def sessions_logout_all() -> ResponseReturnValue:
    customer_id = cast(str, current_customer_id())
    web_sessions.end_all(db(), customer_id, None, context())
    cast(ServerSession, session).destroy()
    return redirect(url_for("auth.login", logged_out=1))
