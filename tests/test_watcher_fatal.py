"""
Unit tests for the watcher's states, its lifecycle, the errors that stop it
(and those it retries), and the client's ``close()`` stopping it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from OpenSSL import SSL
from twisted.application.internet import backoffPolicy
from twisted.application.service import IService
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseNeverReceived
from twisted.web.iweb import IResponse

from tests.test_watcher import WatcherTestCase, line
from txetcd2 import (
    ClientClosed,
    EtcdClient,
    EtcdClusterMismatch,
    EtcdConnectionError,
    EtcdError,
    EtcdProtocolError,
    EtcdResponse,
    EtcdTLSError,
    EtcdV2Disabled,
    InsufficientCredentials,
    RaftInternal,
    Unauthorized,
    Watcher,
)
from txetcd2.testing._fakes import error_body
from txetcd2.watch import State, WatchHub, WatchSource

URL = "http://h1:2379"


class FakeSource:
    """
    A :class:`WatchSource` whose every request fails with the next queued error.
    """

    def __init__(self, clock: Clock, errors: list[Exception]) -> None:
        self.clock = clock
        self.timeout = 2.0
        self.errors = errors
        self.opened: list[str] = []
        self.tracked: set[IService] = set()
        self.closed = False

    def endpoints(self) -> Sequence[str]:
        return [URL]

    def open(
        self, endpoint: str, target: str, timeout: float
    ) -> Deferred[tuple[IResponse, Mapping[str, str]]]:
        self.opened.append(target)
        return fail(self.errors.pop(0))

    def snapshot(self, key: str, recursive: bool) -> Deferred[EtcdResponse]:
        return fail(self.errors.pop(0))

    def track(self, service: IService) -> None:
        self.tracked.add(service)

    def untrack(self, service: IService) -> None:
        self.tracked.discard(service)

    def check_open(self) -> None:
        if self.closed:
            raise ClientClosed()


class FatalErrorTests(SynchronousTestCase):
    """
    Errors that retrying cannot fix stop the watcher; the others are retried.
    """

    def run_into(self, error: Exception) -> tuple[Watcher, list[tuple[str, Any]], FakeSource]:
        """
        Start a watcher over a source whose first request fails with ``error``
        (then with transient errors), and record what it reports.
        """
        clock = Clock()
        source = FakeSource(clock, [error, *[RaftInternal(300, "busy")] * 5])
        self.assertIsInstance(source, WatchSource)
        w = Watcher(source, "/k", retry_policy=backoffPolicy(jitter=lambda: 0.0))
        seen: list[tuple[str, Any]] = []
        for name in ("error", "stop", "reconnect"):
            w.on(name, lambda payload, name=name: seen.append((name, payload)))
        w.start()
        self.addCleanup(lambda: self.assertEqual(clock.getDelayedCalls(), []))
        return w, seen, source

    def assert_fatal(self, error: Exception) -> None:
        """
        ``error`` goes to "error", then "stop" gets the same failure; nothing is retried.
        """
        w, seen, source = self.run_into(error)
        self.assertEqual([name for name, _ in seen], ["error", "stop"])
        self.assertIs(seen[0][1].value, error)
        self.assertIs(seen[1][1], seen[0][1])
        self.assertIs(w.state, State.FAILED)
        self.assertIs(w.failure, seen[0][1])
        self.assertEqual(len(source.opened), 1)
        self.assertEqual(source.tracked, set())
        # Logged once, with the failure as a field, when the watcher gave up.
        self.assertEqual(len(self.flushLoggedErrors(type(error))), 1)
        self.successResultOf(w.stop())

    def test_v2_disabled(self) -> None:
        """A member without the v2 API stops the watcher."""
        self.assert_fatal(EtcdV2Disabled(URL, "3.4.23"))

    def test_tls_error(self) -> None:
        """A TLS verification failure stops the watcher."""
        self.assert_fatal(EtcdTLSError(URL, "the server's certificate is not trusted"))

    def test_unauthorized(self) -> None:
        """Credentials etcd rejects (errorCode 110) stop the watcher."""
        self.assert_fatal(Unauthorized(110, "The request requires user authentication"))

    def test_insufficient_credentials(self) -> None:
        """Insufficient credentials stop the watcher."""
        self.assert_fatal(InsufficientCredentials(URL, 401, "Insufficient credentials"))

    def test_cluster_mismatch(self) -> None:
        """A member of another cluster stops the watcher."""
        self.assert_fatal(EtcdClusterMismatch(URL, "b", "a"))

    def test_client_closed(self) -> None:
        """A closed client stops the watcher."""
        self.assert_fatal(ClientClosed())

    def test_transient_errors_retried(self) -> None:
        """Timeouts, refusals, odd answers and elections are reported and retried with back-off."""
        for error in (
            EtcdConnectionError(URL, "connection refused"),
            EtcdProtocolError(URL, 200, "a watch answer without X-Etcd-Index"),
            RaftInternal(300, "Raft Internal Error"),
        ):
            w, seen, _ = self.run_into(error)
            self.assertEqual([name for name, _ in seen], ["error", "reconnect"])
            self.assertIs(w.state, State.WAITING)
            self.flushLoggedErrors(EtcdProtocolError)
            self.successResultOf(w.stop())
            self.assertIs(w.state, State.STOPPED)

    def test_restart_after_failure(self) -> None:
        """A failed watcher can be started again; the failure is then cleared."""
        w, _, _ = self.run_into(EtcdV2Disabled(URL))
        self.flushLoggedErrors(EtcdV2Disabled)
        w.start()
        self.assertIs(w.state, State.WAITING)
        self.assertIsNone(w.failure)
        self.successResultOf(w.stop())

    def test_async_for_raises(self) -> None:
        """``async for`` over a watcher that gave up raises its error."""
        clock = Clock()
        w = Watcher(FakeSource(clock, [EtcdV2Disabled(URL)]), "/k")

        async def consume() -> list[EtcdResponse]:
            return [event async for event in w]

        self.failureResultOf(Deferred.fromCoroutine(consume()), EtcdV2Disabled)
        self.flushLoggedErrors(EtcdV2Disabled)


class WireFatalTests(WatcherTestCase):
    """
    The client's watch source turns answers into the fatal errors.
    """

    def assert_gave_up(self, error_type: type[EtcdError]) -> None:
        """
        The watcher reported ``error_type`` to "error" and "stop", and sends nothing more.
        """
        self.assertEqual(self.names()[-2:], ["error", "stop"])
        self.assertIsNotNone(self.seen[-1][1].check(error_type))
        self.assertIs(self.watchers[0].state, State.FAILED)
        self.assertEqual(len(self.flushLoggedErrors(error_type)), 1)
        self.clock.advance(60)
        self.assertEqual(self.agent.pending(), [])

    def test_v2_disabled_answer(self) -> None:
        """A plain-text 404 confirmed by /version gives EtcdV2Disabled and stops the watcher."""
        self.watcher().start()
        req, _ = self.request()
        req.respond(404, b"404 page not found\n", {"content-type": "text/plain"})
        version, _ = self.request()
        self.assertEqual(version.target, "/version")
        version.respond(200, {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        self.assert_gave_up(EtcdV2Disabled)
        self.assertIn("--enable-v2", str(self.seen[-1][1].value))

    def test_unauthorized_answer(self) -> None:
        """A 401 with errorCode 110 stops the watcher."""
        self.watcher().start()
        self.request()[0].respond(401, error_body(110, "The request requires user authentication"))
        self.assert_gave_up(Unauthorized)

    def test_certificate_not_trusted(self) -> None:
        """A TLS verification failure while connecting stops the watcher."""
        self.watcher().start()
        reason = SSL.Error([("SSL routines", "", "certificate verify failed")])
        self.request()[0].fail(ResponseNeverReceived([Failure(reason)]))
        self.assert_gave_up(EtcdTLSError)

    def test_cluster_id_change(self) -> None:
        """After answers from cluster "a", an answer from cluster "b" stops the watcher."""
        self.watcher().start()
        first, _ = self.request()
        first.respond(200, None, {"x-etcd-index": "10", "x-etcd-cluster-id": "a"})
        second, _ = self.request()
        response = second.respond(
            200, None, {"x-etcd-index": "10", "x-etcd-cluster-id": "b"}, finish=False
        )
        self.assertTrue(response.transport.aborted)
        self.assert_gave_up(EtcdClusterMismatch)


class CloseTests(WatcherTestCase):
    """
    ``close()`` means closed for watchers too.
    """

    def test_close_stops_watchers(self) -> None:
        """close() stops a running watcher ("stop" with None) and fires once it stopped."""
        w = self.watcher()
        w.start()
        response = self.stream(10, line("set", "/k", 11))
        closing = self.client.close()
        self.assertTrue(response.transport.aborted)
        self.assertNoResult(closing)
        self.clock.advance(0)
        self.successResultOf(closing)
        self.assertEqual(self.seen[-1], ("stop", None))
        self.assertIs(w.state, State.STOPPED)
        response.write(line("set", "/k", 12))
        self.assertEqual(self.events(), [11])

    def test_watcher_after_close(self) -> None:
        """watcher() after close() raises ClientClosed."""
        self.successResultOf(self.client.close())
        with self.assertRaises(ClientClosed) as raised:
            self.client.watcher("/k")
        self.assertIn("create a new EtcdClient", str(raised.exception))

    def test_start_after_close(self) -> None:
        """A watcher built before close() and started after it gives up with ClientClosed."""
        w = self.watcher()
        self.successResultOf(self.client.close())
        w.start()
        self.assertEqual(self.names(), ["error", "stop"])
        self.assertIsNotNone(self.seen[-1][1].check(ClientClosed))
        self.assertEqual(len(self.flushLoggedErrors(ClientClosed)), 1)
        self.assertEqual(self.agent.requests, [])

    def test_calls_after_close(self) -> None:
        """A key-space call after close() raises ClientClosed, an EtcdError."""
        self.successResultOf(self.client.close())
        with self.assertRaises(ClientClosed):
            self.client.get("/k")
        self.assertTrue(issubclass(ClientClosed, EtcdError))

    def test_close_stops_hub(self) -> None:
        """close() stops a hub's shared stream and its local watchers."""
        hub = WatchHub(self.client, "/p", idle_timeout=30.0, probe_interval=None)
        local = hub.watcher("/p/a")
        stops: list[object] = []
        local.on("stop", stops.append)
        local.start()
        response = self.stream(10)
        closing = self.client.close()
        self.clock.advance(0)
        self.successResultOf(closing)
        self.assertTrue(response.transport.aborted)
        self.assertEqual(stops, [None])
        self.assertIs(local.state, State.STOPPED)
        self.assertIs(hub.source.state, State.STOPPED)


