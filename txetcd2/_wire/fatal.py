"""
Which errors retrying cannot fix.

A watcher, a hub, a leader election and a service registration that meet
one of these give up (and say so) rather than retry forever: the client was
closed, or its configuration and the cluster's disagree.
"""

from __future__ import annotations

from txetcd2._wire.auth_models import InsufficientCredentials
from txetcd2._wire.errors import (
    ClientClosed,
    EtcdClusterMismatch,
    EtcdError,
    EtcdTLSError,
    EtcdV2Disabled,
    Unauthorized,
)

#: Errors retrying cannot fix.
FATAL_ERRORS: tuple[type[EtcdError], ...] = (
    EtcdV2Disabled,
    EtcdTLSError,
    Unauthorized,
    InsufficientCredentials,
    EtcdClusterMismatch,
    ClientClosed,
)


def is_fatal(error: BaseException) -> bool:
    """
    Tell whether retrying cannot fix an error.

    :param error: what a request raised.
    :returns: ``True`` for a configuration error (v2 disabled, a TLS
        verification failure, rejected credentials, a member of another
        cluster) or a closed client; ``False`` for trouble that passes
        (a member down, a timeout, an election, an odd answer).
    """
    return isinstance(error, FATAL_ERRORS)
