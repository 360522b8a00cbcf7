"""The site's language and the customer's time: Flask-Babel, and the filters templates use.

Templates write every sentence through ``{% trans %}`` or ``_()``, and every instant through
the ``localtime`` (date and time) or ``localdate`` filters, never ``strftime``: the instant
is shown in the customer's own time zone and the site speaks the customer's chosen language.

Which language: the logged-in customer's site language (``services/site_settings``); else a
visitor's choice (``?lang=`` on any page, kept in a cookie); else the best of the site's
complete languages for the browser's ``Accept-Language``; else English. Which zone: the
customer's, else UTC (and every time shown names its zone). The customer's settings are
read once per request, and only when a page needs them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel import dates
from flask import Flask, Response, g, has_request_context, request
from flask_babel import Babel, get_locale, gettext, refresh

from infomediary.logs import get_logger
from infomediary.services.site_settings import (
    DEFAULT_LANGUAGE,
    DEFAULT_TIME_ZONE,
    SITE_LANGUAGES,
    SiteSettings,
    display_settings,
)
from infomediary.web.security import current_customer_id, instance

log = get_logger("i18n")

#: The visitor's language choice (a display preference, nothing else): one year, this site.
LANG_COOKIE = "lang"
_LANG_COOKIE_AGE = 365 * 24 * 3600


def site_settings() -> SiteSettings:
    """The logged-in customer's settings (none chosen for a visitor), read once per request."""
    if not has_request_context():
        return SiteSettings()
    if "site_settings" not in g:
        customer_id = current_customer_id()
        g.site_settings = SiteSettings()
        if customer_id:
            try:
                g.site_settings = display_settings(instance(), customer_id)
            except Exception:  # an error page must render even when the database cannot
                log.warning("site settings unavailable; showing the defaults", exc_info=True)
    found: SiteSettings = g.site_settings
    return found


def forget_settings() -> None:
    """After a change: the rest of the request (its flash message too) uses the new ones."""
    g.pop("site_settings", None)
    refresh()


def _visitor_choice() -> str | None:
    for value in (request.args.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in SITE_LANGUAGES:
            return value
    return None


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    chosen = site_settings().site_language
    if chosen in SITE_LANGUAGES:
        return str(chosen)
    return _visitor_choice() or request.accept_languages.best_match(
        SITE_LANGUAGES, DEFAULT_LANGUAGE
    )


def select_time_zone() -> str:
    return site_settings().time_zone or DEFAULT_TIME_ZONE


def current_locale() -> str:
    """The page's language, for ``<html lang>``."""
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LANGUAGE


#: The pages that ask the browser for its zone while the customer has none: where a customer
#: lands after logging in or confirming their address, and the settings page itself. Other
#: pages carry no script for it (a page such as a running import's refreshes by header alone).
TIME_ZONE_PAGES = frozenset({"dashboard.overview", "dashboard.profile", "settings.show"})


def time_zone_unset() -> bool:
    """On a landing page, a logged-in customer who has no time zone yet (the browser may give
    one through ``static/js/timezone.js``)."""
    return (
        request.endpoint in TIME_ZONE_PAGES
        and current_customer_id() is not None
        and site_settings().time_zone is None
    )


def with_lang(code: str) -> str:
    """This page's address with ``?lang=code`` (its other query arguments kept)."""
    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    return f"{request.path}?{urlencode([*args, ('lang', code)])}"


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is shown."""
    return message


#: What the use cases tell people about their input (``ValidationFailed`` field messages and the
#: like), in English as the use cases write them, which know nothing of languages; here so that
#: they are in the catalogue, and shown through :func:`error_text` (the form macros do).
#: ``tests/unit/infomediary/web/test_translations.py`` checks each still occurs in the sources.
SERVICE_MESSAGES = (
    N_("Enter your email address."),
    N_("Enter an email address like name@example.com."),
    N_("Use at least 12 characters."),
    N_("Use at most 256 characters."),
    N_("Your password must not be your email address."),
    N_("This is not a profile field."),
    N_("Use up to 100 characters; angle brackets and braces are not allowed."),
    N_("Use digits, spaces, brackets and an optional leading +."),
    N_("Use up to 160 characters; angle brackets and braces are not allowed."),
    N_("An Australian postcode has four digits."),
    N_("Enter a number from 1 to 20."),
    N_("Choose interests from the list."),
    N_("Preferences must be a set of choices."),
    N_("We could not send the e-mail just now. Please try again in a few minutes."),
    N_("Please read and accept the privacy notice."),
    N_("An account with this email address already exists."),
    N_("Email address or password is wrong."),
    N_("This is not your current password."),
    N_("This is already your address."),
    N_("This address cannot be used for your account any more."),
    N_("This link has expired or was already used. Ask for a new one."),
    N_("Control characters (such as NUL) are not allowed here."),
    N_("Your purchases suggest no such interest."),
    N_(
        "That is not the password this account was created with. If you did not sign up "
        "yourself, someone else used your address: set a password of your own instead."
    ),
    N_(
        "Please confirm your e-mail address first: open the link we sent you when you signed "
        "up, or ask for a new one. Until then nothing of yours can be shared."
    ),
)


def error_text(message: str | None) -> str:
    """A message a use case gave, in the page's language when the catalogue has it."""
    return gettext(message) if message else ""


def _local(value: datetime | str) -> datetime:
    """``value`` (a datetime, or its ISO 8601 text as some views pass) in the customer's zone."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(select_time_zone()))


def _localtime(value: datetime | str | None) -> str:
    """Date, time and the zone's abbreviation (``02.12.2026, 14:05 CET`` in German), in the
    customer's zone and language."""
    if not value:
        return ""
    local = _local(value)
    locale = get_locale() or DEFAULT_LANGUAGE
    day = dates.format_date(local.date(), "medium", locale=locale)
    time = dates.format_time(local.time(), "short", locale=locale)
    return f"{day}, {time} {local.tzname()}"


def _localdate(value: datetime | str | None) -> str:
    if not value:
        return ""
    return dates.format_date(_local(value).date(), "medium", locale=get_locale() or "en")


def _keep_visitor_choice(response: Response) -> Response:
    """``?lang=`` on any page, from someone not logged in, sticks (a cookie of the choice)."""
    choice = request.args.get("lang")
    if choice in SITE_LANGUAGES and current_customer_id() is None:
        response.set_cookie(
            LANG_COOKIE,
            str(choice),
            max_age=_LANG_COOKIE_AGE,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response


def init_app(app: Flask) -> None:
    Babel(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_timezone=DEFAULT_TIME_ZONE,
        locale_selector=select_locale,
        timezone_selector=select_time_zone,
    )
    app.jinja_env.filters["localtime"] = _localtime
    app.jinja_env.filters["localdate"] = _localdate
    app.jinja_env.globals.update(
        time_zone_unset=time_zone_unset,
        with_lang=with_lang,
        error_text=error_text,
        SITE_LANGUAGES=SITE_LANGUAGES,
    )
    app.context_processor(lambda: {"current_locale": current_locale()})
    app.after_request(_keep_visitor_choice)
