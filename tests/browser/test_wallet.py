"""The rewards wallet and the API reference in Debian's headless Chromium (Playwright), at
desktop size and at 390 px: the customer sees the balance on the overview and the wallet,
gets every error of a bad payout form at once with what they typed kept, requests a payout
and sees it pending, with nothing wider than the window; the API reference page renders at
390 px without sideways scrolling and its contents link to every operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_wallet import earn

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "wallet.browser@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_see_the_balance_request_a_payout_and_see_it_pending(
    tab: BaseTab, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    earn(inst, customer_id, 1200, supplier="Acme Books", title="Autumn reading list")
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(tab.url("/dashboard"))

    card = page.get_by_test_id("wallet-card")
    expect(card).to_contain_text("Balance: $12.00 available, $0.00 in pending payouts.")
    assert_fits(tab.page)
    card.get_by_role("link", name="Open my wallet").click()
    expect(page).to_have_url(tab.url("/wallet"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Rewards wallet")
    expect(page.get_by_test_id("available")).to_have_text("$12.00")
    history = page.locator("table.wallet-history")
    expect(history).to_contain_text("Reward from Acme Books")
    expect(history).to_contain_text("Autumn reading list")
    assert_fits(tab.page)

    # both fields wrong: both errors at once, the summary focusable, what was typed kept
    page.get_by_label("Amount (USD)").fill("2")
    page.get_by_label("Pay to (IBAN or PayPal address)").fill("ab")
    tab.expected_statuses.append(400)
    page.get_by_role("button", name="Request payout").click()
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("The smallest payout is $5.00.")
    expect(summary).to_contain_text("Enter an IBAN or a PayPal address")
    expect(page.get_by_label("Amount (USD)")).to_have_value("2")
    expect(page.get_by_label("Amount (USD)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Pay to (IBAN or PayPal address)")).to_have_value("ab")

    page.get_by_label("Amount (USD)").fill("7.50")
    page.get_by_label("Pay to (IBAN or PayPal address)").fill("DE89 3704 0044 0532 0130 00")
    page.get_by_label("Pay to (IBAN or PayPal address)").press("Enter")
    expect(page).to_have_url(tab.url("/wallet"))
    expect(page.get_by_role("status")).to_contain_text("Payout of $7.50 requested")
    expect(page.get_by_test_id("available")).to_have_text("$4.50")
    expect(page.get_by_test_id("pending")).to_have_text("$7.50")
    payout = page.get_by_test_id("payout")
    expect(payout).to_have_count(1)
    expect(payout).to_contain_text("pending")
    expect(payout).to_contain_text("•••• 3000")
    expect(page.get_by_text("DE89 3704 0044 0532 0130 00")).to_have_count(0)
    expect(payout.get_by_role("button", name="Cancel this payout")).to_be_visible()
    assert_fits(tab.page)
    if not narrow:
        screenshot(tab, tmp_path, "wallet")
    # the cancel button is readable (not the header's white link text on a white panel)
    cancel = payout.get_by_role("button", name="Cancel this payout")
    color = cancel.evaluate("el => getComputedStyle(el).color")
    assert color not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), color
    cancel.click()
    expect(page.get_by_role("status")).to_contain_text("$7.50 is back in your balance")
    expect(page.get_by_test_id("available")).to_have_text("$12.00")
    expect(payout).to_contain_text("cancelled")
    assert_fits(tab.page)
    tab.assert_clean()


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_the_api_reference_renders_without_sideways_scrolling(tab: BaseTab, narrow: bool) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    tab.goto("/")
    page.get_by_role("contentinfo").get_by_role("link", name="API reference").click()
    expect(page).to_have_url(tab.url("/docs/api"))
    expect(page.get_by_role("heading", level=1)).to_have_text("API reference")
    contents = page.get_by_role("navigation", name="Contents")
    expect(contents).to_be_visible()
    assert_fits(tab.page)
    link = contents.get_by_role("link", name="GET /api/v1/me", exact=True)
    link.click()
    expect(page).to_have_url(tab.url("/docs/api#op-get-api-v1-me"))
    expect(page.locator("#op-get-api-v1-me")).to_be_in_viewport()
    assert_fits(tab.page)
    tab.assert_clean()
