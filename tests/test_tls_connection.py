"""
Unit tests for :mod:`txetcd2._transport.tls_connection`: a client TLS
connection that delivers each read's records at once and encrypts its writes
once per read or reactor turn, driven in memory against Twisted's own server
TLS protocol with a :class:`Clock`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from txetcd2._embedded.certificates import CertificateAuthority, write_tls_files
from txetcd2._transport import tls_connection
from txetcd2._transport.tls import ClientTLSPolicy
from txetcd2._transport.tls_connection import (
    MAX_GATHERED,
    TLSConnection,
    TLSConnectionFactory,
    tls_endpoint,
)

ADDRESS = IPv4Address("TCP", "127.0.0.1", 2379)


class App(Protocol):
    """An application protocol that records its reads and its end."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self.lost: list[Failure] = []
        self.replies: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.reads.append(data)
        for reply in self.replies:
            self.transport.write(reply)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self.lost.append(reason)


def _files() -> Any:
    return write_tls_files(Path(tempfile.mkdtemp()), CertificateAuthority())


class Pair:
    """
    A :class:`TLSConnection` client and a Twisted TLS server, each on a
    :class:`StringTransport`, whose bytes move only when :meth:`to_client` or
    :meth:`to_server` moves them (so a test decides what one read holds).
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        files = _files()
        self.clock = Clock()
        self.client_app = App()
        self.server_app = App()
        creator = ClientTLSPolicy(files.ca).creatorForNetloc(b"127.0.0.1", 2379)
        client_factory = TLSConnectionFactory(
            creator, Factory.forProtocol(lambda: self.client_app), self.clock
        )
        pem = files.server_cert.read_bytes() + files.server_key.read_bytes()
        server_factory = TLSMemoryBIOFactory(
            PrivateCertificate.loadPEM(pem).options(),
            False,
            Factory.forProtocol(lambda: self.server_app),
            self.clock,
        )
        client = client_factory.buildProtocol(ADDRESS)
        assert isinstance(client, TLSConnection)
        self.client = client
        self.server: TLSMemoryBIOProtocol = server_factory.buildProtocol(ADDRESS)
        self.client_wire = StringTransport()
        self.server_wire = StringTransport()
        self.client.makeConnection(self.client_wire)
        self.server.makeConnection(self.server_wire)
        for _ in range(10):  # the handshake
            self.to_server()
            self.clock.advance(0)
            self.to_client()
        case.assertTrue(self.client._handshakeDone)
        case.assertEqual(self.clock.getDelayedCalls(), [])

    def to_server(self) -> None:
        data = self.client_wire.value()
        self.client_wire.clear()
        if data:
            self.server.dataReceived(data)

    def to_client(self) -> None:
        data = self.server_wire.value()
        self.server_wire.clear()
        if data:
            self.client.dataReceived(data)

    def server_records(self, *messages: bytes) -> None:
        """Make the server send each message in a TLS record of its own."""
        for message in messages:
            self.server.write(message)
            self.clock.advance(0)


class ReadTests(SynchronousTestCase):
    """
    What a read delivers to the application.
    """

    def test_records_of_one_read_delivered_at_once(self) -> None:
        """Three records arriving in one read reach the application in one call, in order."""
        pair = Pair(self)
        pair.server_records(b"one ", b"two ", b"three")
        pair.to_client()
        self.assertEqual(pair.client_app.reads, [b"one two three"])

    def test_records_of_separate_reads(self) -> None:
        """Records arriving in separate reads are delivered separately."""
        pair = Pair(self)
        for message in (b"one", b"two"):
            pair.server_records(message)
            pair.to_client()
        self.assertEqual(pair.client_app.reads, [b"one", b"two"])

    def test_a_record_cut_in_two_reads(self) -> None:
        """A record cut across two reads is delivered once it is whole."""
        pair = Pair(self)
        pair.server_records(b"whole")
        data = pair.server_wire.value()
        pair.server_wire.clear()
        pair.client.dataReceived(data[:5])
        self.assertEqual(pair.client_app.reads, [])
        pair.client.dataReceived(data[5:])
        self.assertEqual(pair.client_app.reads, [b"whole"])

    def test_close_notify_after_data(self) -> None:
        """Data followed by the server's close_notify in one read: the data is
        delivered, then the connection closes cleanly."""
        pair = Pair(self)
        pair.server_records(b"last")
        pair.server.loseConnection()
        pair.to_client()
        self.assertEqual(pair.client_app.reads, [b"last"])
        self.assertTrue(pair.client_wire.disconnecting)
        pair.client.connectionLost(Failure(ConnectionDone()))
        [reason] = pair.client_app.lost
        reason.trap(ConnectionDone)

    def test_bad_record_after_data(self) -> None:
        """Data followed by bytes that are no TLS record: the data is delivered,
        then the connection ends with the TLS error."""
        pair = Pair(self)
        pair.server_records(b"good")
        pair.client.dataReceived(pair.server_wire.value() + b"\x17\x03\x03\x00\x05junk!")
        pair.server_wire.clear()
        self.assertEqual(pair.client_app.reads, [b"good"])
        self.assertTrue(pair.client_wire.disconnecting)
        pair.client.connectionLost(Failure(ConnectionDone()))
        [reason] = pair.client_app.lost
        reason.trap(SSL.Error)


class WriteTests(SynchronousTestCase):
    """
    When the application's writes are encrypted and sent.
    """

    def test_writes_during_a_read_go_when_it_ends(self) -> None:
        """What the application writes while it reads is encrypted together when
        the read ends and sent at once: no timer, no wait for the reactor."""
        pair = Pair(self)
        pair.client_app.replies = [b"x", b"y"]
        pair.server_records(b"a", b"b")
        pair.to_client()
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"xy"])  # one record

    def test_writes_outside_a_read_wait_for_the_next_turn(self) -> None:
        """Writes outside a read are gathered until the reactor's next turn, then
        encrypted together."""
        pair = Pair(self)
        pair.client.write(b"1")
        pair.client.writeSequence([b"2", b"3"])
        self.assertEqual(pair.client_wire.value(), b"")
        self.assertEqual(len(pair.clock.getDelayedCalls()), 1)
        pair.clock.advance(0)
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"123"])
        self.assertEqual(pair.clock.getDelayedCalls(), [])

    def test_a_read_sends_what_waited_for_the_turn(self) -> None:
        """A read ending before the turn sends what was gathered before it too, in
        order, and cancels the turn's timer."""
        pair = Pair(self)
        pair.server_records(b"a")
        pair.client.write(b"before ")
        pair.client_app.replies = [b"during"]
        pair.to_client()
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"before during"])

    def test_large_writes_go_at_once(self) -> None:
        """Past the gathering limit, the bytes are encrypted and sent without waiting."""
        pair = Pair(self)
        pair.client.write(b"z" * MAX_GATHERED)
        self.assertNotEqual(pair.client_wire.value(), b"")
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.to_server()
        self.assertEqual(b"".join(pair.server_app.reads), b"z" * MAX_GATHERED)

    def test_bytes_like_and_str(self) -> None:
        """Bytes-like objects are written; ``str`` is a TypeError, before anything is gathered."""
        pair = Pair(self)
        self.assertRaises(TypeError, pair.client.write, "text")
        pair.client.write(bytearray(b"ab"))
        pair.client.write(memoryview(b"cd"))
        pair.clock.advance(0)
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"abcd"])

    def test_lose_connection_sends_what_was_gathered(self) -> None:
        """Closing sends what was gathered first, then close_notify; no timer remains."""
        pair = Pair(self)
        pair.client.write(b"bye")
        pair.client.loseConnection()
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"bye"])
        self.assertTrue(pair.server_wire.disconnecting)  # the server saw close_notify

    def test_writes_after_lose_connection_are_dropped(self) -> None:
        """As with Twisted's TLS transport, writes after closing are dropped, and
        leave no timer."""
        pair = Pair(self)
        pair.client.loseConnection()
        sent = pair.client_wire.value()
        pair.client.write(b"late")
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        self.assertEqual(pair.client_wire.value(), sent)

    def test_a_producer_ends_after_lose_connection(self) -> None:
        """Closed while a producer writes, the connection sends what the producer
        wrote last before it closes, when the producer is unregistered."""
        pair = Pair(self)
        producer = StubProducer()
        pair.client.registerProducer(producer, True)
        pair.client.loseConnection()
        pair.client.write(b"tail")
        pair.client.unregisterProducer()
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        pair.to_server()
        self.assertEqual(pair.server_app.reads, [b"tail"])
        self.assertTrue(pair.server_wire.disconnecting)

    def test_connection_lost_drops_the_gathered_and_the_timer(self) -> None:
        """A lost connection leaves no timer and reports to the application."""
        pair = Pair(self)
        pair.client.write(b"never sent")
        pair.client.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(pair.clock.getDelayedCalls(), [])
        self.assertEqual(len(pair.client_app.lost), 1)
        pair.client.write(b"after")
        self.assertEqual(pair.clock.getDelayedCalls(), [])


