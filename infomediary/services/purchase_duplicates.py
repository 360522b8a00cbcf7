"""Possible duplicates: lines of one order that came through two sources (a retailer's file
and an order e-mail, say), shown to the customer to merge or to mark as different.

The lines of an order are found by their ``order_token`` (rows imported before it existed
have none and are never grouped). An order is a candidate when its visible lines came from
imports of at least two formats and the customer has not said its lines are different
(``purchase_order_reviews``). Within it, a line of one format is paired with a line of
another that is plausibly the same product: the same product id when both have one, else
the same normalised name or one contained in the other (NFKC, case and spacing folded), and
the same quantity and unit price where both are known. Each line is in at most one pair;
lines with no counterpart are not shown. The line kept by default is the richer one (more
of product id, category and price present), else the one imported first.

Merging deletes the other line of each pair, fills what the kept line lacks (product id,
category, price) from it by sealing the kept record again, re-derives the interests the
customer's purchases suggest from the lines left, and logs one entry, in one unit of work.
A line merged away is gone like a deleted one: importing its source again brings it back.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.crypto.vault import CustomerKey
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Purchase, PurchaseImport, PurchaseImportStatus, PurchaseOrderReview
from infomediary.services import Context, derived_interests
from infomediary.services.customer_keys import customer_key, seal_detail
from infomediary.services.purchases import CATEGORIES, LINES, held_lines
from infomediary.services.uow import unit_of_work

#: The fields a kept line takes from the line merged into it when it lacks them.
FILLED = ("product_id", "category")
_NO_GROUP = "No such possible duplicates."


@dataclass(frozen=True, slots=True)
class DuplicateLine:
    """One line of a pair, opened for display, with the import it came from."""

    id: str
    import_id: str
    format: str
    imported_at: datetime
    record: dict[str, Any]

    @property
    def richness(self) -> int:
        present = [self.record.get("product_id"), self.record.get("category")]
        present.append(self.record.get("unit_price_minor"))
        return sum(value not in (None, "") for value in present)


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two lines of one order from two sources; ``keep`` is the id kept by default."""

    first: DuplicateLine
    second: DuplicateLine
    keep: str

    @property
    def lines(self) -> tuple[DuplicateLine, DuplicateLine]:
        return self.first, self.second

    def other(self, line_id: str) -> DuplicateLine:
        return self.second if line_id == self.first.id else self.first


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """One order's possible duplicates: the order (opened for display only) and its pairs."""

    order_token: bytes
    retailer: str
    order_id: str
    ordered_at: str
    pairs: tuple[DuplicatePair, ...]


# -- which lines are the same product ----------------------------------------------------------
def normalised(text: str | None) -> str:
    """NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def _known(value: Any) -> bool:
    return value is not None and value != ""


def _same_product(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How strongly two lines look like one product: 3 same id, 2 same name, 1 one name in
    the other, 0 not the same."""
    for field in ("quantity", "unit_price_minor", "currency"):
        if _known(a.get(field)) and _known(b.get(field)) and a[field] != b[field]:
            return 0
    if _known(a.get("product_id")) and _known(b.get("product_id")):
        return 3 if normalised(a["product_id"]) == normalised(b["product_id"]) else 0
    name_a, name_b = normalised(a.get("product_name")), normalised(b.get("product_name"))
    if not name_a or not name_b:
        return 0
    if name_a == name_b:
        return 2
    return 1 if name_a in name_b or name_b in name_a else 0


def _default_keep(a: DuplicateLine, b: DuplicateLine) -> str:
    if a.richness != b.richness:
        return a.id if a.richness > b.richness else b.id
    return min((a, b), key=lambda line: (line.imported_at, line.import_id, line.id)).id


