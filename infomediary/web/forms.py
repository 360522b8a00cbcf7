"""Form vocabularies that several pages share: the expiry a customer can choose for a consent."""

from __future__ import annotations

EXPIRY_CHOICES = {
    "30d": ("30 days", 30),
    "90d": ("90 days", 90),
    "365d": ("1 year", 365),
    "never": ("until I revoke it", None),
}
