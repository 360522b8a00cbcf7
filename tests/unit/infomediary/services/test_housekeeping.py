"""Housekeeping on both backends: rows of each kind, expired and live; after the job the
expired ones are gone, the live ones and everything the log, the receipts, the ledger and the
export need remain; a second run deletes nothing. The recurring jobs are ensured once each.
An offer's escrow comes back at expiry by its job, with nobody viewing the offer."""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from pyroaring import BitMap
from sqlalchemy import func, select

from infomediary.audit.log import Actor, verify
from infomediary.demo import population as demo
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    AuthorizationCode,
    ConsentGrant,
    EmailToken,
    Job,
    OAuthToken,
    Offer,
    ProcessLease,
    Release,
    ReleasedAnswer,
    WebSession,
    utcnow,
)
from infomediary.services import Context, exports, housekeeping, jobs, offers, rewards
from infomediary.services.broker import epoch_of
from infomediary.statuses import JobStatus, OfferStatus, ReleaseKind
from tests.factories import make_customer, make_grant, make_offer, make_supplier
from tests.scripted_noise import scripted_instances

DAY = timedelta(days=1)


def _hash() -> bytes:
    return hashlib.sha256(os.urandom(32)).digest()


def _count(inst: Instance, model: Any, *where: Any) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class Rows:
    """One row of each kind that must go and one of each that must stay, at ``now``."""

    def __init__(self, inst: Instance, now: datetime) -> None:
        self.now = now
        self.customer = make_customer(inst, profile={"name": "Ada"})
        self.supplier = make_supplier(inst).id
        self.grant = make_grant(inst, self.customer, self.supplier).id
        self.gone: dict[str, list[Any]] = {}
        self.kept: dict[str, list[Any]] = {}
        with inst.sessions() as session:
            self._sessions(session)
            self._codes_and_tokens(session)
            self._email_tokens(session)
            self._answers(inst, session)
            self._leases(session)
            self._jobs(session)
            session.commit()

    def _add(self, session: Any, name: str, keep: bool, row: Any, key: Any) -> None:
        session.add(row)
        (self.kept if keep else self.gone).setdefault(name, []).append(key)

    def _sessions(self, session: Any) -> None:
        for keep, end in ((False, self.now - timedelta(minutes=1)), (True, self.now + DAY)):
            token = _hash()
            self._add(
                session,
                "sessions",
                keep,
                WebSession(
                    token_hash=token,
                    customer_id=self.customer,
                    data='{"passkey_challenge": "x"}',
                    expires_at=end,
                ),
                token,
            )

    def _token(self, family: str, expires: datetime, refresh: datetime | None) -> OAuthToken:
        return OAuthToken(
            id=str(uuid.uuid4()),
            supplier_id=self.supplier,
            customer_id=self.customer,
            grant_id=self.grant,
            family_id=family,
            access_token_hash=_hash(),
            refresh_token_hash=_hash() if refresh else None,
            scope="profile.identity:read",
            purpose="service",
            issued_at=expires - timedelta(hours=1),
            expires_at=expires,
            refresh_expires_at=refresh,
            rotated_at=expires if refresh else None,
        )

    def _codes_and_tokens(self, session: Any) -> None:
        old = self.now - 3 * DAY
        # codes: expired long ago and its family dead; expired long ago but its family alive;
        # expired within the grace; fresh
        for keep, expires, live_family in (
            (False, old, False),
            (True, old, True),
            (True, self.now - timedelta(hours=1), False),
            (True, self.now + timedelta(seconds=60), False),
        ):
            code = _hash()
            self._add(
                session,
                "authorization_codes",
                keep,
                AuthorizationCode(
                    code_hash=code,
                    supplier_id=self.supplier,
                    customer_id=self.customer,
                    grant_id=self.grant,
                    redirect_uri="https://shop.example/cb",
                    scope="profile.identity:read",
                    purpose="service",
                    code_challenge="x" * 43,
                    code_challenge_method="S256",
                    expires_at=expires,
                    consumed_at=expires,
                ),
                code,
            )
            if live_family:
                row = self._token(code.hex(), self.now + timedelta(hours=1), self.now + DAY)
                self._add(session, "oauth_tokens", True, row, row.id)
        # a family whose every token is past its refresh lifetime: all go
        for _ in range(2):
            row = self._token("dead-family", old - DAY, old)
            self._add(session, "oauth_tokens", False, row, row.id)
        # a family with one old rotated token and a live one: both stay (reuse is still seen)
        for expires, refresh in ((old - DAY, old), (self.now + timedelta(hours=1), self.now + DAY)):
            row = self._token("live-family", expires, refresh)
            self._add(session, "oauth_tokens", True, row, row.id)
        # client credentials (no refresh token): expired long ago goes, one expired an hour
        # ago (within the grace) stays
        for keep, expires in ((False, old), (True, self.now - timedelta(hours=1))):
            row = self._token(uuid.uuid4().hex, expires, None)
            row.customer_id = row.grant_id = None
            self._add(session, "oauth_tokens", keep, row, row.id)
        # a revoked token whose refresh lifetime has not passed stays
        revoked = self._token("revoked-family", old, self.now + DAY)
        revoked.revoked_at = old
        self._add(session, "oauth_tokens", True, revoked, revoked.id)

    def _email_tokens(self, session: Any) -> None:
        for keep, expires, used in (
            (False, self.now - 2 * DAY, None),
            (False, self.now - 2 * DAY, self.now - 3 * DAY),
            (True, self.now - timedelta(hours=2), None),
            (True, self.now + DAY, None),
        ):
            token = _hash()
            self._add(
                session,
                "email_tokens",
                keep,
                EmailToken(
                    token_hash=token,
                    customer_id=self.customer,
                    purpose="reset",
                    expires_at=expires,
                    used_at=used,
                ),
                token,
            )

    def _answers(self, inst: Instance, session: Any) -> None:
        hours = inst.settings.broker_epoch_hours
        current = epoch_of(self.now, hours)
        release = Release(
            kind=ReleaseKind.COUNT,
            supplier_id=self.supplier,
            purpose="marketing",
            criteria="{}",
            epsilon_micro=100_000,
            members=BitMap([1, 2, 3]).serialize(),
            query_hash="a" * 64,
            created_at=self.now - timedelta(hours=2 * hours),
        )
        session.add(release)
        session.flush()
        self.release_seq = release.seq
        for keep, epoch, created in (
            (False, current - 2, self.now - timedelta(hours=2 * hours)),
            (True, current, self.now),
        ):
            digest = uuid.uuid4().hex * 2
            self._add(
                session,
                "released_answers",
                keep,
                ReleasedAnswer(
                    query_hash=digest,
                    epoch=epoch,
                    answer='{"count": 120}',
                    epsilon_micro=100_000,
                    created_at=created,
                    release_seq=release.seq,
                ),
                (digest, epoch),
            )

    def _leases(self, session: Any) -> None:
        for keep, expires in ((False, self.now - timedelta(seconds=1)), (True, self.now + DAY)):
            lease = uuid.uuid4().hex
            self._add(
                session,
                "process_leases",
                keep,
                ProcessLease(
                    id=lease,
                    host="elsewhere",
                    pid=1,
                    kek_versions="1",
                    active_kek=1,
                    expires_at=expires,
                ),
                lease,
            )

    def _jobs(self, session: Any) -> None:
        old, recent = self.now - 31 * DAY, self.now - DAY
        for keep, status, finished in (
            (False, JobStatus.DONE, old),
            (False, JobStatus.FAILED, old),
            (True, JobStatus.DONE, recent),
            (True, JobStatus.QUEUED, None),
        ):
            job = str(uuid.uuid4())
            self._add(
                session,
                "jobs",
                keep,
                Job(
                    id=job,
                    kind="test.finished",
                    payload="{}",
                    status=status,
                    attempts=1,
                    max_attempts=1,
                    run_after=old,
                    finished_at=finished,
                ),
                job,
            )