def _pairs(lines: Sequence[DuplicateLine]) -> tuple[DuplicatePair, ...]:
    """A one-to-one pairing of the lines of one order across formats, strongest first."""
    ordered = sorted(lines, key=lambda line: (line.imported_at, line.import_id, line.id))
    candidates = []
    for i, a in enumerate(ordered):
        for j in range(i + 1, len(ordered)):
            b = ordered[j]
            if a.format == b.format or a.import_id == b.import_id:
                continue
            strength = _same_product(a.record, b.record)
            if strength:
                candidates.append((-strength, i, j))
    used: set[int] = set()
    found = []
    for _, i, j in sorted(candidates):
        if i in used or j in used:
            continue
        used.update((i, j))
        a, b = ordered[i], ordered[j]
        found.append(DuplicatePair(a, b, _default_keep(a, b)))
    found.sort(key=lambda pair: (pair.first.record.get("line_number", 0), pair.first.id))
    return tuple(found)


# -- reading -----------------------------------------------------------------------------------
def _lines_of_candidates(
    session: Session, inst: Instance, key: CustomerKey, only: bytes | None = None
) -> dict[bytes, list[DuplicateLine]]:
    """The visible lines of the customer's unreviewed orders seen in two formats or more."""
    customer_id = key.customer_id
    visible = (
        select(Purchase.order_token)
        .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
        .where(
            Purchase.customer_id == customer_id,
            PurchaseImport.status == PurchaseImportStatus.DONE,
            Purchase.order_token.is_not(None),
        )
    )
    if only is not None:
        visible = visible.where(Purchase.order_token == only)
    reviewed = select(PurchaseOrderReview.order_token).where(
        PurchaseOrderReview.customer_id == customer_id
    )
    orders = (
        visible.where(Purchase.order_token.not_in(reviewed))
        .group_by(Purchase.order_token)
        .having(func.count(distinct(PurchaseImport.format)) > 1)
    )
    query = (
        select(Purchase, PurchaseImport.format, PurchaseImport.created_at)
        .join(PurchaseImport, PurchaseImport.id == Purchase.import_id)
        .where(
            Purchase.customer_id == customer_id,
            PurchaseImport.status == PurchaseImportStatus.DONE,
            Purchase.order_token.in_(orders),
        )
    )
    found: dict[bytes, list[DuplicateLine]] = defaultdict(list)
    for row, format_name, created_at in session.execute(query):
        if row.order_token is None:  # pragma: no cover - the query selects only these
            continue
        record = inst.vault.open(key, LINES, row.id, "record", row.sealed)
        found[row.order_token].append(
            DuplicateLine(row.id, row.import_id, format_name, created_at, record)
        )
    return found


def _groups(
    session: Session, inst: Instance, key: CustomerKey, only: bytes | None = None
) -> list[DuplicateGroup]:
    groups = []
    for token, lines in _lines_of_candidates(session, inst, key, only).items():
        pairs = _pairs(lines)
        if not pairs:
            continue
        first = pairs[0].first.record
        groups.append(
            DuplicateGroup(
                order_token=token,
                retailer=str(first.get("retailer", "")),
                order_id=str(first.get("order_id", "")),
                ordered_at=str(first.get("ordered_at", ""))[:10],
                pairs=pairs,
            )
        )
    groups.sort(key=lambda group: (group.ordered_at, group.order_id), reverse=True)
    return groups


