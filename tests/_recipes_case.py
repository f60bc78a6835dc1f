"""
The set-up the recipes' unit tests share: clients on the public in-memory
etcd (:class:`txetcd2.testing.MemoryEtcd`, three members), one Clock for
client, recipes and TTLs, an observer client on the third member (what etcd
holds, writes by "someone else"), and a teardown asserting that nothing is
left running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdClient, EtcdNode, EtcdResponse, KeyNotFound
from txetcd2.testing import MemoryEtcd, MemoryMember

_T = TypeVar("_T")


class RecipeTestCase(SynchronousTestCase):
    """
    Clients on one in-memory etcd, a Clock, and cleanups run before the
    final checks (no DelayedCall, no open connection, no open watch).

    The recipes' clients talk to the first member (or the second, for a
    second site); the observer (:attr:`other`) to the third, which the tests
    never break.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clients: list[EtcdClient] = []
        self.stops: list[Callable[[], Deferred[Any]]] = []
        self.new_etcd()

    def new_etcd(self, **options: Any) -> None:
        """
        Start on a fresh :class:`MemoryEtcd` (``options``: its ``history``,
        ``index``...), before any recipe client is made.
        """
        self.etcd = MemoryEtcd(self.clock, members=3, **options)
        self.other = self.etcd.client(endpoints=[self.etcd.urls[2]], timeout=2.0, max_retries=0)

    def member(self, number: int = 0) -> MemoryMember:
        """
        The member that :meth:`client` ``(number)`` talks to.
        """
        return self.etcd.members[number]

    def client(self, member: int = 0) -> EtcdClient:
        """
        A client on the in-memory etcd, talking to member ``member`` (0 or 1) only.
        """
        client = self.etcd.client(endpoints=[self.etcd.urls[member]], timeout=2.0, max_retries=0)
        self.clients.append(client)
        return client

    def tearDown(self) -> None:
        for stop in reversed(self.stops):
            stopping = stop()
            self.settle()
            self.successResultOf(stopping)
        closing = [client.close() for client in [*self.clients, self.other]]
        self.settle()
        for closed in closing:
            self.successResultOf(closed)
        self.assertEqual(self.etcd.open_connections(), [])
        self.assertEqual(self.etcd.watches, [])
        self.etcd.close()  # the keys' TTL timer
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def settle(self) -> None:
        """
        Move every byte between clients and server and run what is due now.
        """
        for _ in range(30):
            self.etcd.kick()
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
        return [r.path for r in self.etcd.requests if r.is_watch]

    def refreshes(self) -> int:
        """
        How many TTL refreshes etcd received.
        """
        return sum(1 for r in self.etcd.requests if r.form.get("refresh") == "true")

    # -- what etcd holds, through the observer ---------------------------------------

    def set(self, key: str, value: str) -> int:
        """
        Set a key as someone else would (through the observer).

        :returns: the change's index.
        """
        return self.result(self.other.set(key, value)).index

    def delete(self, key: str) -> int:
        """
        Delete a key, or a directory with everything below it, as someone else would.

        :returns: the change's index.
        """
        deleted = self.result(self.other.delete(key, recursive=True))
        assert deleted is not None
        return deleted.index

    def node(self, key: str) -> EtcdNode | None:
        """
        The node at ``key`` (``None`` when there is none).
        """
        return self._read(self.other.get(key))

    def value(self, key: str) -> str | None:
        """
        The value at ``key`` (``None`` when there is none).
        """
        node = self.node(key)
        return None if node is None else node.value

    def keys_below(self, directory: str) -> list[str]:
        """
        The keys directly below ``directory``, in order (in-order keys: by index).
        """
        node = self._read(self.other.get(directory, sorted=True))
        return [] if node is None else [n.key for n in node.nodes if not n.dir]

    def values_below(self, directory: str) -> dict[str, str]:
        """
        Every key below ``directory`` (at any depth) with its value.
        """
        node = self._read(self.other.get(directory, recursive=True))
        return {} if node is None else node.leaves()

    def _read(self, reading: Deferred[EtcdResponse]) -> EtcdNode | None:
        self.settle()
        outcome: list[Any] = []
        reading.addBoth(outcome.append)
        self.assertEqual(len(outcome), 1, "the observer's read was not answered")
        if isinstance(outcome[0], Failure):
            outcome[0].trap(KeyNotFound)
            return None
        node: EtcdNode = outcome[0].node
        return node
