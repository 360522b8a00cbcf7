"""The customer's notifications: derived from what happened, never written by other use cases.

Every event a notification tells of is already recorded: a supplier's read and an auditor's
look are access-log entries for the customer, a new consent is a ``consent_grants`` row (and a
grant expiring within :data:`EXPIRING_DAYS` is that row again), a new offer an
``offer_deliveries`` row, a finished import a ``purchase_imports`` row. So notifications are
queries of those records, newest first and each bounded by a limit, and no use case can
forget to notify. The one row stored (:class:`NotificationSettings`) holds the customer's
choices and how far they have read (``seen_through``, and ``seen_seq`` for the log, whose
``(customer_id, seq)`` index bounds the unread queries) and been e-mailed.

Reading one's own notifications is not logged, like reading one's own log; marking them read,
changing the choices and e-mailing a digest are use cases with an entry each. The digest is
the recurring job :data:`JOB`, queued when a customer turns the digest on. A new bid is a
``bids`` row on one of the customer's intents, and an intent's date coming within
:data:`DEADLINE_DAYS` is that intent's row again: both lead to the intent's own page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Select

from infomediary import mail
from infomediary.audit.log import Actor, ActorType
from infomediary.audit.reasons import Reason
from infomediary.db import begin_snapshot
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.logs import get_logger
from infomediary.models import (
    AccessLogEntry,
    Bid,
    ConsentGrant,
    Customer,
    Intent,
    Job,
    NotificationSettings,
    Offer,
    OfferDelivery,
    PurchaseImport,
    PurchaseImportStatus,
    utcnow,
)
from infomediary.services import Context, customer_keys, jobs
from infomediary.services.exports import SupplierNames
from infomediary.services.intents import REVIEW_DAYS, deliveries, review_window
from infomediary.services.uow import unit_of_work
from infomediary.statuses import IntentStatus, JobStatus

log = get_logger("notifications")

SUPPLIER_READ = "supplier_read"
NEW_GRANT = "new_grant"
CONSENT_EXPIRING = "consent_expiring"
NEW_OFFER = "new_offer"
AUDITOR_READ = "auditor_read"
IMPORT_FINISHED = "import_finished"
NEW_BID = "new_bid"
INTENT_DUE = "intent_due"
INTENT_REVIEW = "intent_review"
#: Every kind, in the order the settings page lists them.
KINDS: tuple[str, ...] = (
    SUPPLIER_READ,
    NEW_GRANT,
    CONSENT_EXPIRING,
    NEW_OFFER,
    AUDITOR_READ,
    IMPORT_FINISHED,
    NEW_BID,
    INTENT_DUE,
    INTENT_REVIEW,
)
#: Kinds read from the access log (unread past ``seen_seq``); the others by time.
LOG_KINDS = frozenset({SUPPLIER_READ, AUDITOR_READ})
#: Where each kind's notification leads.
LINKS: dict[str, str] = {
    SUPPLIER_READ: "/activity?actor=supplier&action=read",
    NEW_GRANT: "/consents",
    CONSENT_EXPIRING: "/consents",
    NEW_OFFER: "/inbox",
    AUDITOR_READ: "/activity?actor=auditor",
    IMPORT_FINISHED: "/purchases",
    NEW_BID: "/intents",
    INTENT_DUE: "/intents",
    INTENT_REVIEW: "/intents",
}
EXPIRING_DAYS = 7
#: An open or accepted intent whose date (or, standing, whose next delivery) is this close is
#: notified once.
DEADLINE_DAYS = 2
PER_PAGE = 20
MAX_PAGES = 20
#: The unread count stops here: past it the badge says "9+".
COUNT_CAP = 9
#: At most this many customers are e-mailed per run of the digest job (the rest next run).
DIGEST_BATCH = 200
#: The digest job runs at most this far apart (each customer still gets one per period).
DIGEST_POLL_SECONDS = 3600
JOB = "notification_digest"
SETTINGS_PATH = "/notifications/settings"
LIST_PATH = "/notifications"


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell the customer: its kind, when, whom it names (a supplier's name in
    words, never an id), a number where the kind has one, where it leads, and whether read."""

    kind: str
    at: datetime
    key: str
    link: str
    supplier: str | None = None
    count: int | None = None
    unread: bool = True


@dataclass(frozen=True, slots=True)
class NotificationPage:
    items: list[Notification]
    page: int
    has_next: bool


