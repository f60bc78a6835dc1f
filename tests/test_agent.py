"""
Unit tests for the client's own agent: one endpoint per member, and no cookies.
"""

from __future__ import annotations

import io
import os
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.request import Request

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import URI, Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txetcd2 import EtcdClient, EtcdConnectionError
from txetcd2._transport.agent import (
    MAX_ENDPOINTS,
    NO_COOKIES,
    BytesProducer,
    EndpointCache,
    NoCookies,
    as_body_producer,
    caching_agent,
    etcd_http_client,
)
from txetcd2._transport.default import default_agent, has_httptools
from txetcd2._transport.pool import EtcdAgent
from txetcd2._transport.tls import ClientTLSPolicy
from txetcd2.testing._fakes import RecordingAgent


def _uri(text: str) -> URI:
    uri: URI = URI.fromBytes(text.encode("ascii"))
    return uri


@implementer(IPolicyForHTTPS)
class RecordingPolicy:
    """
    A TLS policy (no verification) that records the netlocs it was asked for.
    """

    def __init__(self) -> None:
        self.asked: list[tuple[bytes, int]] = []
        self._policy = ClientTLSPolicy(verify=False)

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        self.asked.append((hostname, port))
        return self._policy.creatorForNetloc(hostname, port)


class TCPTransport(StringTransport):
    """A :class:`StringTransport` with a TCP connection's ``setTcpNoDelay``."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


def _connect(
    reactor: MemoryReactorClock,
    cache: EndpointCache,
    url: str,
    transport: StringTransport | None = None,
) -> StringTransport:
    """
    Connect to ``url``'s endpoint in memory and return what the client wrote.
    """
    cache.endpointForURI(_uri(url)).connect(Factory.forProtocol(Protocol))
    host, port, factory, _, _ = reactor.tcpClients[-1]
    transport = StringTransport() if transport is None else transport
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    assert protocol is not None
    protocol.makeConnection(transport)
    return transport


class EndpointCacheTests(SynchronousTestCase):
    """
    One endpoint per (scheme, host, port), built on first use.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_interface(self) -> None:
        """The cache is an agent endpoint factory."""
        self.assertTrue(verifyObject(IAgentEndpointFactory, EndpointCache(self.reactor)))

    def test_reused_per_member(self) -> None:
        """Requests to the same member, whatever their path, share one endpoint."""
        cache = EndpointCache(self.reactor)
        first = cache.endpointForURI(_uri("http://127.0.0.1:2379/v2/keys/a"))
        second = cache.endpointForURI(_uri("http://127.0.0.1:2379/v2/keys/b?recursive=true"))
        self.assertIs(first, second)

    def test_separate_per_host_port_and_scheme(self) -> None:
        """Another host, port or scheme gets an endpoint of its own."""
        cache = EndpointCache(self.reactor, RecordingPolicy())
        urls = [
            "http://127.0.0.1:2379/v2/keys/a",
            "http://127.0.0.2:2379/v2/keys/a",
            "http://127.0.0.1:22379/v2/keys/a",
            "https://127.0.0.1:2379/v2/keys/a",
        ]
        endpoints = [cache.endpointForURI(_uri(url)) for url in urls]
        self.assertEqual(len({id(e) for e in endpoints}), 4)
        again = [cache.endpointForURI(_uri(url)) for url in urls]
        self.assertEqual([id(e) for e in again], [id(e) for e in endpoints])

    def test_connects_to_the_member_with_the_timeout(self) -> None:
        """The endpoint connects to the URI's host and port within the connect timeout."""
        cache = EndpointCache(self.reactor, connect_timeout=3.5)
        transport = _connect(self.reactor, cache, "http://127.0.0.1:2379/v2/keys/a")
        host, port, _, timeout, _ = self.reactor.tcpClients[0]
        self.assertEqual((host, port, timeout), ("127.0.0.1", 2379, 3.5))
        self.assertEqual(transport.value(), b"")  # plain TCP: nothing sent before a request
        self.reactor.advance(10)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_https_wraps_tls_with_the_policy(self) -> None:
        """An https endpoint asks the policy once per member and starts a TLS handshake."""
        policy = RecordingPolicy()
        cache = EndpointCache(self.reactor, policy)
        for path in ("/v2/keys/a", "/v2/keys/b"):
            cache.endpointForURI(_uri("https://127.0.0.1:2379" + path))
        self.assertEqual(policy.asked, [(b"127.0.0.1", 2379)])
        transport = _connect(self.reactor, cache, "https://127.0.0.1:2379/v2/keys/a")
        # A TLS handshake record (0x16) carrying a ClientHello (0x01).
        hello = transport.value()
        self.assertEqual((hello[0], hello[5]), (0x16, 0x01))
        self.reactor.advance(60)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connections_without_nagle(self) -> None:
        """Plain and TLS connections get ``TCP_NODELAY`` on their TCP connection once
        connected; a transport without the option is left as it is."""
        cache = EndpointCache(self.reactor, RecordingPolicy())
        for url in ("http://127.0.0.1:2379/v2/keys/a", "https://127.0.0.1:2379/v2/keys/a"):
            tcp = TCPTransport()
            _connect(self.reactor, cache, url, tcp)
            self.assertTrue(tcp.no_delay, url)
        self.assertIn("no delay", repr(cache.endpointForURI(_uri("http://127.0.0.1:2379/"))))
        _connect(self.reactor, cache, "http://127.0.0.1:2380/v2/keys/a")  # no setTcpNoDelay

    def test_unsupported_scheme(self) -> None:
        """A scheme other than http and https is refused as Agent refuses it."""
        with self.assertRaises(SchemeNotSupported):
            EndpointCache(self.reactor).endpointForURI(_uri("ftp://127.0.0.1:21/a"))

    def test_non_ascii_host(self) -> None:
        """A host that is not ASCII is a ValueError that says what to give instead."""
        uri = _uri("http://127.0.0.1:2379/a")
        uri.host = "bücher.example".encode()
        with self.assertRaises(ValueError) as caught:
            EndpointCache(self.reactor).endpointForURI(uri)
        self.assertIn("IDNA", str(caught.exception))

    def test_bounded(self) -> None:
        """The cache never holds more than MAX_ENDPOINTS endpoints."""
        cache = EndpointCache(self.reactor)
        for port in range(1, MAX_ENDPOINTS + 10):
            cache.endpointForURI(_uri(f"http://127.0.0.1:{port}/a"))
        self.assertLessEqual(len(cache._endpoints), MAX_ENDPOINTS)

    def test_caching_agent(self) -> None:
        """caching_agent builds an Agent over the given pool."""
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        agent = caching_agent(self.reactor, pool, None, 2.0)
        self.assertIsInstance(agent, Agent)
        self.assertIs(agent._pool, pool)


