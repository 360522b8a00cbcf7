"""OAuth security: RFC 9700 (OAuth 2.0 Security BCP) and OWASP ASVS 5.0 V10, item by item.

Everything goes over real HTTP to the served app (``live_server``). The supplier side is
authlib's ``OAuth2Session`` (tests/oauth_helpers.py); plain ``requests`` only where a request
is deliberately malformed and a client library would not send it. Every test runs on SQLite
and on PostgreSQL (the ``backend`` fixture).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import func, select, text, update

from infomediary.db import rowcount
from infomediary.models import (
    AccessLogEntry,
    AuthorizationCode,
    ConsentGrant,
    ConsentReceipt,
    CustomerPolicy,
    OAuthToken,
    utcnow,
)
from infomediary.services.suppliers import issue_initial_access_token, suspend_supplier
from tests.conftest import csrf_token_in
from tests.factories import make_customer
from tests.oauth_helpers import (
    REDIRECT,
    SupplierCreds,
    browser_login,
    client_session,
    consent,
    make_supplier,
)

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROFILE = {
    "name": "Ada Lovelace",
    "postcode": "2000",
    "birth_year": 1985,
    "interests": ["books", "travel"],
    "phone": "+61 400 000 111",
}
IDENTITY = "profile.identity:read"
INTERESTS = "profile.interests:read"
#: Tables an authorization request must not write to unless the customer approves.
GRANT_TABLES = (AuthorizationCode, ConsentGrant, ConsentReceipt, OAuthToken, CustomerPolicy)


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def customer(inst) -> str:
    return make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace", profile=PROFILE)


@pytest.fixture
def supplier(inst) -> SupplierCreds:
    return make_supplier(inst)


@pytest.fixture
def browser(live_server, customer) -> requests.Session:
    return browser_login(live_server, EMAIL, PASSWORD)


def count(inst, model: Any, *where: Any) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def counts(inst) -> dict[str, int]:
    return {model.__tablename__: count(inst, model) for model in GRANT_TABLES}


def me(base: str, access_token: str) -> requests.Response:
    return requests.get(
        f"{base}/api/v1/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )


def page_csrf(base: str, browser: requests.Session, path: str = "/dashboard") -> str:
    return csrf_token_in(browser.get(f"{base}{path}", timeout=10).text, path)


def authorize_url(
    base: str,
    creds: SupplierCreds,
    extra: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> str:
    """A hand-built authorization request, for parameters authlib's client would not send."""
    verifier = secrets.token_urlsafe(48)
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": creds.client_id,
        "redirect_uri": creds.redirect_uri,
        "scope": IDENTITY,
        "state": secrets.token_urlsafe(16),
        "purpose": "service",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        **(extra or {}),
    }
    for name in drop:
        params.pop(name)
    return f"{base}/oauth/authorize?{urlencode(params)}"


def approve(base: str, browser: requests.Session, url: str) -> requests.Response:
    """POST the consent form for ``url`` (approve everything) as a crafted page could."""
    return browser.post(
        url,
        data={
            "csrf_token": page_csrf(base, browser),
            "approve_scope": [IDENTITY, INTERESTS],
            "expiry": "90d",
            "decision": "approve",
        },
        allow_redirects=False,
        timeout=10,
    )


