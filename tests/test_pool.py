"""
Unit tests for the agent pool: connections per member, reuse, the cap, idle
reaping, the stale-connection retry, cancellation at every stage, closing,
and failures reported as Twisted's Agent reports them.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionRefusedError,
)
from twisted.internet.error import (
    TimeoutError as ConnectTimeout,
)
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgent, IResponse
from zope.interface.verify import verifyObject

from txetcd2._session.retry import never_left
from txetcd2._transport import http11
from txetcd2._transport import request as request_module
from txetcd2._transport.agent import BytesProducer
from txetcd2._transport.deadline import cancelled_request, within
from txetcd2._transport.exchange import connection_error, never_sent, read_body
from txetcd2._transport.http11 import TruncatedBody
from txetcd2._transport.pool import EtcdAgent, _ConnectionFactory
from txetcd2._wire.errors import EtcdTLSError

URL = b"http://127.0.0.1:2379/v2/keys/a"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: A chunked answer: given at its headers, its body streamed (not held).
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"


class Server:
    """
    Accepts the pool's connection attempts in memory, in order.
    """

    def __init__(self, reactor: MemoryReactorClock) -> None:
        self.reactor = reactor
        self.accepted = 0

    def pending(self) -> int:
        """How many connection attempts were not accepted yet."""
        return len(self.reactor.tcpClients) - self.accepted

    def attempt(self) -> Any:
        """The next connection attempt's factory (not accepted)."""
        factory = self.reactor.tcpClients[self.accepted][2]
        self.accepted += 1
        return factory

    def accept(self) -> tuple[Protocol, StringTransport]:
        """Accept the next attempt; return its protocol and transport."""
        host, port = self.reactor.tcpClients[self.accepted][:2]
        factory = self.attempt()
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        protocol.makeConnection(transport)
        return protocol, transport


def _answer(protocol: Protocol, transport: StringTransport, data: bytes = OK) -> None:
    transport.clear()
    protocol.dataReceived(data)


