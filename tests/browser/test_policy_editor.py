"""The policy editor in Debian's headless Chromium (Playwright), at desktop size and at 390 px:
set a cell of the grid, add and remove a rule for a named supplier, and ask what a supplier can
see (the purpose stays chosen), without sideways scrolling. The desktop picture (policy.png)
lands in ``tmp_path`` and in ``INFOMEDIARY_SCREENSHOT_DIR`` when set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from infomediary.services import policy_store
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer, make_grant, make_supplier

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


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_grid_supplier_rule_and_preview(
    tab: BaseTab, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    chemist = make_supplier(inst, name="Chemist Co")
    make_grant(inst, customer_id, chemist.id)

    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Log in")

    # from the navigation to the page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My policy").click()
    expect(page).to_have_url(tab.url("/policy"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My policy")
    expect(page.get_by_text("Biometrics")).to_have_count(0)
    assert_fits(page)
    if not narrow:
        screenshot(tab, tmp_path, "policy")

    # one cell of the grid
    identity = page.get_by_role("group", name="Identity")
    cell = identity.get_by_label("For marketing")
    cell.select_option(label="offers under a pseudonym")
    page.get_by_role("button", name="Save these choices").click()
    expect(page).to_have_url(tab.url("/policy#grid"))
    expect(page.get_by_text("Saved. It takes effect on the very next access.")).to_be_visible()
    expect(page.get_by_role("group", name="Identity").get_by_label("For marketing")).to_have_value(
        "pseudonymous"
    )
    with inst.sessions() as session:
        policy = policy_store.load_policy(session, inst, customer_id)
    assert any(
        r.category == "identity" and r.purpose == "marketing" and r.mode == "pseudonymous"
        for r in policy.rules
    )
    assert_fits(page)

    # a rule for a named supplier: sensitive data, with the name, for that supplier only
    rules = page.locator("#supplier-rules")
    expect(rules).to_contain_text("No rule names a supplier.")
    rules.get_by_label("Supplier").select_option(label="Chemist Co")
    rules.get_by_label("Data").select_option(label="Health (sensitive)")
    rules.get_by_label("Purpose").select_option(label="providing the service you asked for")
    rules.get_by_label("May use it").select_option(label="with my name")
    rules.get_by_role("button", name="Save rule").click()
    expect(page).to_have_url(tab.url("/policy#supplier-rules"))
    listed = page.locator("#supplier-rules li.policy-rule")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("Health")
    expect(listed).to_contain_text("Chemist Co")
    expect(listed).not_to_contain_text(chemist.id)
    assert_fits(page)

    # what can Chemist Co see, for research? The purpose stays chosen.
    preview = page.locator("#preview")
    preview.get_by_label("Supplier").select_option(label="Chemist Co")
    preview.get_by_label("Purpose").select_option(label="research")
    preview.get_by_role("button", name="Show me").click()
    expect(page).to_have_url(re.compile(r"/policy/preview\?supplier=.+&purpose=research$"))
    expect(page.locator("#preview").get_by_label("Purpose")).to_have_value("research")
    expect(page.locator("#preview-result")).to_have_text("Chemist Co, with your name, for research")
    expect(page.locator("#preview .verdicts li").filter(has_text="Health")).to_contain_text("no")
    assert_fits(page)

    # remove the supplier's rule, by keyboard
    remove = page.locator("#supplier-rules").get_by_role("button", name=re.compile("^Remove"))
    remove.focus()
    expect(remove).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Rule removed.")).to_be_visible()
    expect(page.locator("#supplier-rules li.policy-rule")).to_have_count(0)
    expect(page.locator("#supplier-rules")).to_contain_text("No rule names a supplier.")
    assert_fits(page)
    tab.assert_clean()
