"""
Tests for the one request path (txetcd2._session.session): whole-call
deadlines, cancellation at any instant, and the client's life cycle
(close(), ClientClosed, IService, async with).
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService, MultiService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from zope.interface.verify import verifyObject

from txetcd2 import ClientClosed, EtcdClient, EtcdConnectionError, EtcdResponse, EtcdTimeout
from txetcd2.testing._fakes import FakeRequest, RecordingAgent, node_body

A, B, C = "http://a:1", "http://b:2", "http://c:3"


class Harness:
    """
    A client over a recording agent and a clock, with a back-off of 1, 2, 4 s.
    """

    def __init__(self, endpoints: str = f"{A},{B},{C}", **options: Any) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        options.setdefault(
            "retry_policy",
            backoffPolicy(initialDelay=1.0, factor=2.0, maxDelay=60.0, jitter=lambda: 0.0),
        )
        self.client = EtcdClient(endpoints, reactor=self.clock, agent=self.agent, **options)

    def pop(self, netloc: str) -> FakeRequest:
        """
        The single pending request, which must go to ``netloc``.
        """
        request = self.agent.pop()
        assert request.netloc == netloc, f"request went to {request.netloc}, not {netloc}"
        return request

    def idle(self) -> bool:
        """
        Whether nothing is pending: no request and no timed call.
        """
        return self.agent.pending() == [] and self.clock.getDelayedCalls() == []


def step_to(clock: Clock, moment: float) -> None:
    """
    Advance ``clock`` to ``moment`` one due call at a time, as a reactor would
    (``Clock.advance`` jumps first and computes later timers from the jump).
    """
    while True:
        due = sorted(call.getTime() for call in clock.getDelayedCalls())
        if not due or due[0] > moment:
            break
        clock.advance(due[0] - clock.seconds())
    clock.advance(moment - clock.seconds())


class DeadlineTests(SynchronousTestCase):
    """
    ``timeout`` is a deadline for the whole call.
    """

    def test_paused_single_member(self) -> None:
        """A call with timeout=1 to a paused member fails at 1 s with EtcdTimeout naming 1 s,
        back-offs included."""
        h = Harness(A)
        d = h.client.get("k", timeout=1.0)
        h.pop(A)
        h.clock.advance(0.999)
        self.assertNoResult(d)
        h.clock.advance(0.001)
        error = self.failureResultOf(d, EtcdTimeout).value
        self.assertEqual((error.endpoint, error.seconds), (A, 1.0))
        self.assertTrue(h.idle())

    def test_back_off_past_deadline_ends_call(self) -> None:
        """A back-off that would pass the deadline ends the call at once with the error."""
        h = Harness(A, timeout=1.0)
        d = h.client.get("k")
        h.pop(A).refuse()
        self.assertIsInstance(self.failureResultOf(d).value, EtcdConnectionError)
        self.assertTrue(h.idle())

    def test_back_offs_fit_in_deadline(self) -> None:
        """Back-offs that fit in the deadline are taken."""
        h = Harness(A, timeout=10.0)
        d = h.client.get("k")
        h.pop(A).refuse()
        h.clock.advance(1.0)
        h.pop(A).refuse()
        h.clock.advance(2.0)
        h.pop(A).respond(200, node_body("get", "/k", "v", 3))
        self.assertEqual(self.successResultOf(d).node.value, "v")
        self.assertTrue(h.idle())

    def test_paused_members_share_the_deadline(self) -> None:
        """Each read attempt gets its share of what remains, so a live third member is
        reached within the call's deadline."""
        h = Harness(timeout=1.5)
        d = h.client.get("k", quorum=True)
        h.pop(A)
        h.clock.advance(0.5)
        h.pop(B)
        h.clock.advance(0.5)
        h.pop(C).respond(200, node_body("get", "/k", "v", 3))
        self.assertEqual(self.successResultOf(d).node.value, "v")
        self.assertTrue(h.idle())

    def test_write_gets_whole_deadline(self) -> None:
        """A write is not split: it may wait for the whole deadline (it cannot be resent)."""
        h = Harness(timeout=3.0)
        d = h.client.create("k", "v")
        request = h.pop(A)
        h.clock.advance(2.9)
        request.respond(201, node_body("create", "/k", "v", 3))
        self.assertEqual(self.successResultOf(d).action, "create")

    def test_watch_timeout_bounds_the_event(self) -> None:
        """watch(timeout=) bounds the wait for the event, not only its headers."""
        h = Harness(A)
        d = h.client.watch("k", timeout=2.0)
        h.pop(A).respond(200, b"", {"x-etcd-index": "7"}, finish=False)
        h.clock.advance(1.999)
        self.assertNoResult(d)
        h.clock.advance(0.001)
        self.assertEqual(self.failureResultOf(d, EtcdTimeout).value.seconds, 2.0)
        self.assertTrue(h.idle())


