"""Interests from purchases on "My profile" in Debian's headless Chromium (Playwright): the
interests a customer's purchases suggest, labelled as such, removed, restored and added to
the interests they declared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from tests.browser.test_counts import EMAIL, PASSWORD, log_in
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_derived_interests import bring, line

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_see_remove_restore_and_adopt(tab: BaseTab, inst: Instance, tmp_path: Path) -> None:
    customer = make_customer(inst, email=EMAIL, password=PASSWORD)
    bring(
        inst,
        customer,
        [
            line("a", name="A Novel", category="Books"),
            line("b", name="Glucose meter", category="Diabetic Supplies"),
        ],
    )
    page = tab.page
    log_in(tab)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My profile").click()
    table = page.get_by_role("table", name="Interests from your purchases")
    books = table.get_by_role("row").filter(has_text="Books")
    expect(books).to_contain_text("from your purchases")
    expect(books).to_contain_text("1 line")
    expect(books).to_contain_text("Used under your policy")
    diabetes = table.get_by_role("row").filter(has_text="Diabetes")
    expect(diabetes).to_contain_text("sensitive")
    screenshot(tab, tmp_path, "derived-interests")

    page.get_by_role("button", name="Remove Books").click()
    expect(page.get_by_role("status")).to_contain_text("it will not be used until you restore it")
    books = (
        page.get_by_role("table", name="Interests from your purchases")
        .get_by_role("row")
        .filter(has_text="Books")
    )
    expect(books).to_contain_text("Removed")

    page.get_by_role("button", name="Restore Books").click()
    expect(page.get_by_role("status")).to_contain_text("Restored.")
    page.get_by_role("button", name="Add Books to my interests").click()
    expect(page.get_by_role("status")).to_contain_text("Added to your interests.")
    expect(page.get_by_role("checkbox", name="Books")).to_be_checked()
    books = (
        page.get_by_role("table", name="Interests from your purchases")
        .get_by_role("row")
        .filter(has_text="Books")
    )
    expect(books).to_contain_text("Also in your interests")
    tab.assert_clean()
