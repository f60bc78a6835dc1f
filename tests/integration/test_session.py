"""
The one request path against real etcd: whole-call deadlines and
cancellation against a paused member, and close() stopping watchers.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.trial.unittest import TestCase

from txetcd2 import (
    ClientClosed,
    ClusterUnavailable,
    EtcdClient,
    EtcdClusterMismatch,
    EtcdConnectionError,
    EtcdTimeout,
)
from txetcd2.testing import start_etcd
from txetcd2.watch import State

from .test_failover import bounded


async def wait_until(condition: Any, seconds: float = 30.0) -> None:
    """
    Poll ``condition()`` on the reactor until it is true, or fail after ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        d: Deferred[None] = Deferred()
        reactor.callLater(0.02, d.callback, None)
        await d


class ClosesPlainHangsTLS(Protocol):
    """
    A port that closes plain HTTP connections at their first bytes, as a dead
    member behind a proxy does, and never answers a TLS handshake.
    """

    def dataReceived(self, data: bytes) -> None:
        if not data.startswith(b"\x16"):  # not a TLS handshake record
            assert self.transport is not None
            self.transport.loseConnection()


class SessionTests(TestCase):
    """
    Deadlines, cancellation and close() on a real member.
    """

    timeout = 300

    def client(self, urls: list[str], **options: Any) -> EtcdClient:
        client = EtcdClient(urls, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    async def test_timeout_is_a_deadline_for_the_whole_call(self) -> None:
        """A get with timeout=1 to a paused member fails with EtcdTimeout within 1.5 s,
        retries and back-offs included."""
        cluster = await start_etcd(self, 1)
        member = cluster.members[0]
        client = self.client(cluster.client_urls)
        await bounded(client.set("session/paused", "1"))
        await bounded(member.pause())
        self.addCleanup(member.resume)
        started = time.monotonic()
        failure = await bounded(
            self.assertFailure(client.get("session/paused", timeout=1), EtcdTimeout)
        )
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, 1.5)
        self.assertEqual(failure.seconds, 1.0)
        await bounded(member.resume())
        self.assertEqual(await bounded(client.get_value("session/paused")), "1")

    async def test_port_probe_within_the_deadline(self) -> None:
        """A connection closed without an answer makes the client probe whether the
        port speaks TLS; when that probe hangs, the call still ends at its deadline
        (it waited 5 s for the probe before)."""
        factory: ServerFactory[Any] = ServerFactory()
        factory.protocol = ClosesPlainHangsTLS
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        address: Any = port.getHost()
        client = self.client([f"http://127.0.0.1:{address.port}"], max_retries=0)
        started = time.monotonic()
        failure = await bounded(
            self.assertFailure(client.get("session/probe", timeout=1), EtcdConnectionError)
        )
        self.assertLess(time.monotonic() - started, 1.5)
        self.assertNotIn("TLS", str(failure))

    async def test_cancel_fires_at_once(self) -> None:
        """Cancelling a call waiting on a paused member fires it at once with CancelledError."""
        cluster = await start_etcd(self, 1)
        member = cluster.members[0]
        client = self.client(cluster.client_urls)
        await bounded(client.set("session/cancel", "1"))
        await bounded(member.pause())
        self.addCleanup(member.resume)
        d = client.get("session/cancel", quorum=True, timeout=1)
        pause: Deferred[None] = Deferred()
        reactor.callLater(0.5, pause.callback, None)
        await pause
        d.cancel()
        self.assertTrue(d.called)
        await self.assertFailure(d, CancelledError)

    async def test_close_stops_watchers(self) -> None:
        """After close(), a running watcher has stopped and receives nothing more, and
        neither calls nor new watchers are accepted."""
        cluster = await start_etcd(self, 1)
        client = self.client(cluster.client_urls)
        writer = self.client(cluster.client_urls)
        watcher = client.watcher("session/watched", recursive=True)
        seen: list[str] = []
        stopped: list[object] = []
        watcher.on("change", lambda event: seen.append(event.node.key))
        watcher.on("stop", stopped.append)
        watcher.start()
        # A watcher "from now" sees the writes etcd receives after its own request.
        await bounded(Deferred.fromCoroutine(wait_until(lambda: watcher.state is State.STREAMING)))
        await bounded(writer.set("session/watched/a", "1"))
        await bounded(Deferred.fromCoroutine(wait_until(lambda: len(seen) == 1)))
        await bounded(client.close())
        self.assertEqual(len(stopped), 1)
        written = await bounded(writer.set("session/watched/b", "2"))
        # A watcher of the writer's sees b; had the closed one still run, it would have too.
        later = writer.watcher(
            "session/watched", recursive=True, index=written.node.modified_index
        )
        later_seen: list[str] = []
        later.on("change", lambda event: later_seen.append(event.node.key))
        later.start()
        self.addCleanup(later.stop)
        await bounded(Deferred.fromCoroutine(wait_until(lambda: len(later_seen) == 1)))
        self.assertEqual(seen, ["/session/watched/a"])
        self.assertRaises(ClientClosed, client.get, "session/watched/a")
        self.assertRaises(ClientClosed, client.watcher, "session/watched")

    async def test_watch_refuses_another_cluster(self) -> None:
        """A watcher that fails over to a member of another cluster (a misconfigured
        endpoint list) refuses its answer and stops with EtcdClusterMismatch, as any call
        would; it never delivers that cluster's events."""
        ours = await start_etcd(self, 1)
        theirs = await start_etcd(self, 1)
        client = self.client([*ours.client_urls, *theirs.client_urls], timeout=2.0)
        first = await bounded(client.set("session/cluster", "ours"))
        other = self.client(theirs.client_urls)
        await bounded(other.set("session/cluster", "theirs"))
        watcher = client.watcher("session/cluster", index=first.index + 1)
        seen: list[str | None] = []
        stopped: list[Any] = []
        watcher.on("change", lambda event: seen.append(event.value))
        watcher.on("stop", stopped.append)
        await bounded(ours.members[0].kill())
        watcher.start()
        await bounded(Deferred.fromCoroutine(wait_until(lambda: bool(stopped))))
        self.assertEqual(watcher.state, State.FAILED)
        self.assertIsNotNone(stopped[0].check(EtcdClusterMismatch))
        self.assertEqual(seen, [])
        self.assertEqual(len(self.flushLoggedErrors(EtcdClusterMismatch)), 1)
        await self.assertFailure(client.get("session/cluster"), ClusterUnavailable)