class CancelTests(SynchronousTestCase):
    """
    A cancel at any moment of a call fires its Deferred at once.
    """

    def test_cancel_at_every_instant(self) -> None:
        """With [paused, paused, live] members, a cancel at any instant (including the
        instant an attempt's share of the deadline runs out, in the same reactor turn)
        fires CancelledError at once and leaves nothing behind."""
        for moment in (0.0, 0.2, 1 / 3, 0.5, 2 / 3, 0.9, 1.0):
            h = Harness(timeout=1.0)
            d = h.client.get("k", quorum=True)
            h.clock.callLater(moment, d.cancel)
            step_to(h.clock, moment)
            self.failureResultOf(d, CancelledError)
            h.clock.advance(10.0)
            self.assertTrue(h.idle(), f"left work behind when cancelled at {moment}")

    def test_cancel_during_back_off(self) -> None:
        """A cancel during a back-off fires at once and cancels the back-off."""
        h = Harness(A, timeout=30.0)
        d = h.client.get("k")
        h.pop(A).refuse()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(h.idle())

    def test_cancel_while_probing_the_port(self) -> None:
        """A cancel while the client probes whether a closed connection meant a TLS port
        ends the call there: no other member is tried afterwards."""
        h = Harness(f"{A},{B}")
        d = h.client.get("k")
        h.pop(A).fail(ResponseNeverReceived([Failure(ConnectionDone())]))
        probe = h.pop("https://a:1")
        self.assertEqual(probe.target, "/version")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual([r.netloc for r in h.agent.requests], [A, "https://a:1"])
        self.assertTrue(h.idle())

    def test_port_probe_within_the_deadline(self) -> None:
        """The probe of whether a closed connection meant a TLS port takes no more
        than what is left of the call's time: the call still ends at its deadline."""
        h = Harness(A, timeout=1.0)
        d = h.client.get("k")
        h.clock.advance(0.4)
        h.pop(A).fail(ResponseNeverReceived([Failure(ConnectionDone())]))
        self.assertEqual(h.pop("https://a:1").target, "/version")
        step_to(h.clock, 0.999)
        self.assertNoResult(d)
        step_to(h.clock, 1.0)
        self.failureResultOf(d, EtcdConnectionError)
        self.assertTrue(h.idle())

    def test_watch_port_probe_within_its_timeout(self) -> None:
        """The same for a watch's wait for its answer's headers."""
        h = Harness(A)
        d = Deferred.fromCoroutine(h.client._session.open(A, "/v2/keys/k?wait=true", 2.0))
        h.clock.advance(1.5)
        h.pop(A).fail(ResponseNeverReceived([Failure(ConnectionDone())]))
        self.assertEqual(h.pop("https://a:1").target, "/version")
        step_to(h.clock, 1.999)
        self.assertNoResult(d)
        step_to(h.clock, 2.0)
        self.failureResultOf(d, EtcdConnectionError)
        self.assertTrue(h.idle())

    def test_late_answer_after_cancel(self) -> None:
        """An answer arriving after a cancel is dropped; the Deferred stays cancelled."""
        h = Harness(A)
        d = h.client.get("k")
        request = h.pop(A)
        d.cancel()
        request.respond(200, node_body("get", "/k", "v", 3))
        self.failureResultOf(d, CancelledError)