def redirect_params(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, (response.status_code, response.text[:300])
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return parse_qs(urlsplit(location).query)


def assert_error_page(response: requests.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.headers.get("Location"))
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert "cannot be authorised" in response.text


def tokens_for(
    base: str,
    browser: requests.Session,
    creds: SupplierCreds,
    scope: str = f"{IDENTITY} {INTERESTS}",
    purpose: str = "service",
) -> tuple[OAuth2Session, dict[str, Any]]:
    client = client_session(base, creds, scope)
    result = consent(base, browser, client, purpose=purpose)
    token = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    return client, dict(token)


def oauth_error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(OAuthError) as caught:
        call(*args, **kwargs)
    return str(caught.value.error)


def token_row(inst, access_token: str) -> OAuthToken:
    digest = hashlib.sha256(access_token.encode()).digest()
    with inst.sessions() as session:
        row: OAuthToken = session.execute(
            select(OAuthToken).where(OAuthToken.access_token_hash == digest)
        ).scalar_one()
        session.expunge(row)
        return row


# -- 1. redirect URIs ------------------------------------------------------------------------


BAD_REDIRECTS = {
    "unregistered host": "https://evil.example/callback",
    "lookalike host": "https://shop.example.evil.example/callback",
    "extra path segment": "https://shop.example/callback/more",
    "dot segments": "https://shop.example/callback/../callback",
    "different scheme": "http://shop.example/callback",
    "added query": "https://shop.example/callback?next=https://evil.example",
    "trailing slash": "https://shop.example/callback/",
    "different port": "https://shop.example:8443/callback",
    "explicit default port": "https://shop.example:443/callback",
    "fragment": "https://shop.example/callback#x",
    "userinfo": "https://user@shop.example/callback",
    "userinfo trick": "https://shop.example@evil.example/callback",
    "host case": "https://SHOP.example/callback",
    "path case": "https://shop.example/Callback",
    "percent-encoded path": "https://shop.example/%63allback",
}


def test_wrong_redirect_uris_get_an_error_page_and_never_a_redirect(
    live_server, inst, supplier, browser
) -> None:
    base = f"{live_server}/oauth/authorize"
    cases: list[tuple[str, str]] = []
    for label, uri in BAD_REDIRECTS.items():
        client = client_session(live_server, supplier, IDENTITY)
        url, _ = client.create_authorization_url(
            base, code_verifier=secrets.token_urlsafe(48), purpose="service", redirect_uri=uri
        )
        cases.append((label, url))
    missing = OAuth2Session(
        supplier.client_id, supplier.client_secret, scope=IDENTITY, code_challenge_method="S256"
    )
    url, _ = missing.create_authorization_url(
        base, code_verifier=secrets.token_urlsafe(48), purpose="service"
    )
    assert "redirect_uri" not in url
    cases.append(("missing redirect_uri", url))
    stranger = SupplierCreds("-", "sup_unknown", "x" * 43, REDIRECT)
    url, _ = client_session(live_server, stranger, IDENTITY).create_authorization_url(
        base, code_verifier=secrets.token_urlsafe(48), purpose="service"
    )
    cases.append(("unknown client_id", url))
    cases.append(("missing client_id", authorize_url(live_server, supplier, drop=("client_id",))))
    before = counts(inst)
    for label, url in cases:
        for response in (
            browser.get(url, allow_redirects=False, timeout=10),
            approve(live_server, browser, url),
        ):
            try:
                assert_error_page(response)
            except AssertionError as exc:
                raise AssertionError(f"{label}: {exc}") from exc
    assert counts(inst) == before
    # logged out, the only redirect is to our own login page, never to the client
    for label, url in cases:
        anonymous = requests.get(url, allow_redirects=False, timeout=10)
        if anonymous.status_code != 302:
            assert_error_page(anonymous)
            continue
        target = urlsplit(anonymous.headers["Location"])
        assert target.netloc in ("", urlsplit(live_server).netloc), label
        assert target.path == "/login", label


# -- 2. PKCE ---------------------------------------------------------------------------------


def test_pkce_s256_is_required_at_both_endpoints(live_server, inst, supplier, browser) -> None:
    verifier = secrets.token_urlsafe(48)
    no_pkce = OAuth2Session(
        supplier.client_id, supplier.client_secret, scope=IDENTITY, redirect_uri=REDIRECT
    )
    missing_challenge, _ = no_pkce.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier=verifier, purpose="service"
    )
    assert "code_challenge" not in missing_challenge
    authorization_errors = {
        "missing code_challenge": missing_challenge,
        "plain": authorize_url(
            live_server, supplier, {"code_challenge": verifier, "code_challenge_method": "plain"}
        ),
        "missing method": authorize_url(live_server, supplier, drop=("code_challenge_method",)),
        "empty challenge": authorize_url(live_server, supplier, {"code_challenge": ""}),
    }
    for label, url in authorization_errors.items():
        state = parse_qs(urlsplit(url).query)["state"][0]
        for response in (
            browser.get(url, allow_redirects=False, timeout=10),
            approve(live_server, browser, url),
        ):
            params = redirect_params(response)
            assert params["error"] == ["invalid_request"], (label, params)
            assert params["iss"] == [live_server], label
            assert params["state"] == [state], label
            assert "code" not in params, label
    assert count(inst, AuthorizationCode) == 0

    client = client_session(live_server, supplier, IDENTITY)
    wrong = consent(live_server, browser, client, purpose="service")
    error = oauth_error(
        client.fetch_token,
        authorization_response=wrong.authorization_response,
        code_verifier=secrets.token_urlsafe(48),
    )
    assert error == "invalid_grant"
    missing = consent(live_server, browser, client, purpose="service")
    error = oauth_error(client.fetch_token, authorization_response=missing.authorization_response)
    assert error == "invalid_request"
    assert count(inst, OAuthToken) == 0


# -- 3. code reuse ---------------------------------------------------------------------------


