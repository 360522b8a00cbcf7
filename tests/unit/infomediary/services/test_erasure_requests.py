"""Erasure requests to suppliers: one open request per customer and supplier, even when two
requests race; asking again after a failed delivery is logged and queues one delivery."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from infomediary.audit.log import Actor, ActorType
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, ErasureRequest, Job, utcnow
from infomediary.services import Context, erasure_requests
from infomediary.statuses import ErasureStatus
from tests.factories import make_customer, make_grant, make_supplier

CTX = Context(Actor.system("test"))
OPERATOR = Context(Actor(ActorType.OPERATOR, "test"))


def _row(customer_id: str, supplier_id: str, status: str) -> ErasureRequest:
    return ErasureRequest(
        id=str(uuid.uuid4()),
        customer_id=customer_id,
        supplier_id=supplier_id,
        subject="sub",
        status=status,
        attempts=0,
        requested_at=utcnow(),
    )


def _pair(inst: Instance) -> tuple[str, str]:
    customer_id = make_customer(inst)
    supplier_id = make_supplier(inst).id
    make_grant(inst, customer_id, supplier_id)
    return customer_id, supplier_id


def test_a_second_open_request_for_one_supplier_is_refused_by_the_database(
    inst: Instance,
) -> None:
    customer_id, supplier_id = _pair(inst)
    with inst.sessions() as session:
        session.add(_row(customer_id, supplier_id, ErasureStatus.CONFIRMED))
        session.add(_row(customer_id, supplier_id, ErasureStatus.CONFIRMED))
        session.add(_row(customer_id, supplier_id, ErasureStatus.REQUESTED))
        session.commit()
    with inst.sessions() as session:
        session.add(_row(customer_id, supplier_id, ErasureStatus.FAILED))
        with pytest.raises(IntegrityError):
            session.commit()


def test_losing_the_race_answers_with_the_open_request(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id, supplier_id = _pair(inst)
    with inst.sessions() as session:
        first = _row(customer_id, supplier_id, ErasureStatus.REQUESTED)
        session.add(first)
        session.commit()
        first_id = first.id
    real = erasure_requests._open_request
    calls: list[int] = []

    def not_yet(*args: object) -> ErasureRequest | None:
        # The other request commits between this one's look-up and its insert.
        calls.append(1)
        return None if len(calls) == 1 else real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(erasure_requests, "_open_request", not_yet)
    with inst.sessions() as session:
        found = erasure_requests.request_erasure(
            session, inst, customer_id, supplier_id, CTX, "http://x"
        )
        assert found.id == first_id
    with inst.sessions() as session:
        ids = session.execute(select(ErasureRequest.id)).scalars().all()
        assert ids == [first_id]
        codes = [
            json.loads(e.reason_data)["code"]
            for e in session.execute(select(AccessLogEntry)).scalars()
            if e.reason_data
        ]
        assert "erasure.requested" not in codes


def _codes(inst: Instance, customer_id: str) -> list[str]:
    with inst.sessions() as session:
        return [
            json.loads(e.reason_data)["code"]
            for e in session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            ).scalars()
            if e.reason_data
        ]


def _deliveries(inst: Instance, request_id: str) -> int:
    with inst.sessions() as session:
        return sum(
            1
            for job in session.execute(
                select(Job).where(Job.kind == erasure_requests.JOB)
            ).scalars()
            if json.loads(job.payload)["request"] == request_id
        )


def _webhook(inst: Instance, supplier_id: str) -> None:
    with inst.sessions() as session:
        erasure_requests.set_webhook(
            session, inst, supplier_id, "https://93.184.216.34/hook", "http://x", OPERATOR
        )


def test_asking_again_after_a_failed_delivery_is_logged(inst: Instance) -> None:
    customer_id, supplier_id = _pair(inst)
    _webhook(inst, supplier_id)
    with inst.sessions() as session:
        failed = _row(customer_id, supplier_id, ErasureStatus.FAILED)
        session.add(failed)
        session.commit()
        failed_id = failed.id
    with inst.sessions() as session:
        found = erasure_requests.request_erasure(
            session, inst, customer_id, supplier_id, CTX, "http://x"
        )
        assert found.id == failed_id
    with inst.sessions() as session:
        assert session.get_one(ErasureRequest, failed_id).status == ErasureStatus.REQUESTED
    assert _codes(inst, customer_id).count("erasure.requested_again") == 1
    assert _deliveries(inst, failed_id) == 1


def test_a_new_webhook_queues_no_second_delivery_of_a_queued_request(inst: Instance) -> None:
    customer_id, supplier_id = _pair(inst)
    _webhook(inst, supplier_id)
    with inst.sessions() as session:
        found = erasure_requests.request_erasure(
            session, inst, customer_id, supplier_id, CTX, "http://x"
        )
        request_id = found.id
    assert _deliveries(inst, request_id) == 1
    _webhook(inst, supplier_id)  # the operator sets the webhook again, before it ran
    _webhook(inst, supplier_id)
    assert _deliveries(inst, request_id) == 1
