"""The auditors' dashboard in Debian's headless Chromium (Playwright): log in with password and
TOTP code, search with a filter, open a supplier's statistics (charts drawn inline, within the
CSP), export the range as JSON and check its proofs, and log out."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import expect

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.services import Context, auditors
from infomediary.tlog import merkle
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer, make_grant, make_supplier
from tests.functional.test_auditor_dashboard import supplier_entry

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "audra@example.org"
PASSWORD = "a long auditor passphrase"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_log_in_search_and_export(tab: BaseTab, inst: Instance, tmp_path: Path) -> None:
    with inst.sessions() as session:
        created = auditors.create(
            session, inst, email=EMAIL, password=PASSWORD, ctx=Context(Actor.system("test"))
        )
    customer = make_customer(inst, name="Ada Q")
    books = make_supplier(inst, name="Lantern Books")
    travel = make_supplier(inst, name="Harbour Travel")
    make_grant(inst, customer, books.id, purpose="service")
    supplier_entry(inst, books.id, customer, purpose="service")
    supplier_entry(inst, travel.id, customer, allowed=False, reason="consent revoked")

    page = tab.page
    tab.goto("/audit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Auditor log in")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("One-time code")
    page.get_by_label("Six-digit code from your authenticator app").fill(
        pyotp.TOTP(created.totp_secret).now()
    )
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Search the access log")

    page.get_by_label("Supplier").select_option(label="Lantern Books")
    page.get_by_role("button", name="Search").click()
    table = page.get_by_role("table", name="Access-log entries")
    expect(table.get_by_role("row")).to_have_count(2)  # the header and the one entry
    expect(table).to_contain_text("Lantern Books")
    expect(table).not_to_contain_text("Harbour Travel")
    expect(table).to_contain_text("aud_")
    expect(page.locator("body")).not_to_contain_text(customer)
    screenshot(tab, tmp_path, "auditor-search")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="JSON").click()
    path = download_info.value.path()
    doc = json.loads(Path(path).read_text())
    [entry] = doc["entries"]
    merkle.verify_inclusion(
        entry["seq"],
        doc["tree"]["size"],
        base64.b64decode(entry["leaf_hash"]),
        [base64.b64decode(p) for p in entry["proof"]],
        base64.b64decode(doc["tree"]["root"]),
    )

    table.get_by_role("link", name="Lantern Books").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lantern Books")
    expect(page.locator("svg[role=img]")).to_have_count(2)
    expect(page.get_by_role("img", name="Accesses and refusals per day")).to_be_visible()
    page.get_by_text("Accesses and refusals per day as a table").click()
    expect(page.get_by_role("table", name="Accesses and refusals per day")).to_be_visible()
    screenshot(tab, tmp_path, "auditor-supplier")

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Auditor log in")
    tab.assert_clean()
