"""The customer's language and time zone over HTTP: saved sealed and logged, German pages in
German, times in the chosen zone, bad input refused with the form kept, the browser's zone
taken only while none is chosen, and a visitor's language from Accept-Language or ?lang=."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from flask import render_template_string
from sqlalchemy import select

from infomediary.models import AccessLogEntry, CustomerSettings
from tests.conftest import csrf
from tests.log_reasons import code_of, params_of, shown

#: One fixed instant: 12:00 UTC on 15 January 2026 (winter on both sides of the Atlantic).
INSTANT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def entries(inst) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(session.scalars(select(AccessLogEntry).order_by(AccessLogEntry.seq)))


def save(client, language: str = "en", zone: str = "UTC"):
    return client.post(
        "/settings",
        data={
            "csrf_token": csrf(client, "/settings"),
            "site_language": language,
            "time_zone": zone,
        },
    )


def rendered_in_session(app, client, source: str, **values) -> str:
    """``source`` rendered in a request that carries the client's login cookie: the app's own
    locale and zone selectors read that customer's settings."""
    cookie = client.get_cookie("infomediary_session")
    assert cookie is not None
    with app.test_request_context(headers={"Cookie": f"infomediary_session={cookie.value}"}):
        return render_template_string(source, **values)


def test_settings_are_saved_sealed_and_logged(client, auth, inst) -> None:
    auth.signup()
    page = client.get("/settings")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Not chosen yet: times are shown in UTC." in body
    assert '<option value="Europe/Berlin"' in body
    assert code_of(entries(inst)[-1]) == "settings.viewed"

    response = save(client, "de", "Europe/Berlin")
    assert response.status_code == 303
    assert response.headers["Location"] == "/settings"
    changed = [e for e in entries(inst) if code_of(e) == "settings.changed"]
    assert len(changed) == 1
    assert changed[0].action == "update"
    assert changed[0].actor_type == "customer"
    assert params_of(changed[0]) == {"fields": ["site_language", "time_zone"]}
    assert "Berlin" not in shown(changed[0])  # the zone is never in the log
    with inst.sessions() as session:
        row = session.scalars(select(CustomerSettings)).one()
        assert row.site_language == "de"
        assert row.time_zone is not None
        assert b"Berlin" not in row.time_zone

    again = client.get("/settings").get_data(as_text=True)
    assert 'value="Europe/Berlin" selected' in again
    assert 'value="de" lang="de" selected' in again
    assert "Einstellungen gespeichert." in again  # the flash, in the new language

    size = len(entries(inst))
    assert save(client, "de", "Europe/Berlin").status_code == 303  # nothing changed
    assert len(entries(inst)) == size + 1  # the GET that fetched the form, no change entry


def test_german_pages_speak_german(client, auth) -> None:
    auth.signup()
    save(client, "de", "Europe/Berlin")
    body = client.get("/settings").get_data(as_text=True)
    assert '<html lang="de">' in body
    assert "Sprache und Zeitzone" in body
    assert "Language and time zone" not in body
    account = client.get("/account").get_data(as_text=True)
    assert '<html lang="de">' in account
    assert "Sprache und Zeitzone ändern" in account
    save(client, "en", "Europe/Berlin")
    assert '<html lang="en">' in client.get("/settings").get_data(as_text=True)


@pytest.mark.parametrize(
    ("language", "zone", "expected"),
    [
        ("en", "America/New_York", "Jan 15, 2026, 7:00\u202fAM EST"),
        ("en", "Europe/Berlin", "Jan 15, 2026, 1:00\u202fPM CET"),
        ("de", "America/New_York", "15.01.2026, 07:00 EST"),
        ("de", "Europe/Berlin", "15.01.2026, 13:00 CET"),
    ],
)
def test_times_are_shown_in_the_chosen_zone(app, client, auth, language, zone, expected) -> None:
    auth.signup()
    assert save(client, language, zone).status_code == 303
    shown_time = rendered_in_session(app, client, "{{ t|localtime }}|{{ t|localdate }}", t=INSTANT)
    assert shown_time == f"{expected}|{expected.rsplit(',', 1)[0]}"


