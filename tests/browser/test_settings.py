"""Language and time zone in Debian's headless Chromium (Playwright), at desktop size and at
390 px: a browser in Tokyo logs in, its zone becomes the customer's (``static/js/timezone.js``
posts it once), the settings page shows it chosen, and switching the site's language to
Deutsch turns the page, its navigation and footer German.

The page checks (no console errors, nothing fetched from another host) are those of
tests/browser_support.py; a screenshot (settings.png) lands in ``tmp_path`` and, when
``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import ViewportSize, expect, sync_playwright
from sqlalchemy import select

from infomediary.instance import Instance
from infomediary.models import AccessLogEntry
from infomediary.services import site_settings
from tests.browser_support import CHROMIUM_ARGS, NARROW, VIEWPORT, BaseTab, assert_fits, screenshot
from tests.factories import make_customer
from tests.log_reasons import code_of

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "kenji@example.org"
PASSWORD = "correct horse battery staple"
ZONE = "Asia/Tokyo"


@contextmanager
def tokyo_tab(base_url: str, chromium_path: str, viewport: ViewportSize) -> Iterator[BaseTab]:
    """``open_tab``'s watched tab, in a browser whose clock is Tokyo's and speaks English."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=viewport, timezone_id=ZONE, locale="en-US")
            page = context.new_page()
            tab = BaseTab(page, base_url)
            context.on("request", lambda request: tab.requests.append(request.url))
            context.on("requestfailed", tab.on_request_failed)
            page.on("console", tab.on_console)
            page.on("pageerror", tab.on_page_error)
            page.on("response", tab.on_response)
            yield tab
            context.close()
        finally:
            browser.close()


def codes(inst: Instance, customer_id: str) -> list[str | None]:
    with inst.sessions() as session:
        rows = session.scalars(
            select(AccessLogEntry)
            .where(AccessLogEntry.customer_id == customer_id)
            .order_by(AccessLogEntry.seq)
        )
        return [code_of(row) for row in rows]


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_the_browser_zone_becomes_the_default_and_deutsch_turns_the_site_german(
    live_server: str, chromium_path: str, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, name="Kenji Sato")
    with tokyo_tab(live_server, chromium_path, NARROW if narrow else VIEWPORT) as tab:
        page = tab.page
        tab.goto("/login")
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        # the dashboard loads the script (no zone yet), which sends the browser's zone once
        with page.expect_response(lambda r: r.url.endswith("/settings/timezone")) as sent:
            page.get_by_role("button", name="Log in").click()
        assert sent.value.status == 204
        assert sent.value.request.post_data is not None
        assert "time_zone=Asia%2FTokyo" in sent.value.request.post_data
        page.wait_for_load_state()
        expect(page).to_have_url(tab.url("/dashboard"))
        assert codes(inst, customer_id).count("settings.time_zone_from_browser") == 1

        # the footer leads to the settings, where Tokyo is now the chosen zone
        page.get_by_role("contentinfo").get_by_role("link", name="Language and time zone").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Language and time zone")
        expect(page.get_by_label("Time zone")).to_have_value(ZONE)
        expect(page.locator("script[src$='js/timezone.js']")).to_have_count(0)
        assert_fits(tab.page)

        # switch to Deutsch by keyboard: focus the select, choose, submit
        language = page.get_by_label("Language of this site")
        language.focus()
        expect(language).to_be_focused()
        language.select_option("de")
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.get_by_role("heading", level=1)).to_have_text("Sprache und Zeitzone")
        expect(page.get_by_role("status")).to_contain_text("Einstellungen gespeichert.")
        expect(page.get_by_label("Zeitzone")).to_have_value(ZONE)
        footer = page.get_by_role("contentinfo")
        expect(footer.get_by_role("link", name="Sprache und Zeitzone")).to_be_visible()
        nav = page.get_by_role("navigation", name="Hauptnavigation")
        expect(nav.get_by_role("link", name="Übersicht")).to_be_visible()
        expect(nav.get_by_role("link", name="Mein Profil")).to_be_visible()
        expect(nav.get_by_role("button", name="Abmelden")).to_be_visible()
        expect(page.get_by_role("link", name="Zum Inhalt springen")).to_be_attached()
        assert "Language and time zone" not in page.content()
        assert_fits(tab.page)
        if not narrow:
            screenshot(tab, tmp_path, "settings")
        chosen = site_settings.display_settings(inst, customer_id)
        assert chosen == site_settings.SiteSettings("de", ZONE)
        assert codes(inst, customer_id)[-2:] == ["settings.changed", "settings.viewed"]
        tab.assert_clean()
