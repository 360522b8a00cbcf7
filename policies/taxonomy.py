"""The data-category taxonomy shared by the vault, the dashboard, policies and the broker.

Category keys are ours and short (they appear in OAuth scopes such as
``profile.identity:read``); each carries the matching fideslang data-category label so an
auditor can map them onto a standard vocabulary. Special categories are those of GDPR
Art. 9: they are never released in identified form without an explicit per-supplier rule.
*Explicit* categories (the postal district) are released only by a rule that names them: a
``"*"`` rule can deny them but never releases them, so no template and no broad rule turns
them on. A category that *refines* another (the postal district refines demographics) is a
finer view of the same data: whoever uses it learns the coarser one too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    """A data category: what kind of personal data a field or tag is."""

    key: str
    label: str
    description: str
    fideslang: str
    special: bool = False
    #: Released only by a rule naming it: ``"*"`` may deny it, never release it.
    explicit: bool = False
    #: The coarser category this one is a finer view of (its use reveals that one too).
    refines: str | None = None


@dataclass(frozen=True, slots=True)
class InterestTag:
    """An interest a customer may declare; ``category`` says what it reveals."""

    key: str
    label: str
    category: str


_CATEGORY_LIST: tuple[Category, ...] = (
    Category("identity", "Identity", "Your name, email, phone and postal address.", "user.contact"),
    Category(
        "demographics",
        "Demographics",
        "Your age band, region and household size (never your exact birth date or address).",
        "user.demographic",
    ),
    Category(
        "district",
        "Postal district",
        "The first two digits of your postcode, for anonymous counts only, and only if you "
        "said yes.",
        "user.location.imprecise",
        explicit=True,
        refines="demographics",
    ),
    Category("interests", "Interests", "Topics you told us you like.", "user.behavior"),
    Category(
        "purchases",
        "Purchases",
        "Orders imported from retailers.",
        "user.behavior.purchase_history",
    ),
    Category(
        "preferences",
        "Preferences",
        "How and how often you want to be contacted.",
        "user.behavior.preferences",
    ),
    Category(
        "account",
        "Account",
        "Your login and its security settings (never your password itself).",
        "user.account",
    ),
    Category(
        "health",
        "Health",
        "Interests that reveal health or medical information.",
        "user.health_and_medical",
        special=True,
    ),
    Category(
        "religion",
        "Religion",
        "Interests that reveal religious or philosophical beliefs.",
        "user.demographic.religious_belief",
        special=True,
    ),
    Category(
        "politics",
        "Politics",
        "Interests that reveal political opinions.",
        "user.demographic.political_opinion",
        special=True,
    ),
    Category(
        "sexuality",
        "Sexuality",
        "Interests that reveal sex life or sexual orientation.",
        "user.demographic.sexual_orientation",
        special=True,
    ),
    Category(
        "ethnicity",
        "Ethnicity",
        "Interests that reveal racial or ethnic origin.",
        "user.demographic.race_ethnicity",
        special=True,
    ),
    Category("biometrics", "Biometrics", "Biometric identifiers.", "user.biometric", special=True),
)

CATEGORIES: dict[str, Category] = {c.key: c for c in _CATEGORY_LIST}

_TAG_LIST: tuple[InterestTag, ...] = (
    InterestTag("books", "Books", "interests"),
    InterestTag("travel", "Travel", "interests"),
    InterestTag("cooking", "Cooking", "interests"),
    InterestTag("gardening", "Gardening", "interests"),
    InterestTag("music", "Music", "interests"),
    InterestTag("film", "Film and TV", "interests"),
    InterestTag("sport", "Sport", "interests"),
    InterestTag("outdoors", "Outdoors and camping", "interests"),
    InterestTag("fitness", "Fitness", "interests"),
    InterestTag("fashion", "Fashion", "interests"),
    InterestTag("technology", "Technology", "interests"),
    InterestTag("gaming", "Gaming", "interests"),
    InterestTag("pets", "Pets", "interests"),
    InterestTag("parenting", "Parenting", "interests"),
    InterestTag("home-improvement", "Home improvement", "interests"),
    InterestTag("cars", "Cars", "interests"),
    InterestTag("wine", "Wine", "interests"),
    InterestTag("coffee", "Coffee", "interests"),
    InterestTag("art", "Art and design", "interests"),
    InterestTag("finance", "Personal finance", "interests"),
    InterestTag("vegetarian", "Vegetarian food", "interests"),
    InterestTag("diabetes-care", "Diabetes care", "health"),
    InterestTag("mental-health", "Mental health", "health"),
    InterestTag("pregnancy", "Pregnancy", "health"),
    InterestTag("faith", "Faith and spirituality", "religion"),
    InterestTag("halal-food", "Halal food", "religion"),
    InterestTag("kosher-food", "Kosher food", "religion"),
    InterestTag("political-activism", "Political activism", "politics"),
    InterestTag("lgbtq-community", "LGBTQ+ community", "sexuality"),
    InterestTag("cultural-heritage", "Cultural heritage groups", "ethnicity"),
)

INTEREST_TAGS: dict[str, InterestTag] = {t.key: t for t in _TAG_LIST}


def category(key: str) -> Category:
    """Return the category ``key`` or raise :class:`KeyError` naming it."""
    try:
        return CATEGORIES[key]
    except KeyError:
        raise KeyError(f"unknown data category: {key!r}") from None


def interest_tag(key: str) -> InterestTag:
    """Return the interest tag ``key`` or raise :class:`KeyError` naming it."""
    try:
        return INTEREST_TAGS[key]
    except KeyError:
        raise KeyError(f"unknown interest tag: {key!r}") from None


def categories_of_interests(tags: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    """The data categories a set of interest tags reveals (``interests`` plus any special)."""
    return frozenset(interest_tag(t).category for t in tags)


# Australian postcode ranges (Australia Post). Order matters: the ACT and NT carve-outs
# come before the state ranges that surround them.
_REGION_RANGES: tuple[tuple[int, int, str], ...] = (
    (200, 299, "ACT"),
    (2600, 2618, "ACT"),
    (2900, 2920, "ACT"),
    (800, 999, "NT"),
    (1000, 2999, "NSW"),
    (3000, 3999, "VIC"),
    (8000, 8999, "VIC"),
    (4000, 4999, "QLD"),
    (9000, 9999, "QLD"),
    (5000, 5999, "SA"),
    (6000, 6999, "WA"),
    (7000, 7999, "TAS"),
)

REGIONS: tuple[str, ...] = ("ACT", "NSW", "NT", "QLD", "SA", "TAS", "VIC", "WA")

AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def region_for_postcode(postcode: str) -> str | None:
    """Coarsen a four-digit Australian postcode to its state or territory."""
    if len(postcode) != 4 or not postcode.isdigit():
        return None
    number = int(postcode)
    for low, high, region in _REGION_RANGES:
        if low <= number <= high:
            return region
    return None


def age_band(birth_year: int, current_year: int) -> str | None:
    """Coarsen a birth year to an age band; ``None`` below 13 (no profiles for children)."""
    age = current_year - birth_year
    if age < 13:
        return None
    for band in AGE_BANDS[:-1]:
        low, high = (int(part) for part in band.split("-"))
        if low <= age <= high:
            return band
    return AGE_BANDS[-1]