@dataclass(frozen=True, slots=True)
class Preferences:
    in_app: frozenset[str]
    digest_kinds: frozenset[str]
    digest: bool


DEFAULTS = Preferences(frozenset(KINDS), frozenset(KINDS), False)


@dataclass(frozen=True, slots=True)
class PreferencesInput:
    """The settings form as sent: the kinds ticked for each channel, and the digest switch."""

    in_app: tuple[str, ...]
    digest_kinds: tuple[str, ...]
    digest: bool


@dataclass(frozen=True, slots=True)
class _Since:
    """Unread means newer than this: a time for records, a log position for entries."""

    at: datetime | None
    seq: int


def by_system() -> Context:
    return Context(Actor.system("notifications"))


# -- reading ------------------------------------------------------------------------------------


def _row(session: Session, customer_id: str) -> NotificationSettings | None:
    return session.get(NotificationSettings, customer_id)


def _kinds(text: str) -> frozenset[str]:
    return frozenset(k for k in text.split() if k in KINDS)


def _preferences(row: NotificationSettings | None) -> Preferences:
    if row is None:
        return DEFAULTS
    return Preferences(_kinds(row.in_app), _kinds(row.digest_kinds), row.digest)


def _seen(row: NotificationSettings | None) -> _Since:
    return _Since(None, 0) if row is None else _Since(row.seen_through, row.seen_seq)


def _log_query(customer_id: str, kind: str, since: _Since | None) -> Select[int, datetime, str]:
    query = select(AccessLogEntry.seq, AccessLogEntry.created_at, AccessLogEntry.actor_id).where(
        AccessLogEntry.customer_id == customer_id, AccessLogEntry.outcome == "allowed"
    )
    if kind == SUPPLIER_READ:
        query = query.where(
            AccessLogEntry.actor_type == ActorType.SUPPLIER, AccessLogEntry.action == "read"
        )
    else:
        query = query.where(
            AccessLogEntry.actor_type == ActorType.AUDITOR, AccessLogEntry.action == "audit"
        )
    if since is not None:
        query = query.where(AccessLogEntry.seq > since.seq)
    return query.order_by(AccessLogEntry.seq.desc())


def _after(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    since: _Since | None,
) -> list[ColumnElement[bool]]:
    if since is None or since.at is None:
        return []
    return [column > since.at]


@dataclass(frozen=True, slots=True)
class _Raw:
    """A notification before names are looked up (``supplier_id`` is an id here)."""

    kind: str
    at: datetime
    key: str
    seq: int | None = None
    supplier_id: str | None = None
    count: int | None = None
    #: Where this one leads, when not its kind's page (an intent's own page).
    link: str | None = None


def _intent_link(intent_id: str) -> str:
    return f"/intents/{intent_id}"


