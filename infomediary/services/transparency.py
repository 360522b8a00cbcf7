"""Proofs of the access log, for anyone: RFC 9162 inclusion and consistency proofs read from
the stored tree (:class:`infomediary.audit.log.StoredTree`). Read only: a proof request
writes nothing, and names no one (a leaf hash and sibling hashes)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from infomediary.audit.log import StoredTree, tree_size
from infomediary.errors import InvalidProofRequest
from infomediary.services.uow import unit_of_work


@dataclass(frozen=True, slots=True)
class Proof:
    first: int  # the leaf's index, or the older size
    size: int
    nodes: tuple[bytes, ...]


def _number(name: str, raw: object, low: int, high: int) -> int:
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise InvalidProofRequest({name: "a whole number"})
    value = int(raw)
    if not low <= value <= high:
        raise InvalidProofRequest({name: f"from {low} to {high}"})
    return value


def inclusion(session: Session, raw_index: object, raw_size: object) -> Proof:
    """The proof that leaf ``index`` is in the tree of ``size`` leaves (``size`` at most the
    log's size now)."""
    with unit_of_work(session):
        current = tree_size(session)
        size = _number("size", raw_size, 1, max(current, 1))
        if current == 0:
            raise InvalidProofRequest({"size": "the log is empty"})
        index = _number("index", raw_index, 0, size - 1)
        nodes = StoredTree(session).inclusion_proof(index, size)
        return Proof(index, size, tuple(nodes))


def consistency(session: Session, raw_from: object, raw_to: object) -> Proof:
    """The proof that the tree of ``to`` leaves extends the tree of ``from`` leaves."""
    with unit_of_work(session):
        current = tree_size(session)
        if current == 0:
            raise InvalidProofRequest({"to": "the log is empty"})
        second = _number("to", raw_to, 1, current)
        first = _number("from", raw_from, 1, second)
        nodes = StoredTree(session).consistency_proof(first, second)
        return Proof(first, second, tuple(nodes))