KEYS: dict[str, Any] = {
    "sessions": WebSession.token_hash,
    "authorization_codes": AuthorizationCode.code_hash,
    "oauth_tokens": OAuthToken.id,
    "email_tokens": EmailToken.token_hash,
    "process_leases": ProcessLease.id,
    "jobs": Job.id,
}


def present(inst: Instance, kind: str, keys: list[Any]) -> list[Any]:
    with inst.sessions() as session:
        if kind == "released_answers":
            rows = session.execute(select(ReleasedAnswer.query_hash, ReleasedAnswer.epoch)).all()
            return [key for key in keys if tuple(key) in {tuple(r) for r in rows}]
        column = KEYS[kind]
        found = set(session.execute(select(column).where(column.in_(keys))).scalars())
        return [key for key in keys if key in found]


def test_housekeeping_deletes_what_expired_and_keeps_the_rest(inst: Instance) -> None:
    now = utcnow()
    rows = Rows(inst, now)
    entries = _count(inst, AccessLogEntry)
    assert set(rows.gone) == set(housekeeping.KINDS)  # every kind has a row to delete

    with inst.sessions() as session:
        report = housekeeping.run(session, inst, now)

    assert report.deleted == {kind: len(keys) for kind, keys in rows.gone.items()}
    for kind, keys in rows.gone.items():
        assert present(inst, kind, keys) == [], kind
    for kind, keys in rows.kept.items():
        assert present(inst, kind, keys) == keys, kind
    # the ledger, the grant and its receipt, the log: untouched, and the log still verifies
    assert _count(inst, Release, Release.seq == rows.release_seq) == 1
    assert _count(inst, ConsentGrant, ConsentGrant.id == rows.grant) == 1
    assert _count(inst, AccessLogEntry) == entries
    with inst.sessions() as session:
        assert verify(session).ok
        document = exports.export(
            session, inst, rows.customer, Context(Actor.customer(rows.customer), "test")
        )
    assert [grant["id"] for grant in document["consents"]] == [rows.grant]

    with inst.sessions() as session:  # idempotent
        again = housekeeping.run(session, inst, now)
    assert again.total == 0
    for kind, keys in rows.kept.items():
        assert present(inst, kind, keys) == keys, kind


