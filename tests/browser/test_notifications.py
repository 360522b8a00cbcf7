"""Notifications in Debian's headless Chromium (Playwright), at desktop size and at 390 px: the
badge in the navigation shows the unread count, the list opens from it, a notification leads
to its page, "Mark all as read" clears the badge, and the choices page narrows what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import utcnow
from infomediary.services import Context, site_settings
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer, make_grant, make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "notified@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_badge_list_link_mark_read_and_choices(
    tab: BaseTab, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    with inst.sessions() as session:  # a zone chosen: no reload to follow the browser's
        chosen = site_settings.SettingsInput("en", site_settings.DEFAULT_TIME_ZONE)
        site_settings.change_settings(
            session, inst, customer_id, chosen, Context(Actor.system("test"))
        )
    acme = make_supplier(inst, name="Acme Books")
    make_grant(inst, customer_id, acme.id)
    soon = make_supplier(inst, name="Soon Ltd")
    make_grant(inst, customer_id, soon.id, expires_at=utcnow() + timedelta(days=3))

    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(tab.url("/dashboard"))

    # the badge: the count, read out as "3 unread"
    nav = page.get_by_role("navigation", name="Main")
    entry = nav.get_by_role("link", name=re.compile(r"^Notifications"))
    expect(entry).to_have_accessible_name("Notifications 3 unread")
    expect(entry.locator(".badge")).to_have_text("3 unread")
    assert_fits(page)

    entry.click()
    expect(page).to_have_url(tab.url("/notifications"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    items = page.locator("li.notification")
    expect(items).to_have_count(3)
    expect(page.locator("li.notification.unread")).to_have_count(3)
    expect(
        page.get_by_role("link", name="Your consent for Soon Ltd expires within 7 days")
    ).to_be_visible()
    assert_fits(page)
    if not narrow:  # the picture is of the desktop window
        screenshot(tab, tmp_path, "notifications")

    # a notification leads to its page
    page.get_by_role("link", name="You gave Acme Books consent").click()
    expect(page).to_have_url(tab.url("/consents"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Consents and policy")

    # mark all read: the badge goes, the items stay, read
    nav.get_by_role("link", name=re.compile(r"^Notifications")).click()
    mark = page.get_by_role("button", name="Mark all as read")
    mark.focus()
    expect(mark).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Every notification is marked as read.")
    expect(nav.get_by_role("link", name=re.compile(r"^Notifications"))).to_have_accessible_name(
        "Notifications"
    )
    expect(nav.locator(".badge")).to_have_count(0)
    expect(items).to_have_count(3)
    expect(page.locator("li.notification.unread")).to_have_count(0)

    # the choices: no more new consents on the site; the digest on for expiring ones only
    page.get_by_role("link", name="Choose your notifications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose your notifications")
    shown = page.get_by_role("group", name="Show on this site")
    shown.get_by_label("A new consent").uncheck()
    digest = page.get_by_role("group", name="E-mail digest")
    digest.get_by_label("E-mail me a digest once a day when something is unread").check()
    for label in (
        "A supplier read your data",
        "A new consent",
        "A new offer",
        "An auditor looked at your log entries",
        "A purchase import finished",
    ):
        digest.get_by_label(label, exact=True).uncheck()
    assert_fits(page)
    page.get_by_role("button", name="Save choices").click()
    expect(page.get_by_role("status")).to_contain_text("Notification choices saved.")
    expect(shown.get_by_label("A new consent")).not_to_be_checked()
    expect(digest.get_by_label("A consent expires within 7 days")).to_be_checked()
    expect(digest.get_by_label("A new offer")).not_to_be_checked()

    page.get_by_role("link", name="Back to your notifications").click()
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Your consent for Soon Ltd expires within 7 days")
    tab.assert_clean()
