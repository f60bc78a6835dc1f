"""
Testing your own code with txetcd2's in-memory etcd: a complete trial test module.

``Registry`` below stands for your code: it registers a service under ``/services/<name>``
with a TTL and keeps it alive with a ``LoopingCall`` of ``refresh``. The tests drive it
against :class:`txetcd2.testing.MemoryEtcd` through :func:`txetcd2.testing.memory_etcd`: no
etcd process, no network, no sleeping; time is a ``Clock`` you move by hand, and members can
be broken on purpose. Only the public API is used.

Run: python -m twisted.trial examples/test_with_memory_etcd.py
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdClient, EtcdError, KeyNotFound
from txetcd2.testing import memory_etcd


class Registry:
    """
    Your code: keeps ``/services/<name>`` = ``address`` alive with a TTL.

    :param client: the etcd client.
    :param clock: the clock of the refresh loop.
    """

    def __init__(self, client: EtcdClient, clock: Any, name: str, address: str) -> None:
        self.client = client
        self.key = f"/services/{name}"
        self.address = address
        self.ttl = 10
        self.failures: list[Failure] = []
        self._loop = LoopingCall(self._refresh)
        self._loop.clock = clock

    def start(self) -> Deferred[None]:
        """
        Register, then refresh every third of the TTL.
        """

        def registered(_: object) -> None:
            self._loop.start(self.ttl / 3, now=False)

        return self.client.set(self.key, self.address, ttl=self.ttl).addCallback(registered)

    def _refresh(self) -> Deferred[None]:
        def failed(failure: Failure) -> None:
            failure.trap(EtcdError)
            self.failures.append(failure)

        return self.client.refresh(self.key, self.ttl).addCallbacks(lambda _: None, failed)

    def stop(self) -> None:
        """
        Stop refreshing (the key then expires on its own).
        """
        if self._loop.running:
            self._loop.stop()


def services(client: EtcdClient) -> Deferred[dict[str, str]]:
    """
    Your other code: every registered service's address by key.
    """
    return client.get("/services", recursive=True).addCallback(lambda r: r.node.leaves())


class RegistryTests(SynchronousTestCase):
    """
    The registry against an in-memory etcd: every call answers at once, time is a Clock.
    """

    def setUp(self) -> None:
        # One call: a MemoryEtcd, a client on it, and the cleanup that closes both.
        self.etcd, self.client = memory_etcd(self, members=3, timeout=2.0)
        self.registry = Registry(self.client, self.etcd.clock, "web", "10.0.0.7:8080")
        self.addCleanup(self.registry.stop)

    def test_registers(self) -> None:
        """Starting registers the address with its TTL."""
        self.successResultOf(self.registry.start())
        self.assertEqual(
            self.successResultOf(services(self.client)), {"/services/web": "10.0.0.7:8080"}
        )
        node = self.successResultOf(self.client.get("/services/web")).node
        self.assertEqual(node.ttl, 10)

    def test_stays_alive_past_its_ttl(self) -> None:
        """While it runs, the key outlives its TTL many times over."""
        self.successResultOf(self.registry.start())
        self.etcd.clock.pump([1.0] * 60)
        self.assertEqual(
            self.successResultOf(self.client.get_value("/services/web")), "10.0.0.7:8080"
        )
        self.assertEqual(self.registry.failures, [])

    def test_expires_once_stopped(self) -> None:
        """Once stopped, the key expires after its TTL, and a watcher sees it go."""
        self.successResultOf(self.registry.start())
        index = self.successResultOf(self.client.get("/services/web")).etcd_index
        gone = self.client.watch("/services/web", index=index + 1)
        self.registry.stop()
        self.etcd.clock.advance(9.9)
        self.assertNoResult(gone)
        self.etcd.clock.advance(0.1)
        self.assertEqual(self.successResultOf(gone).action, "expire")
        self.failureResultOf(self.client.get("/services/web"), KeyNotFound)

    def test_survives_a_dead_member(self) -> None:
        """With the first member refusing connections, refreshes go to another member."""
        self.successResultOf(self.registry.start())
        self.etcd.members[0].refuse()
        self.etcd.clock.pump([1.0] * 30)
        self.assertEqual(self.registry.failures, [])
        self.assertEqual(
            self.successResultOf(self.client.get_value("/services/web")), "10.0.0.7:8080"
        )