@implementer(IPushProducer)
class StubProducer:
    """A streaming producer that is never asked anything in these tests."""

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


@implementer(IStreamClientEndpoint)
class Below:
    """An endpoint that builds the protocol it is given on a :class:`StringTransport`."""

    def __init__(self) -> None:
        self.built: list[Any] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        protocol = factory.buildProtocol(ADDRESS)
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        self.built.append(protocol)
        return succeed(protocol)


class EndpointTests(SynchronousTestCase):
    """
    :func:`tls_endpoint`.
    """

    def setUp(self) -> None:
        self.creator = ClientTLSPolicy(_files().ca).creatorForNetloc(b"127.0.0.1", 2379)

    def test_connects_the_application_over_a_tls_connection(self) -> None:
        """The endpoint runs a :class:`TLSConnection` below and gives the
        application's protocol, which writes through it."""
        below = Below()
        endpoint = tls_endpoint(self.creator, below, Clock())
        app = App()
        connected = self.successResultOf(endpoint.connect(Factory.forProtocol(lambda: app)))
        self.assertIs(connected, app)
        [tls] = below.built
        self.assertIsInstance(tls, TLSConnection)
        self.assertIs(app.transport, tls)
        self.assertIn("TLS over", repr(endpoint))

    def test_twisted_without_the_parts(self) -> None:
        """On a Twisted whose TLS protocol lacks the parts it uses, Twisted's own
        TLS transport is used."""
        self.patch(tls_connection, "AVAILABLE", False)
        below = Below()
        endpoint = tls_endpoint(self.creator, below, Clock())
        self.successResultOf(endpoint.connect(Factory.forProtocol(App)))
        [tls] = below.built
        self.assertIsInstance(tls, TLSMemoryBIOProtocol)
        self.assertNotIsInstance(tls, TLSConnection)

    def test_parts_present(self) -> None:
        """This Twisted has every part :class:`TLSConnection` uses."""
        self.assertTrue(tls_connection.AVAILABLE)
