"""
The set-up the recipes' unit tests share: clients over the in-memory etcd
of :mod:`tests._recipes_etcd`, one Clock for client, recipes and TTLs, and a
teardown asserting that nothing is left running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._recipes_etcd import WritableEtcd
from txetcd2 import EtcdClient

_T = TypeVar("_T")


class RecipeTestCase(SynchronousTestCase):
    """
    Clients over one in-memory etcd, a Clock, and cleanups run before the
    final checks (no DelayedCall, no open connection, no open watch).
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.etcd = WritableEtcd(self.clock)
        self.agent = RequestTraversalAgent(self.etcd)
        self.etcd.pump = self.agent.flush
        self.clients: list[EtcdClient] = []
        self.stops: list[Callable[[], Deferred[Any]]] = []

    def client(self, host: str = "h1:2379") -> EtcdClient:
        """
        A client over the in-memory etcd, reaching it as ``host``.
        """
        client = EtcdClient(
            f"http://{host}", reactor=self.clock, agent=self.agent, timeout=2.0, max_retries=0
        )
        self.clients.append(client)
        return client

    def tearDown(self) -> None:
        for stop in reversed(self.stops):
            stopping = stop()
            self.settle()
            self.successResultOf(stopping)
        for client in self.clients:
            self.successResultOf(client.close())
        self.settle()
        self.etcd.stop_timers()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        pumps = self.agent._pumps  # treq keeps its pumps private
        self.assertEqual(
            [p for p in pumps if not (p.clientIO.disconnected and p.serverIO.disconnected)], []
        )
        self.assertEqual(self.etcd.watches, [])

    def settle(self) -> None:
        """
        Move every byte between clients and server and run what is due now.
        """
        for _ in range(30):
            self.agent.flush()
            self.clock.advance(0)

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """
        Move the clock by ``seconds`` in steps, settling after each.
        """
        left = seconds
        while left > 1e-9:
            move = min(step, left)
            self.clock.advance(move)
            self.settle()
            left -= move

    def result(self, d: Deferred[_T]) -> _T:
        """
        Settle, then return ``d``'s result.
        """
        self.settle()
        return self.successResultOf(d)

    def watch_paths(self) -> list[str]:
        """
        The paths of every watch request received, in order.
        """
        return [path for _, path, query in self.etcd.requests if query.get("wait") == "true"]