def _fetch(
    session: Session, customer_id: str, kind: str, now: datetime, since: _Since | None, limit: int
) -> list[_Raw]:
    """The newest ``limit`` events of ``kind`` (only those past ``since``, when given)."""
    if kind in LOG_KINDS:
        entries = session.execute(_log_query(customer_id, kind, since).limit(limit)).all()
        return [
            _Raw(
                kind,
                at,
                f"{kind}-{seq}",
                seq=seq,
                supplier_id=actor if kind == SUPPLIER_READ else None,
            )
            for seq, at, actor in entries
        ]
    if kind == NEW_GRANT:
        grants = session.execute(
            select(ConsentGrant.id, ConsentGrant.created_at, ConsentGrant.supplier_id)
            .where(
                ConsentGrant.customer_id == customer_id,
                *_after(ConsentGrant.created_at, since),
            )
            .order_by(ConsentGrant.created_at.desc(), ConsentGrant.id.desc())
            .limit(limit)
        ).all()
        return [_Raw(kind, at, f"{kind}-{gid}", supplier_id=sid) for gid, at, sid in grants]
    if kind == CONSENT_EXPIRING:
        # A grant enters the window EXPIRING_DAYS before it expires (or when made, if later):
        # that is its notification's time, so it is unread once and read after.
        window = timedelta(days=EXPIRING_DAYS)
        expiring = session.execute(
            select(
                ConsentGrant.id,
                ConsentGrant.created_at,
                ConsentGrant.expires_at,
                ConsentGrant.supplier_id,
            )
            .where(
                ConsentGrant.customer_id == customer_id,
                ConsentGrant.active_at(now),
                ConsentGrant.expires_at.is_not(None),
                ConsentGrant.expires_at <= now + window,
            )
            .order_by(ConsentGrant.expires_at.asc())
            .limit(limit)
        ).all()
        found = []
        for gid, made, expires, sid in expiring:
            if expires is None:
                continue
            at = max(made, expires - window)
            if since is None or since.at is None or at > since.at:
                found.append(_Raw(kind, at, f"{kind}-{gid}", supplier_id=sid))
        return found
    if kind == NEW_OFFER:
        offers = session.execute(
            select(OfferDelivery.offer_id, OfferDelivery.delivered_at, Offer.supplier_id)
            .join(Offer, Offer.id == OfferDelivery.offer_id)
            .where(
                OfferDelivery.customer_id == customer_id,
                *_after(OfferDelivery.delivered_at, since),
            )
            .order_by(OfferDelivery.delivered_at.desc(), OfferDelivery.offer_id.desc())
            .limit(limit)
        ).all()
        return [_Raw(kind, at, f"{kind}-{oid}", supplier_id=sid) for oid, at, sid in offers]
    if kind == NEW_BID:
        bids = session.execute(
            select(Bid.id, Bid.created_at, Bid.supplier_id, Bid.intent_id)
            .join(Intent, Intent.id == Bid.intent_id)
            .where(Intent.customer_id == customer_id, *_after(Bid.created_at, since))
            .order_by(Bid.created_at.desc(), Bid.id.desc())
            .limit(limit)
        ).all()
        return [
            _Raw(kind, at, f"{kind}-{bid}", supplier_id=sid, link=_intent_link(iid))
            for bid, at, sid, iid in bids
        ]
    if kind == INTENT_DUE:
        # An intent's date (a standing intent's each delivery) enters the window DEADLINE_DAYS
        # before it (or when posted, if later): that is its notification's time, so each one
        # is unread once and read after.
        today = now.date()
        horizon = today + timedelta(days=DEADLINE_DAYS)
        rows = session.execute(
            select(Intent)
            .where(
                Intent.customer_id == customer_id,
                Intent.status.in_((IntentStatus.OPEN, IntentStatus.ACCEPTED)),
                Intent.needed_by <= horizon,
                or_(
                    Intent.needed_by >= today,
                    (Intent.status == IntentStatus.ACCEPTED) & (Intent.recurrence_until >= today),
                ),
            )
            .order_by(Intent.needed_by.asc(), Intent.id.asc())
            .limit(limit)
        ).scalars()
        found = []
        for intent in rows:
            for day in deliveries(intent):
                if not today <= day <= horizon:
                    continue
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                at = max(intent.created_at, start - timedelta(days=DEADLINE_DAYS))
                if since is None or since.at is None or at > since.at:
                    key = f"{kind}-{intent.id}-{day.isoformat()}"
                    found.append(_Raw(kind, at, key, link=_intent_link(intent.id)))
        return sorted(found, key=lambda r: (r.at, r.key), reverse=True)[:limit]
    if kind == INTENT_REVIEW:
        # A standing agreement comes up for review REVIEW_DAYS before its term ends (or when
        # accepted, if later): once, read after, while it is up for review.
        today = now.date()
        standing = session.execute(
            select(Intent, Bid.supplier_id)
            .join(Bid, Bid.id == Intent.accepted_bid_id)
            .where(
                Intent.customer_id == customer_id,
                Intent.status == IntentStatus.ACCEPTED,
                Intent.recurrence_until <= today + timedelta(days=REVIEW_DAYS),
                Intent.recurrence_until >= today - timedelta(days=REVIEW_DAYS),
            )
            .order_by(Intent.recurrence_until.asc(), Intent.id.asc())
            .limit(limit)
        ).all()
        reviews = []
        for agreement, supplier_id in standing:
            span = review_window(agreement)
            if span is None:
                continue
            opens = datetime(span[0].year, span[0].month, span[0].day, tzinfo=UTC)
            at = max(agreement.closed_at or agreement.created_at, opens)
            if since is None or since.at is None or at > since.at:
                link = _intent_link(agreement.id)
                reviews.append(
                    _Raw(
                        kind, at, f"{kind}-{agreement.id}", supplier_id=str(supplier_id), link=link
                    )
                )
        return sorted(reviews, key=lambda r: (r.at, r.key), reverse=True)
    imports = session.execute(
        select(PurchaseImport.id, PurchaseImport.finished_at, PurchaseImport.imported)
        .where(
            PurchaseImport.customer_id == customer_id,
            PurchaseImport.status == PurchaseImportStatus.DONE,
            PurchaseImport.finished_at.is_not(None),
            *_after(PurchaseImport.finished_at, since),
        )
        .order_by(PurchaseImport.finished_at.desc(), PurchaseImport.id.desc())
        .limit(limit)
    ).all()
    return [_Raw(kind, at, f"{kind}-{iid}", count=n) for iid, at, n in imports if at is not None]


