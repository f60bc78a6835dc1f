"""
The marker of a ``default=`` parameter that was not given.
"""

from typing import Any


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: "No default given": a missing key then fails with ``KeyNotFound``.
MISSING: Any = _Missing()
