"""
The default reactor, for callers that did not inject one.
"""

from __future__ import annotations

import importlib
from typing import Any


def default_reactor() -> Any:
    """
    Return the global reactor, installing the default one if needed.

    Only used when an application does not pass ``reactor=``; library code
    and tests always inject theirs.

    :returns: the global reactor.
    """
    return importlib.import_module("twisted.internet.reactor")