def _is_unread(raw: _Raw, seen: _Since) -> bool:
    if raw.seq is not None:
        return raw.seq > seen.seq
    return seen.at is None or raw.at > seen.at


def _named(session: Session, raws: Sequence[_Raw], seen: _Since) -> list[Notification]:
    names = SupplierNames.lookup(session, (r.supplier_id for r in raws if r.supplier_id))
    return [
        Notification(
            kind=r.kind,
            at=r.at,
            key=r.key,
            link=r.link or LINKS[r.kind],
            supplier=names.shown(r.supplier_id) if r.supplier_id else None,
            count=r.count,
            unread=_is_unread(r, seen),
        )
        for r in raws
    ]


def _newest(batches: Iterable[list[_Raw]]) -> list[_Raw]:
    merged = [r for batch in batches for r in batch]
    return sorted(merged, key=lambda r: (r.at, r.key), reverse=True)


def list_notifications(
    session: Session, inst: Instance, customer_id: str, page: int = 1
) -> NotificationPage:
    """One page of the customer's notifications of the kinds they see in the app, newest
    first, each marked read or unread. Pages stop at :data:`MAX_PAGES`."""
    page = max(1, min(page, MAX_PAGES))
    with unit_of_work(session):
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        row = _row(session, customer_id)
        prefs, seen, now = _preferences(row), _seen(row), utcnow()
        want = page * PER_PAGE + 1
        merged = _newest(
            _fetch(session, customer_id, kind, now, None, want)
            for kind in KINDS
            if kind in prefs.in_app
        )
        shown = merged[(page - 1) * PER_PAGE : page * PER_PAGE]
        return NotificationPage(
            _named(session, shown, seen), page, len(merged) > page * PER_PAGE and page < MAX_PAGES
        )


def _count(
    session: Session, customer_id: str, kind: str, now: datetime, since: _Since, cap: int
) -> int:
    if kind in LOG_KINDS:
        # the list's bounded query, counted in the database without fetching the rows
        bounded = _log_query(customer_id, kind, since).limit(cap).subquery()
        return int(session.execute(select(func.count()).select_from(bounded)).scalar_one())
    return len(_fetch(session, customer_id, kind, now, since, cap))


def unread_count(session: Session, customer_id: str, cap: int = COUNT_CAP + 1) -> int:
    """How many notifications the customer has not read, counted up to ``cap`` (one bounded
    query per kind shown in the app)."""
    row = _row(session, customer_id)
    prefs, seen, now = _preferences(row), _seen(row), utcnow()
    total = 0
    for kind in KINDS:
        if kind in prefs.in_app and total < cap:
            total += _count(session, customer_id, kind, now, seen, cap - total)
    return min(total, cap)


def badge(inst: Instance, customer_id: str) -> str | None:
    """The navigation's badge: the unread count ("9+" past :data:`COUNT_CAP`), or None when
    nothing is unread. Read in a short read-only session of its own, so it neither joins nor
    waits for the request's transaction."""
    with inst.sessions() as session:
        begin_snapshot(session)
        count = unread_count(session, customer_id)
    if count == 0:
        return None
    return f"{COUNT_CAP}+" if count > COUNT_CAP else str(count)


def preferences(session: Session, inst: Instance, customer_id: str) -> Preferences:
    """The customer's choices (the defaults when they made none)."""
    with unit_of_work(session):
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        return _preferences(_row(session, customer_id))


# -- changing -----------------------------------------------------------------------------------


