"""The customer's privacy budget and the counts they were part of, in Debian's headless
Chromium (Playwright): the overview shows what is left, the counts page names the suppliers,
their replays and the budget, pages back through older releases, and says plainly what the
cap means once it is reached."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from infomediary.services import exposure
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_broker_privacy import count, new_supplier, person

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def log_in(tab: BaseTab) -> None:
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_budget_and_counts_pages(
    tab: BaseTab, inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inst, "settings", replace(inst.settings, broker_k=-1_000_000))
    monkeypatch.setattr(exposure, "PAGE_SIZE", 2)
    make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        profile={"postcode": "7000", "birth_year": 1990, "household_size": 2},
    )
    person(inst)
    acme = new_supplier(inst, "Acme Books")
    for purpose in ("marketing", "analytics", "research"):
        count(inst, acme, {"purpose": purpose, "where": {"region": ["TAS"]}})
    count(inst, acme, {"purpose": "marketing", "where": {"region": ["TAS"]}})  # a replay

    page = tab.page
    log_in(tab)
    tab.goto("/dashboard")
    card = page.get_by_role("article").filter(
        has=page.get_by_role("heading", name="Privacy budget")
    )
    expect(card).to_contain_text("9.7 of 10.0 left for the last 365 days")
    card.get_by_role("link", name="Counts you were part of").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Counts you were part of")
    budget = page.get_by_role("region", name="Your privacy budget")
    expect(budget).to_contain_text("0.3 of your 10.0 used over the last 365 days")
    expect(budget).to_contain_text("stop being counted and stop receiving offers")
    totals = page.get_by_role("table", name="Epsilon by supplier")
    expect(totals.get_by_role("row").nth(1)).to_contain_text("Acme Books")
    releases = page.get_by_role("region", name="Every release, newest first")
    expect(releases.get_by_role("listitem")).to_have_count(2)
    expect(releases).to_contain_text("purpose: research")
    screenshot(tab, tmp_path, "counts")

    page.get_by_role("link", name="Older").click()
    older = page.get_by_role("region", name="Every release, newest first")
    expect(older.get_by_role("listitem")).to_have_count(1)
    expect(older).to_contain_text("purpose: marketing")
    expect(older).to_contain_text("given again, at no further cost to you, to: Acme Books")
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
    page.get_by_role("link", name="Newest").click()
    expect(page.get_by_role("region", name="Every release, newest first")).to_contain_text(
        "purpose: research"
    )
    tab.assert_clean()