def test_code_reuse_fails_and_revokes_the_tokens_of_the_first_redemption(
    live_server, inst, supplier, browser
) -> None:
    client = client_session(live_server, supplier, IDENTITY)
    result = consent(live_server, browser, client, purpose="service")
    first = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert me(live_server, first["access_token"]).status_code == 200
    replay = client_session(live_server, supplier, IDENTITY)
    error = oauth_error(
        replay.fetch_token,
        authorization_response=result.authorization_response,
        code_verifier=result.verifier,
    )
    assert error == "invalid_grant"
    assert me(live_server, first["access_token"]).status_code == 401
    refresh = oauth_error(
        client.refresh_token, f"{live_server}/oauth/token", refresh_token=first["refresh_token"]
    )
    assert refresh == "invalid_grant"
    assert count(inst, OAuthToken, OAuthToken.revoked_at.is_(None)) == 0


def redeem(base: str, creds: SupplierCreds, result: Any, barrier: threading.Barrier) -> Any:
    """One redemption of ``result``'s code, started together with the others at the barrier."""
    client = client_session(base, creds, IDENTITY)
    barrier.wait(timeout=10)
    try:
        return client.fetch_token(
            authorization_response=result.authorization_response, code_verifier=result.verifier
        )
    except OAuthError as exc:
        return exc


