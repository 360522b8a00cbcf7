"""Reading the customer's policy: sealed under their data key, the default template when they have
none.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from infomediary.instance import Instance
from infomediary.models import (
    CustomerPolicy,
)
from infomediary.services.customer_keys import customer_key
from policies.codec import policy_from_dict
from policies.model import (
    Policy,
)
from policies.templates import load_template

DEFAULT_TEMPLATE = "balanced"


def load_policy(session: Session, inst: Instance, customer_id: str) -> Policy:
    row = session.get(CustomerPolicy, customer_id)
    if row is None:
        return load_template(DEFAULT_TEMPLATE)
    key = customer_key(session, inst, customer_id)
    return policy_from_dict(
        inst.vault.open(key, "customer_policies", customer_id, "policy", row.policy)
    )
