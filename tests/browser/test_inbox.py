"""The offer inbox in Debian's headless Chromium (Playwright): before the Accept button the
customer reads exactly what the offer was targeted on and what accepting tells the supplier.

The offer is sent through the service and delivered by its job (run here, with scripted
noise, so a small synthetic audience is enough); the customer logs in, reads the offer, and
accepts it. The page checks are those of tests/browser_support.py; the screenshot
(inbox.png) lands in ``tmp_path`` and, when ``INFOMEDIARY_SCREENSHOT_DIR`` is set, there too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from infomediary.broker.noise import NoiseSource
from infomediary.demo import population as demo
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance, open_instance
from infomediary.models import Supplier
from infomediary.services import Context
from infomediary.services.jobs import run_pending
from infomediary.services.offers import DELIVER, OfferInput, send_offer
from infomediary.web.schemas import OfferRequestSchema, load
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer, make_supplier

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ada@example.org"
PASSWORD = "correct horse battery staple"
REVEALS = (
    "Acme Books will know that someone matching: Declared interests = Books, "
    "State or territory = NSW accepted this offer, sent for marketing"
)


class Boosted(NoiseSource):
    """Noise that always adds 1000: the delivery decision passes for the test's audience."""

    def _samples(self, count: int) -> list[int]:
        return [1_000] * count


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


@pytest.fixture
def delivered(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> str:
    """An offer of Acme Books to book lovers in NSW, in Ada's inbox (and 60 others')."""

    def profile(rng: random.Random, year: int) -> dict[str, Any]:
        return {"postcode": "2000", "birth_year": year - 40, "interests": ["books"]}

    with monkeypatch.context() as patch, inst.sessions() as session:
        patch.setattr(demo, "synthetic_profile", profile)
        seed_synthetic(session, inst, 60, workers=1)
    make_customer(
        inst,
        email=EMAIL,
        password=PASSWORD,
        profile={"postcode": "2000", "birth_year": 1985, "interests": ["books", "travel"]},
    )
    acme = make_supplier(
        inst,
        name="Acme Books",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    )
    request = {
        "purpose": "marketing",
        "where": {"interests": ["books"], "region": ["NSW"]},
        "title": "10% off books",
        "body": "Show this at the counter.",
        "reward_cents": 150,
        "max_recipients": 1000,
    }
    with inst.sessions() as session:
        sent = send_offer(
            session,
            inst,
            session.get_one(Supplier, acme.id),
            load(OfferRequestSchema(), request, OfferInput),
            Context.supplier(acme.id),
        )
    worker = open_instance(inst.settings, noise=Boosted(inst.settings.broker_epsilon))
    try:
        assert run_pending(worker, kinds=[DELIVER]) == 1
    finally:
        worker.close()
    return str(sent["id"])


def test_the_inbox_says_what_accepting_reveals_before_the_accept_button(
    tab: BaseTab, delivered: str, tmp_path: Path
) -> None:
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    tab.goto("/inbox")
    offer = page.locator("li.offer").filter(has_text="10% off books")
    expect(offer).to_have_count(1)
    targeting = offer.get_by_test_id("targeting")
    expect(targeting).to_be_visible()
    expect(targeting).to_contain_text(
        "Sent to people matching: Declared interests = Books, State or territory = NSW "
        "· for marketing"
    )
    expect(targeting).to_contain_text(f"If you accept, {REVEALS}.")
    accept = offer.get_by_role("button", name="Accept", exact=True)
    expect(accept).to_be_visible()
    # the words come before the button, in the page's order and on the screen
    before = targeting.evaluate(
        "(words, button) => Boolean(words.compareDocumentPosition(button)"
        " & Node.DOCUMENT_POSITION_FOLLOWING)",
        accept.element_handle(),
    )
    assert before is True
    words_box, button_box = targeting.bounding_box(), accept.bounding_box()
    assert words_box is not None
    assert button_box is not None
    assert words_box["y"] + words_box["height"] <= button_box["y"]
    screenshot(tab, tmp_path, "inbox")
    accept.click()
    expect(
        page.get_by_text("Offer accepted: this offer's pseudonym shared with Acme Books.")
    ).to_be_visible()
    expect(offer.get_by_text("accepted", exact=True)).to_be_visible()
    expect(offer.get_by_test_id("targeting")).to_contain_text(REVEALS)  # and after, still
    tab.assert_clean()
