"""The "My purchases" page in Debian's headless Chromium (Playwright): log in, follow the
navigation, upload a retailer's order history through the file input, see its lines and the
import, delete one line, and a refused file naming its bad line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from tests.browser.test_counts import EMAIL, PASSWORD, log_in
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_purchases_import import AMAZON, amazon_file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_upload_see_the_lines_and_delete_one(tab: BaseTab, inst: Instance, tmp_path: Path) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    page = tab.page
    log_in(tab)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My purchases").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My purchases")
    expect(page.get_by_text("You have no purchases here yet.")).to_be_visible()

    page.get_by_label("Order history file").set_input_files(str(AMAZON))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Imported 8 new lines (amazon-retail)")
    lines = page.get_by_role("table", name="Purchase lines")
    expect(lines.get_by_role("row")).to_have_count(9)  # the header and eight lines
    shoes = lines.get_by_role("row").filter(has_text="Running Shoes")
    expect(shoes).to_contain_text("49.00 USD")
    expect(shoes).to_contain_text("returned")
    imports = page.get_by_role("table", name="Your imports, newest first")
    expect(imports).to_contain_text("Retail.OrderHistory.1.csv")
    screenshot(tab, tmp_path, "purchases")

    shoes.get_by_role("button", name="Delete Running Shoes (2024-09-01)").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted 1 line.")
    lines = page.get_by_role("table", name="Purchase lines")
    expect(lines.get_by_role("row")).to_have_count(8)
    expect(lines).not_to_contain_text("Running Shoes")

    tab.expected_statuses.append(400)  # the refused file's page
    bad = amazon_file(tmp_path / "orders.csv", 3, bad=(1,))
    page.get_by_label("Order history file").set_input_files(str(bad))
    page.get_by_role("button", name="Import", exact=True).click()
    refused = page.get_by_role("region", name="Nothing was imported")
    expect(refused).to_contain_text("orders.csv, line 3")
    expect(page.get_by_role("table", name="Purchase lines").get_by_role("row")).to_have_count(8)
    tab.assert_clean()
