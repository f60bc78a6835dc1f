"""
Unit tests for HTTP proxies in the agent pool: the proxy option, absolute-form
requests for http members, CONNECT tunnels for https members.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectingCancelledError, ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdClient
from txetcd2._transport.default import default_agent
from txetcd2._transport.exchange import never_sent, read_body
from txetcd2._transport.pool import EtcdAgent
from txetcd2._transport.proxy import Proxy, ProxyTunnelError, proxy_choice
from txetcd2._transport.tls import ClientTLSPolicy
from txetcd2.testing._fakes import RecordingAgent

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ProxyOptionTests(SynchronousTestCase):
    """
    The proxy= option, checked before any I/O.
    """

    def test_url(self) -> None:
        """A proxy URL gives its host, its port (80 by default) and basic credentials,
        which its repr never shows."""
        plain = Proxy("http://127.0.0.1")
        self.assertEqual((plain.host, plain.port, plain.header_lines()), ("127.0.0.1", 80, b""))
        secret = Proxy("http://u%40x:s3cret@proxy.local:3128")
        self.assertEqual((secret.host, secret.port), ("proxy.local", 3128))
        self.assertEqual(secret.header_lines(), b"Proxy-Authorization: Basic dUB4OnMzY3JldA==\r\n")
        self.assertNotIn("s3cret", repr(secret))

    def test_bad(self) -> None:
        """Another type, another scheme or no host is refused."""
        self.assertRaises(TypeError, Proxy, 3128)
        self.assertRaises(ValueError, Proxy, "https://proxy:3128")
        self.assertRaises(ValueError, Proxy, "proxy:3128")
        self.assertRaises(ValueError, Proxy, "http://:3128")

    def test_environment(self) -> None:
        """ "env" follows http_proxy/https_proxy and no_proxy."""
        found = {"http": "http://p:1", "https": "http://q:2", "no": "skip.example,10.0.0.1"}
        self.patch(urllib.request, "getproxies_environment", lambda: found)
        choose = proxy_choice("env")
        assert choose is not None
        http, https = choose("http", "etcd.example"), choose("https", "etcd.example")
        assert http is not None and https is not None
        self.assertEqual((http.host, https.host), ("p", "q"))
        self.assertIsNone(choose("http", "skip.example"))
        self.assertIsNone(choose("https", "10.0.0.1"))
        self.patch(urllib.request, "getproxies_environment", lambda: {})
        self.assertIsNone(proxy_choice("env"))

    def test_client_option(self) -> None:
        """EtcdClient refuses a bad proxy, and a proxy with its own agent or on
        Twisted's Agent."""
        self.patch(os, "environ", {})
        reactor = MemoryReactorClock()
        self.assertRaises(TypeError, EtcdClient, reactor=reactor, proxy=3128)
        self.assertRaises(ValueError, EtcdClient, reactor=reactor, proxy="ftp://p")
        with self.assertRaises(ValueError):
            EtcdClient(reactor=reactor, agent=RecordingAgent(), proxy="http://p:1")
        self.assertRaises(ValueError, default_agent, reactor, None, 1.0, 4, False, "http://p:1")
        self.patch(os, "environ", {"TXETCD2_AGENT": "twisted"})
        with self.assertRaises(ValueError) as caught:
            EtcdClient(reactor=reactor, proxy="http://p:1")
        self.assertIn("TXETCD2_AGENT=twisted", str(caught.exception))


class ProxiedRequestTests(SynchronousTestCase):
    """
    Requests through a proxy, in memory.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def agent(self) -> EtcdAgent:
        agent = EtcdAgent(
            self.reactor, ClientTLSPolicy(), 3.0, proxy="http://user:pw@127.0.0.2:3128"
        )
        self.addCleanup(self.successResultOf, agent.closeCachedConnections())
        return agent

    def accept(self) -> tuple[Protocol, StringTransport]:
        host, port = self.reactor.tcpClients[-1][:2]
        factory: Any = self.reactor.tcpClients[-1][2]
        self.assertEqual(port, 3128)  # the proxy's (the memory reactor resolves to 127.0.0.1)
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(transport)
        return protocol, transport

    def test_http_absolute_form(self) -> None:
        """An http member's request goes to the proxy in absolute form, with the
        member as Host and the proxy's credentials."""
        agent = self.agent()
        d = agent.request(b"GET", b"http://127.0.0.1:2379/v2/keys/a?recursive=true")
        protocol, transport = self.accept()
        sent = transport.value()
        self.assertTrue(
            sent.startswith(b"GET http://127.0.0.1:2379/v2/keys/a?recursive=true HTTP/1.1\r\n")
        )
        self.assertIn(b"\r\nHost: 127.0.0.1:2379\r\n", sent)
        self.assertIn(b"\r\nProxy-Authorization: Basic dXNlcjpwdw==\r\n", sent)
        protocol.dataReceived(OK)
        self.assertEqual(self.successResultOf(read_body(self.successResultOf(d))), b"ok")
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_https_tunnel(self) -> None:
        """An https member is reached through CONNECT; once the proxy says 200, TLS
        starts over the tunnel (the member's name checked as without a proxy)."""
        agent = self.agent()
        d = agent.request(b"GET", b"https://etcd.example:2379/v2/keys/a")
        protocol, transport = self.accept()
        self.assertEqual(
            transport.value(),
            b"CONNECT etcd.example:2379 HTTP/1.1\r\nHost: etcd.example:2379\r\n"
            b"Proxy-Authorization: Basic dXNlcjpwdw==\r\n\r\n",
        )
        transport.clear()
        protocol.dataReceived(b"HTTP/1.1 200 Connection established\r\n\r\n")
        hello = transport.value()
        self.assertEqual(hello[:1], b"\x16")  # a TLS handshake record: the ClientHello
        self.assertIn(b"etcd.example", hello)  # with the member's name (SNI)
        self.assertNotIn(b"GET /v2/keys/a", hello)  # the request waits for the handshake
        d.cancel()
        self.failureResultOf(d)
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_tunnel_refused(self) -> None:
        """A proxy that refuses CONNECT fails the request with ProxyTunnelError, a
        ConnectError: it never reached the member."""
        agent = self.agent()
        d = agent.request(b"GET", b"https://127.0.0.1:2379/v2/keys/a")
        protocol, transport = self.accept()
        protocol.dataReceived(b"HTTP/1.1 403 Access violation\r\nContent-Length: 0\r\n\r\n")
        failure = self.failureResultOf(d, ProxyTunnelError)
        self.assertIn("403 Access violation", str(failure.value))
        self.assertTrue(never_sent(failure.value))
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_tunnel_closed(self) -> None:
        """A proxy that closes before answering CONNECT fails with ProxyTunnelError."""
        agent = self.agent()
        d = agent.request(b"GET", b"https://127.0.0.1:2379/v2/keys/a")
        protocol, _ = self.accept()
        protocol.dataReceived(b"HTTP/1.1 200")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIn(
            "closed the connection", str(self.failureResultOf(d, ProxyTunnelError).value)
        )

    def test_cancel_during_connect(self) -> None:
        """Cancelling while the tunnel is asked for aborts it: ConnectingCancelledError."""
        agent = self.agent()
        d = agent.request(b"GET", b"https://127.0.0.1:2379/v2/keys/a")
        protocol, transport = self.accept()
        d.cancel()
        failure: Any = self.failureResultOf(d, ConnectingCancelledError)
        self.assertTrue(never_sent(failure.value))
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