def test_housekeeping_deletes_in_batches(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow()
    customer = make_customer(inst)
    with inst.sessions() as session:
        for _ in range(7):
            session.add(WebSession(token_hash=_hash(), customer_id=customer, expires_at=now - DAY))
        session.commit()
    monkeypatch.setattr(housekeeping, "BATCH", 3)
    with inst.sessions() as session:
        assert housekeeping.delete_batch(session, inst, "sessions", now) == 3
        assert housekeeping.run(session, inst, now).deleted["sessions"] == 4
    assert _count(inst, WebSession) == 0


def test_the_housekeeping_job_runs_again_after_its_interval(inst: Instance) -> None:
    now = utcnow()
    customer = make_customer(inst)
    with inst.sessions() as session:
        session.add(WebSession(token_hash=_hash(), customer_id=customer, expires_at=now - DAY))
        session.commit()
    kinds = housekeeping.ensure_recurring(inst)
    assert kinds == housekeeping.recurring()
    assert housekeeping.ensure_recurring(inst) == kinds  # enqueued once
    for kind in kinds:
        assert _count(inst, Job, Job.key == kind) == 1

    now = utcnow()
    assert jobs.run_pending(inst, now, kinds=[housekeeping.JOB]) == 1

    assert _count(inst, WebSession) == 0
    with inst.sessions() as session:
        job = session.execute(select(Job).where(Job.key == housekeeping.JOB)).scalar_one()
    assert job.status == JobStatus.QUEUED
    every = timedelta(seconds=inst.settings.housekeeping_seconds)
    assert job.run_after == now + every


def test_a_given_up_recurring_job_is_queued_again(inst: Instance) -> None:
    housekeeping.ensure_recurring(inst)
    with inst.sessions() as session:
        job = session.execute(select(Job).where(Job.key == housekeeping.JOB)).scalar_one()
        job.status = JobStatus.FAILED
        job.attempts = job.max_attempts
        session.commit()
    housekeeping.ensure_recurring(inst)
    with inst.sessions() as session:
        job = session.execute(select(Job).where(Job.key == housekeeping.JOB)).scalar_one()
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)


FUNDS = 100_000


def test_an_expired_offer_refunds_its_escrow_with_nobody_viewing_it(
    inst: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    def profile(rng: random.Random, year: int) -> dict[str, Any]:
        return {"postcode": "7000", "birth_year": year - 40, "interests": ["books"]}

    with monkeypatch.context() as patch, inst.sessions() as session:
        patch.setattr(demo, "synthetic_profile", profile)
        seed_synthetic(session, inst, 60, workers=1)
    supplier = make_supplier(
        inst,
        name="Island Co",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=FUNDS,
    ).id
    with scripted_instances() as open_scripted:
        runner = open_scripted(inst.settings, [1_000, 0, 0])
        sent = make_offer(
            runner, supplier, where={"region": ["TAS"]}, reward_cents=10, max_recipients=100
        )
        assert sent["status"] == OfferStatus.DELIVERED

        def balances() -> tuple[int, int]:
            with inst.sessions() as session:
                mine = rewards.balance(session, rewards.account(session, "supplier", supplier).id)
                held = rewards.balance(session, rewards.account(session, "escrow", sent["id"]).id)
                assert rewards.total_of_all_balances(session) == 0
            return mine, held

        assert balances() == (FUNDS - 10 * 100, 10 * 100)  # reward x cap held in escrow
        expiry = datetime.fromisoformat(sent["expires_at"])
        # every job there is, as a worker runs them: nothing before the expiry, then the close
        jobs.run_pending(runner, expiry - timedelta(minutes=1))
        assert balances() == (FUNDS - 10 * 100, 10 * 100)
        jobs.run_pending(runner, expiry + timedelta(seconds=1))
    assert balances() == (FUNDS, 0)
    with inst.sessions() as session:
        offer_row = session.get(Offer, sent["id"])
        assert offer_row is not None
        assert offer_row.status == OfferStatus.CLOSED
    close = _count(inst, Job, Job.key == f"{offers.CLOSE}:{sent['id']}", Job.status == "done")
    assert close == 1