def test_concurrent_redemptions_of_one_code_exactly_one_succeeds(
    live_server, inst, supplier, browser
) -> None:
    for _round in range(3):
        result = consent(
            live_server, browser, client_session(live_server, supplier, IDENTITY), purpose="service"
        )
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(redeem, live_server, supplier, result, barrier) for _ in range(2)
            ]
            outcomes = [f.result(timeout=60) for f in futures]
        won = [o for o in outcomes if not isinstance(o, OAuthError)]
        lost = [o for o in outcomes if isinstance(o, OAuthError)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1
        assert lost[0].error == "invalid_grant"
        # the loser is a reuse: whatever the winner got is revoked with the family
        assert me(live_server, won[0]["access_token"]).status_code == 401
    assert count(inst, OAuthToken) == 3
    assert count(inst, OAuthToken, OAuthToken.revoked_at.is_(None)) == 0


# -- 4. expired code -------------------------------------------------------------------------


def test_expired_code_is_invalid_grant(live_server, inst, supplier, browser) -> None:
    client = client_session(live_server, supplier, IDENTITY)
    result = consent(live_server, browser, client, purpose="service")
    with inst.sessions() as session:
        code = session.execute(select(AuthorizationCode)).scalar_one()
        assert code.expires_at - code.created_at <= timedelta(seconds=60)  # short-lived
        changed = session.execute(
            update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
        assert rowcount(changed) == 1
    for _attempt in range(2):
        error = oauth_error(
            client.fetch_token,
            authorization_response=result.authorization_response,
            code_verifier=result.verifier,
        )
        assert error == "invalid_grant"
    assert count(inst, OAuthToken) == 0


# -- 5. code bound to its client -------------------------------------------------------------


def test_code_redeemed_by_another_client_is_invalid_grant(
    live_server, inst, supplier, browser
) -> None:
    other = make_supplier(inst, name="Other Shop")
    result = consent(
        live_server, browser, client_session(live_server, supplier, IDENTITY), purpose="service"
    )
    thief = client_session(live_server, other, IDENTITY)
    error = oauth_error(
        thief.fetch_token,
        authorization_response=result.authorization_response,
        code_verifier=result.verifier,
    )
    assert error == "invalid_grant"
    # client_secret_post, and the code in the body by hand: same answer
    response = requests.post(
        f"{live_server}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": result.code,
            "redirect_uri": REDIRECT,
            "code_verifier": result.verifier,
            "client_id": other.client_id,
            "client_secret": other.client_secret,
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert count(inst, OAuthToken) == 0


# -- 6. refresh tokens -----------------------------------------------------------------------


def test_refresh_token_is_bound_to_its_client_and_reuse_revokes_the_family(
    live_server, inst, supplier, browser
) -> None:
    token_url = f"{live_server}/oauth/token"
    client, first = tokens_for(live_server, browser, supplier)
    other = make_supplier(inst, name="Other Shop")
    thief = client_session(live_server, other, IDENTITY)
    assert oauth_error(thief.refresh_token, token_url, refresh_token=first["refresh_token"]) == (
        "invalid_grant"
    )
    row = token_row(inst, first["access_token"])
    assert row.rotated_at is None
    assert row.revoked_at is None
    assert me(live_server, first["access_token"]).status_code == 200
    assert count(inst, OAuthToken, OAuthToken.supplier_id == other.id) == 0

    second = client.refresh_token(token_url, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert me(live_server, first["access_token"]).status_code == 401  # rotated away
    assert me(live_server, second["access_token"]).status_code == 200
    replay = client_session(live_server, supplier, IDENTITY)
    assert oauth_error(replay.refresh_token, token_url, refresh_token=first["refresh_token"]) == (
        "invalid_grant"
    )
    assert me(live_server, second["access_token"]).status_code == 401
    assert oauth_error(replay.refresh_token, token_url, refresh_token=second["refresh_token"]) == (
        "invalid_grant"
    )
    assert count(inst, OAuthToken, OAuthToken.revoked_at.is_(None)) == 0


# -- 7. bearer tokens only in the Authorization header ---------------------------------------


def test_access_token_only_in_the_authorization_header(
    live_server, inst, supplier, browser, customer
) -> None:
    _client, token = tokens_for(live_server, browser, supplier)
    url = f"{live_server}/api/v1/me"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    for placement, headers in (("uri", {}), ("body", form_type)):
        placed = OAuth2Session(
            supplier.client_id, supplier.client_secret, token=token, token_placement=placement
        )
        response = placed.get(url, headers=headers, timeout=10)
        assert response.status_code == 400, (placement, response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_request"
        assert "access_token" in response.json()["errors"]
    # a body that is not a form is no token either (RFC 6750 §2.2 needs the form type)
    untyped = OAuth2Session(
        supplier.client_id, supplier.client_secret, token=token, token_placement="body"
    )
    assert untyped.get(url, timeout=10).status_code in (400, 401)
    by_hand = [
        requests.get(url, params={"access_token": token["access_token"]}, timeout=10),
        requests.get(url, data={"access_token": token["access_token"]}, timeout=10),
        # a valid header does not excuse a token in the URL as well (it leaks via logs)
        requests.get(
            url,
            params={"access_token": token["access_token"]},
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=10,
        ),
    ]
    for response in by_hand:
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"
    reads = AccessLogEntry.actor_type == "supplier"
    assert count(inst, AccessLogEntry, reads) == 0  # nothing was read with those tokens
    assert me(live_server, token["refresh_token"]).status_code == 401  # not an access token
    assert me(live_server, token["access_token"]).status_code == 200
    assert count(inst, AccessLogEntry, reads, AccessLogEntry.customer_id == customer) == 1


# -- 8. revocation (RFC 7009) ----------------------------------------------------------------


def test_revocation_is_bound_to_the_client_and_covers_refresh_tokens(
    live_server, inst, supplier, browser
) -> None:
    revoke_url = f"{live_server}/oauth/revoke"
    token_url = f"{live_server}/oauth/token"
    alice, a_token = tokens_for(live_server, browser, supplier)
    other = make_supplier(inst, name="Other Shop")
    bob, b_token = tokens_for(live_server, browser, other)
    for value, hint in (
        (a_token["access_token"], "access_token"),
        (a_token["refresh_token"], None),
    ):
        refused = bob.revoke_token(revoke_url, token=value, token_type_hint=hint)
        assert refused.status_code == 400, refused.text
    assert me(live_server, a_token["access_token"]).status_code == 200
    assert token_row(inst, a_token["access_token"]).revoked_at is None

    done = alice.revoke_token(
        revoke_url, token=a_token["access_token"], token_type_hint="access_token"
    )
    assert done.status_code == 200
    assert me(live_server, a_token["access_token"]).status_code == 401
    assert me(live_server, b_token["access_token"]).status_code == 200  # others unaffected

    # revoking a refresh token ends it and the access token issued with it
    _again, fresh = tokens_for(live_server, browser, supplier)
    assert me(live_server, fresh["access_token"]).status_code == 200
    done = alice.revoke_token(
        revoke_url, token=fresh["refresh_token"], token_type_hint="refresh_token"
    )
    assert done.status_code == 200
    assert oauth_error(alice.refresh_token, token_url, refresh_token=fresh["refresh_token"]) == (
        "invalid_grant"
    )
    assert me(live_server, fresh["access_token"]).status_code == 401
    # unknown tokens: 200 and nothing else (RFC 7009 §2.2)
    assert alice.revoke_token(revoke_url, token="not-a-token").status_code == 200


# -- 9. CSRF on the consent screen -----------------------------------------------------------


def test_consent_form_is_protected_against_csrf_and_needs_login(
    live_server, inst, supplier, browser
) -> None:
    client = client_session(live_server, supplier, IDENTITY)
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier=secrets.token_urlsafe(48), purpose="service"
    )
    assert browser.get(url, allow_redirects=False, timeout=10).status_code == 200
    form = {"approve_scope": [IDENTITY], "expiry": "90d", "decision": "approve"}
    no_token = browser.post(url, data=form, allow_redirects=False, timeout=10)
    wrong_token = browser.post(
        url, data={**form, "csrf_token": "0" * 64}, allow_redirects=False, timeout=10
    )
    token = page_csrf(live_server, browser)
    foreign = browser.post(
        url,
        data={**form, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    cross_site = browser.post(
        url,
        data={**form, "csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
        timeout=10,
    )
    for response in (no_token, wrong_token, foreign, cross_site):
        assert response.status_code == 403
        assert "Location" not in response.headers
    assert count(inst, AuthorizationCode) == 0
    assert count(inst, ConsentGrant) == 0

    anonymous = requests.get(url, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    login = urlsplit(anonymous.headers["Location"])
    assert login.path == "/login"
    next_target = parse_qs(login.query)["next"][0]
    assert next_target == f"{urlsplit(url).path}?{urlsplit(url).query}"
    # logging in through that link comes back to the consent screen, not elsewhere
    fresh = requests.Session()
    login_token = csrf_token_in(fresh.get(f"{live_server}/login", timeout=10).text)
    back = fresh.post(
        f"{live_server}/login",
        params={"next": next_target},
        data={"csrf_token": login_token, "email": EMAIL, "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert back.status_code == 302
    assert back.headers["Location"] in (next_target, f"{live_server}{next_target}")
    # and the same form with a valid token, same origin, does issue a code
    ok = browser.post(
        url,
        data={**form, "csrf_token": token},
        headers={"Origin": live_server},
        allow_redirects=False,
        timeout=10,
    )
    assert "code" in redirect_params(ok)


# -- 10. token response headers, metadata, no implicit or password grant ---------------------


def test_no_store_metadata_and_no_implicit_or_password_grant(
    live_server, inst, supplier, browser
) -> None:
    client = client_session(live_server, supplier, IDENTITY)
    seen: list[requests.Response] = []
    client.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response))
    result = consent(live_server, browser, client, purpose="service")
    issued = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    client.refresh_token(f"{live_server}/oauth/token", refresh_token=issued["refresh_token"])
    reused = oauth_error(
        client.refresh_token, f"{live_server}/oauth/token", refresh_token=issued["refresh_token"]
    )
    assert reused == "invalid_grant"
    token_responses = [r for r in seen if r.url == f"{live_server}/oauth/token"]
    assert [r.status_code for r in token_responses] == [200, 200, 400]
    for response in token_responses:
        assert "no-store" in response.headers["Cache-Control"]

    metadata = requests.get(f"{live_server}/.well-known/oauth-authorization-server", timeout=10)
    meta = metadata.json()
    assert meta["issuer"] == live_server
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert not {"implicit", "password"} & set(meta["grant_types_supported"])
    assert meta["response_types_supported"] == ["code"]

    password = oauth_error(
        client.fetch_token,
        f"{live_server}/oauth/token",
        grant_type="password",
        username=EMAIL,
        password=PASSWORD,
    )
    assert password == "unsupported_grant_type"
    assert seen[-1].status_code == 400
    assert "access_token" not in seen[-1].json()

    before = count(inst, OAuthToken)
    for response_type in ("token", "code token", "id_token token"):
        implicit = authorize_url(live_server, supplier, {"response_type": response_type})
        for response in (
            browser.get(implicit, allow_redirects=False, timeout=10),
            approve(live_server, browser, implicit),
        ):
            location = response.headers.get("Location", "")
            assert "access_token" not in location
            assert "code=" not in location
            if response.status_code == 302:
                params = redirect_params(response)
                assert params["error"] == ["unsupported_response_type"], response_type
                assert params["iss"] == [live_server]
                assert urlsplit(location).fragment == ""
            else:
                assert_error_page(response)
    assert count(inst, OAuthToken) == before


# -- 11. access token lifetime ---------------------------------------------------------------


def test_access_tokens_are_short_lived_and_expire(live_server, inst, supplier, browser) -> None:
    client, token = tokens_for(live_server, browser, supplier)
    assert 0 < token["expires_in"] <= 3600
    refreshed = client.refresh_token(
        f"{live_server}/oauth/token", refresh_token=token["refresh_token"]
    )
    assert 0 < refreshed["expires_in"] <= 3600
    row = token_row(inst, refreshed["access_token"])
    assert row.expires_at - row.issued_at <= timedelta(seconds=3600)
    assert me(live_server, refreshed["access_token"]).status_code == 200
    with inst.sessions() as session:
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.id == row.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    expired = me(live_server, refreshed["access_token"])
    assert expired.status_code == 401
    assert "invalid_token" in expired.headers.get("WWW-Authenticate", "")


# -- 12. secrets stored as hashes only -------------------------------------------------------


def test_tokens_codes_and_client_secrets_are_stored_only_as_hashes(
    live_server, inst, supplier, browser
) -> None:
    client = client_session(live_server, supplier, IDENTITY)
    result = consent(live_server, browser, client, purpose="service")
    first = client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    second = client.refresh_token(
        f"{live_server}/oauth/token", refresh_token=first["refresh_token"]
    )
    assert me(live_server, second["access_token"]).status_code == 200
    secrets_seen = {
        "code": result.code,
        "client_secret": supplier.client_secret,
        "access_token": first["access_token"],
        "refresh_token": first["refresh_token"],
        "rotated access_token": second["access_token"],
        "rotated refresh_token": second["refresh_token"],
    }
    forms: dict[str, list[bytes]] = {
        label: [value.encode(), value.encode().hex().encode()]
        for label, value in secrets_seen.items()
    }
    scanned = 0
    with inst.engine.connect() as conn:
        for table in ("oauth_tokens", "authorization_codes", "suppliers", "access_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608 - fixed names
                for column, value in row._mapping.items():
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                    blob = raw if isinstance(raw, bytes) else raw.encode()
                    scanned += 1
                    for label, needles in forms.items():
                        for needle in needles:
                            assert needle not in blob, f"{label} in plaintext: {table}.{column}"
    assert scanned > 0
    digest = {k: hashlib.sha256(v.encode()).digest() for k, v in secrets_seen.items()}
    with inst.sessions() as session:
        assert session.get(AuthorizationCode, digest["code"]) is not None
        rows = session.execute(select(OAuthToken)).scalars().all()
    assert {r.access_token_hash for r in rows} == {
        digest["access_token"],
        digest["rotated access_token"],
    }
    assert {r.refresh_token_hash for r in rows} == {
        digest["refresh_token"],
        digest["rotated refresh_token"],
    }


# -- 13. introspection (RFC 7662) ------------------------------------------------------------


def test_introspection_only_for_resource_servers(live_server, inst, supplier, browser) -> None:
    introspect_url = f"{live_server}/oauth/introspect"
    client, token = tokens_for(live_server, browser, supplier)
    sub = client.get(f"{live_server}/api/v1/me", timeout=10).json()["sub"]
    rs_creds = make_supplier(
        inst, name="Resource Server", kind="resource_server", scopes=(), redirect_uris=()
    )
    rs = OAuth2Session(rs_creds.client_id, rs_creds.client_secret)
    answer = rs.introspect_token(introspect_url, token=token["access_token"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["sub"] == sub
    assert set(body["scope"].split()) == {IDENTITY, INTERESTS}
    assert body["client_id"] == supplier.client_id
    assert body["iss"] == live_server
    assert 0 < body["exp"] - utcnow().timestamp() <= 3600
    assert "no-store" in answer.headers["Cache-Control"]

    other = make_supplier(inst, name="Other Shop")
    for creds in (supplier, other):
        nosy = OAuth2Session(creds.client_id, creds.client_secret)
        refused = nosy.introspect_token(introspect_url, token=token["access_token"])
        assert refused.json().get("active") is not True, refused.text
        assert "sub" not in refused.json()
        assert "scope" not in refused.json()
    anonymous = requests.post(introspect_url, data={"token": token["access_token"]}, timeout=10)
    assert anonymous.status_code == 401
    assert "active" not in anonymous.json()

    revoked = client.revoke_token(f"{live_server}/oauth/revoke", token=token["access_token"])
    assert revoked.status_code == 200
    after = rs.introspect_token(introspect_url, token=token["access_token"]).json()
    assert after == {"active": False}


# -- 14. client credentials ------------------------------------------------------------------


def test_client_credentials_only_for_broker_scopes(live_server, inst) -> None:
    token_url = f"{live_server}/oauth/token"
    broker = make_supplier(
        inst, name="Counter", scopes=(IDENTITY, "audience:count"), redirect_uris=(REDIRECT,)
    )
    session = OAuth2Session(broker.client_id, broker.client_secret, scope="audience:count")
    token = session.fetch_token(token_url, grant_type="client_credentials")
    assert token["scope"] == "audience:count"
    assert "refresh_token" not in token
    assert 0 < token["expires_in"] <= 3600
    default = OAuth2Session(broker.client_id, broker.client_secret)
    assert default.fetch_token(token_url, grant_type="client_credentials")["scope"] == (
        "audience:count"
    )
    with inst.sessions() as s:
        rows = s.execute(select(OAuthToken)).scalars().all()
    assert [(r.customer_id, r.grant_id, r.purpose) for r in rows] == [(None, None, "broker")] * 2

    for scope in (IDENTITY, f"audience:count {IDENTITY}", "offers:send", "nonsense:read"):
        greedy = OAuth2Session(broker.client_id, broker.client_secret, scope=scope)
        assert oauth_error(greedy.fetch_token, token_url, grant_type="client_credentials") == (
            "invalid_scope"
        ), scope

    customer_only = make_supplier(inst, name="Plain Shop")
    plain = OAuth2Session(
        customer_only.client_id, customer_only.client_secret, scope="audience:count"
    )
    assert oauth_error(plain.fetch_token, token_url, grant_type="client_credentials") == (
        "unauthorized_client"
    )
    assert count(inst, OAuthToken) == 2


# -- 15. suspension --------------------------------------------------------------------------


def test_suspension_kills_every_token_and_blocks_new_ones(live_server, inst, browser) -> None:
    token_url = f"{live_server}/oauth/token"
    creds = make_supplier(inst, scopes=(IDENTITY, INTERESTS, "audience:count"))
    _client, first = tokens_for(live_server, browser, creds)
    _client, second = tokens_for(live_server, browser, creds)
    broker = OAuth2Session(creds.client_id, creds.client_secret, scope="audience:count")
    broker_token = broker.fetch_token(token_url, grant_type="client_credentials")
    rs_creds = make_supplier(inst, name="RS", kind="resource_server", scopes=(), redirect_uris=())
    rs = OAuth2Session(rs_creds.client_id, rs_creds.client_secret)
    assert me(live_server, first["access_token"]).status_code == 200
    assert me(live_server, second["access_token"]).status_code == 200

    with inst.sessions() as session:
        assert suspend_supplier(session, creds.client_id) == 3

    for token in (first, second):
        assert me(live_server, token["access_token"]).status_code == 401
    for value in (first["access_token"], broker_token["access_token"]):
        assert rs.introspect_token(f"{live_server}/oauth/introspect", token=value).json() == {
            "active": False
        }
    client = client_session(live_server, creds, IDENTITY)
    assert oauth_error(client.refresh_token, token_url, refresh_token=second["refresh_token"]) == (
        "invalid_client"
    )
    assert oauth_error(broker.fetch_token, token_url, grant_type="client_credentials") == (
        "invalid_client"
    )
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier=secrets.token_urlsafe(48), purpose="service"
    )
    assert_error_page(browser.get(url, allow_redirects=False, timeout=10))
    assert count(inst, OAuthToken, OAuthToken.revoked_at.is_(None)) == 0


# -- 16. the customer's controls take effect on the next call --------------------------------


def test_revoking_consent_on_the_dashboard_ends_access(
    live_server, inst, supplier, browser, customer
) -> None:
    client, token = tokens_for(live_server, browser, supplier)
    assert me(live_server, token["access_token"]).status_code == 200
    page = browser.get(f"{live_server}/consents", timeout=10).text
    actions = re.findall(r'action="(/consents/[^"/]+/revoke)"', page)
    assert len(actions) == 1
    csrf = csrf_token_in(page)
    revoked = browser.post(
        f"{live_server}{actions[0]}",
        data={"csrf_token": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert revoked.status_code == 302
    with inst.sessions() as session:
        grant = session.execute(select(ConsentGrant)).scalar_one()
    assert grant.revoked_at is not None
    assert actions[0] == f"/consents/{grant.id}/revoke"
    assert me(live_server, token["access_token"]).status_code == 401
    token_url = f"{live_server}/oauth/token"
    assert oauth_error(client.refresh_token, token_url, refresh_token=token["refresh_token"]) == (
        "invalid_grant"
    )


@pytest.mark.parametrize("change", ["rule", "template"])
def test_tightening_the_policy_denies_the_next_call(
    live_server, inst, supplier, browser, customer, change
) -> None:
    _client, token = tokens_for(live_server, browser, supplier, scope=IDENTITY, purpose="marketing")
    assert me(live_server, token["access_token"]).status_code == 200
    csrf = page_csrf(live_server, browser, "/consents")
    if change == "rule":
        form = {"category": "identity", "purpose": "marketing", "mode": "never"}
        changed = browser.post(
            f"{live_server}/policy/rule",
            data={"csrf_token": csrf, **form},
            allow_redirects=False,
            timeout=10,
        )
    else:
        changed = browser.post(
            f"{live_server}/policy/template",
            data={"csrf_token": csrf, "template": "private", "confirm": "yes"},
            allow_redirects=False,
            timeout=10,
        )
    assert changed.status_code == 302, changed.text
    denied = me(live_server, token["access_token"])
    assert denied.status_code == 403
    assert denied.json()["code"] == "policy_denied"
    assert "identity" not in denied.json()
    with inst.sessions() as session:
        outcomes = (
            session.execute(
                select(AccessLogEntry.outcome)
                .where(
                    AccessLogEntry.actor_type == "supplier",
                    AccessLogEntry.actor_id == supplier.id,
                    AccessLogEntry.customer_id == customer,
                )
                .order_by(AccessLogEntry.seq)
            )
            .scalars()
            .all()
        )
    assert outcomes == ["allowed", "denied"]


# -- 17. dynamic client registration (RFC 7591) ----------------------------------------------


def test_dynamic_registration_needs_a_single_use_initial_access_token(live_server, inst) -> None:
    register_url = f"{live_server}/oauth/register"
    metadata = {
        "client_name": "Registered Shop",
        "redirect_uris": ["https://registered.example/cb"],
        "scope": "audience:count profile.identity:read",
        "purposes": ["service"],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "policy_uri": "https://registered.example/privacy",
    }

    def register(body: Any, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(register_url, json=body, headers=headers, timeout=10)

    def fresh_token() -> str:
        with inst.sessions() as session:
            return issue_initial_access_token(session)

    for token in (None, "iat_not-a-real-token"):
        refused = register(metadata, token)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert "Bearer" in refused.headers["WWW-Authenticate"]

    iat = fresh_token()
    created = register(metadata, iat)
    assert created.status_code == 201, created.text
    assert "no-store" in created.headers["Cache-Control"]
    body = created.json()
    assert body["client_id"]
    assert body["client_secret"]
    assert body["scope"] == "profile.identity:read"  # broker scopes: the operator's to grant
    session = OAuth2Session(body["client_id"], body["client_secret"], scope="audience:count")
    error = oauth_error(
        session.fetch_token, f"{live_server}/oauth/token", grant_type="client_credentials"
    )
    assert error == "unauthorized_client"  # the secret works; the grant is not this client's
    wrong = OAuth2Session(body["client_id"], "not-the-secret", scope="audience:count")
    error = oauth_error(
        wrong.fetch_token, f"{live_server}/oauth/token", grant_type="client_credentials"
    )
    assert error == "invalid_client"
    reused = register({**metadata, "client_name": "Second"}, iat)
    assert reused.status_code == 401
    with inst.engine.connect() as conn:
        stored = [
            bytes(r[0]) for r in conn.execute(text("SELECT token_hash FROM initial_access_tokens"))
        ]
    assert stored == [hashlib.sha256(iat.encode()).digest()]  # a hash, not the token

    rejected: dict[str, tuple[dict[str, Any], str]] = {
        "http on a public host": ({"redirect_uris": ["http://registered.example/cb"]}, "uri"),
        "fragment": ({"redirect_uris": ["https://registered.example/cb#x"]}, "uri"),
        "javascript scheme": ({"redirect_uris": ["javascript:alert(1)"]}, "uri"),
        "unknown scope": ({"scope": "profile.identity:read everything:write"}, "metadata"),
        "implicit": ({"grant_types": ["authorization_code", "implicit"]}, "metadata"),
        "password": ({"grant_types": ["password"]}, "metadata"),
        "public client": ({"token_endpoint_auth_method": "none"}, "metadata"),
    }
    expected = {"uri": "invalid_redirect_uri", "metadata": "invalid_client_metadata"}
    for label, (change, kind) in rejected.items():
        response = register({**metadata, **change}, fresh_token())
        assert response.status_code == 400, (label, response.status_code, response.text)
        assert response.json()["error"] == expected[kind], label
    with inst.sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM suppliers WHERE registered_via = 'dcr'")) == 1


# -- 18. unknown scope or purpose ------------------------------------------------------------


def test_unknown_scope_or_purpose_redirects_with_an_error_and_writes_nothing(
    live_server, inst, supplier, browser
) -> None:
    cases: dict[str, tuple[dict[str, str], str]] = {
        "unknown scope": ({"scope": "profile.secrets:read"}, "invalid_scope"),
        "unknown scope among known": (
            {"scope": f"{IDENTITY} profile.secrets:read"},
            "invalid_scope",
        ),
        "broker scope": ({"scope": "audience:count"}, "invalid_scope"),
        "unregistered scope": ({"scope": "purchases:read"}, "invalid_scope"),
        "unknown purpose": ({"purpose": "resale"}, "invalid_request"),
        "undeclared purpose": ({"purpose": "research"}, "invalid_request"),
        "missing purpose": ({"purpose": ""}, "invalid_request"),
    }
    csrf = page_csrf(live_server, browser)
    form = {"csrf_token": csrf, "approve_scope": [IDENTITY], "expiry": "90d", "decision": "approve"}
    before = counts(inst)
    for label, (change, error) in cases.items():
        url = authorize_url(live_server, supplier, change)
        for method in ("GET", "POST"):
            log_before = count(inst, AccessLogEntry)
            response = browser.request(
                method,
                url,
                data=form if method == "POST" else None,
                allow_redirects=False,
                timeout=10,
            )
            params = redirect_params(response)
            assert params["error"] == [error], (label, method, params)
            assert params["iss"] == [live_server], label
            assert "code" not in params, label
            assert count(inst, AccessLogEntry) - log_before <= 1, (label, method)
    assert counts(inst) == before