def test_without_a_zone_times_are_utc_and_say_so(app, client, auth) -> None:
    auth.signup()
    shown_time = rendered_in_session(app, client, "{{ t|localtime }}", t=INSTANT)
    assert shown_time == "Jan 15, 2026, 12:00\u202fPM UTC"


def test_an_invalid_zone_is_refused_with_the_form_kept(client, auth, inst) -> None:
    auth.signup()
    size = len(entries(inst))
    response = save(client, "de", "Mars/Olympus_Mons")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert 'aria-invalid="true"' in body
    assert 'id="time_zone-error"' in body
    assert 'value="de" lang="de" selected' in body  # the language chosen is kept
    both = save(client, "xx", "Nowhere")
    assert both.status_code == 400
    page = both.get_data(as_text=True)
    assert 'id="time_zone-error"' in page
    assert 'id="site_language-error"' in page
    assert [code_of(e) for e in entries(inst)[size:]] == ["settings.viewed", "settings.viewed"]
    with inst.sessions() as session:
        assert session.scalars(select(CustomerSettings)).first() is None


def test_the_browser_zone_is_taken_only_while_none_is_chosen(client, auth, inst) -> None:
    auth.signup()
    page = client.get("/dashboard").get_data(as_text=True)
    assert "js/timezone.js" in page
    token = csrf(client, "/dashboard")
    bad = client.post("/settings/timezone", data={"csrf_token": token, "time_zone": "Etc/GMT-9"})
    assert bad.status_code == 400
    taken = client.post("/settings/timezone", data={"csrf_token": token, "time_zone": "Asia/Tokyo"})
    assert taken.status_code == 204
    assert [code_of(e) for e in entries(inst)].count("settings.time_zone_from_browser") == 1
    assert "js/timezone.js" not in client.get("/dashboard").get_data(as_text=True)
    assert 'value="Asia/Tokyo" selected' in client.get("/settings").get_data(as_text=True)
    # a zone chosen is never overwritten by what a browser says
    save(client, "en", "Europe/Berlin")
    again = client.post("/settings/timezone", data={"csrf_token": token, "time_zone": "Asia/Tokyo"})
    assert again.status_code == 204
    assert 'value="Europe/Berlin" selected' in client.get("/settings").get_data(as_text=True)
    assert [code_of(e) for e in entries(inst)].count("settings.time_zone_from_browser") == 1


def test_settings_need_a_login_and_the_csrf_token(client, auth) -> None:
    assert client.get("/settings").status_code == 302
    auth.signup()
    refused = client.post("/settings", data={"site_language": "de", "time_zone": "UTC"})
    assert refused.status_code == 403


def test_a_visitor_gets_the_browser_language_or_the_one_picked(client) -> None:
    german = client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert '<html lang="de">' in german.get_data(as_text=True)
    other = client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert '<html lang="en">' in other.get_data(as_text=True)
    body = other.get_data(as_text=True)
    switch = re.search(r'<a href="([^"]+)" lang="de" hreflang="de">Deutsch</a>', body)
    assert switch is not None
    picked = client.get(switch.group(1).replace("&amp;", "&"))
    assert '<html lang="de">' in picked.get_data(as_text=True)
    cookie = client.get_cookie("lang")
    assert cookie is not None
    assert cookie.value == "de"
    assert cookie.http_only
    kept = client.get("/login", headers={"Accept-Language": "en"})  # the cookie wins
    assert '<html lang="de">' in kept.get_data(as_text=True)


def test_a_form_error_from_a_use_case_is_shown_in_german(client, auth) -> None:
    auth.signup()
    save(client, "de", "Europe/Berlin")
    response = client.post(
        "/profile", data={"csrf_token": csrf(client, "/profile"), "postcode": "12"}
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Eine australische Postleitzahl hat vier Ziffern." in body
    assert "An Australian postcode has four digits." not in body
    assert "Bitte prüfen Sie dieses Feld" in body