def _ensure_row(session: Session, customer_id: str) -> NotificationSettings:
    row = _row(session, customer_id)
    if row is None:
        row = NotificationSettings(
            customer_id=customer_id,
            in_app=" ".join(KINDS),
            digest_kinds=" ".join(KINDS),
            digest=False,
            seen_seq=0,
            digest_seq=0,
        )
        session.add(row)
    return row


def mark_all_read(session: Session, inst: Instance, customer_id: str, ctx: Context) -> None:
    """Everything up to now is read: the watermark moves to now and to this entry's place
    in the log."""
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        row = _ensure_row(session, customer_id)
        entry = ctx.log(
            session, "update", customer_id=customer_id, reason=Reason("notifications.read")
        )
        now = utcnow()
        row.seen_through = now
        row.seen_seq = entry.seq
        row.updated_at = now
        uow.commit()


def validate(raw: PreferencesInput) -> dict[str, str]:
    """Every field's error at once (empty when all is well)."""
    errors: dict[str, str] = {}
    if set(raw.in_app) - set(KINDS):
        errors["in_app"] = "Choose only kinds from the list."
    if set(raw.digest_kinds) - set(KINDS):
        errors["digest_kinds"] = "Choose only kinds from the list."
    elif raw.digest and not raw.digest_kinds:
        errors["digest_kinds"] = "Choose at least one kind for the digest, or turn it off."
    return errors


def _ordered(kinds: Iterable[str]) -> list[str]:
    chosen = set(kinds)
    return [k for k in KINDS if k in chosen]


def change_preferences(
    session: Session, inst: Instance, customer_id: str, raw: PreferencesInput, ctx: Context
) -> bool:
    """Save the choices (logged); False when nothing changed (nothing written). Turning the
    digest on makes sure its recurring job is queued."""
    errors = validate(raw)
    if errors:
        raise ValidationFailed(errors, "Some choices need another look.")
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        wanted = Preferences(frozenset(raw.in_app), frozenset(raw.digest_kinds), raw.digest)
        row = _row(session, customer_id)
        if _preferences(row) == wanted:
            return False
        row = _ensure_row(session, customer_id)
        row.in_app = " ".join(_ordered(wanted.in_app))
        row.digest_kinds = " ".join(_ordered(wanted.digest_kinds))
        row.digest = wanted.digest
        row.updated_at = utcnow()
        if wanted.digest:
            schedule_digest(session)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason(
                "notifications.preferences",
                {
                    "in_app": _ordered(wanted.in_app) or ["none"],
                    "digest": _ordered(wanted.digest_kinds) if wanted.digest else ["off"],
                },
            ),
        )
        uow.commit()
        return True


# -- the e-mail digest --------------------------------------------------------------------------

SIGN_OFF = "\n\n-- \nInfomediary: your profile is yours.\n"
DIGEST_LINES: dict[str, str] = {
    SUPPLIER_READ: "{n} read(s) of your data by suppliers{by}",
    NEW_GRANT: "{n} new consent(s){by}",
    CONSENT_EXPIRING: "{n} consent(s) expiring within 7 days{by}",
    NEW_OFFER: "{n} new offer(s){by}",
    AUDITOR_READ: "{n} look(s) by an auditor at your log entries",
    IMPORT_FINISHED: "{n} purchase import(s) finished",
    NEW_BID: "{n} new bid(s) on your intents{by}",
    INTENT_DUE: "{n} intent(s) needed within 2 days",
    INTENT_REVIEW: "{n} standing agreement(s) ending soon or ended: time to review them{by}",
}


def base_url(inst: Instance) -> str:
    return inst.settings.issuer.rstrip("/") or "http://localhost"


def digest_mail(to: str, site: str, items: Sequence[Notification]) -> mail.Mail:
    """The digest: per kind a count, the suppliers named and the page to see them on. Nothing
    of the profile, only what the customer's own pages show."""
    lines = []
    for kind in KINDS:
        mine = [n for n in items if n.kind == kind]
        if not mine:
            continue
        names = sorted({n.supplier for n in mine if n.supplier})
        by = f" ({', '.join(names)})" if names else ""
        text = DIGEST_LINES[kind].format(n=len(mine), by=by)
        lines.append(f"- {text}:\n  {site}{LINKS[kind]}")
    body = (
        "Here is what happened in your Infomediary account since your last digest:\n\n"
        + "\n".join(lines)
        + f"\n\nSee every notification at {site}{LIST_PATH}. To choose what this e-mail "
        f"tells you, or to stop it, go to {site}{SETTINGS_PATH}." + SIGN_OFF
    )
    return mail.Mail(to, "Your Infomediary notifications", body)