class PoolTestCase(SynchronousTestCase):
    """
    An agent on a memory reactor, checked for left-over timers after each test.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.server = Server(self.reactor)

    def agent(self, **options: Any) -> EtcdAgent:
        agent = EtcdAgent(self.reactor, **options)
        self.addCleanup(self._closed, agent)
        return agent

    def _closed(self, agent: EtcdAgent) -> None:
        connections = [
            connection
            for member in agent._members.values()
            for connection in list(member.busy) + list(member.idle)
        ]
        closing = agent.closeCachedConnections()
        for connection in connections:
            if connection.connected:
                connection.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closing)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def close_failing(self, agent: EtcdAgent, *requests: Deferred[IResponse]) -> None:
        """Close the agent; each of ``requests`` fails as never answered."""
        self._closed(agent)
        for d in requests:
            self.failureResultOf(d, ResponseNeverReceived)

    def body(self, d: Deferred[IResponse]) -> bytes:
        body: bytes = self.successResultOf(read_body(self.successResultOf(d)))
        return body


class ReuseTests(PoolTestCase):
    """
    Keep-alive connections per member.
    """

    def test_interface(self) -> None:
        """EtcdAgent provides IAgent."""
        self.assertTrue(verifyObject(IAgent, self.agent()))

    def test_reused(self) -> None:
        """Requests one after another go on one connection."""
        agent = self.agent()
        first = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        self.assertTrue(transport.value().startswith(b"GET /v2/keys/a HTTP/1.1\r\n"))
        _answer(protocol, transport)
        self.assertEqual(self.body(first), b"ok")
        second = agent.request(b"GET", URL)
        self.assertEqual(self.server.pending(), 0)
        self.assertTrue(transport.value().startswith(b"GET /v2/keys/a HTTP/1.1\r\n"))
        _answer(protocol, transport)
        self.assertEqual(self.body(second), b"ok")

    def test_members_apart(self) -> None:
        """Each member (scheme, host, port) has its own connections."""
        agent = self.agent()
        agent.request(b"GET", URL)
        agent.request(b"GET", b"http://127.0.0.1:2380/v2/keys/a")
        self.assertEqual(
            [c[:2] for c in self.reactor.tcpClients], [("127.0.0.1", 2379), ("127.0.0.1", 2380)]
        )
        for _ in range(2):
            protocol, transport = self.server.accept()
            _answer(protocol, transport)

    def test_connection_close_answer(self) -> None:
        """An answer with Connection: close is not followed by another request on its
        connection."""
        agent = self.agent()
        first = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        _answer(protocol, transport, OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertEqual(self.body(first), b"ok")
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        _answer(protocol, transport)

    def test_quiet_factory(self) -> None:
        """The factory connections are made with does not log starting and stopping."""
        self.assertFalse(_ConnectionFactory.noisy)

    def test_bad_scheme_and_method(self) -> None:
        """An unsupported scheme fails the Deferred; a bad method raises ValueError."""
        agent = self.agent()
        self.failureResultOf(agent.request(b"GET", b"ftp://127.0.0.1/a"), SchemeNotSupported)
        self.assertRaises(ValueError, agent.request, b"G T", URL)
        self.assertEqual(self.server.pending(), 0)


class CapTests(PoolTestCase):
    """
    At most max_connections connections per member for ordinary requests.
    """

    def test_waits_for_a_connection(self) -> None:
        """A request over the cap waits and goes on the first connection freed."""
        agent = self.agent(max_connections=2)
        requests = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        self.assertEqual(self.server.pending(), 2)
        protocol, transport = self.server.accept()
        self.server.accept()
        _answer(protocol, transport)
        self.assertEqual(self.body(requests[0]), b"ok")
        self.assertIn(b"GET /v2/keys/a2 ", transport.value())
        _answer(protocol, transport)
        self.assertEqual(self.body(requests[2]), b"ok")
        self.assertNoResult(requests[1])
        self.assertEqual(self.server.pending(), 0)
        self.close_failing(agent, requests[1])

    def test_long_polls_not_counted(self) -> None:
        """Long polls (wait=true) do not count against the cap."""
        agent = self.agent(max_connections=1)
        requests = [agent.request(b"GET", URL + b"?wait=true") for _ in range(2)]
        requests.append(agent.request(b"GET", URL))
        self.assertEqual(self.server.pending(), 3)
        for _ in range(3):
            self.server.accept()
        self.close_failing(agent, *requests)

    def test_wait_in_the_path_is_no_long_poll(self) -> None:
        """Only a wait=true in the query makes a long poll, not one in the key."""
        agent = self.agent(max_connections=1)
        requests = [agent.request(b"GET", URL + b"/wait=true") for _ in range(2)]
        self.assertEqual(self.server.pending(), 1)  # the second waits: the cap counts it
        self._closed(agent)
        for d in requests:
            self.failureResultOf(d, ConnectingCancelledError)

    def test_failed_connect_frees_the_slot(self) -> None:
        """A refused connection fails its request with ConnectError (never sent), and a
        waiting request gets its own attempt."""
        agent = self.agent(max_connections=1)
        first = agent.request(b"PUT", URL, bodyProducer=BytesProducer(b"value=1"))
        second = agent.request(b"GET", URL)
        self.server.attempt().clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.reactor.advance(1)
        failure = self.failureResultOf(first, ConnectionRefusedError)
        self.assertTrue(never_sent(failure.value) and never_left(failure.value))
        self.assertEqual(self.server.pending(), 1)
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        self.assertEqual(self.body(second), b"ok")


class IdleTests(PoolTestCase):
    """
    Idle connections are reaped, and only so many kept.
    """

    def test_reaped(self) -> None:
        """A connection idle for idle_timeout seconds is closed, and no timer remains."""
        agent = self.agent(idle_timeout=10.0)
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        self.body(d)
        self.reactor.advance(9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(agent._members[b"http://127.0.0.1:2379"].idle, [])

    def test_reaper_rearms(self) -> None:
        """A connection that became idle later is reaped at its own time."""
        agent = self.agent(idle_timeout=10.0)
        first, second = agent.request(b"GET", URL), agent.request(b"GET", URL)
        (p1, t1), (p2, t2) = self.server.accept(), self.server.accept()
        _answer(p1, t1)
        self.reactor.advance(5)
        _answer(p2, t2)
        self.body(first), self.body(second)
        self.reactor.advance(5)
        self.assertEqual((t1.disconnecting, t2.disconnecting), (True, False))
        self.reactor.advance(5)
        self.assertTrue(t2.disconnecting)

    def test_max_idle(self) -> None:
        """Beyond max_idle, a freed connection is closed rather than kept."""
        agent = self.agent(max_idle=1)
        first, second = agent.request(b"GET", URL), agent.request(b"GET", URL)
        (p1, t1), (p2, t2) = self.server.accept(), self.server.accept()
        _answer(p1, t1)
        _answer(p2, t2)
        self.body(first), self.body(second)
        self.assertEqual((t1.disconnecting, t2.disconnecting), (False, True))


class StaleTests(PoolTestCase):
    """
    One retry when a reused connection turns out to be closed.
    """

    def _reused(self, agent: EtcdAgent) -> tuple[Protocol, StringTransport]:
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        self.body(d)
        return protocol, transport

    def test_stale_read_retried(self) -> None:
        """A read on a reused connection that closes before any byte is sent again
        on a fresh connection."""
        agent = self.agent()
        protocol, _ = self._reused(agent)
        d = agent.request(b"GET", URL)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertNoResult(d)
        fresh, transport = self.server.accept()
        self.assertIn(b"GET /v2/keys/a ", transport.value())
        _answer(fresh, transport)
        self.assertEqual(self.body(d), b"ok")

    def test_retried_once(self) -> None:
        """A read is retried once only."""
        agent = self.agent()
        protocol, _ = self._reused(agent)
        d = agent.request(b"GET", URL)
        protocol.connectionLost(Failure(ConnectionDone()))
        fresh, _ = self.server.accept()
        fresh.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(d, ResponseNeverReceived)
        self.assertTrue(failure.value.reasons[0].check(ConnectionDone))

    def test_fresh_connection_not_retried(self) -> None:
        """A read on a fresh connection that closes fails with ResponseNeverReceived."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, _ = self.server.accept()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ResponseNeverReceived)
        self.assertEqual(self.server.pending(), 0)

    def test_write_not_retried(self) -> None:
        """A write on a stale reused connection fails and is never sent again."""
        agent = self.agent()
        protocol, _ = self._reused(agent)
        d = agent.request(b"PUT", URL, bodyProducer=BytesProducer(b"value=1"))
        protocol.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(d, ResponseNeverReceived)
        self.assertFalse(never_left(failure.value))
        self.assertEqual(self.server.pending(), 0)

    def test_not_retried_after_bytes(self) -> None:
        """A read whose answer had begun fails with ResponseFailed, not retried."""
        agent = self.agent()
        protocol, _ = self._reused(agent)
        d = agent.request(b"GET", URL)
        protocol.dataReceived(b"HTTP/1.1 200")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(d, ResponseFailed)
        self.assertEqual(self.server.pending(), 0)


