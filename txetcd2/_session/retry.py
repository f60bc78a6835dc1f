"""
What may be retried, and how long to wait before retrying.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from twisted.application.internet import backoffPolicy
from twisted.web.client import ResponseNeverReceived

from txetcd2._transport.exchange import never_sent
from txetcd2._wire.answers import RawResponse, error_for
from txetcd2._wire.errors import EtcdError

#: A retry policy: the number of back-offs taken so far -> seconds to wait.
RetryPolicy = Callable[[int], float]


def default_retry_policy() -> RetryPolicy:
    """
    The default back-off: 0.25 s doubling up to 4 s, plus up to 0.25 s of jitter.

    :returns: a policy built by :func:`twisted.application.internet.backoffPolicy`.
    """
    return backoffPolicy(
        initialDelay=0.25,
        maxDelay=4.0,
        factor=2.0,
        jitter=lambda: random.uniform(0, 0.25),
    )


def check_retry_policy(policy: object) -> RetryPolicy:
    """
    Check that a retry policy is callable.

    :param policy: the candidate.
    :returns: the policy.
    :raises TypeError: when it is not callable.
    """
    if not callable(policy):
        raise TypeError(
            "retry_policy must be a callable taking the attempt number and returning "
            "seconds, like twisted.application.internet.backoffPolicy()"
        )
    return policy


def never_left(error: BaseException) -> bool:
    """
    Tell whether a failed request provably never reached etcd.

    That is the case for connection refused, DNS failures, connect timeouts
    and TLS handshake failures (nothing is sent before the handshake ends).

    :param error: the exception from the HTTP layer (an
        :class:`~txetcd2.EtcdConnectionError`'s ``__cause__``).
    :returns: ``True`` when the request may be sent elsewhere whatever it is.
    """
    if never_sent(error):
        return True
    if isinstance(error, ResponseNeverReceived) and error.reasons:
        return all(_tls_failure(reason.value) for reason in error.reasons)
    return False


def _tls_failure(error: BaseException) -> bool:
    try:
        from OpenSSL.SSL import Error as TLSError
    except ImportError:  # pragma: no cover - pyOpenSSL comes with service-identity
        return False
    return isinstance(error, TLSError)


def server_trouble(raw: RawResponse) -> EtcdError | None:
    """
    Tell whether an answer says the cluster is busy rather than answering.

    5xx answers, among them errorCode 300 (raft internal, request timed out)
    and 301 (leader election), which etcd sends with HTTP 500, are such
    answers: another member, a little later, may do better. Other answers
    are not decoded here (the caller decodes them once).

    :param raw: the answer.
    :returns: the error to report, or ``None`` for a real answer.
    """
    if raw.status < 500:
        return None
    return error_for(raw)