def _digest_items(
    session: Session, customer_id: str, row: NotificationSettings, now: datetime
) -> list[Notification]:
    """Unread notifications of the digest's kinds not in an earlier digest."""
    at = max((t for t in (row.seen_through, row.digest_sent_at) if t is not None), default=None)
    since = _Since(at, max(row.seen_seq, row.digest_seq))
    want = PER_PAGE * MAX_PAGES
    raws = _newest(
        _fetch(session, customer_id, kind, now, since, want)
        for kind in KINDS
        if kind in _kinds(row.digest_kinds)
    )
    return _named(session, raws, since)


def send_digest(
    session: Session, inst: Instance, customer_id: str, ctx: Context, *, now: datetime | None = None
) -> bool:
    """E-mail the customer's digest if they asked for one, their address is confirmed and
    something new is unread; False when nothing is sent. The digest's time and log position
    are recorded (with its entry) before the mail leaves, so nothing is sent twice."""
    now = now or utcnow()
    with unit_of_work(session) as uow:
        customer = session.get(Customer, customer_id)
        row = _row(session, customer_id)
        if customer is None or row is None or not row.digest:
            return False
        items = (
            []
            if customer.verified_at is None or customer.synthetic
            else _digest_items(session, customer_id, row, now)
        )
        row.digest_checked_at = now
        if not items:
            # Only the time it was looked at moves (to the back of the run's queue): what
            # the next digest holds is still bounded by the last one sent.
            uow.commit()
            return False
        key = customer_keys.customer_key(session, inst, customer_id)
        address = str(inst.vault.open(key, "customers", customer_id, "email", customer.email))
        entry = ctx.log(
            session,
            "read",
            customer_id=customer_id,
            categories="account",
            reason=Reason("notifications.digest_sent", {"items": len(items)}),
        )
        row.digest_sent_at = now
        row.digest_seq = entry.seq
        uow.commit()
    try:
        mail.send(inst.settings, digest_mail(address, base_url(inst), items))
    except mail.MailError as exc:
        log.warning("notification digest not sent: %s", exc)
    return True


def due_customers(session: Session, now: datetime, every: timedelta) -> list[str]:
    """Customers with the digest on whose last one is at least ``every`` old, those the run
    looked at longest ago (or never) first: one with nothing to send goes to the back."""
    checked = NotificationSettings.digest_checked_at
    rows = session.execute(
        select(NotificationSettings.customer_id)
        .where(
            NotificationSettings.digest.is_(True),
            (NotificationSettings.digest_sent_at.is_(None))
            | (NotificationSettings.digest_sent_at <= now - every),
        )
        .order_by(checked.is_not(None), checked, NotificationSettings.customer_id)
        .limit(DIGEST_BATCH)
    ).scalars()
    return list(rows)


def send_digests(session: Session, inst: Instance, *, now: datetime | None = None) -> int:
    """One run of the digest: every customer due (up to :data:`DIGEST_BATCH`), each in a
    transaction of its own; how many were e-mailed."""
    now = now or utcnow()
    every = timedelta(seconds=inst.settings.digest_seconds)
    with unit_of_work(session):
        due = due_customers(session, now, every)
    return sum(send_digest(session, inst, cid, by_system(), now=now) for cid in due)


def _job(session: Session, inst: Instance, run: jobs.JobRun) -> datetime:
    send_digests(session, inst, now=run.now)
    poll = min(inst.settings.digest_seconds, DIGEST_POLL_SECONDS)
    return run.now + timedelta(seconds=poll)


jobs.register(JOB, _job, max_attempts=10)


def schedule_digest(session: Session) -> None:
    """Queue the recurring digest job in the caller's transaction, unless it is there (one
    given up or finished is queued again)."""
    row = session.execute(select(Job.id, Job.status).where(Job.key == JOB)).first()
    if row is None:
        jobs.enqueue(session, JOB, {}, utcnow(), key=JOB)
    elif row.status in (JobStatus.FAILED, JobStatus.DONE):
        session.execute(
            update(Job)
            .where(Job.id == row.id)
            .values(status=JobStatus.QUEUED, attempts=0, run_after=utcnow(), locked_until=None)
        )
