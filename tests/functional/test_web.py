"""The dashboard over HTTP: flows, sessions, CSRF, headers, bad input, isolation, logs."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from infomediary.models import AccessLogEntry, Customer, Profile, WebSession
from tests.conftest import Auth, csrf
from tests.log_reasons import shown
from tests.outbox import messages_to, newest_link

PASSWORD = "correct horse battery"


def count(inst, model):
    with inst.sessions() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def entries(inst, **where) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        query = select(AccessLogEntry).order_by(AccessLogEntry.seq)
        for column, value in where.items():
            query = query.where(getattr(AccessLogEntry, column) == value)
        return list(session.execute(query).scalars())


def test_signup_logs_in_only_through_the_emailed_link_and_records_the_creation(
    client, auth, inst
) -> None:
    signed_up = auth.signup(verify=False)
    assert signed_up.status_code == 302
    assert signed_up.headers["Location"] == "/check-email?sent=signup"
    assert client.get("/dashboard").status_code == 302  # not logged in by signing up
    created = entries(inst, action="create")
    assert len(created) == 1
    assert created[0].actor_type == "customer"
    assert "identity" in created[0].categories
    link = newest_link(inst.settings, "ada@example.org", "/signup/verify")
    assert link is not None
    response = auth.follow(link)
    assert response.status_code == 302
    assert response.headers["Location"] == "/profile"
    assert client.get("/dashboard").status_code == 200


def test_profile_edit_round_trip_and_log(client, auth, inst) -> None:
    auth.signup()
    token = csrf(client, "/profile")
    response = client.post(
        "/profile",
        data={
            "csrf_token": token,
            "name": "Ada L",
            "postcode": "3000",
            "birth_year": "1990",
            "household_size": "2",
            "interests": ["books", "faith"],
            "pref_contact_channel": "post",
            "pref_offer_frequency": "weekly",
            "pref_language": "it",
        },
    )
    assert response.status_code == 302
    page = client.get("/profile").get_data(as_text=True)
    assert 'value="3000"' in page
    assert 'value="faith" checked' in page
    update = entries(inst, action="update")[-1]
    # special categories never in the plaintext column: only in the encrypted detail
    assert set(update.categories.split(",")) >= {"identity", "demographics", "interests"}
    assert "religion" not in update.categories
    assert update.detail is not None
    assert b"religion" not in update.detail
    timeline = client.get("/activity?action=update").get_data(as_text=True)
    assert "Religion" in timeline  # the customer still sees it, decrypted


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("postcode", "20x0", "four digits"),
        ("birth_year", "1700", "Enter a year"),
        ("birth_year", "abc", "Enter a year"),
        ("household_size", "0", "from 1 to 20"),
        ("phone", "call me maybe", "digits"),
        ("name", "<script>", "angle brackets"),
        ("interests", "not-a-tag", "Unknown interest"),
        ("pref_contact_channel", "pigeon", "offered options"),
    ],
)
def test_profile_validation_messages_and_nothing_written(
    client, auth, inst, field, value, message
) -> None:
    auth.signup()
    with inst.sessions() as session:
        before = session.execute(select(Profile)).scalar_one()
        before_blobs = (before.postcode, before.birth_year, before.name, before.interests)
    log_size = count(inst, AccessLogEntry)
    response = client.post("/profile", data={"csrf_token": csrf(client, "/profile"), field: value})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert message in body
    assert 'aria-invalid="true"' in body or field in ("interests", "pref_contact_channel")
    with inst.sessions() as session:
        after = session.execute(select(Profile)).scalar_one()
        assert (after.postcode, after.birth_year, after.name, after.interests) == before_blobs
    assert count(inst, AccessLogEntry) == log_size + 1  # only the GET /profile read


def test_signup_validation(client, inst) -> None:
    token = csrf(client, "/signup")
    response = client.post(
        "/signup",
        data={"csrf_token": token, "email": "nope", "password": "short", "accept_notice": "yes"},
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Enter an email address" in body
    assert "at least 12 characters" in body
    response = client.post(
        "/signup", data={"csrf_token": token, "email": "a@example.org", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "privacy notice" in response.get_data(as_text=True)
    assert count(inst, Customer) == 0


def test_duplicate_signup_answers_like_a_new_one_and_tells_the_owner(client, auth, inst) -> None:
    first = auth.signup(verify=False)
    auth.follow(newest_link(inst.settings, "ada@example.org", "/signup/verify"))
    auth.logout()
    again = auth.signup(verify=False)
    assert (again.status_code, again.headers["Location"]) == (
        first.status_code,
        first.headers["Location"],
    )
    assert "already exists" not in again.get_data(as_text=True)
    assert count(inst, Customer) == 1
    assert client.get("/dashboard").status_code == 302
    owner_mail = messages_to(inst.settings, "ada@example.org")[-1]
    assert owner_mail["subject"] == "Someone tried to sign up with your address"
    assert "/signup/verify" not in owner_mail["body"]


def test_login_failures_are_uniform_and_logged_for_the_account(client, auth, inst) -> None:
    auth.signup()
    auth.logout()
    wrong = auth.login(password="wrong password!!")
    unknown = auth.login(email="nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert "Email address or password is wrong." in wrong.get_data(as_text=True)
    assert "Email address or password is wrong." in unknown.get_data(as_text=True)
    denied = entries(inst, action="login", outcome="denied")
    assert len(denied) == 1
    assert shown(denied[0]) == "wrong password"
    assert auth.login().status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_logout_ends_the_server_session(client, auth, inst) -> None:
    auth.signup()
    cookie = client.get_cookie("infomediary_session")
    assert count(inst, WebSession) == 1
    auth.logout()
    assert count(inst, WebSession) == 0
    # replaying the old cookie gets nothing
    client.set_cookie("infomediary_session", cookie.value)
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


def test_static_requests_keep_the_anonymous_csrf_cookie(client, inst) -> None:
    token = csrf(client, "/signup")
    with client.get("/static/app.css") as css:
        assert css.status_code == 200
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200
    response = client.post(
        "/signup",
        data={
            "csrf_token": token,
            "email": "s@example.org",
            "password": PASSWORD,
            "accept_notice": "yes",
        },
    )
    assert response.status_code == 302


def test_login_rotates_the_session_token(client, auth) -> None:
    client.get("/login")
    before = client.get_cookie("infomediary_session").value
    auth.signup()
    after = client.get_cookie("infomediary_session").value
    assert before != after


def test_password_change_ends_other_sessions(app, client, auth, inst) -> None:
    auth.signup()
    other = app.test_client()
    assert Auth(other).login().status_code == 302
    assert other.get("/dashboard").status_code == 200
    response = client.post(
        "/account/password",
        data={
            "csrf_token": csrf(client, "/account"),
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
        },
    )
    assert response.status_code == 302
    assert other.get("/dashboard").status_code == 302  # signed out elsewhere
    assert client.get("/dashboard").status_code == 200  # still in here
    assert Auth(other).login(password="a brand new passphrase").status_code == 302


def test_password_change_rejects_wrong_current(client, auth) -> None:
    auth.signup()
    response = client.post(
        "/account/password",
        data={
            "csrf_token": csrf(client, "/account"),
            "current_password": "not it at all",
            "new_password": "a brand new passphrase",
        },
    )
    assert response.status_code == 400
    assert "not your current password" in response.get_data(as_text=True)


def test_idle_session_expires(app, client, auth, inst) -> None:
    auth.signup()
    from datetime import timedelta

    with inst.sessions() as session:
        for row in session.execute(select(WebSession)).scalars():
            row.last_seen_at -= timedelta(minutes=inst.settings.session_idle_minutes + 1)
        session.commit()
    assert client.get("/dashboard").status_code == 302


def test_export_contains_everything_and_is_logged(client, auth, inst) -> None:
    auth.signup(email="exp@example.org", name="Exporter")
    client.post(
        "/profile",
        data={"csrf_token": csrf(client, "/profile"), "postcode": "6000", "interests": ["travel"]},
    )
    response = client.post("/account/export", data={"csrf_token": csrf(client, "/account")})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    document = json.loads(response.get_data(as_text=True))
    assert document["format"] == "infomediary-export/2"
    assert document["account"]["email"] == "exp@example.org"
    assert document["profile"]["name"] == "Exporter"
    assert document["profile"]["postcode"] == "6000"
    assert document["profile"]["interests"] == ["travel"]
    assert {e["action"] for e in document["access_log"]} >= {"create", "read", "update"}
    assert entries(inst, action="export")


def test_delete_account_crypto_shreds_and_keeps_log_verifiable(client, auth, inst) -> None:
    auth.signup()
    customer_id = entries(inst, action="create")[0].customer_id
    response = client.post(
        "/account/delete",
        data={"csrf_token": csrf(client, "/account"), "password": PASSWORD, "confirm": "DELETE"},
    )
    assert response.status_code == 302
    assert count(inst, Customer) == count(inst, Profile) == 0
    with inst.sessions() as session:
        assert (
            session.execute(select(WebSession).where(WebSession.customer_id.is_not(None))).first()
            is None
        )
    from infomediary.models import DataKey

    assert count(inst, DataKey) == 0
    remaining = entries(inst, customer_id=customer_id)
    assert remaining[-1].action == "erase"
    from infomediary.audit.log import verify

    with inst.sessions() as session:
        assert verify(session).ok
    assert auth.login().status_code == 401


def test_delete_account_requires_password_and_confirmation(client, auth, inst) -> None:
    auth.signup()
    token = csrf(client, "/account")
    assert (
        client.post("/account/delete", data={"csrf_token": token, "password": PASSWORD}).status_code
        == 400
    )
    assert (
        client.post(
            "/account/delete", data={"csrf_token": token, "password": "wrong!", "confirm": "DELETE"}
        ).status_code
        == 400
    )
    assert count(inst, Customer) == 1


def test_activity_is_paginated_filtered_and_own_only(app, client, auth, inst) -> None:
    auth.signup(email="a@example.org")
    for _ in range(25):
        client.get("/profile")
    other = app.test_client()
    Auth(other).signup(email="b@example.org", name="Bea Other")
    page1 = client.get("/activity").get_data(as_text=True)
    assert "26 entries" in page1 or "27 entries" in page1
    assert page1.count('class="entry') == 20
    assert client.get("/activity?page=2").get_data(as_text=True).count('class="entry') >= 6
    filtered = client.get("/activity?action=create").get_data(as_text=True)
    assert filtered.count('class="entry') == 1
    assert (
        client.get("/activity?category=religion").get_data(as_text=True).count('class="entry') == 0
    )
    assert client.get("/activity?action=drop-tables").status_code == 400
    assert client.get("/activity?page=-1").status_code == 400
    b_page = other.get("/activity").get_data(as_text=True)
    # B sees only B's own creation and the confirmation of B's address
    assert b_page.count('class="entry') == 2
    assert "account created" in b_page
    assert "e-mail address verified" in b_page


@pytest.mark.parametrize("path", ["/dashboard", "/profile", "/activity", "/account"])
def test_dashboard_requires_login(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"


@pytest.mark.parametrize(
    "path", ["/profile", "/account/export", "/account/password", "/account/delete", "/logout"]
)
def test_posts_without_login_redirect_and_change_nothing(client, inst, path) -> None:
    response = client.post(path, data={"csrf_token": csrf(client, "/login")})
    assert response.status_code == 302
    assert count(inst, AccessLogEntry) == 0 or path == "/logout"


def test_csrf_missing_or_wrong_is_403_and_nothing_written(client, auth, inst) -> None:
    auth.signup()
    size = count(inst, AccessLogEntry)
    assert client.post("/profile", data={"postcode": "2000"}).status_code == 403
    assert (
        client.post("/profile", data={"postcode": "2000", "csrf_token": "f" * 64}).status_code
        == 403
    )
    assert (
        client.post("/account/delete", data={"password": PASSWORD, "confirm": "DELETE"}).status_code
        == 403
    )
    assert count(inst, AccessLogEntry) == size
    assert count(inst, Customer) == 1


def test_foreign_origin_is_refused_even_with_token(client, auth) -> None:
    auth.signup()
    token = csrf(client, "/profile")
    response = client.post(
        "/profile",
        data={"csrf_token": token, "postcode": "2000"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "another site" in response.get_data(as_text=True)
    response = client.post(
        "/profile",
        data={"csrf_token": token, "postcode": "2000"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403


def test_csrf_token_is_bound_to_the_session(app, client, auth) -> None:
    auth.signup()
    other = app.test_client()
    Auth(other).signup(email="other@example.org")
    foreign_token = csrf(other, "/profile")
    assert (
        client.post("/profile", data={"csrf_token": foreign_token, "postcode": "2000"}).status_code
        == 403
    )


def test_security_headers(client) -> None:
    response = client.get("/login")
    headers = response.headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert len(headers["X-Request-ID"]) >= 8
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_production_cookies_are_host_prefixed_and_secure(inst) -> None:
    from infomediary import create_app

    config = replace(inst.settings, secret_key="x" * 40, ratelimit_storage_uri="memory://")
    app = create_app(config, instance=inst)  # checked; flip after to test the cookie logic alone
    app.config["SETTINGS"] = replace(config, production=True)
    client = app.test_client()
    response = client.get("/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-infomediary=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    assert "max-age=63072000" in response.headers["Strict-Transport-Security"]


def test_unknown_route_and_wrong_method(client) -> None:
    html = client.get("/no/such/page")
    assert html.status_code == 404
    assert "There is nothing here." in html.get_data(as_text=True)
    api = client.get("/api/v1/nothing")
    assert api.status_code == 404
    assert api.content_type == "application/problem+json"
    assert api.get_json() == {
        "type": "tag:infomediary.example,2026:problems/not_found",
        "title": "Not found",
        "status": 404,
        "detail": "There is nothing here.",
        "code": "not_found",
    }
    wrong = client.delete("/profile", headers={"Accept": "application/json"})
    assert wrong.status_code == 405
    assert wrong.get_json()["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


def test_oversized_body_is_413_and_nothing_written(client, auth, inst) -> None:
    auth.signup()
    size = count(inst, AccessLogEntry)
    response = client.post(
        "/profile", data={"csrf_token": csrf(client, "/profile"), "name": "x" * (2 * 1024 * 1024)}
    )
    assert response.status_code == 413
    assert count(inst, AccessLogEntry) == size + 1  # the GET that fetched the token


def test_malformed_bodies_are_4xx(client, auth, inst) -> None:
    auth.signup()
    token = csrf(client, "/profile")
    with inst.sessions() as session:
        before = session.execute(select(Profile)).scalar_one().name
    junk = client.post(
        "/profile",
        data=b"\xff\xfe\x00garbage=%zz&&=",
        content_type="application/x-www-form-urlencoded",
        headers={"X-CSRF-Token": token},
    )
    assert junk.status_code == 302  # nothing recognisable: nothing changed
    as_json = client.post(
        "/profile",
        data="{not json",
        content_type="application/json",
        headers={"X-CSRF-Token": token},
    )
    assert as_json.status_code == 415
    assert "form" in as_json.get_data(as_text=True)
    multi = client.post("/profile", data={"csrf_token": token, "birth_year": ["1980", "19x0"]})
    assert multi.status_code in (302, 400)
    with inst.sessions() as session:
        assert session.execute(select(Profile)).scalar_one().name == before


def test_login_is_rate_limited(client, auth) -> None:
    statuses = [
        auth.login(email="x@example.org", password="wrong password!").status_code for _ in range(7)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429


def test_unexpected_errors_are_500_without_details(app, client, caplog) -> None:
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    response = client.get("/boom", headers={"Accept": "application/json"})
    assert response.status_code == 500
    assert response.get_json()["code"] == "internal_error"
    assert "secret internal detail" not in response.get_data(as_text=True)


def test_logs_carry_no_personal_values(client, auth, caplog) -> None:
    markers = {
        "email": "log.marker.q7@example.org",
        "password": "Password-Marker-Violet-9",
        "name": "Zebulon Marker",
        "phone": "+61 411 222 333",
        "postcode": "7000",
    }
    caplog.set_level(logging.DEBUG)
    auth.signup(email=markers["email"], password=markers["password"], name=markers["name"])
    client.post(
        "/profile",
        data={
            "csrf_token": csrf(client, "/profile"),
            "phone": markers["phone"],
            "postcode": markers["postcode"],
        },
    )
    client.post("/profile", data={"csrf_token": csrf(client, "/profile"), "postcode": "bad"})
    client.post("/account/export", data={"csrf_token": csrf(client, "/account")})
    auth.logout()
    auth.login(email=markers["email"], password="wrong password!!")
    auth.login(email=markers["email"], password=markers["password"])
    cookie = client.get_cookie("infomediary_session").value
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /profile" in text  # the access log lines are there
    for name, marker in {**markers, "cookie": cookie}.items():
        assert marker not in text, f"{name} leaked into the logs"


def test_privacy_notice_and_static_assets_are_local(client) -> None:
    page = client.get("/privacy").get_data(as_text=True)
    assert "Your rights" in page
    home = client.get("/").get_data(as_text=True)
    assert "http://" not in home.replace("http://www.w3.org", "")
    assert "https://" not in home
    with client.get("/static/app.css") as css:
        assert css.status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_rate_limit_is_shared_through_redis(inst) -> None:
    import os

    from infomediary import create_app
    from tests.conftest import need_service

    url = os.environ.get("INFOMEDIARY_TEST_REDIS_URL", "")
    if not url:
        need_service(
            "the shared rate-limit test needs INFOMEDIARY_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)"
        )
    import redis

    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError as exc:
        need_service(f"Redis at INFOMEDIARY_TEST_REDIS_URL is unreachable: {type(exc).__name__}")
    config = replace(inst.settings, ratelimit_storage_uri=url, login_rate_limit="3 per minute")
    first, second = create_app(config, instance=inst), create_app(config, instance=inst)
    statuses = []
    for app in (first, second, first, second):  # two "workers" share one budget
        client = app.test_client()
        statuses.append(
            Auth(client).login(email="x@example.org", password="wrong password!").status_code
        )
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize(
    "target",
    ["/%09/evil.example", "//evil.example", "/%0A/x", "https://evil.example", "/\\evil.example"],
)
def test_login_next_never_leaves_the_site(client, auth, target) -> None:
    auth.signup()
    auth.logout()
    token = csrf(client, "/login")
    response = client.post(
        f"/login?next={target}",
        data={"csrf_token": token, "email": "ada@example.org", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
