"""Possible duplicates in Debian's headless Chromium (Playwright): an order imported from an
Amazon order history and from its e-mail, the notice on My purchases, the pair with the line
kept by default chosen, another line chosen and merged, and the notice gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from tests.browser.test_counts import EMAIL, PASSWORD, log_in
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_purchase_duplicates import ORDER_ID, order_email
from tests.functional.test_purchases_import import AMAZON, run_import, visible

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_merge_a_pair_seen_in_two_sources(tab: BaseTab, inst: Instance, tmp_path: Path) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    run_import(inst, customer_id, AMAZON)
    run_import(inst, customer_id, order_email(tmp_path / "order.json"))
    page = tab.page
    log_in(tab)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My purchases").click()
    expect(page.get_by_role("table", name="Purchase lines").get_by_role("row")).to_have_count(12)
    page.get_by_role("link", name="1 possible duplicate").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Possible duplicates")
    order = page.get_by_role("region", name=f"Order {ORDER_ID} from Amazon.com, 2024-03-05")
    choice = order.get_by_role("group")
    expect(choice).to_have_count(1)
    from_file = choice.get_by_role("radio", name="from the Amazon order history")
    from_mail = choice.get_by_role("radio", name="from the order e-mail")
    expect(from_file).to_be_checked()  # as rich as the other, and imported first
    expect(from_mail).not_to_be_checked()
    expect(order).to_contain_text("product number B0TESTAAA1")
    expect(order).to_contain_text("category Electronics")
    expect(order).not_to_contain_text("Gift box")
    screenshot(tab, tmp_path, "purchase-duplicates")

    from_mail.check()
    order.get_by_role("button", name="Merge").click()
    expect(page.get_by_role("status")).to_contain_text("Merged: 1 duplicate line removed.")
    expect(page.get_by_text("No possible duplicates")).to_be_visible()

    page.get_by_role("link", name="Back to My purchases").click()
    expect(page.get_by_role("link", name="1 possible duplicate")).to_have_count(0)
    lines = page.get_by_role("table", name="Purchase lines")
    expect(lines.get_by_role("row")).to_have_count(11)
    expect(lines).to_contain_text('usb-c CABLE 6" (2-pack)')
    expect(lines).not_to_contain_text("Braided")
    [kept] = [line for line in visible(inst, customer_id) if line["category"] == "Electronics"]
    assert kept["product_id"] == "B0TESTAAA1"
    tab.assert_clean()
