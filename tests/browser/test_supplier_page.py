"""The customer's page per supplier in Debian's headless Chromium (Playwright), at desktop size
and at 390 px: reached from the activity log, the receipt's signature result, blocking with
the "also revoke" box, unblocking, and asking them to delete, all without sideways scrolling.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from infomediary.instance import Instance
from infomediary.models import ConsentGrant, ErasureRequest, Supplier, SupplierBlock
from infomediary.services import Context, resource
from tests.browser_support import BaseTab, assert_fits, open_tab, screenshot
from tests.factories import make_customer, make_grant, make_supplier

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ines@example.org"
PASSWORD = "correct horse battery staple"
SUPPLIER = "Acme Books"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_supplier_page_flow(tab: BaseTab, inst: Instance, tmp_path: Path, width: int) -> None:
    page = tab.page
    page.set_viewport_size({"width": width, "height": 900})
    customer = make_customer(
        inst, email=EMAIL, password=PASSWORD, profile={"name": "Ines", "postcode": "2000"}
    )
    supplier = make_supplier(inst, name=SUPPLIER)
    make_grant(inst, customer, supplier.id)
    with inst.sessions() as session:
        found = session.get_one(Supplier, supplier.id)
        resource.release(
            session,
            inst,
            found,
            customer,
            ["profile.identity:read"],
            "service",
            Context.supplier(supplier.id),
        )

    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.wait_for_load_state("networkidle")  # the page's own scripts finish first

    # From the activity log, the supplier's name leads to their page.
    tab.goto("/activity?actor=supplier")
    page.get_by_role("link", name=re.compile(rf"^{SUPPLIER}")).first.click()
    expect(page).to_have_url(tab.url(f"/suppliers/{supplier.id}"))
    expect(page.get_by_role("heading", level=1)).to_have_text(SUPPLIER)
    main = page.get_by_role("main")
    expect(main.get_by_text("not verified", exact=True)).to_be_visible()
    expect(main.get_by_role("heading", name="What they read and when")).to_be_visible()
    expect(main.get_by_role("img", name=re.compile(r"^Accesses per week"))).to_be_visible()
    expect(main.get_by_text("signature verifies").first).to_be_visible()
    assert_fits(tab.page)
    screenshot_path = tmp_path / f"supplier-{width}.png"
    page.screenshot(path=screenshot_path, full_page=True)
    assert screenshot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if width == 1280:
        screenshot(tab, tmp_path, "supplier")

    # The readable receipt, with its signature result.
    main.get_by_role("link", name="read receipt").first.click()
    expect(page.locator("#signature-result")).to_contain_text("Signature verifies")
    assert_fits(tab.page)
    page.go_back()

    # Block, revoking their consents too; then unblock.
    box = main.get_by_label("Also revoke their consents")
    box.focus()
    expect(box).to_be_focused()
    box.check()
    main.get_by_role("button", name=f"Block {SUPPLIER}").click()
    expect(page.get_by_role("status")).to_contain_text("1 consent(s) revoked")
    expect(main.get_by_text("blocked by you")).to_be_visible()
    with inst.sessions() as session:
        assert session.get(SupplierBlock, (customer, supplier.id)) is not None
        grant = session.execute(select(ConsentGrant)).scalar_one()
        assert grant.revoked_at is not None
    main.get_by_role("button", name=f"Unblock {SUPPLIER}").click()
    expect(page.get_by_role("status")).to_contain_text("Unblocked")
    with inst.sessions() as session:
        assert session.get(SupplierBlock, (customer, supplier.id)) is None

    # Ask them to delete: no webhook yet, so it waits.
    main.get_by_role("button", name="Ask them to delete my data").click()
    expect(
        main.get_by_text("Waiting: this supplier has no way to receive requests yet.")
    ).to_be_visible()
    expect(main.get_by_role("button", name="Ask them to delete my data")).to_have_count(0)
    with inst.sessions() as session:
        assert session.execute(select(ErasureRequest.status)).scalar_one() == "requested"
    assert_fits(tab.page)
    tab.assert_clean()
