"""A consent receipt's page and its download with proofs, in Debian's headless Chromium.

The customer opens a receipt from the consents page: it says which access-log entry records
the consent and that the proof is not available until a checkpoint covers it. Once one is
signed, the page offers the download with proofs; the saved file is checked as an outsider
would, with the published key set, ``tlog.note`` and ``tlog.merkle``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from infomediary.crypto.receipts import verify_receipt
from infomediary.instance import Instance
from infomediary.services import checkpoints
from infomediary.tlog import merkle, note
from tests.browser_support import BaseTab, open_tab
from tests.factories import make_customer, make_grant
from tests.oauth_helpers import make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "barbara@example.org"
PASSWORD = "correct horse battery staple"
SUPPLIER = "Acme Books"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def test_a_receipt_names_its_entry_and_downloads_with_its_proof(
    tab: BaseTab, inst: Instance, tmp_path: Path
) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    grant = make_grant(inst, customer_id, make_supplier(inst, name=SUPPLIER).id)
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    tab.goto("/consents")
    page.get_by_role("link", name="signed consent receipts").click()
    expect(page).to_have_url(tab.url(f"/consents/{grant.id}/receipts"))
    page.get_by_role("link", name="read receipt").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Consent receipt")
    main = page.get_by_role("main")
    expect(main.locator("dl")).to_contain_text(SUPPLIER)
    logged = main.locator("p").filter(has_text="Recorded in the access log as entry")
    expect(logged).to_have_count(1)
    index = int(logged.inner_text().split("as entry ")[1].split(".")[0])
    expect(page.locator("#proof-status")).to_contain_text("Proof not available yet")
    expect(main.get_by_role("link", name="Download the receipt with its proof")).to_have_count(0)

    with inst.sessions() as session:
        signed = checkpoints.sign(session, inst).checkpoint
    page.reload()
    expect(page.locator("#proof-status")).to_contain_text(
        f"Proof available: the entry is part of the log's signed checkpoint of {signed.size} "
        "entries"
    )
    with page.expect_download() as download_info:
        main.get_by_role("link", name="Download the receipt with its proof").click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith(".proof.json")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    bundle = json.loads(saved.read_text(encoding="utf-8"))

    # What an outsider does with the file.
    # the key set the page links to (fetched outside the page: a JSON document would have
    # the browser ask for a favicon)
    jwks_link = main.get_by_role("link", name="/.well-known/jwks.json")
    expect(jwks_link).to_have_attribute("href", "/.well-known/jwks.json")
    jwks = page.request.get(tab.url("/.well-known/jwks.json"))
    assert jwks.ok
    claims = verify_receipt(bundle["receipt"], jwks.json())
    log = bundle["log"]
    assert bundle["status"] == "ready"
    assert claims["log_index"] == log["index"] == index
    assert claims["log_leaf_hash"] == log["leaf_hash"]
    checkpoint = note.open_checkpoint(
        log["checkpoint"], note.Verifier.from_vkey(log["key"]), "localhost/log"
    )
    assert (checkpoint.size, checkpoint.root) == (signed.size, signed.root)
    merkle.verify_inclusion(
        log["index"],
        log["size"],
        bytes.fromhex(log["leaf_hash"]),
        [base64.b64decode(node) for node in log["proof"]],
        checkpoint.root,
    )
    tab.assert_clean()
