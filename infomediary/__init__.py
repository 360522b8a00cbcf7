"""Infomediary: customers own their profile and broker it to suppliers on their own terms.

Importing the package (or any pure submodule, such as an offline log verifier) loads neither
Flask nor SQLAlchemy: ``create_app`` is resolved on first use (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infomediary.app import create_app

try:
    __version__ = version("infomediary")
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from infomediary.app import create_app

        return create_app
    raise AttributeError(f"module 'infomediary' has no attribute {name!r}")
