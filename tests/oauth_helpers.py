"""Helpers for OAuth tests: a supplier, a logged-in browser, and the consent dance.

The supplier side is authlib's own OAuth 2 client (``OAuth2Session`` over requests), talking
to the app served on a real loopback port: no hand-built token requests in happy paths.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session

from infomediary.instance import Instance
from tests.conftest import CSRF_RE as CSRF_RE  # the OAuth tests import it from here
from tests.conftest import csrf_token_in
from tests.factories import REDIRECT as REDIRECT
from tests.factories import SupplierCreds as SupplierCreds
from tests.factories import make_supplier as make_supplier
from tests.outbox import TOKEN_FIELD_RE, newest_link


def browser_login(base: str, email: str, password: str) -> requests.Session:
    browser = requests.Session()
    page = browser.get(f"{base}/login")
    token = csrf_token_in(page.text)
    response = browser.post(
        f"{base}/login",
        data={"csrf_token": token, "email": email, "password": password},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.status_code
    return browser


def browser_signup(
    base: str, inst: Instance, email: str, password: str = "correct horse battery"
) -> requests.Session:
    """Sign up over HTTP and follow the link the instance's outbox got: logged in."""
    browser = requests.Session()
    page = browser.get(f"{base}/signup")
    token = csrf_token_in(page.text)
    response = browser.post(
        f"{base}/signup",
        data={
            "csrf_token": token,
            "email": email,
            "password": password,
            "name": "Ada Lovelace",
            "accept_notice": "yes",
        },
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    link = newest_link(inst.settings, email, "/signup/verify")
    assert link, "no verification link in the outbox"
    confirm = browser.get(f"{base}{link}")
    assert confirm.status_code == 200, confirm.status_code
    verified = browser.post(
        f"{base}/signup/verify",
        data={
            "csrf_token": csrf_token_in(confirm.text),
            "token": TOKEN_FIELD_RE.search(confirm.text).group(1),  # type: ignore[union-attr]
            "password": password,
        },
        allow_redirects=False,
    )
    assert verified.status_code == 302, verified.text
    return browser


def client_session(base: str, creds: SupplierCreds, scope: str) -> OAuth2Session:
    return OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope=scope,
        redirect_uri=creds.redirect_uri,
        code_challenge_method="S256",
        token_endpoint=f"{base}/oauth/token",
    )


def client_credentials(base: str, creds: SupplierCreds, scope: str) -> OAuth2Session:
    """A client holding a client-credentials token (RFC 6749 section 4.4) for ``scope``."""
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope=scope,
        token_endpoint=f"{base}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client


@dataclass
class Authorized:
    authorization_response: str
    code: str
    state: str
    verifier: str
    params: dict[str, list[str]]


def consent(
    base: str,
    browser: requests.Session,
    client: OAuth2Session,
    *,
    purpose: str = "marketing",
    approve: list[str] | None = None,
    expiry: str = "90d",
    decision: str = "approve",
    verifier: str | None = None,
) -> Authorized:
    """Drive the consent screen in the customer's browser and return the redirect back."""
    verifier = verifier or secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(
        f"{base}/oauth/authorize", code_verifier=verifier, purpose=purpose
    )
    page = browser.get(url, allow_redirects=False)
    assert page.status_code == 200, page.text
    token = csrf_token_in(page.text)
    scopes = (
        approve
        if approve is not None
        else re.findall(r'name="approve_scope" value="([^"]+)"', page.text)
    )
    response = browser.post(
        url,
        data={"csrf_token": token, "approve_scope": scopes, "expiry": expiry, "decision": decision},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    params = parse_qs(urlsplit(location).query)
    return Authorized(location, params.get("code", [""])[0], state, verifier, params)
