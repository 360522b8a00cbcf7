"""The tamper-evident access log."""

from infomediary.audit.log import (
    Actor,
    LogEvent,
    VerifyResult,
    append,
    canonical_entry,
    leaf_hash,
    verify,
)

__all__ = [
    "Actor",
    "LogEvent",
    "VerifyResult",
    "append",
    "canonical_entry",
    "leaf_hash",
    "verify",
]
