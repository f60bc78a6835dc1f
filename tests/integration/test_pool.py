"""
The agent pool against a real etcd: reads and writes on kept-alive
connections, watch streams with back-pressure, TLS, and quiet factories.
"""

from __future__ import annotations

import gc
import os
import socket
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IConsumer
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial.unittest import TestCase
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from tests.integration._single_etcd import reactor, start_etcd, temp_dir
from tests.integration._support import EtcdTestCase, eventually
from txetcd2 import EtcdClient
from txetcd2._embedded.certificates import CertificateAuthority, write_tls_files
from txetcd2._transport.default import AGENT_VARIABLE, PIPELINE_DEPTH
from txetcd2._transport.lines import EventStream
from txetcd2._transport.pool import EtcdAgent
from txetcd2._transport.tls_connection import TLSConnection


def on_the_pool(case: TestCase) -> None:
    """
    Make the clients a test builds use the agent pool, whatever TXETCD2_AGENT says.

    :param case: the test.
    """
    case.patch(os, "environ", {k: v for k, v in os.environ.items() if k != AGENT_VARIABLE})


def _agent(client: EtcdClient) -> EtcdAgent:
    agent: Any = client._session.exchange._http._agent
    assert isinstance(agent, EtcdAgent)
    return agent


def _no_delay(agent: EtcdAgent) -> list[int]:
    """TCP_NODELAY of each idle connection's socket (under TLS, the TCP socket)."""
    found = []
    for member in agent._members.values():
        for connection in member.idle:
            transport: Any = connection.transport
            if isinstance(transport, TLSMemoryBIOProtocol):
                transport = transport.transport
            handle = transport.getHandle()
            found.append(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return found


def _connections(agent: EtcdAgent) -> tuple[int, int]:
    """(idle, busy) connections over all members."""
    members = agent._members.values()
    return sum(len(m.idle) for m in members), sum(len(m.busy) for m in members)


@implementer(IBodyProducer)
class InParts:
    """
    A body of unknown length written one part per reactor turn.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        parts = iter(self._parts)

        def write() -> None:
            part = next(parts, None)
            if part is None:
                done.callback(None)
                return
            consumer.write(part)
            reactor.callLater(0, write)

        write()
        return done

    def stopProducing(self) -> None:
        """Nothing to stop: the parts are few."""

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""


@implementer(ILogObserver)
class FactoryLogs:
    """
    Records "Starting factory" / "Stopping factory" log events, except those of
    Twisted's HTTP/1.1 client factory (the test harness's readiness prober uses
    Twisted's Agent; the client's pool never builds one).
    """

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, event: LogEvent) -> None:
        text = str(event.get("log_format") or "")
        factory = event.get("factory")
        if type(factory).__name__ == "_HTTP11ClientFactory":
            return
        if "factory" in text.lower():
            self.seen.append(f"{text} {factory!r}")


class PoolIntegrationTests(EtcdTestCase):
    """
    The client on its default agent, the pool, against one real etcd.
    """

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        on_the_pool(self)
        return super().setUp()

    async def test_reads_and_writes_reuse_connections(self) -> None:
        """Sequential sets and gets use one kept-alive connection; 64 gets in flight
        are pipelined over at most 64 // PIPELINE_DEPTH connections, 640 over at
        most 64, and every answer is right."""
        agent = _agent(self.client)
        for i in range(100):
            await self.client.set(f"pool/k{i}", f"v{i}")
            self.assertEqual(await self.client.get_value(f"pool/k{i}"), f"v{i}")
        self.assertEqual(_connections(agent), (1, 0))
        values = await gatherResults(
            [Deferred.fromCoroutine(self._value(f"pool/k{i % 100}")) for i in range(64)]
        )
        self.assertEqual(values, [f"v{i % 100}" for i in range(64)])
        idle, busy = _connections(agent)
        self.assertEqual(busy, 0)
        self.assertLessEqual(idle, 64 // PIPELINE_DEPTH)
        self.assertGreater(idle, 1)
        values = await gatherResults(
            [Deferred.fromCoroutine(self._value(f"pool/k{i % 100}")) for i in range(640)]
        )
        self.assertEqual(values, [f"v{i % 100}" for i in range(640)])
        self.assertLessEqual(sum(_connections(agent)), 64)

    async def test_pipeline_depth(self) -> None:
        """Quorum reads (which etcd answers through its raft log) and recursive
        listings are never pipelined: 64 in flight get 64 connections, as 64 plain
        gets do with pipeline_depth=1; with pipeline_depth=32, 64 plain gets share 2.
        Every answer is right."""
        await self.client.set("pool/depth/k", "v")
        for options, flags, connections in (
            ({}, {"quorum": True}, 64),
            ({}, {"recursive": True}, 64),
            ({"pipeline_depth": 1}, {}, 64),
            ({"pipeline_depth": 32}, {}, 2),
        ):
            client = self.make_client(**options)
            values = await gatherResults([client.get("pool/depth", **flags) for _ in range(64)])
            self.assertEqual({answer.node.key for answer in values}, {"/pool/depth"})
            self.assertEqual(_connections(_agent(client)), (connections, 0), options)
            await client.close()

    async def test_calls_leave_no_cycles(self) -> None:
        """Sets and gets, one at a time and 32 in flight, leave no reference cycles
        behind: after 640 calls with the garbage collector off, it finds almost
        nothing to free (a cycle per call keeps everything the call held until a
        collection, and makes collections frequent and long). The connections are
        made first: Twisted's HostnameEndpoint leaves a few cycles per connection."""
        await self.client.set("gc/warm", "0")
        await gatherResults([Deferred.fromCoroutine(self._value("gc/warm")) for i in range(32)])
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        self.addCleanup(lambda: gc.enable() if was_enabled else None)
        for i in range(160):
            await self.client.set(f"gc/k{i % 10}", f"v{i}")
            await self.client.get(f"gc/k{i % 10}")
        for _ in range(10):
            await gatherResults(
                [Deferred.fromCoroutine(self._value(f"gc/k{i % 10}")) for i in range(32)]
            )
        found = gc.collect()
        self.assertLess(found, 32, f"{found} objects in reference cycles after 640 calls")

    async def test_member_restarted(self) -> None:
        """After the member restarts, reads and writes on the pool succeed at once,
        with no retry by the client (the stale kept-alive connection is not used)."""
        client = self.make_client(max_retries=0)
        await client.set("pool/restart", "before")
        self.assertEqual(_connections(_agent(client)), (1, 0))
        await self.cluster.members[0].restart()
        self.assertEqual(await client.get_value("pool/restart"), "before")
        await client.set("pool/restart", "after")
        self.assertEqual(await client.get_value("pool/restart"), "after")

    async def test_body_written_in_parts(self) -> None:
        """A body written in parts, at different reactor turns, is sent as written:
        connections do not use Nagle's algorithm (which held the last part until
        etcd acknowledged the first, up to its delayed-acknowledgement time of
        40 ms: 43 ms per such set, against 1.3 ms)."""
        agent = _agent(self.client)
        for i in range(5):
            answer = await agent.request(
                b"PUT",
                f"{self.cluster.client_urls[0]}/v2/keys/parts/k".encode(),
                Headers({b"content-type": [b"application/x-www-form-urlencoded"]}),
                InParts([b"value=", b"v%d" % i]),
            )
            self.assertEqual(answer.code, 200 if i else 201)
            self.assertIn(b'"value":"v%d"' % i, await readBody(answer))
        self.assertEqual(await self.client.get_value("parts/k"), "v4")
        self.assertEqual(_no_delay(agent), [1])

    async def _value(self, key: str) -> str:
        value: str = await self.client.get_value(key)
        return value

    async def test_watch_stream_with_back_pressure(self) -> None:
        """A watch stream's events come in order as lines; while its reader pauses
        none come, and after it resumes all do."""
        await self.client.set("stream/start", "0")
        agent = _agent(self.client)
        url = self.cluster.client_urls[0].encode("ascii")
        response = await agent.request(
            b"GET", url + b"/v2/keys/stream?wait=true&recursive=true&stream=true"
        )
        self.assertEqual(response.code, 200)
        lines: list[bytes] = []
        stream = EventStream(lines.append)
        response.deliverBody(stream)
        self.addCleanup(lambda: stream.closed)
        self.addCleanup(stream.abort)
        for i in range(20):
            await self.client.set(f"stream/k{i}", f"v{i}")

        async def got(n: int) -> bool:
            return len(lines) >= n

        await eventually(lambda: got(20), 30.0)
        assert stream.transport is not None
        stream.transport.pauseProducing()  # type: ignore[attr-defined]
        for i in range(20, 40):
            await self.client.set(f"stream/k{i}", f"v{i}")
        await self.client.get("stream/start")  # a round trip after the last write
        self.assertEqual(len(lines), 20)
        stream.transport.resumeProducing()  # type: ignore[attr-defined]
        await eventually(lambda: got(40), 30.0)
        self.assertEqual(len(lines), 40)
        for i, line in enumerate(lines):
            self.assertIn(f'"key":"/stream/k{i}"'.encode(), line)

    async def test_no_factory_logs_and_close(self) -> None:
        """Requests log no "Starting factory"/"Stopping factory" lines, and close()
        leaves no connection."""
        logs = FactoryLogs()
        globalLogPublisher.addObserver(logs)
        self.addCleanup(globalLogPublisher.removeObserver, logs)
        client = self.make_client()
        await gatherResults(
            [Deferred.fromCoroutine(self._set(client, f"quiet/k{i}")) for i in range(10)]
        )
        await client.close()
        self.assertEqual(_connections(_agent(client)), (0, 0))
        self.assertEqual(logs.seen, [])

    async def _set(self, client: EtcdClient, key: str) -> None:
        await client.set(key, "x")


