"""Pure policy core: the data-category taxonomy, the policy model, evaluator and templates.

Nothing here imports Flask or :mod:`infomediary`; the web app depends on this package,
never the other way round.
"""

from policies.codec import policy_from_dict, policy_to_dict
from policies.engine import evaluate
from policies.model import (
    PURPOSES,
    WILDCARD,
    AccessRequest,
    CategoryVerdict,
    Decision,
    Mode,
    Policy,
    Recipient,
    RecipientKind,
    Rule,
    Verdict,
)
from policies.taxonomy import (
    CATEGORIES,
    INTEREST_TAGS,
    Category,
    InterestTag,
    age_band,
    category,
    interest_tag,
    region_for_postcode,
)
from policies.templates import (
    TEMPLATES,
    load_template,
    template_description,
    template_title,
)
from policies.validation import describe_rule, validate_policy

__all__ = [
    "CATEGORIES",
    "INTEREST_TAGS",
    "PURPOSES",
    "TEMPLATES",
    "WILDCARD",
    "AccessRequest",
    "Category",
    "CategoryVerdict",
    "Decision",
    "InterestTag",
    "Mode",
    "Policy",
    "Recipient",
    "RecipientKind",
    "Rule",
    "Verdict",
    "age_band",
    "category",
    "describe_rule",
    "evaluate",
    "interest_tag",
    "load_template",
    "policy_from_dict",
    "policy_to_dict",
    "region_for_postcode",
    "template_description",
    "template_title",
    "validate_policy",
]
