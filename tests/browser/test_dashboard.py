"""End-to-end tests in Debian's headless Chromium, driven by Playwright's sync API.

The real app (the ``app`` fixture, on SQLite) is served over HTTP on 127.0.0.1 by a
werkzeug server in a background thread; the browser signs up, edits the profile, exports,
reads the access log, logs out and in, and erases the account. Locators go by label and
role, so they also check that every input has a label and every button a name. Each test
also checks that the pages log no console errors and fetch nothing from another host.

Screenshots land in ``tmp_path`` and, when ``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too
(``make screenshots`` refreshes the README's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from infomediary.instance import Instance
from infomediary.services import customers
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.outbox import newest_link

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery staple"
NAME = "Ada Lovelace"


class Tab(BaseTab):
    """A tab whose journey deliberately hits some HTTP error pages."""

    def expect_status(self, status: int) -> None:
        """Declare that the next action deliberately gets an HTTP error page."""
        self.expected_statuses.append(status)


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[Tab]:
    with open_tab(Tab, live_server, chromium_path) as result:
        yield result


def field_container(page: Page, label: str) -> Locator:
    """The ``.field`` block around the input labelled ``label`` (where its error belongs)."""
    return page.locator(".field").filter(has=page.get_by_label(label, exact=True))


# --- journey steps, shared by the tests ----------------------------------------------------


def nav_link(page: Page, name: str) -> Locator:
    """A link of the header's main navigation, by its exact accessible name."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def sign_up(tab: Tab, *, accept_notice: bool = True) -> None:
    page = tab.page
    tab.goto("/")
    page.get_by_role("link", name="Create your account").click()
    expect(page).to_have_url(tab.url("/signup"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Full name").fill(NAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    if accept_notice:
        page.get_by_label("I have read the privacy notice").check()
    page.get_by_role("button", name="Create account").click()


def confirm_from_outbox(tab: Tab, inst: Instance) -> None:
    """After signing up: "check your e-mail", then the outbox's link and its button."""
    page = tab.page
    expect(page).to_have_url(tab.url("/check-email?sent=signup"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link, "no verification link in the outbox"
    tab.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your e-mail address")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Confirm my address").click()


def log_in(tab: Tab, email: str = EMAIL, password: str = PASSWORD) -> None:
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def assert_logged_out(tab: Tab) -> None:
    page = tab.page
    for path in ("/dashboard", "/profile", "/activity", "/account"):
        tab.goto(path)
        expect(page).to_have_url(tab.url("/login"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("button", name="Log out")).to_have_count(0)
    expect(nav.get_by_role("link", name="Log in")).to_be_visible()


# --- tests ---------------------------------------------------------------------------------


def test_signup_requires_the_privacy_notice(tab: Tab, inst: Instance) -> None:
    page = tab.page
    assert_logged_out(tab)

    tab.expect_status(400)
    sign_up(tab, accept_notice=False)
    expect(page.get_by_role("alert")).to_contain_text("Please read and accept the privacy notice.")
    checkbox = page.get_by_label("I have read the privacy notice")
    expect(checkbox).to_have_attribute("aria-invalid", "true")
    expect(checkbox).to_have_accessible_description("Please read and accept the privacy notice.")
    expect(page.locator(".field").filter(has=checkbox)).to_contain_text(
        "Please read and accept the privacy notice."
    )
    # What was typed is kept, except the password.
    expect(page.get_by_label("Email address")).to_have_value(EMAIL)
    expect(page.get_by_label("Full name")).to_have_value(NAME)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    checkbox.check()
    page.get_by_role("button", name="Create account").click()
    confirm_from_outbox(tab, inst)
    expect(page).to_have_url(tab.url("/profile"))
    expect(page.get_by_label("Full name")).to_have_value(NAME)
    tab.assert_clean()


def test_customer_journey(tab: Tab, inst: Instance, tmp_path: Path) -> None:
    page = tab.page
    # Another customer, so "own entries only" and "own data only" can fail.
    with inst.sessions() as session:
        customers.register(
            session, inst, email="bob@example.org", password="bobs own passphrase", name="Bob"
        )

    # Sign up, then open the e-mailed link: on to the profile page, logged in.
    sign_up(tab)
    confirm_from_outbox(tab, inst)
    expect(page).to_have_url(tab.url("/profile"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My profile")
    expect(page.get_by_role("status")).to_contain_text("Welcome.")
    expect(page.get_by_text(f"Login email: {EMAIL}")).to_be_visible()
    expect(nav_link(page, "My profile")).to_have_attribute("aria-current", "page")

    # Edit the profile.
    expect(page.get_by_label("How should offers reach you?")).to_have_value("email")
    page.get_by_label("Postcode").fill("2000")
    page.get_by_label("Birth year").fill("1985")
    page.get_by_label("Books", exact=True).check()
    page.get_by_label("Travel", exact=True).check()
    page.get_by_label("How should offers reach you?").select_option("sms")
    page.get_by_role("button", name="Save profile").click()
    expect(page).to_have_url(tab.url("/profile"))
    expect(page.get_by_role("status")).to_have_text("Profile saved.")

    # Persisted: a reload shows the stored values (and the flash is gone).
    page.reload()
    expect(page.get_by_role("status")).to_have_count(0)
    expect(page.get_by_label("Full name")).to_have_value(NAME)
    expect(page.get_by_label("Postcode")).to_have_value("2000")
    expect(page.get_by_label("Birth year")).to_have_value("1985")
    expect(page.get_by_label("Books", exact=True)).to_be_checked()
    expect(page.get_by_label("Travel", exact=True)).to_be_checked()
    expect(page.get_by_label("Music", exact=True)).not_to_be_checked()
    expect(page.get_by_label("How should offers reach you?")).to_have_value("sms")
    expect(page.get_by_label("Postcode")).not_to_have_attribute("aria-invalid", "true")
    screenshot(tab, tmp_path, "profile")

    # A bad postcode: the message is in the summary and next to the field, wired by ARIA.
    tab.expect_status(400)
    page.get_by_label("Postcode").fill("20x0")
    page.get_by_role("button", name="Save profile").click()
    message = "An Australian postcode has four digits."
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Please check this field")
    expect(summary.get_by_role("link", name=message)).to_have_attribute("href", "#postcode")
    postcode = page.get_by_label("Postcode")
    expect(postcode).to_have_attribute("aria-invalid", "true")
    expect(postcode).to_have_accessible_description(re.compile(re.escape(message)))
    expect(postcode).to_have_value("20x0")
    expect(field_container(page, "Postcode")).to_contain_text(message)
    expect(page.locator("#postcode-error")).to_have_text(message)
    expect(page.get_by_label("Birth year")).not_to_have_attribute("aria-invalid", "true")
    # Nothing was stored.
    tab.goto("/profile")
    expect(page.get_by_label("Postcode")).to_have_value("2000")
    expect(page.locator(".error")).to_have_count(0)

    # Export: a JSON download with the account, the profile and the access log.
    nav_link(page, "Account").click()
    expect(page).to_have_url(tab.url("/account"))
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download my data").click()
    download = download_info.value
    assert download.failure() is None
    assert re.fullmatch(r"infomediary-export-\d{8}\.json", download.suggested_filename)
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    document = json.loads(saved.read_text(encoding="utf-8"))
    assert document["account"]["email"] == EMAIL
    profile = document["profile"]
    assert profile["name"] == NAME
    assert profile["postcode"] == "2000"
    assert profile["birth_year"] == 1985
    assert profile["interests"] == ["books", "travel"]
    assert profile["preferences"]["contact_channel"] == "sms"
    log = document["access_log"]
    reasons = [entry["reason"] for entry in log]
    assert reasons[0] == "account created"
    assert "profile edited" in reasons
    assert "profile viewed" in reasons
    assert {entry["actor_type"] for entry in log} == {"customer"}
    edited = next(entry for entry in log if entry["reason"] == "profile edited")
    assert edited["action"] == "update"
    assert sorted(edited["detail"]["fields"]) == [
        "birth_year",
        "interests",
        "postcode",
        "preferences",
    ]
    assert "bob@example.org" not in saved.read_text(encoding="utf-8")
    expect(page).to_have_url(tab.url("/account"))

    # Who accessed my data: own entries only, newest first, and the filter narrows them.
    nav_link(page, "Who accessed my data").click()
    expect(page).to_have_url(tab.url("/activity"))
    entries = page.get_by_role("list").get_by_role("listitem")
    expect(entries.first).to_contain_text("full export downloaded")
    expect(entries.last).to_contain_text("account created")
    expect(entries.filter(has_text="account created")).to_have_count(1)
    expect(entries.filter(has_text="profile edited")).to_have_count(1)
    expect(entries.filter(has_text="profile viewed")).to_have_count(4)
    expect(entries.filter(has_text="wrong password")).to_have_count(0)
    total = entries.count()
    expect(page.get_by_role("status")).to_have_text(f"{total} entries.")
    expect(entries.last).to_contain_text("You · create")
    expect(entries.filter(has_text="You · ")).to_have_count(total)
    screenshot(tab, tmp_path, "activity")

    page.get_by_label("What").select_option("update")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(tab.url("/activity?actor=&action=update&category=&outcome="))
    expect(page.get_by_label("What")).to_have_value("update")
    # the profile's edit, and the time zone the browser gave when the customer first landed
    expect(page.get_by_role("status")).to_have_text("2 entries.")
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("profile edited")
    expect(entries.first).to_contain_text(
        "Fields: Postcode, Birth year, Interests, Contact preferences"
    )
    expect(entries.last).to_contain_text("time zone set from the browser")

    # The overview sums it up.
    nav_link(page, "Overview").click()
    expect(page).to_have_url(tab.url("/dashboard"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    expect(page.get_by_text(f"{total} recorded accesses to your data so far.")).to_be_visible()
    expect(entries).to_have_count(5)
    expect(entries.first).to_contain_text("full export downloaded")
    expect(entries.nth(1)).to_contain_text("profile viewed")
    expect(entries.last).to_contain_text("profile edited")
    screenshot(tab, tmp_path, "dashboard")

    # Log out: every page of the dashboard sends you to the login page.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(tab.url("/login?logged_out=1"))
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    assert_logged_out(tab)

    # Log back in.
    log_in(tab)
    expect(page).to_have_url(tab.url("/dashboard"))
    expect(page.get_by_role("list").get_by_role("listitem").first).to_contain_text(
        "password accepted"
    )

    # Delete the account: a wrong confirmation is refused next to its field.
    nav_link(page, "Account").click()
    tab.expect_status(400)
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_label("Type DELETE to confirm").fill("delete")
    page.get_by_role("button", name="Delete my account").click()
    confirm = page.get_by_label("Type DELETE to confirm")
    expect(confirm).to_have_attribute("aria-invalid", "true")
    expect(confirm).to_have_accessible_description("Type DELETE to confirm.")
    expect(field_container(page, "Type DELETE to confirm")).to_contain_text(
        "Type DELETE to confirm."
    )
    page.get_by_label("Your password").fill(PASSWORD)
    confirm.fill("DELETE")
    page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url(tab.url("/"))
    expect(page.get_by_role("status")).to_contain_text("Your account and profile are erased.")
    assert_logged_out(tab)

    # Those credentials no longer work.
    tab.expect_status(401)
    log_in(tab)
    expect(page).to_have_url(tab.url("/login"))
    expect(page.get_by_role("alert")).to_have_text("Email address or password is wrong.")
    expect(page.get_by_label("Email address")).to_have_value(EMAIL)
    tab.assert_clean()