def possible_duplicates(
    session: Session, inst: Instance, customer_id: str, *, ctx: Context | None = None
) -> list[DuplicateGroup]:
    """The customer's possible duplicates, newest order first. With ``ctx`` the reading is
    logged (the page that shows them); without, nothing is written (a count on a page whose
    own reading is logged)."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        groups = _groups(session, inst, key)
        if ctx is not None:
            ctx.log(
                session,
                "read",
                customer_id=customer_id,
                reason=Reason("purchases.duplicates_viewed"),
                categories=CATEGORIES,
            )
            uow.commit()
        return groups


def _group(session: Session, inst: Instance, key: CustomerKey, token: bytes) -> DuplicateGroup:
    if not isinstance(token, bytes) or len(token) != 32:
        raise NotFound(_NO_GROUP)
    found = _groups(session, inst, key, token)
    if not found:
        raise NotFound(_NO_GROUP)
    return found[0]


# -- merging and dismissing --------------------------------------------------------------------
def _filled(kept: dict[str, Any], removed: dict[str, Any]) -> dict[str, Any]:
    record = dict(kept)
    for field in FILLED:
        if not _known(record.get(field)) and _known(removed.get(field)):
            record[field] = removed[field]
    if not _known(record.get("unit_price_minor")) and _known(removed.get("unit_price_minor")):
        record["unit_price_minor"] = removed["unit_price_minor"]
        record["currency"] = removed.get("currency")
    return record


def _choices(
    group: DuplicateGroup, keep: Iterable[str]
) -> list[tuple[DuplicateLine, DuplicateLine]]:
    """Per pair, the line kept and the line removed; NotFound for an id of no pair."""
    wanted = set(keep)
    by_id = {line.id: pair for pair in group.pairs for line in pair.lines}
    if wanted - by_id.keys():
        raise NotFound(_NO_GROUP)
    choices = []
    for pair in group.pairs:
        chosen = [line for line in pair.lines if line.id in wanted]
        if len(chosen) > 1:
            message = "Keep one line of each pair, or say the lines are different."
            raise ValidationFailed({"keep": message}, message)
        kept = chosen[0] if chosen else next(ln for ln in pair.lines if ln.id == pair.keep)
        choices.append((kept, pair.other(kept.id)))
    return choices


def merge(
    session: Session,
    inst: Instance,
    ctx: Context,
    customer_id: str,
    order_token: bytes,
    keep: Sequence[str],
) -> int:
    """Merge the pairs of one of the customer's orders: per pair the line in ``keep`` (else
    the default) stays, filled from the other, which is deleted. Returns the lines deleted."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        group = _group(session, inst, key, order_token)
        choices = _choices(group, keep)
        removed = [gone.id for _, gone in choices]
        deleted = session.execute(
            delete(Purchase)
            .where(
                Purchase.id.in_(removed),
                Purchase.customer_id == customer_id,
                Purchase.order_token == order_token,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(deleted, "rowcount", 0) != len(removed):
            raise NotFound(_NO_GROUP)  # changed meanwhile: roll back, nothing merged
        for kept, gone in choices:
            record = _filled(kept.record, gone.record)
            if record != kept.record:
                row = session.get(Purchase, kept.id)
                if row is None or row.customer_id != customer_id:
                    raise NotFound(_NO_GROUP)
                row.sealed = inst.vault.seal(key, LINES, kept.id, "record", record)
        session.flush()
        derived_interests.recompute(session, inst, key, held_lines(session, inst, key))
        ctx.log(
            session,
            "delete",
            customer_id=customer_id,
            reason=Reason("purchases.duplicates_merged", {"lines": len(removed)}),
            categories=CATEGORIES,
            detail=seal_detail(
                inst,
                key,
                {"kept": [kept.id for kept, _ in choices], "deleted": removed},
            ),
        )
        uow.commit()
        return len(removed)


def dismiss(
    session: Session, inst: Instance, ctx: Context, customer_id: str, order_token: bytes
) -> None:
    """Record that the lines of one of the customer's orders are not duplicates: its
    group is no longer shown (NotFound for an order that is not one of their groups)."""
    with unit_of_work(session) as uow:
        key = customer_key(session, inst, customer_id)
        group = _group(session, inst, key, order_token)
        session.add(PurchaseOrderReview(customer_id=customer_id, order_token=group.order_token))
        try:
            session.flush()
        except IntegrityError:  # dismissed meanwhile, by another request: rolled back
            raise NotFound(_NO_GROUP) from None
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("purchases.duplicates_kept_apart", {"pairs": len(group.pairs)}),
            categories=CATEGORIES,
            detail=seal_detail(
                inst, key, {"lines": [line.id for pair in group.pairs for line in pair.lines]}
            ),
        )
        uow.commit()
