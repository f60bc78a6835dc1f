"""
Twisted's persistent connection pool, configured for etcd and made quiet.

Twisted's ``_HTTP11ClientFactory`` logs "Starting factory" and "Stopping
factory" at info level for every new connection: hundreds of lines for a
burst of requests, none of them news to a person. The pool built here uses a
factory that does not.
"""

from __future__ import annotations

from typing import Any

from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietFactory(_HTTP11ClientFactory):
    """
    An HTTP/1.1 client factory that does not log its start and stop.
    """

    noisy = False


def quiet_pool(reactor: Any, per_member: int) -> HTTPConnectionPool:
    """
    A persistent pool that keeps ``per_member`` idle connections per member,
    never retries a request by itself (the session decides), and logs nothing
    per connection.

    :param reactor: the reactor.
    :param per_member: idle connections kept per member.
    :returns: the pool.
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = per_member
    pool.retryAutomatically = False
    pool._factory = _QuietFactory
    return pool