class CancelTests(PoolTestCase):
    """
    Cancelling a request at every stage.
    """

    def test_while_waiting(self) -> None:
        """A request waiting for a connection fails with ConnectingCancelledError:
        it was never sent."""
        agent = self.agent(max_connections=1)
        agent.request(b"GET", URL)
        d = agent.request(b"GET", URL)
        d.cancel()
        failure = self.failureResultOf(d, ConnectingCancelledError)
        self.assertTrue(never_sent(failure.value) and cancelled_request(failure.value))
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        self.assertEqual(transport.value(), b"")  # the cancelled one never went out

    def test_while_connecting(self) -> None:
        """A request cancelled while connecting stops the attempt."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        d.cancel()
        self.failureResultOf(d, ConnectingCancelledError)
        member = agent._members[b"http://127.0.0.1:2379"]
        self.assertEqual((member.open, member.connecting), (0, set()))

    def test_while_sent(self) -> None:
        """A request cancelled before its answer aborts its connection and fails with
        ResponseNeverReceived(CancelledError)."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        d.cancel()
        failure = self.failureResultOf(d, ResponseNeverReceived)
        self.assertTrue(failure.value.reasons[0].check(CancelledError))
        self.assertTrue(cancelled_request(failure.value))
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(self.server.pending(), 0)

    def test_while_headers_come(self) -> None:
        """A request cancelled in the middle of its answer's headers fails with
        ResponseFailed(CancelledError)."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        d.cancel()
        failure = self.failureResultOf(d, ResponseFailed)
        self.assertTrue(cancelled_request(failure.value))
        self.assertTrue(transport.disconnected)

    def test_while_body_comes(self) -> None:
        """Cancelling the reading of a streamed body aborts the connection."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        protocol.dataReceived(CHUNKED[:-7])
        body = read_body(self.successResultOf(d))
        body.cancel()
        self.failureResultOf(body, CancelledError)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))

    def test_while_held_body_comes(self) -> None:
        """A request cancelled while its short answer's body comes (the answer is held
        until its end) fails with ResponseFailed(CancelledError) and aborts the
        connection."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        protocol.dataReceived(OK[:-1])
        d.cancel()
        failure = self.failureResultOf(d, ResponseFailed)
        self.assertTrue(cancelled_request(failure.value))
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))

    def test_deadline_while_sent(self) -> None:
        """A deadline that runs out in flight is a TimeoutError through within()."""
        agent = self.agent()
        d = within(agent.request(b"GET", URL), 2.0, self.reactor)
        protocol, transport = self.server.accept()
        self.reactor.advance(2)
        self.failureResultOf(d).trap(Exception)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))


class FailureMappingTests(PoolTestCase):
    """
    Failures reported with the exceptions the layers above expect.
    """

    def test_connect_timeout(self) -> None:
        """The connect timeout is the endpoint's; running out fails the request as
        never sent."""
        agent = self.agent(connect_timeout=3.0)
        d = agent.request(b"GET", URL)
        self.assertEqual(self.reactor.tcpClients[0][3], 3.0)
        self.server.attempt().clientConnectionFailed(None, Failure(ConnectTimeout()))
        self.reactor.advance(1)
        failure = self.failureResultOf(d, ConnectTimeout)
        self.assertTrue(never_sent(failure.value))

    def test_tls_failure(self) -> None:
        """A TLS handshake failure before any byte is ResponseNeverReceived(SSL.Error),
        classified as a TLS error and as never having left."""
        agent = self.agent()
        d = agent.request(b"GET", URL)
        protocol, _ = self.server.accept()
        error = SSL.Error([("SSL routines", "", "certificate verify failed")])
        protocol.connectionLost(Failure(error))
        failure = self.failureResultOf(d, ResponseNeverReceived)
        self.assertTrue(never_left(failure.value))
        tls = connection_error("https://127.0.0.1:2379", failure.value)
        self.assertIsInstance(tls, EtcdTLSError)
        self.assertIn("not trusted", str(tls))


class PipelineTests(PoolTestCase):
    """
    Short reads pipelined on a few connections; writes and long polls never.
    """

    def pipelining(self) -> EtcdAgent:
        return self.agent(max_connections=4, pipeline_depth=4)  # pipelined from 1 connection

    def test_reads_share_a_connection(self) -> None:
        """Reads made while the first connection is being made all go on it, and each
        gets its own answer."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(4)]
        self.assertEqual(self.server.pending(), 1)
        protocol, transport = self.server.accept()
        self.assertEqual(transport.value().count(b"GET /v2/keys/a"), 4)
        answers = b"".join(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(4))
        _answer(protocol, transport, answers)
        self.assertEqual([self.body(d) for d in reads], [b"0", b"1", b"2", b"3"])
        member = agent._members[b"http://127.0.0.1:2379"]
        self.assertEqual((len(member.idle), member.open), (1, 1))

    def test_depth_limit(self) -> None:
        """No more than pipeline_depth requests are in flight on one connection; the
        next waits for an answer."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL) for _ in range(5)]
        protocol, transport = self.server.accept()
        self.assertEqual(transport.value().count(b"GET "), 4)
        _answer(protocol, transport)
        self.assertEqual(transport.value().count(b"GET "), 1)  # the fifth went on it
        for _ in range(4):
            _answer(protocol, transport)
        self.assertEqual([self.body(d) for d in reads], [b"ok"] * 5)

    def test_writes_and_long_polls_not_pipelined(self) -> None:
        """A write or a long poll made while a read is in flight gets its own
        connection, and no read is pipelined behind them."""
        agent = self.pipelining()
        read = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        write = agent.request(b"PUT", URL, bodyProducer=BytesProducer(b"value=1"))
        poll = agent.request(b"GET", URL + b"?wait=true")
        self.assertEqual(self.server.pending(), 2)
        (wp, wt), (pp, pt) = self.server.accept(), self.server.accept()
        self.assertEqual(transport.value().count(b"GET "), 1)
        self.assertEqual(wt.value().count(b"PUT "), 1)
        self.assertEqual(pt.value().count(b"GET "), 1)
        for p, t, d in ((protocol, transport, read), (wp, wt, write), (pp, pt, poll)):
            _answer(p, t)
            self.assertEqual(self.body(d), b"ok")

    def test_slow_reads_not_pipelined(self) -> None:
        """A quorum read (answered through etcd's raft log, as a write is) or a
        recursive listing (perhaps a whole tree) made while reads are in flight gets
        its own connection, and no read goes behind it; plain reads still go behind
        plain reads."""
        agent = self.pipelining()
        read = agent.request(b"GET", URL + b"0")
        protocol, transport = self.server.accept()
        quorum = [
            agent.request(b"GET", URL + b"1?quorum=true"),
            agent.request(b"GET", URL + b"1?recursive=true&sorted=true"),
        ]
        later = agent.request(b"GET", URL + b"2")
        self.assertEqual(self.server.pending(), 2)
        (q1, t1), (q2, t2) = self.server.accept(), self.server.accept()
        self.assertEqual(transport.value().count(b"GET /v2/keys/a0 "), 1)
        self.assertEqual(transport.value().count(b"GET /v2/keys/a2 "), 1)
        self.assertEqual(t1.value().count(b"GET "), 1)
        self.assertEqual(t2.value().count(b"GET "), 1)
        _answer(protocol, transport, OK + OK)
        for p, t in ((q1, t1), (q2, t2)):
            _answer(p, t)
        self.assertEqual([self.body(d) for d in (read, later, *quorum)], [b"ok"] * 4)

    def test_reads_behind_resent(self) -> None:
        """When a pipelined connection is cut in an answer, that read fails and the
        reads queued behind it are sent again on a fresh connection."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        protocol, _ = self.server.accept()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Le")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(reads[0], ResponseFailed)
        fresh, again = self.server.accept()
        self.assertIn(b"GET /v2/keys/a1 ", again.value())
        self.assertIn(b"GET /v2/keys/a2 ", again.value())
        self.assertNotIn(b"GET /v2/keys/a0 ", again.value())
        _answer(fresh, again, OK + OK)
        self.assertEqual([self.body(d) for d in reads[1:]], [b"ok", b"ok"])

    def test_cut_in_a_body(self) -> None:
        """A pipelined connection cut in the middle of the first (streamed) body fails
        that body (TruncatedBody); the reads behind are sent again and answered."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        protocol, _ = self.server.accept()
        protocol.dataReceived(CHUNKED[:-7])
        body = read_body(self.successResultOf(reads[0]))
        protocol.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(body, ResponseFailed)
        self.assertTrue(failure.value.reasons[1].check(TruncatedBody))
        fresh, again = self.server.accept()
        self.assertEqual(again.value().count(b"GET "), 2)
        _answer(fresh, again, OK + OK)
        self.assertEqual([self.body(d) for d in reads[1:]], [b"ok", b"ok"])

    def test_cut_in_a_held_body(self) -> None:
        """A pipelined connection cut in the middle of a short answer's body (held
        until its end) fails that read with TruncatedBody, without resending it; the
        reads behind are sent again and answered."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        protocol, _ = self.server.accept()
        protocol.dataReceived(OK[:-1])
        self.assertNoResult(reads[0])
        protocol.connectionLost(Failure(ConnectionDone()))
        failure = self.failureResultOf(reads[0], ResponseFailed)
        self.assertTrue(failure.value.reasons[1].check(TruncatedBody))
        fresh, again = self.server.accept()
        self.assertEqual(again.value().count(b"GET "), 2)
        _answer(fresh, again, OK + OK)
        self.assertEqual([self.body(d) for d in reads[1:]], [b"ok", b"ok"])

    def test_resent_once(self) -> None:
        """A read sent again fails if its second connection fails too."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(2)]
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        protocol.connectionLost(Failure(ConnectionDone()))
        fresh, _ = self.server.accept()
        fresh.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.body(reads[0]), b"ok")
        self.failureResultOf(reads[1], ResponseNeverReceived)

    def test_cancel_pipelined(self) -> None:
        """Cancelling a pipelined read aborts its connection; the other reads on it are
        sent again."""
        agent = self.pipelining()
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        protocol, transport = self.server.accept()
        reads[1].cancel()
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionAborted()))
        failure = self.failureResultOf(reads[1], ResponseNeverReceived)
        self.assertTrue(cancelled_request(failure.value))
        fresh, again = self.server.accept()
        self.assertIn(b"GET /v2/keys/a0 ", again.value())
        self.assertIn(b"GET /v2/keys/a2 ", again.value())
        self.assertNotIn(b"GET /v2/keys/a1 ", again.value())
        _answer(fresh, again, OK + OK)
        self.assertEqual([self.body(reads[0]), self.body(reads[2])], [b"ok", b"ok"])


class SendNowTests(PoolTestCase):
    """
    A request that nothing but long polls is in flight with is sent at once;
    others wait for the reactor's next turn, so that many requests made in
    one turn go out together.
    """

    def setUp(self) -> None:
        super().setUp()
        self.now: list[bytes] = []

        def send_now(transport: Any, data: bytes) -> None:
            self.now.append(data.split(b" ", 2)[1])
            transport.write(data)

        self.patch(http11, "send_now", send_now)
        self.patch(request_module, "send_now", send_now)

    def two(self, agent: EtcdAgent, first: bytes, second: bytes) -> tuple[Any, ...]:
        """
        Send ``first`` and ``second`` (GETs below ``URL``), each on a new connection.

        :returns: each one's Deferred, then the server side of each connection.
        """
        d1 = agent.request(b"GET", URL + first)
        protocol1, transport1 = self.server.accept()
        d2 = agent.request(b"GET", URL + second)
        protocol2, transport2 = self.server.accept()
        return d1, d2, protocol1, transport1, protocol2, transport2

    def test_alone_and_together(self) -> None:
        """The first request is sent at once; one made while it is in flight is
        not; once both are answered, the next is sent at once again."""
        agent = self.agent()
        first, second, protocol1, transport1, protocol2, transport2 = self.two(agent, b"1", b"2")
        self.assertEqual(self.now, [b"/v2/keys/a1"])
        _answer(protocol1, transport1)
        _answer(protocol2, transport2)
        self.assertEqual([self.body(first), self.body(second)], [b"ok", b"ok"])
        third = agent.request(b"PUT", URL + b"3", bodyProducer=BytesProducer(b"value=x"))
        self.assertEqual(self.now, [b"/v2/keys/a1", b"/v2/keys/a3"])
        self.assertIn(b"PUT /v2/keys/a3 ", transport2.value())
        _answer(protocol2, transport2)
        self.assertEqual(self.body(third), b"ok")

    def test_long_poll_in_flight(self) -> None:
        """A long poll is never sent at once (it waits for an event anyway), and one
        in flight does not keep the next request from going at once."""
        agent = self.agent()
        poll, read, protocol1, transport1, protocol2, transport2 = self.two(
            agent, b"?wait=true", b"2"
        )
        self.assertEqual(self.now, [b"/v2/keys/a2"])
        _answer(protocol2, transport2)
        _answer(protocol1, transport1)
        self.assertEqual([self.body(read), self.body(poll)], [b"ok", b"ok"])

    def test_pipelined(self) -> None:
        """Reads pipelined behind another are never sent at once."""
        agent = self.agent(max_connections=4, pipeline_depth=4)
        reads = [agent.request(b"GET", URL + b"%d" % i) for i in range(3)]
        protocol, transport = self.server.accept()
        self.assertEqual(self.now, [b"/v2/keys/a0"])
        _answer(protocol, transport, OK * 3)
        self.assertEqual([self.body(d) for d in reads], [b"ok"] * 3)


class CloseTests(PoolTestCase):
    """
    closeCachedConnections closes everything.
    """

    def test_fires_when_all_closed(self) -> None:
        """Idle and busy connections are closed, waiting requests failed, and the
        Deferred fires only once every connection is gone."""
        agent = EtcdAgent(self.reactor, max_connections=2)
        first = agent.request(b"GET", URL)
        busy = agent.request(b"GET", URL)
        waiting = agent.request(b"GET", URL)
        (p1, t1), (p2, t2) = self.server.accept(), self.server.accept()
        _answer(p1, t1)
        self.body(first)
        self.assertIn(b"GET", t1.value())  # the waiting request went on the freed one
        closing = agent.closeCachedConnections()
        self.assertTrue(t1.disconnected and t2.disconnected)
        p1.connectionLost(Failure(ConnectionAborted()))
        self.failureResultOf(waiting, ResponseNeverReceived)
        self.assertNoResult(closing)
        p2.connectionLost(Failure(ConnectionAborted()))
        failure = self.failureResultOf(busy, ResponseNeverReceived)
        self.assertTrue(failure.value.reasons[0].check(ConnectionAborted))
        self.successResultOf(closing)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.server.pending(), 0)

    def test_idle_closed(self) -> None:
        """An idle connection is closed cleanly and the idle timer cancelled."""
        agent = EtcdAgent(self.reactor)
        d = agent.request(b"GET", URL)
        protocol, transport = self.server.accept()
        _answer(protocol, transport)
        self.body(d)
        closing = agent.closeCachedConnections()
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(closing)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_settings_checked(self) -> None:
        """Settings out of range raise ValueError."""
        for options in (
            {"max_connections": 0},
            {"max_idle": -1},
            {"idle_timeout": 0},
            {"pipeline_depth": 0},
        ):
            self.assertRaises(ValueError, EtcdAgent, self.reactor, **options)


class UnwrapTests(SynchronousTestCase):
    """
    A connection made through an endpoint is called by its transport directly.
    """

    def test_wrapper_dropped(self) -> None:
        """A transport whose protocol is the endpoint's wrapper of the connection
        calls the connection itself afterwards; any other is left alone."""
        from twisted.internet.endpoints import _WrappingProtocol

        from txetcd2._transport.http11 import HTTP11Connection
        from txetcd2._transport.pool import unwrap

        connection = HTTP11Connection(EtcdAgent(MemoryReactorClock()), b"h:1")
        transport = StringTransport()
        wrapper = _WrappingProtocol(Deferred(), connection)
        transport.protocol = wrapper  # type: ignore[attr-defined]
        connection.makeConnection(transport)
        unwrap(connection)
        self.assertIs(transport.protocol, connection)  # type: ignore[attr-defined]
        other = StringTransport()
        foreign = _WrappingProtocol(Deferred(), Protocol())
        other.protocol = foreign  # type: ignore[attr-defined]
        another = HTTP11Connection(EtcdAgent(MemoryReactorClock()), b"h:1")
        another.makeConnection(other)
        unwrap(another)
        self.assertIs(other.protocol, foreign)  # type: ignore[attr-defined]
        plain = HTTP11Connection(EtcdAgent(MemoryReactorClock()), b"h:1")
        plain.makeConnection(StringTransport())
        unwrap(plain)
        self.assertFalse(hasattr(plain.transport, "protocol"))
