"""
Unit tests for sending a request at once on an idle plain TCP connection
(:mod:`txetcd2._transport.immediate`), over a real socket pair, without
running a reactor.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import SynchronousTestCase

from txetcd2._transport.immediate import send_now


class ImmediateTests(SynchronousTestCase):
    """
    send_now() sends on an idle TCP connection at once, and otherwise writes
    through the transport, behind what is buffered.
    """

    def setUp(self) -> None:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        self.peer = theirs
        self.reactor = MemoryReactor()
        self.transport = Connection(ours, Protocol(), reactor=self.reactor)
        self.transport.connected = True

    def received(self) -> bytes:
        try:
            return self.peer.recv(1 << 20)
        except BlockingIOError:
            return b""

    def test_idle_sends_at_once(self) -> None:
        """On an idle connection the bytes reach the peer with no reactor turn, and
        the transport does not ask to be told when it can write."""
        send_now(self.transport, b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(self.received(), b"GET / HTTP/1.1\r\n\r\n")
        self.assertNotIn(self.transport, self.reactor.getWriters())

    def test_behind_buffered_bytes(self) -> None:
        """With bytes already buffered, the new ones are buffered behind them, so
        the order on the wire is kept."""
        self.transport.write(b"first ")
        send_now(self.transport, b"second")
        self.assertEqual(self.received(), b"")
        self.assertIn(self.transport, self.reactor.getWriters())
        self.transport.doWrite()
        self.assertEqual(self.received(), b"first second")

    def test_full_socket(self) -> None:
        """When the socket takes only part of the bytes (or none), the rest is
        buffered and sent when it can be, in order."""
        filler = b"x" * 65536
        while True:
            try:
                self.transport.socket.send(filler)
            except BlockingIOError:
                break
        send_now(self.transport, b"the request")
        self.assertIn(self.transport, self.reactor.getWriters())
        drained = b""
        for _ in range(10_000):  # bounded: the socket drains in a few rounds
            if drained.endswith(b"the request"):
                break
            drained += self.received()
            self.transport.doWrite()
        self.assertTrue(drained.endswith(b"x" + b"the request"))

    def test_disconnecting(self) -> None:
        """A connection that is closing is written to as usual (which drops the
        bytes once it has lost its connection), never sent on directly."""
        self.transport.disconnecting = True
        send_now(self.transport, b"late")
        self.assertEqual(self.received(), b"")

    def test_tls_wrapper(self) -> None:
        """A wrapping protocol (as TLS's is), which forwards attribute lookups to the
        TCP transport below it, is written to, never bypassed."""
        wrapper = ProtocolWrapper(WrappingFactory(Protocol()), Protocol())
        wrapper.makeConnection(self.transport)
        written: list[bytes] = []
        wrapper.write = written.append  # type: ignore[method-assign]
        send_now(wrapper, b"secret")
        self.assertEqual(written, [b"secret"])
        self.assertEqual(self.received(), b"")

    def test_other_transports(self) -> None:
        """A transport that is not Twisted's TCP connection is written to."""
        transport: Any = StringTransport()
        send_now(transport, b"bytes")
        self.assertEqual(transport.value(), b"bytes")
