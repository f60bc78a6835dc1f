"""
Unit tests for timeouts and cancellation as Twisted's Agent reports them.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectingCancelledError, ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from txetcd2 import ClusterUnavailable, EtcdClient, EtcdOutcomeUnknown, EtcdTimeout
from txetcd2._transport.deadline import cancelled_request, within


@implementer(IAgent)
class CancellingAgent:
    """
    An agent whose requests never answer and, when cancelled, fail the way
    Twisted's Agent fails them: ConnectingCancelledError while connecting,
    ResponseNeverReceived of a CancelledError once connected.

    :ivar connected: whether requests are past their connection.
    :ivar requests: the netlocs of the requests received.
    """

    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.requests: list[str] = []
        self.deferreds: list[Deferred[IResponse]] = []

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        connected = self.connected

        def cancel(d: Deferred[IResponse]) -> None:
            if connected:
                d.errback(ResponseNeverReceived([Failure(CancelledError())]))
            else:
                d.errback(ConnectingCancelledError(IPv4Address("TCP", "127.0.0.1", 2379)))

        self.requests.append(uri.decode("ascii").split("/")[2])
        d: Deferred[IResponse] = Deferred(cancel)
        self.deferreds.append(d)
        return d


class CancelledRequestTests(SynchronousTestCase):
    """
    Recognizing the agent's reports of a cancelled request.
    """

    def test_recognized(self) -> None:
        """CancelledError, ConnectingCancelledError and a response never received
        because of a CancelledError are cancellations; other failures are not."""
        address = IPv4Address("TCP", "127.0.0.1", 2379)
        self.assertTrue(cancelled_request(CancelledError()))
        self.assertTrue(cancelled_request(ConnectingCancelledError(address)))
        self.assertTrue(cancelled_request(ResponseNeverReceived([Failure(CancelledError())])))
        self.assertFalse(cancelled_request(ResponseNeverReceived([Failure(ConnectionLost())])))
        self.assertFalse(cancelled_request(ValueError("x")))


class WithinTests(SynchronousTestCase):
    """
    within(): the deadline, and cancellation reported plainly.
    """

    def test_timeout_in_flight(self) -> None:
        """A request in flight past its deadline fails with TimeoutError."""
        clock = Clock()
        d = within(CancellingAgent(True).request(b"GET", b"http://h:1/a"), 2.0, clock)
        clock.advance(2.0)
        self.failureResultOf(d, TimeoutError)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timeout_while_connecting(self) -> None:
        """A request still connecting at its deadline keeps ConnectingCancelledError:
        it was never sent."""
        clock = Clock()
        d = within(CancellingAgent(False).request(b"GET", b"http://h:1/a"), 2.0, clock)
        clock.advance(2.0)
        self.failureResultOf(d, ConnectingCancelledError)

    def test_cancel(self) -> None:
        """A request cancelled by its caller fails with CancelledError, connected or not."""
        clock = Clock()
        for connected in (True, False):
            d = within(CancellingAgent(connected).request(b"GET", b"http://h:1/a"), 2.0, clock)
            d.cancel()
            self.failureResultOf(d, CancelledError)
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_other_failures_and_success(self) -> None:
        """Other failures and results pass through unchanged."""
        clock = Clock()
        failing: Deferred[int] = within(Deferred(), 2.0, clock)
        failing.errback(ResponseNeverReceived([Failure(ConnectionLost())]))
        self.failureResultOf(failing, ResponseNeverReceived)
        working: Deferred[int] = within(Deferred(), None, clock)
        working.callback(3)
        self.assertEqual(self.successResultOf(working), 3)
        self.assertEqual(clock.getDelayedCalls(), [])


class ClientCancellationTests(SynchronousTestCase):
    """
    The client over an agent that reports cancellations as Twisted's does.
    """

    def client(self, agent: IAgent, clock: Clock) -> EtcdClient:
        return EtcdClient(
            "http://h1:2379,http://h2:2379",
            reactor=clock,
            agent=agent,
            timeout=2.0,
            retry_policy=lambda n: 1.0,
        )

    def test_close_does_not_retry(self) -> None:
        """close() cancels a request in flight for good: no other member is tried."""
        for connected in (True, False):
            clock = Clock()
            agent = CancellingAgent(connected)
            client = self.client(agent, clock)
            d = client.get("a")
            self.successResultOf(client.close())
            self.failureResultOf(d, CancelledError)
            clock.advance(10)
            self.assertEqual(agent.requests, ["h1:2379"])
            self.assertEqual(clock.getDelayedCalls(), [])

    def test_cancel_write_is_cancelled(self) -> None:
        """Cancelling a create in flight fails it with CancelledError, not as an unknown
        outcome."""
        clock = Clock()
        agent = CancellingAgent(True)
        client = self.client(agent, clock)
        d = client.create("a", "1")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(agent.requests, ["h1:2379"])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timeout_in_flight(self) -> None:
        """A create that times out in flight is an unknown outcome caused by EtcdTimeout;
        a get that does is retried on the next member."""
        clock = Clock()
        agent = CancellingAgent(True)
        client = self.client(agent, clock)
        d = client.create("a", "1")
        clock.advance(2.0)
        error = self.failureResultOf(d, EtcdOutcomeUnknown).value
        self.assertIsInstance(error.error, EtcdTimeout)
        got = client.get("a")
        clock.advance(1.0)  # a read's share of the call's 2 s, with two members
        self.assertEqual(agent.requests, ["h1:2379", "h2:2379", "h1:2379"])
        self.successResultOf(client.close())
        self.failureResultOf(got, CancelledError)

    def test_connect_timeout_is_not_an_unknown_outcome(self) -> None:
        """A create still connecting when the call's deadline passes was never sent: it
        fails as a timeout, not as an unknown outcome, and leaves nothing behind."""
        clock = Clock()
        agent = CancellingAgent(False)
        client = self.client(agent, clock)
        d = client.create("a", "1")
        clock.advance(2.0)
        error = self.failureResultOf(d, ClusterUnavailable).value
        self.assertIsInstance(dict(error.errors)["http://h1:2379"], EtcdTimeout)
        self.assertEqual(agent.requests, ["h1:2379"])
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])
