"""
:class:`~txetcd2.testing.FaultProxy` in front of a real etcd: clients and watchers through it
survive a cut (FIN or RST), a black hole (with a client timeout), refuse/restore and delays.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.conformance._watcher import Recorder
from tests.integration.test_watcher import until
from txetcd2 import EtcdClient, EtcdConnectionError, EtcdTimeout
from txetcd2.testing import EtcdCluster, FaultProxy, start_etcd


class FaultProxyTests(TestCase):
    """
    One etcd member, a proxy in front of it and clients through the proxy or direct.
    """

    timeout = 300

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self.cluster: EtcdCluster = await start_etcd(self, 1, reactor=reactor)
        self.direct_url = self.cluster.client_urls[0]
        port = urlsplit(self.direct_url).port
        assert port is not None
        self.proxy = FaultProxy(reactor, "127.0.0.1", port)
        self.url = await self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.direct = self.client([self.direct_url])

    def client(self, urls: list[str], **options: object) -> EtcdClient:
        """
        A client closed at cleanup (before the proxy stops).
        """
        options.setdefault("timeout", 10.0)
        client = EtcdClient(urls, reactor=reactor, **options)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        return client

    async def test_forwards(self) -> None:
        """Requests through the proxy reach the member; the URL is on 127.0.0.1."""
        self.assertTrue(self.url.startswith("http://127.0.0.1:"))
        through = self.client([self.url])
        written = await through.set("/fp/a", "1")
        self.assertEqual(await self.direct.get_value("/fp/a"), "1")
        self.assertEqual((await through.get("/fp/a")).index, written.index)
        self.assertGreaterEqual(self.proxy.connections, 1)

    async def cut_under_watcher(self, rst: bool) -> None:
        """
        A watcher through the proxy only: cut its connections midway; every change still comes
        out once, in order.
        """
        through = self.client([self.url])
        first = await self.direct.set("/fp/w", "start")
        w = through.watcher("/fp/w", index=first.index + 1, idle_timeout=5.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        reconnects: list[float] = []
        w.on("reconnect", reconnects.append)
        w.start()
        before = [(await self.direct.set("/fp/w", f"b{i}")).index for i in range(20)]
        await until(lambda: seen.indexes[-1:] == before[-1:], "the changes before the cut")
        self.proxy.cut(rst=rst)
        after = [(await self.direct.set("/fp/w", f"a{i}")).index for i in range(20)]
        await until(lambda: seen.indexes[-1:] == after[-1:], "the changes after the cut")
        self.assertEqual(seen.indexes, before + after)
        self.assertEqual(seen.resyncs, [])
        self.assertGreaterEqual(len(reconnects), 1)
        await w.stop()

    async def test_cut_with_fin(self) -> None:
        """A watcher survives every connection being closed (FIN) under it."""
        await self.cut_under_watcher(rst=False)

    async def test_cut_with_rst(self) -> None:
        """A watcher survives every connection being reset (RST) under it."""
        await self.cut_under_watcher(rst=True)

    async def test_blackhole_then_restore(self) -> None:
        """A black hole makes requests time out (not fail fast); restore() heals it."""
        through = self.client([self.url], timeout=1.0, max_retries=0)
        await through.set("/fp/b", "1")
        self.proxy.blackhole()
        started = reactor.seconds()
        with self.assertRaises(EtcdTimeout):
            await through.get("/fp/b")
        self.assertGreaterEqual(reactor.seconds() - started, 0.9)
        self.proxy.restore()
        self.assertEqual(await through.get_value("/fp/b"), "1")

    async def test_blackhole_holds_bytes(self) -> None:
        """Bytes sent into a black hole are held, not lost: a request sent during it is
        answered, in full, once restore() reopens the route (as TCP would retransmit)."""
        through = self.client([self.url], timeout=30.0, max_retries=0)
        await through.set("/fp/held", "v")
        self.proxy.blackhole()
        pending = through.get_value("/fp/held")
        await deferLater(reactor, 0.3)
        self.assertFalse(pending.called)
        self.proxy.restore()
        self.assertEqual(await pending, "v")

    async def test_refuse_then_restore(self) -> None:
        """refuse() makes connections fail at once; restore() listens on the same URL again."""
        through = self.client([self.url], timeout=5.0, max_retries=0)
        await through.set("/fp/r", "1")
        await through.close()
        await self.proxy.refuse()
        fresh = self.client([self.url], timeout=5.0, max_retries=0)
        started = reactor.seconds()
        with self.assertRaises(EtcdConnectionError) as caught:
            await fresh.get("/fp/r")
        self.assertNotIsInstance(caught.exception, EtcdTimeout)
        self.assertLess(reactor.seconds() - started, 4.0)
        self.proxy.restore()
        self.assertEqual(await fresh.get_value("/fp/r"), "1")

    async def test_delay(self) -> None:
        """delay() holds every byte back; restore() removes the delay."""
        through = self.client([self.url])
        await through.set("/fp/d", "1")
        self.proxy.delay(0.4)
        started = reactor.seconds()
        self.assertEqual(await through.get_value("/fp/d"), "1")
        self.assertGreaterEqual(reactor.seconds() - started, 0.8)  # both ways
        self.proxy.restore()
        self.assertEqual(self.proxy.delay_seconds, 0.0)

    async def test_stop_closes_everything(self) -> None:
        """stop() closes live connections and the port: a pending watch fails, connects fail."""
        through = self.client([self.url], timeout=5.0, max_retries=0)
        pending = through.watch("/fp/s")
        await until(lambda: self.proxy.connections == 1, "the watch's connection")
        await self.proxy.stop()
        self.assertEqual(self.proxy.connections, 0)
        with self.assertRaises(EtcdConnectionError):
            await pending
        with self.assertRaises(EtcdConnectionError):
            await through.get("/fp/s")

    async def cut_seen_by_peer(self, rst: bool) -> Failure:
        """
        Open a raw connection through the proxy, cut it, and give how the client saw it end.
        """
        ended: Deferred[list[Failure]] = Deferred()

        class Peer(Protocol):
            def connectionLost(self, reason: Failure = connectionDone) -> None:
                ended.callback([reason])  # in a list: a Failure would errback

        port = urlsplit(self.url).port
        assert port is not None
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        peer = await connectProtocol(endpoint, Peer())
        peer.transport.write(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: self.proxy.connections == 1, "the connection")
        self.proxy.cut(rst=rst)
        return (await ended)[0]

    async def test_cut_fin_or_rst_on_the_wire(self) -> None:
        """cut() ends connections with a FIN (clean close); cut(rst=True) with a reset."""
        fin = await self.cut_seen_by_peer(rst=False)
        self.assertTrue(fin.check(ConnectionDone), fin)
        rst = await self.cut_seen_by_peer(rst=True)
        self.assertTrue(rst.check(ConnectionLost), rst)
        self.assertFalse(rst.check(ConnectionDone), rst)

    def test_rejects_non_loopback(self) -> None:
        """A proxy to anything but loopback, or a bad port, is refused before any I/O."""
        with self.assertRaises(ValueError):
            FaultProxy(reactor, "10.0.0.1", 2379)
        with self.assertRaises(ValueError):
            FaultProxy(reactor, "127.0.0.1", 0)
        with self.assertRaises(ValueError):
            self.proxy.delay(-1)
