"""
Shared set-up for integration tests: a real etcd and a client for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txetcd2 import EtcdClient
from txetcd2.testing import EtcdCluster, start_etcd


class EtcdTestCase(TestCase):
    """
    Starts a real etcd (``size`` members) and a client for it before each test.
    """

    size = 1
    timeout = 120

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self.cluster: EtcdCluster = await start_etcd(self, self.size, reactor=reactor)
        self.client = self.make_client()

    def make_client(self, **kwargs: object) -> EtcdClient:
        """
        Build a client for the cluster, closed at cleanup.

        :param kwargs: more client options.
        :returns: the client.
        """
        client = EtcdClient(self.cluster.client_urls, reactor=reactor, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        return client


async def eventually(
    check: Callable[[], Awaitable[bool]], deadline: float = 15.0, every: float = 0.05
) -> None:
    """
    Poll ``check`` until it returns true, failing after ``deadline`` seconds.

    :param check: an async predicate.
    :param deadline: seconds before giving up.
    :param every: seconds between polls.
    :raises AssertionError: when the deadline passes.
    """
    start = reactor.seconds()
    while not await check():
        if reactor.seconds() - start > deadline:
            raise AssertionError(f"condition not met within {deadline}s")
        await deferLater(reactor, every)
