"""Account security in Debian's headless Chromium (Playwright), at desktop size and at 390 px:
set up an authenticator app from the key shown as text (pyotp computes the codes), keep the
recovery codes shown once, log out, log in with the password and a recovery code, then with
the password and a code from the app; the session list marks this device.

The page checks (no console errors, nothing fetched from another host) are those of
tests/browser_support.py; a screenshot (security.png) lands in ``tmp_path`` and, when
``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Passkey
from tests.browser_support import HOST, NARROW, VIEWPORT, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery staple"


def log_in_with_password(tab: BaseTab) -> None:
    tab.goto("/login")
    tab.page.get_by_label("Email address").fill(EMAIL)
    tab.page.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.page.get_by_role("button", name="Log in").click()


def log_out(tab: BaseTab) -> None:
    tab.page.get_by_role("button", name="Log out").first.click()
    expect(tab.page).to_have_url(tab.url("/login?logged_out=1"))


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_authenticator_app_and_recovery_code_at_login(
    live_server: str, chromium_path: str, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    with open_tab(BaseTab, live_server, chromium_path) as tab:
        page = tab.page
        if narrow:
            page.set_viewport_size(NARROW)
        log_in_with_password(tab)
        expect(page).to_have_url(tab.url("/dashboard"))
        page.wait_for_load_state("networkidle")  # the dashboard's own scripts settle first

        # from the account page to the security page
        tab.goto("/account")
        page.get_by_role("link", name="Account security").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Account security")
        page.get_by_label("Your password, to set up an authenticator app").fill(PASSWORD)
        page.get_by_role("button", name="Set up an authenticator app").click()
        secret = page.get_by_label("Key to type in").input_value()
        expect(page.get_by_label("Or the set-up link (otpauth)")).to_have_value(
            pyotp.TOTP(secret).provisioning_uri(name="account", issuer_name="Infomediary")
        )
        assert_fits(tab.page)
        page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
        codes = page.get_by_role("list", name="Recovery codes").locator("code").all_inner_texts()
        assert len(codes) == 10
        assert_fits(tab.page)
        if not narrow:
            screenshot(tab, tmp_path, "recovery-codes")
        page.get_by_role("link", name="I have saved them").click()
        expect(page.get_by_text("You have 10 unused recovery codes.")).to_be_visible()
        log_out(tab)

        # password, then a recovery code; the dashboard does not open in between
        log_in_with_password(tab)
        expect(page).to_have_url(tab.url("/login/second-factor"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
        assert_fits(tab.page)
        page.get_by_label("One of your recovery codes").fill(codes[0])
        page.get_by_role("button", name="Use a recovery code").click()
        expect(page).to_have_url(tab.url("/dashboard"))
        expect(page.get_by_role("status")).to_contain_text("You have 9 left.")
        log_out(tab)

        # password, then a code from the app (the next time step: the enrolment's is used)
        log_in_with_password(tab)
        expect(page).to_have_url(tab.url("/login/second-factor"))
        page.get_by_label("Code from your authenticator app").fill(
            pyotp.TOTP(secret).at(time.time() + 30)
        )
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(tab.url("/dashboard"))
        page.wait_for_load_state("networkidle")

        tab.goto("/account/security")
        sessions = page.locator(".session-list li")
        expect(sessions).to_have_count(1)
        expect(sessions.first).to_contain_text("This device")
        expect(page.get_by_text("You have 9 unused recovery codes.")).to_be_visible()
        assert_fits(tab.page)
        if not narrow:
            screenshot(tab, tmp_path, "security")
        page.get_by_role("button", name="Log out everywhere", exact=True).click()
        expect(page).to_have_url(tab.url("/login?logged_out=1"))
        tab.goto("/dashboard")
        expect(page).to_have_url(tab.url("/login"))
        tab.assert_clean()
    assert VIEWPORT["width"] > NARROW["width"]


class LocalhostTab(BaseTab):
    """A tab on ``http://localhost:<port>``: WebAuthn wants a domain name as its relying
    party id, and ``localhost`` is a secure context (127.0.0.1 is not a domain)."""

    def assert_foreign(self, foreign: list[str]) -> None:
        port = self.base_url.rsplit(":", 1)[1]
        assert [u for u in foreign if not u.startswith(f"http://localhost:{port}/")] == [], foreign


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_passkey_added_then_used_after_the_password(
    app: Flask,
    live_server: str,
    chromium_path: str,
    inst: Instance,
    tmp_path: Path,
    narrow: bool,
) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    base = live_server.replace(HOST, "localhost")
    # the relying party is the issuer's host, whatever Host header a request carries
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], issuer=base)
    with open_tab(LocalhostTab, base, chromium_path) as tab:
        page = tab.page
        if narrow:
            page.set_viewport_size(NARROW)
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        log_in_with_password(tab)
        expect(page).to_have_url(tab.url("/dashboard"))
        page.wait_for_load_state("networkidle")
        tab.goto("/account/security")
        page.get_by_label("Name for the new passkey").fill("Laptop")
        # without the password no passkey is added; the message says why, the name stays
        page.get_by_role("button", name="Add a passkey").click()
        expect(page.locator("[data-passkey-status]")).to_have_text("That password is not right.")
        expect(page.get_by_label("Name for the new passkey")).to_have_value("Laptop")
        tab.expected_statuses.append(400)  # the refused options request
        page.get_by_label("Your password, to add a passkey").fill(PASSWORD)
        page.get_by_role("button", name="Add a passkey").click()
        # the first second factor comes with its recovery codes, shown once
        expect(page.get_by_role("heading", level=1)).to_have_text("Your recovery codes")
        expect(page.get_by_role("list", name="Recovery codes").locator("code")).to_have_count(10)
        page.get_by_role("link", name="I have saved them").click()
        expect(page.locator("#passkeys")).to_contain_text("Laptop")
        assert_fits(tab.page)
        if not narrow:
            screenshot(tab, tmp_path, "passkeys")
        log_out(tab)

        log_in_with_password(tab)
        expect(page).to_have_url(tab.url("/login/second-factor"))
        assert_fits(tab.page)
        page.get_by_role("button", name="Use my passkey").click()
        expect(page).to_have_url(tab.url("/dashboard"))
        tab.assert_clean()
    with inst.sessions() as db:
        row = db.scalars(select(Passkey).where(Passkey.customer_id == customer_id)).one()
        assert row.last_used_at is not None
        assert b"Laptop" not in row.name  # the name is sealed
        reasons = " ".join(
            r or ""
            for r in db.scalars(
                select(AccessLogEntry.reason_data).where(AccessLogEntry.customer_id == customer_id)
            )
        )
    assert "security.passkey_added" in reasons
    assert '"method":"passkey"' in reasons.replace(" ", "")
