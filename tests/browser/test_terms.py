"""MyTerms in Debian's headless Chromium (Playwright), at desktop size and at 390 px: the customer
reads the roster's summaries on the settings page, chooses the terms they proffer by default, and
finds an agreement made with a supplier on that supplier's page, its signature verifying, with
nothing wider than the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.instance import Instance
from infomediary.services import agreements
from infomediary.services.uow import unit_of_work
from tests.browser_support import NARROW, BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer, make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "terms.browser@example.org"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


@pytest.mark.parametrize("narrow", [False, True], ids=["desktop", "390px"])
def test_choose_the_default_terms_and_see_an_agreement_on_the_suppliers_page(
    tab: BaseTab, inst: Instance, tmp_path: Path, narrow: bool
) -> None:
    page = tab.page
    if narrow:
        page.set_viewport_size(NARROW)
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    acme = make_supplier(inst, name="Acme Books")
    with inst.sessions() as session, unit_of_work(session) as uow:
        agreements.record_agreement(
            uow,
            inst,
            customer_id=customer_id,
            supplier_id=acme.id,
            agreement_id="no-ai-training",
            context={"intent_id": "intent-7"},
        )
        uow.commit()
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(tab.url("/dashboard"))

    tab.goto("/settings")
    chooser = page.get_by_label("Terms you proffer")
    expect(chooser).to_have_value("sd-base")
    expect(page.get_by_text("You may use my data only to provide the service")).to_be_visible()
    assert_fits(page)
    chooser.select_option("goods-services-only")
    page.get_by_role("button", name="Save terms").click()
    expect(page.get_by_text("Terms saved.")).to_be_visible()
    expect(page.get_by_label("Terms you proffer")).to_have_value("goods-services-only")
    with inst.sessions() as session:
        assert agreements.default_agreement(session, customer_id) == "goods-services-only"

    tab.goto(f"/suppliers/{acme.id}")
    terms = page.locator("section[aria-labelledby=terms]")
    expect(terms.get_by_role("heading", name="Terms you agreed (MyTerms)")).to_be_visible()
    expect(terms.get_by_text("No AI training")).to_be_visible()
    expect(terms.get_by_text("signature verifies")).to_be_visible()
    expect(terms.get_by_role("link", name="download (.jws)")).to_be_visible()
    assert_fits(page)
    if not narrow:
        screenshot(tab, tmp_path, "terms")
    tab.assert_clean()
