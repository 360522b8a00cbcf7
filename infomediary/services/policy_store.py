"""Reading the customer's policy: sealed under their data key, the default template when they have
none.

A sealed policy is opened once per process and version: :data:`OPENED` keeps the last policies
opened, keyed by the customer, the data key that seals them and the ciphertext itself. Every save
seals afresh under a new random nonce, so the ciphertext read in the request's own query is the
version counter: a changed policy is a new key, and the very next call opens it. A key that
matches gives exactly what opening would (the same data key, the same ciphertext).
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import (
    CustomerPolicy,
    DataKey,
)
from infomediary.services.customer_keys import customer_key
from policies.codec import policy_from_dict
from policies.model import (
    Policy,
)
from policies.templates import load_template

DEFAULT_TEMPLATE = "balanced"
#: Opened policies a process keeps (least recently used first out).
OPENED_LIMIT = 2048


class _Opened:
    """A bounded, thread-safe map of opened policies (gunicorn threads share a process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[object, ...], Policy] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[object, ...]) -> Policy | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], policy: Policy) -> None:
        with self._lock:
            self._items[key] = policy
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


OPENED = _Opened(OPENED_LIMIT)


def load_policy(session: Session, inst: Instance, customer_id: str) -> Policy:
    return open_policy(session, inst, customer_id, session.get(CustomerPolicy, customer_id))


def open_policy(
    session: Session, inst: Instance, customer_id: str, row: CustomerPolicy | None
) -> Policy:
    """The policy ``row`` seals (the customer's row, already read), or the default template."""
    if row is None:
        return load_template(DEFAULT_TEMPLATE)
    data_key = session.get(DataKey, customer_id)
    version: tuple[object, ...] = (
        customer_id,
        (data_key.dek_version, data_key.kek_version, data_key.wrapped_key) if data_key else None,
        bytes(row.policy),
    )
    found = OPENED.get(version)
    if found is not None:
        return found
    key = customer_key(session, inst, customer_id)
    policy = policy_from_dict(
        inst.vault.open(key, "customer_policies", customer_id, "policy", row.policy)
    )
    OPENED.put(version, policy)
    return policy