class StateTests(WatcherTestCase):
    """
    The watcher's state follows what it does.
    """

    def test_states(self) -> None:
        """STOPPED, CONNECTING, CATCHING_UP, STREAMING, WAITING, RESYNCING, STOPPING, STOPPED."""
        w = self.watcher(index=5)
        self.assertIs(w.state, State.STOPPED)
        w.start()
        self.assertIs(w.state, State.CONNECTING)
        stream = self.stream(9)
        self.assertIs(w.state, State.CATCHING_UP)
        self.request()[0].respond(200, line("set", "/k", 9), {"x-etcd-index": "9"})
        self.assertIs(w.state, State.STREAMING)
        stream.fail()
        self.clock.advance(0)
        self.assertIs(w.state, State.WAITING)
        self.clock.advance(1.5)
        self.assertIs(w.state, State.CONNECTING)
        self.stream(2000)
        self.request()[0].respond(400, error_body(401, "outdated", "", 2000))
        self.assertIs(w.state, State.RESYNCING)
        stopping = w.stop()
        self.assertIs(w.state, State.STOPPING)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertIs(w.state, State.STOPPED)
        self.assertIn("stopped", repr(w))

    def test_no_transition_from_stopping(self) -> None:
        """Once stopping, the loop's next step is refused (it ends instead of going on)."""
        w = self.watcher()
        w.on("change", lambda event: w.stop())
        w.start()
        self.stream(10, line("set", "/k", 11), line("set", "/k", 12))
        self.clock.advance(0)
        self.assertEqual(self.events(), [11])
        self.assertIs(w.state, State.STOPPED)
        self.assertEqual(self.agent.pending(), [])

    def test_start_during_stop(self) -> None:
        """start() during a stop starts again once the stop completed."""
        w = self.watcher()
        w.start()
        self.stream(10)
        stopping = w.stop()
        w.start()
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertIs(w.state, State.CONNECTING)
        _, query = self.request()
        self.assertEqual(query, {"wait": "true", "stream": "true"})


class ClientSourceTests(SynchronousTestCase):
    """
    The provisional adapter reads the client's current member list.
    """

    def test_member_sync_reaches_watcher(self) -> None:
        """A watcher reconnects to the members the client knows now, not those it started with."""
        from txetcd2.testing._fakes import RecordingAgent

        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient("http://h1:2379", reactor=clock, agent=agent)
        w = client.watcher("/k", probe_interval=None, retry_policy=lambda attempt: 1.0)
        w.start()
        agent.pop().refuse()
        client._session.members.replace(["http://h7:2379", "http://h8:2379"])
        clock.advance(1.0)
        self.assertEqual(agent.pop().netloc, "http://h7:2379")
        self.successResultOf(w.stop())
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_rejects_other_objects(self) -> None:
        """A watcher needs a client or a WatchSource: anything else is a TypeError."""
        with self.assertRaises(TypeError):
            Watcher(object(), "/k")