class LifeCycleTests(SynchronousTestCase):
    """
    close() means closed; the client is an IService and an async context manager.
    """

    def test_calls_after_close(self) -> None:
        """Calls, watcher() and start() after close() raise ClientClosed before any I/O."""
        h = Harness()
        self.successResultOf(h.client.close())
        self.assertRaises(ClientClosed, h.client.get, "k")
        self.assertRaises(ClientClosed, h.client.members)
        self.assertRaises(ClientClosed, h.client.auth.users)
        self.assertRaises(ClientClosed, h.client.watcher, "k")
        self.assertRaises(ClientClosed, h.client.start)
        self.assertEqual(h.agent.requests, [])
        self.assertIn("closed", repr(h.client))
        self.assertIn("create a new EtcdClient", str(ClientClosed()))

    def test_ended_calls_forgotten(self) -> None:
        """A call that ended (answered, failed or cancelled) is no longer kept
        for close() to cancel; one in flight is."""
        h = Harness(A)
        pending = h.client._session._pending
        answered = h.client.get("k")
        h.pop(A).respond(200, node_body("get", "/k", "v", 5))
        self.successResultOf(answered)
        cancelled = h.client.get("k")
        h.pop(A)
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.assertEqual(pending, set())
        in_flight = h.client.get("k")
        self.assertEqual(pending, {in_flight})
        self.successResultOf(h.client.close())
        self.failureResultOf(in_flight, CancelledError)
        self.assertEqual(pending, set())
        self.assertTrue(h.idle())

    def test_called_only_with_result(self) -> None:
        """A call's Deferred is called once, with the call's result: not while
        the agent has answered and the body, or another member, is awaited
        (its ``called`` and ``result`` mean what they say)."""
        h = Harness()
        d = h.client.get("k")
        h.pop(A).refuse()
        self.assertFalse(d.called)  # the next member is being asked
        body = json.dumps(node_body("get", "/k", "v", 3)).encode()
        response = h.pop(B).respond(200, body[:5], finish=False)
        self.assertFalse(d.called)  # the body is coming
        response.write(body[5:])
        response.finish()
        self.assertTrue(d.called)
        self.assertIsInstance(d.result, EtcdResponse)
        self.assertEqual(cast(EtcdResponse, d.result).node.value, "v")
        self.assertEqual(self.successResultOf(d).node.value, "v")

    def test_close_twice(self) -> None:
        """close() may be called again; both Deferreds fire."""
        h = Harness()
        first, second = h.client.close(), h.client.close()
        self.successResultOf(first)
        self.successResultOf(second)

    def test_close_stops_running_watcher(self) -> None:
        """close() stops a running watcher (its "stop" callbacks run, its stream is
        aborted) and fires only then; nothing runs afterwards."""
        h = Harness(A)
        watcher = h.client.watcher("k")
        stopped: list[object] = []
        changes: list[object] = []
        watcher.on("stop", stopped.append)
        watcher.on("change", changes.append)
        watcher.start()
        stream = h.pop(A).respond(200, b"", {"x-etcd-index": "7"}, finish=False)
        closing = h.client.close()
        h.clock.advance(0)  # the aborted stream reports its end on the clock
        self.successResultOf(closing)
        self.assertEqual(len(stopped), 1)
        stream.write(b'{"action":"set","node":{"key":"/k","value":"v","modifiedIndex":8}}\n')
        self.assertEqual(changes, [])
        self.assertTrue(h.idle())

    def test_service(self) -> None:
        """EtcdClient provides IService: startService starts the member sync, stopService
        closes the client."""
        h = Harness(A, sync_interval=30.0)
        self.assertTrue(verifyObject(IService, h.client))
        parent = MultiService()
        h.client.setServiceParent(parent)
        parent.startService()
        self.assertEqual(h.pop(A).target, "/v2/members")
        stopping = parent.stopService()
        self.successResultOf(stopping)
        self.assertRaises(ClientClosed, h.client.get, "k")
        self.assertTrue(h.idle())

    def test_async_with(self) -> None:
        """async with EtcdClient(...) closes the client on exit, even on an error."""
        h = Harness(A)

        async def use() -> None:
            async with h.client as client:
                self.assertIs(client, h.client)
                raise ValueError("boom")

        self.failureResultOf(Deferred.fromCoroutine(use()), ValueError)
        self.assertRaises(ClientClosed, h.client.get, "k")
