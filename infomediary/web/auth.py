"""Sign up, log in, log out."""

from __future__ import annotations

from typing import cast

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from infomediary.services import customers
from infomediary.services.errors import EmailTaken, InvalidCredentials, ValidationFailed
from infomediary.web import db, limiter
from infomediary.web.security import context, current_customer_id, instance
from infomediary.web.sessions import ServerSession

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _email_key() -> str:
    """Per-account limit key: the email's blind index, so the limiter never sees the address."""
    return "login:" + instance().vault.email_index(request.form.get("email", "")).hex()


def _start_session(customer_id: str) -> None:
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    sess["customer_id"] = customer_id


@bp.get("/signup")
def signup_form() -> ResponseReturnValue:
    return render_template("signup.html", errors={}, form={})


@bp.post("/signup")
@limiter.limit(_login_limit)
def signup() -> ResponseReturnValue:
    form = {"email": request.form.get("email", ""), "name": request.form.get("name", "")}
    if request.form.get("accept_notice") != "yes":
        errors = {"accept_notice": "Please read and accept the privacy notice."}
        return render_template("signup.html", errors=errors, form=form), 400
    try:
        customer_id = customers.register(
            db(),
            instance(),
            email=form["email"],
            password=request.form.get("password", ""),
            name=form["name"] or None,
            request_id=context().request_id,
        )
    except ValidationFailed as exc:
        return render_template("signup.html", errors=exc.errors, form=form), 400
    except EmailTaken as exc:
        return render_template("signup.html", errors={"email": exc.message}, form=form), 409
    _start_session(customer_id)
    flash("Welcome. Your profile is encrypted with a key of its own.")
    return redirect(url_for("dashboard.profile"))


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    if current_customer_id():
        return redirect(url_for("dashboard.overview"))
    return render_template("login.html", error=None, form={})


@bp.post("/login")
@limiter.limit(_login_limit)
@limiter.limit(_login_limit, key_func=_email_key)
def login() -> ResponseReturnValue:
    form = {"email": request.form.get("email", "")}
    try:
        customer_id = customers.authenticate(
            db(), instance(), form["email"], request.form.get("password", ""), context()
        )
    except InvalidCredentials as exc:
        return render_template("login.html", error=exc.message, form=form), 401
    _start_session(customer_id)
    from infomediary.web.oauth_views import login_next_target

    return redirect(login_next_target(request.args.get("next")) or url_for("dashboard.overview"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    cast(ServerSession, session).destroy()
    return redirect(url_for("auth.login", logged_out=1))