class PoolTLSTests(TestCase):
    """
    The pool over TLS with client certificates.
    """

    timeout = 300

    async def _client(self) -> EtcdClient:
        on_the_pool(self)
        directory = temp_dir(self, "txetcd2-pool-tls-")
        files = write_tls_files(directory, CertificateAuthority())
        etcd = start_etcd(self, "https", files.etcd_args())
        client = EtcdClient(
            etcd.url, reactor=reactor, ca=files.ca, cert=files.client_cert, key=files.client_key
        )
        self.addCleanup(client.close)
        await etcd.wait_ready(client)
        return client

    async def test_tls_reuses_connections(self) -> None:
        """Over https with a client certificate, sets and gets work and reuse one
        connection (one handshake)."""
        client = await self._client()
        agent = _agent(client)
        await agent.closeCachedConnections()  # start from no connection
        self.assertEqual(_connections(agent), (0, 0))
        for i in range(30):
            await client.set(f"tls/k{i}", f"v{i}")
            self.assertEqual(await client.get_value(f"tls/k{i}"), f"v{i}")
        self.assertEqual(_connections(agent), (1, 0))
        self.assertEqual(_no_delay(agent), [1])

    async def test_pipelined_reads_over_tls(self) -> None:
        """Over https, gets in flight whose answers' callbacks ask for the next ones
        (so many answers arrive in one read, and the next requests are written
        while it is read) all come back right, on TLS connections that deliver
        each read's records at once."""
        client = await self._client()
        for i in range(20):
            await client.set(f"tls/p{i}", f"v{i}")
        agent = _agent(client)
        await agent.closeCachedConnections()
        got: list[tuple[int, str]] = []

        async def chain(start: int) -> None:
            for i in range(start, 640, 64):
                got.append((i, await client.get_value(f"tls/p{i % 20}")))

        await gatherResults([Deferred.fromCoroutine(chain(s)) for s in range(64)])
        self.assertEqual(sorted(got), [(i, f"v{i % 20}") for i in range(640)])
        idle, busy = _connections(agent)
        self.assertEqual(busy, 0)
        self.assertLessEqual(idle, 64 // PIPELINE_DEPTH)
        for member in agent._members.values():
            for connection in member.idle:
                self.assertIsInstance(connection.transport, TLSConnection)