class _Headers:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def get_all(self, name: str, default: Any = None) -> Any:
        return self._values.get(name.lower(), default)


class _StdlibResponse:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._headers = _Headers(values)

    def info(self) -> _Headers:
        return self._headers


def _cookie(name: str) -> Cookie:
    return Cookie(
        0, name, "v", None, False, "127.0.0.1", True, False, "/", True, False, None, False,
        None, None, {},
    )  # fmt: skip


class NoCookiesTests(SynchronousTestCase):
    """
    The jar that keeps nothing.
    """

    def test_keeps_no_cookies(self) -> None:
        """Cookies set directly or by an answer's Set-Cookie are dropped."""
        jar = NoCookies()
        request = Request("http://127.0.0.1:2379/v2/keys/a")
        jar.set_cookie(_cookie("a"))
        jar.set_cookie_if_ok(_cookie("b"), request)
        answer: Any = _StdlibResponse({"set-cookie": ["c=1; Path=/"]})
        jar.extract_cookies(answer, request)
        self.assertEqual(list(jar), [])
        self.assertEqual(len(jar), 0)
        ordinary = CookieJar()  # the same answer fills an ordinary jar
        ordinary.extract_cookies(answer, request)
        self.assertEqual([c.name for c in ordinary], ["c"])
        self.assertEqual(len(jar), 0)

    def test_adds_no_header(self) -> None:
        """No Cookie header is added to a request."""
        request = Request("http://127.0.0.1:2379/v2/keys/a")
        NO_COOKIES.add_cookie_header(request)
        self.assertFalse(request.has_header("Cookie"))
        self.assertEqual(list(NO_COOKIES), [])

    def test_http_client_jar(self) -> None:
        """etcd_http_client gives treq a jar that keeps no cookies."""
        http = etcd_http_client(RecordingAgent())
        self.assertIsInstance(http._cookiejar, NoCookies)


class BodyProducerTests(SynchronousTestCase):
    """
    What the treq client makes of a request's data.
    """

    def test_bytes_producer_as_is(self) -> None:
        """A BytesProducer is the request's producer as it is."""
        producer = BytesProducer(b"value=1")
        self.assertIs(as_body_producer(producer), producer)

    def test_others_adapted(self) -> None:
        """Other data is adapted as treq's default does: a file becomes a producer
        of its bytes."""
        producer = as_body_producer(io.BytesIO(b"value=1"))
        self.assertTrue(IBodyProducer.providedBy(producer))
        self.assertEqual(producer.length, 7)

    def test_client_uses_it(self) -> None:
        """The client's treq client sends a BytesProducer's bytes as its body."""
        agent = RecordingAgent()
        http = etcd_http_client(agent)
        http.request("PUT", "http://127.0.0.1:2379/v2/keys/a", data=BytesProducer(b"value=1"))
        self.assertEqual(agent.requests[-1].body, b"value=1")


