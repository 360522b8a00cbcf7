"""The policy page's postal-district control, in Debian's headless Chromium (Playwright).

The customer logs in, finds the control off (as every template leaves it), turns it on,
reads what it does, checks /counting, and turns it off again; after each save the page says
what the broker now does, and the broker's match entry holds the district's token exactly
while the box is ticked. The page checks are those of tests/browser_support.py; a screenshot
(district.png) lands in ``tmp_path`` and in ``INFOMEDIARY_SCREENSHOT_DIR`` when set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from infomediary.broker.members import TOKEN_BYTES, token, value_text
from infomediary.instance import Instance
from infomediary.models import MatchEntry
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "dora@example.org"
PASSWORD = "correct horse battery staple"
CONTROL = "Count me by postal district (the first two digits of my postcode)"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def holds_district(inst: Instance, customer_id: str) -> bool:
    with inst.sessions() as session:
        blob = session.execute(
            select(MatchEntry.tokens).where(MatchEntry.customer_id == customer_id)
        ).scalar_one()
    wanted = token(inst.keyring.secret("blind_index"), value_text("area", "20"))
    return wanted in {blob[i : i + TOKEN_BYTES] for i in range(0, len(blob), TOKEN_BYTES)}


def test_turning_district_counting_on_and_off(tab: BaseTab, inst: Instance, tmp_path: Path) -> None:
    customer_id = make_customer(
        inst, email=EMAIL, password=PASSWORD, profile={"postcode": "2000", "birth_year": 1990}
    )
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Log in")

    tab.goto("/policy")
    control = page.get_by_label(CONTROL)
    status = page.locator("#district-status")
    expect(control).not_to_be_checked()
    expect(control).to_have_accessible_description(
        "You said no: nobody counts you by postal district."
    )
    assert not holds_district(inst, customer_id)

    control.check()
    page.get_by_role("button", name="Save my choice").click()
    expect(page).to_have_url(re.compile(r"/policy#district$"))
    expect(page.get_by_text("Your choice is saved.")).to_be_visible()
    expect(control).to_be_checked()
    expect(status).to_contain_text("You said yes: suppliers may count you by postal district")
    expect(status).to_contain_text("for marketing, analytics, research")
    assert holds_district(inst, customer_id)
    expect(page.locator("ul.rules li").filter(has_text="Postal district")).to_have_count(1)
    screenshot(tab, tmp_path, "district")

    # what /counting says matches: the district only with a yes, and where to give it
    tab.goto("/counting")
    district = page.locator('[data-attribute="area"]')
    expect(district).to_contain_text("Your postal district, the first two digits of your postcode")
    expect(district).to_contain_text("only if you said yes")
    district.get_by_role("link", name="consents page").click()
    expect(page).to_have_url(re.compile(r"/consents#district-counting$"))
    page.get_by_role(
        "link", name="Counting by postal district: say yes or no on your policy page"
    ).click()
    expect(page).to_have_url(re.compile(r"/policy#district-counting$"))

    control = page.get_by_label(CONTROL)
    control.uncheck()
    page.get_by_role("button", name="Save my choice").click()
    expect(page.get_by_text("Your choice is saved.")).to_be_visible()
    expect(control).not_to_be_checked()
    expect(page.locator("#district-status")).to_have_text(
        "You said no: nobody counts you by postal district."
    )
    assert not holds_district(inst, customer_id)
    # the rules list tells the same story
    expect(page.locator("ul.rules li").filter(has_text="Postal district")).to_have_count(0)
    tab.assert_clean()