class ClientAgentTests(SynchronousTestCase):
    """
    The agent EtcdClient builds for itself.
    """

    def setUp(self) -> None:
        self.patch(os, "environ", {})  # whatever TXETCD2_AGENT the suite runs with

    def test_pool_sized_and_endpoints_cached(self) -> None:
        """The client's own agent is the agent pool, capped at pool_size connections
        per member, with one endpoint per member."""
        reactor = MemoryReactorClock()
        client = EtcdClient(
            "http://127.0.0.1:2379",
            reactor=reactor,
            pool_size=17,
            max_retries=0,
            pipeline_depth=1,  # (deeper, the second get would go behind the first)
        )
        agent: Any = client._session.exchange._http._agent
        self.assertIsInstance(agent, EtcdAgent)
        self.assertEqual((agent._cap, agent._max_idle), (17, 17))
        self.assertIsInstance(agent._endpoints, EndpointCache)
        requests = [client.get("a"), client.get("b")]
        self.assertEqual(len(reactor.tcpClients), 2)  # two requests in flight: two connections
        for host, port, factory, timeout, _ in reactor.tcpClients:
            self.assertEqual((host, port, timeout), ("127.0.0.1", 2379, 5.0))
            refused = Failure(ConnectionRefusedError())
            factory.clientConnectionFailed(None, refused)  # type: ignore[arg-type]
        self.assertEqual(len(agent._endpoints._endpoints), 1)
        reactor.advance(1)  # HostnameEndpoint gives up once no address is left to try
        for request in requests:
            self.failureResultOf(request, EtcdConnectionError)
        self.successResultOf(client.close())
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_default_pool_size(self) -> None:
        """By default the pool keeps up to 64 connections per member, enough for
        64 requests in flight, and pipelines reads 16 deep once 4 are open."""
        client = EtcdClient("http://127.0.0.1:2379", reactor=MemoryReactorClock())
        agent: Any = client._session.exchange._http._agent
        self.assertEqual((agent._cap, agent._max_idle), (64, 64))
        self.assertEqual((agent._depth, agent._pipeline_from), (16, 4))

    def test_pipeline_depth(self) -> None:
        """pipeline_depth= sets the pool's depth (1: no pipelining), and pipelining
        starts once pool_size // pipeline_depth connections are open."""
        for depth, size, start in ((1, 64, 64), (4, 64, 16), (8, 4, 1)):
            client = EtcdClient(reactor=MemoryReactorClock(), pipeline_depth=depth, pool_size=size)
            agent: Any = client._session.exchange._http._agent
            self.assertEqual((agent._depth, agent._pipeline_from), (depth, start))

    def test_bad_pipeline_depth(self) -> None:
        """A pipeline_depth that is not a whole number of at least 1 is refused before
        any I/O, and so is one given with agent= (it configures the client's own)."""
        reactor = MemoryReactorClock()
        for bad, error in ((0, ValueError), (-3, ValueError), ("8", TypeError), (True, TypeError)):
            with self.assertRaises(error) as caught:
                EtcdClient(reactor=reactor, pipeline_depth=bad)  # type: ignore[arg-type]
            self.assertIn("pipeline_depth", str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            EtcdClient(reactor=reactor, agent=RecordingAgent(), pipeline_depth=1)
        self.assertIn("pipeline_depth= configures the client's own agent", str(caught.exception))
        self.assertEqual(reactor.tcpClients, [])

    def test_pipeline_depth_on_twisted(self) -> None:
        """Twisted's Agent (the fallback) never pipelines: pipeline_depth=1 is
        accepted there, a deeper one refused with what to do."""
        self.patch(os, "environ", {"TXETCD2_AGENT": "twisted"})
        client = EtcdClient(reactor=MemoryReactorClock(), pipeline_depth=1)
        self.assertIsInstance(client._session.exchange._http._agent, Agent)
        with self.assertRaises(ValueError) as caught:
            EtcdClient(reactor=MemoryReactorClock(), pipeline_depth=4)
        self.assertIn("pipeline_depth=4 needs the client's agent pool", str(caught.exception))

    def test_twisted_fallback(self) -> None:
        """Without the agent pool, the client's agent is Twisted's Agent over a pool of
        pool_size idle connections per member that never retries on its own."""
        reactor = MemoryReactorClock()
        agent, close = default_agent(reactor, None, 2.0, 17, pool=False)
        self.assertIsInstance(agent, Agent)
        pool: Any = agent._pool  # type: ignore[attr-defined]
        self.assertIsInstance(pool, HTTPConnectionPool)
        self.assertEqual(pool.maxPersistentPerHost, 17)
        self.assertFalse(pool.retryAutomatically)
        self.successResultOf(close())

    def test_twisted_by_environment(self) -> None:
        """TXETCD2_AGENT=twisted picks Twisted's Agent even with httptools."""
        self.patch(os, "environ", {"TXETCD2_AGENT": "Twisted"})
        agent, close = default_agent(MemoryReactorClock(), None, 2.0, 3)
        self.assertIsInstance(agent, Agent)
        self.successResultOf(close())

    def test_pool_when_httptools(self) -> None:
        """The agent pool is picked exactly when httptools can be imported."""
        agent, close = default_agent(MemoryReactorClock(), None, 2.0, 3)
        self.assertTrue(has_httptools())
        self.assertIsInstance(agent, EtcdAgent)
        self.successResultOf(close())
