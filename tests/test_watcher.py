"""
Unit tests for the Watcher, over a recording agent and a Clock.
"""

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txetcd2 import (
    EtcdClient,
    EtcdConnectionError,
    EtcdProtocolError,
    EtcdResponse,
    EtcdTimeout,
    RaftInternal,
    Watcher,
)
from txetcd2._watch import watcher as watcher_module
from txetcd2.testing._fakes import FakeRequest, FakeResponse, RecordingAgent, error_body, node_body
from txetcd2.watch import Lag


def line(action: str, key: str, index: int, value: str | None = "v") -> bytes:
    """
    One event as etcd streams it: JSON and a newline.
    """
    return json.dumps(node_body(action, key, value, index)).encode() + b"\n"


class WatcherTestCase(SynchronousTestCase):
    """
    Builds a client over a recording agent and a Clock, and records what a
    watcher reports.
    """

    endpoints: Any = "http://h1:2379"

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        # The probe's jitter pinned: exact delays.
        self.patch(watcher_module, "jitter", lambda: 0.0)
        self.client = EtcdClient(self.endpoints, reactor=self.clock, agent=self.agent, timeout=2.0)
        self.seen: list[tuple[str, Any]] = []
        self.watchers: list[Watcher] = []

    def tearDown(self) -> None:
        for w in self.watchers:
            stopping = w.stop()
            self.clock.advance(0)
            self.successResultOf(stopping)
        self.successResultOf(self.client.close())
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def watcher(self, key: str = "/k", **kwargs: Any) -> Watcher:
        """
        A watcher whose every event is recorded in ``self.seen``, with pinned jitter.
        """
        kwargs.setdefault("retry_policy", backoffPolicy(jitter=lambda: 0.0))
        kwargs.setdefault("idle_timeout", 30.0)
        # The probe has its own tests (test_watcher_probe.py); these test the rest.
        kwargs.setdefault("probe_interval", None)
        w = self.client.watcher(key, **kwargs)
        for name in ("change", "resync", "reconnect", "error", "stop"):
            w.on(name, lambda payload, name=name: self.seen.append((name, payload)))
        self.watchers.append(w)
        return w

    def events(self) -> list[int]:
        """
        The indexes of the changes delivered so far.
        """
        return [p.index for n, p in self.seen if n == "change"]

    def names(self) -> list[str]:
        """
        The names of what was reported so far.
        """
        return [n for n, _ in self.seen]

    def request(self) -> tuple[FakeRequest, dict[str, str]]:
        """
        The single pending request and its query.
        """
        req = self.agent.pop()
        return req, dict(parse_qsl(urlsplit(req.uri).query))

    def stream(self, store: int, *chunks: bytes, finish: bool = False) -> FakeResponse:
        """
        Answer the pending request with headers and body chunks.
        """
        req, _ = self.request()
        response = req.respond(200, None, {"x-etcd-index": str(store)}, finish=False)
        for chunk in chunks:
            response.write(chunk)
        if finish:
            response.finish()
        return response


class StreamingTests(WatcherTestCase):
    """
    Events come out once, in order, whatever the chunking.
    """

    def test_not_started(self) -> None:
        """Building a watcher sends nothing."""
        self.watcher()
        self.assertEqual(self.agent.requests, [])

    def test_stream_from_now(self) -> None:
        """Without an index the watcher streams from now and splits partial chunks into events."""
        w = self.watcher()
        w.start()
        req, query = self.request()
        self.assertEqual(urlsplit(req.uri).path, "/v2/keys/k")
        self.assertEqual(query, {"wait": "true", "stream": "true"})
        response = req.respond(200, None, {"x-etcd-index": "10"}, finish=False)
        data = line("set", "/k", 11) + line("update", "/k", 12) + line("delete", "/k", 13, None)
        for i in range(0, len(data), 7):
            response.write(data[i : i + 7])
        self.assertEqual(self.events(), [11, 12, 13])
        self.assertEqual(w.index, 13)
        self.assertEqual(self.agent.pending(), [])
        changes = [p for n, p in self.seen if n == "change"]
        self.assertEqual([e.action for e in changes], ["set", "update", "delete"])
        self.assertEqual(changes[0].etcd_index, 10)

    def test_stream_headers_dropped(self) -> None:
        """An open stream keeps etcd's headers for its events, not the whole parsed set."""
        w = self.watcher()
        w.start()
        req, _ = self.request()
        response = req.respond(
            200, None, {"x-etcd-index": "10", "x-raft-term": "2", "date": "now"}, finish=False
        )
        self.assertEqual(list(response.headers.getAllRawHeaders()), [])
        response.write(line("set", "/k", 11))
        [change] = [p for n, p in self.seen if n == "change"]
        self.assertEqual((change.etcd_index, change.raft_term), (10, 2))

    def test_action_callbacks(self) -> None:
        """Callbacks registered for an action get only changes with that action."""
        w = self.watcher()
        deleted: list[EtcdResponse] = []
        w.on("delete", deleted.append)
        w.start()
        self.stream(10, line("set", "/k", 11), line("delete", "/k", 12, None))
        self.assertEqual([e.index for e in deleted], [12])

    def test_duplicates_dropped(self) -> None:
        """An event at or below the last delivered index is not delivered again."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 11), line("set", "/k", 11), line("set", "/k", 12))
        self.assertEqual(self.events(), [11, 12])

    def test_recursive_query_and_ancestor_delete(self) -> None:
        """A recursive watch says so, and an ancestor's deletion is delivered with its key."""
        w = self.watcher("/a/b", recursive=True)
        w.start()
        _, query = self.request()
        self.assertEqual(query["recursive"], "true")
        self.stream(10, line("delete", "/a", 11, None))
        self.assertEqual([p.node.key for n, p in self.seen if n == "change"], ["/a"])

    def test_clean_end_reconnects_at_once(self) -> None:
        """A stream that ends cleanly is renewed at once from the last index + 1."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 11), finish=True)
        self.assertIn(("reconnect", 0.0), self.seen)
        self.stream(12)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "12")


class CatchUpTests(WatcherTestCase):
    """
    An old index is caught up with long-polls while the stream is held back.
    """

    def test_gap_filled_with_polls(self) -> None:
        """Changes up to the stream's X-Etcd-Index come from long-polls, then the stream's."""
        w = self.watcher(index=5)
        w.start()
        req, query = self.request()
        self.assertEqual(query, {"wait": "true", "stream": "true"})
        stream = req.respond(200, None, {"x-etcd-index": "20"}, finish=False)
        stream.write(line("set", "/k", 21))
        req, query = self.request()
        self.assertEqual(query, {"wait": "true", "waitIndex": "5"})
        req.respond(200, line("set", "/k", 5), {"x-etcd-index": "20"})
        self.assertEqual(self.events(), [5])
        req, query = self.request()
        self.assertEqual(query, {"wait": "true", "waitIndex": "6"})
        req.respond(200, line("set", "/k", 21), {"x-etcd-index": "20"})
        self.assertEqual(self.events(), [5, 21])
        stream.write(line("set", "/k", 22))
        self.assertEqual(self.events(), [5, 21, 22])
        self.assertEqual(self.agent.pending(), [])
        self.assertNotIn("reconnect", self.names())

    def test_gap_closed_by_last_index(self) -> None:
        """A poll returning the stream's X-Etcd-Index closes the gap and releases the buffer."""
        w = self.watcher(index=5)
        w.start()
        self.stream(9, line("set", "/k", 10), line("set", "/k", 11))
        self.request()[0].respond(200, line("set", "/k", 9), {"x-etcd-index": "9"})
        self.assertEqual(self.events(), [9, 10, 11])
        self.assertEqual(self.agent.pending(), [])

    def test_pending_poll_advances_on_idle(self) -> None:
        """An accepted poll and stream that stay silent let the watcher move past the index."""
        w = self.watcher(index=5, idle_timeout=30.0)
        w.start()
        stream = self.stream(500)
        poll = self.stream(500)
        self.clock.advance(29)
        self.assertFalse(poll.transport.aborted)
        self.clock.advance(1)
        self.assertTrue(poll.transport.aborted)
        self.assertTrue(stream.transport.aborted)
        self.clock.advance(0)
        self.stream(510)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "501")
        self.assertEqual(w.index, 4)

    def test_idle_before_poll_accepted(self) -> None:
        """If the idle timer fires before a gap poll is accepted, the index does not move."""
        w = self.watcher(index=5, idle_timeout=1.0)
        w.start()
        stream = self.stream(500)
        req, _ = self.request()
        self.clock.advance(1.0)
        self.assertTrue(stream.transport.aborted)
        poll = req.respond(200, None, {"x-etcd-index": "500"}, finish=False)
        self.assertTrue(poll.transport.aborted)
        self.clock.advance(0)
        self.stream(510)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "5")
        self.assertEqual(self.events(), [])

    def test_idle_reset_by_bytes(self) -> None:
        """Every byte restarts the idle timer."""
        w = self.watcher(idle_timeout=30.0)
        w.start()
        response = self.stream(10)
        self.clock.advance(20)
        response.write(b'{"act')
        self.clock.advance(20)
        self.assertFalse(response.transport.aborted)
        self.clock.advance(10)
        self.assertTrue(response.transport.aborted)
        self.clock.advance(0)
        self.assertIn(("reconnect", 0.0), self.seen)
        self.stream(12)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "11")


class ResyncTests(WatcherTestCase):
    """
    Lost history is reported as a resync, never skipped silently.
    """

    def test_index_cleared(self) -> None:
        """errorCode 401 leads to a quorum read, a resync and a stream after it."""
        w = self.watcher("/d", index=5, recursive=True)
        lags: list[Lag] = []
        w.on("lagging", lags.append)
        w.start()
        stream = self.stream(2000)
        req, _ = self.request()
        req.respond(400, error_body(401, "The event in requested index is outdated", "", 2000))
        req, query = self.request()
        self.assertEqual(req.method, "GET")
        self.assertEqual(query, {"recursive": "true", "sorted": "true", "quorum": "true"})
        tree = node_body("get", "/d", None, 3, dir=True)
        tree["node"]["nodes"] = [node_body("set", "/d/x", "1", 1900)["node"]]
        req.respond(200, tree, {"x-etcd-index": "2001"})
        self.assertTrue(stream.transport.aborted)
        self.clock.advance(0)
        resyncs = [p for n, p in self.seen if n == "resync"]
        self.assertEqual(len(resyncs), 1)
        self.assertEqual(resyncs[0].node.leaves(), {"/d/x": "1"})
        # The loss is reported as lagging too, however it was found.
        self.assertEqual((lags, w.lagged), ([Lag("history lost", 1996)], 1))
        self.assertEqual(w.index, 2001)
        self.stream(2001, line("set", "/d/x", 2002))
        self.assertEqual(self.events(), [2002])

    def test_resync_missing_key(self) -> None:
        """When the key is gone, the resync snapshot is an empty node at etcd's index."""
        w = self.watcher(index=5)
        w.start()
        self.stream(2000)
        self.request()[0].respond(400, error_body(401, "outdated", "", 2000))
        self.request()[0].respond(404, error_body(100, "Key not found", "/k", 2005))
        self.clock.advance(0)
        resyncs = [p for n, p in self.seen if n == "resync"]
        self.assertEqual(resyncs[0].node.key, "/k")
        self.assertEqual(resyncs[0].node.modified_index, 0)
        self.assertEqual(resyncs[0].etcd_index, 2005)
        self.stream(2006)
        self.assertEqual(self.request()[1]["waitIndex"], "2006")


class BackoffTests(WatcherTestCase):
    """
    Failures back off with the retry policy; success resets it.
    """

    def test_backoff_delays(self) -> None:
        """Consecutive failures wait 1.5, 2.25, 3.375 s (jitter pinned); an event resets it."""
        w = self.watcher()
        w.start()
        for delay in (1.5, 2.25, 3.375):
            self.request()[0].refuse()
            self.assertEqual(self.agent.pending(), [])
            self.assertEqual(self.seen[-1], ("reconnect", delay))
            self.clock.advance(delay - 0.001)
            self.assertEqual(self.agent.pending(), [])
            self.clock.advance(0.001)
        response = self.stream(10, line("set", "/k", 11))
        response.fail(ConnectionLost())
        self.assertEqual(self.seen[-1], ("reconnect", 1.5))
        errors = [p for n, p in self.seen if n == "error"]
        self.assertEqual(len(errors), 4)
        self.assertTrue(all(f.check(EtcdConnectionError) for f in errors))
        self.clock.advance(1.5)
        self.stream(12)
        self.assertEqual(self.request()[1]["waitIndex"], "12")

    def test_default_policy(self) -> None:
        """Without a retry policy, Twisted's backoffPolicy is used (1.5 s plus jitter < 1)."""
        w = self.watcher(retry_policy=None)
        w.start()
        self.request()[0].refuse()
        delay = self.seen[-1][1]
        self.assertTrue(1.5 <= delay < 2.5, delay)
        self.clock.advance(delay)
        self.request()

    def test_api_error_backs_off(self) -> None:
        """An etcd error answer is reported and retried after a delay."""
        w = self.watcher()
        w.start()
        self.request()[0].respond(500, error_body(300, "Raft Internal Error", "", 7))
        self.assertEqual(self.seen[-2][0], "error")
        self.assertIsNotNone(self.seen[-2][1].check(RaftInternal))
        self.assertEqual(self.seen[-1], ("reconnect", 1.5))
        self.clock.advance(1.5)
        self.request()

    def test_header_timeout(self) -> None:
        """A member that accepts but never answers times out after the client's timeout."""
        w = self.watcher()
        w.start()
        req, _ = self.request()
        self.clock.advance(2.0)
        self.assertTrue(req.cancelled)
        self.assertIsNotNone(self.seen[-2][1].check(EtcdTimeout))
        self.clock.advance(1.5)
        self.request()


class FailoverTests(WatcherTestCase):
    """
    Every member is tried at once before backing off.
    """

    endpoints = "http://h1:2379,http://h2:2379,http://h3:2379"

    def test_sweep_then_backoff(self) -> None:
        """Failures move to the next member at once; after a full sweep the watcher waits."""
        w = self.watcher()
        w.start()
        hosts = []
        for _ in range(3):
            req, _ = self.request()
            hosts.append(req.netloc)
            req.refuse()
        self.assertEqual(hosts, ["http://h1:2379", "http://h2:2379", "http://h3:2379"])
        self.assertEqual(self.agent.pending(), [])
        self.assertEqual(self.seen[-1], ("reconnect", 1.5))
        self.clock.advance(1.5)
        self.assertEqual(self.request()[0].netloc, "http://h1:2379")

    def test_truncated_stream_fails_over(self) -> None:
        """A member dying mid-stream is replaced by the next one, resuming after the last event."""
        w = self.watcher()
        w.start()
        response = self.stream(10, line("set", "/k", 11), line("set", "/k", 12)[:9])
        response.fail(ConnectionLost())
        req, _query = self.request()
        self.assertEqual(req.netloc, "http://h2:2379")
        req.respond(200, None, {"x-etcd-index": "11"}, finish=False).write(
            line("set", "/k", 12) + line("set", "/k", 13)
        )
        self.assertEqual(self.events(), [11, 12, 13])


class ErrorReportingTests(WatcherTestCase):
    """
    Malformed lines and raising callbacks are reported, and the watcher goes on.
    """

    def test_malformed_line(self) -> None:
        """A malformed line is reported and the watch resumes from the last good event."""
        w = self.watcher()
        w.start()
        response = self.stream(10, line("set", "/k", 11), b"{not json\n", line("set", "/k", 12))
        self.assertTrue(response.transport.aborted)
        self.clock.advance(0)
        errors = [p for n, p in self.seen if n == "error"]
        self.assertEqual(len(errors), 1)
        self.assertIsNotNone(errors[0].check(EtcdProtocolError))
        self.assertEqual(len(self.flushLoggedErrors(EtcdProtocolError)), 1)
        self.assertEqual(self.events(), [11])
        self.clock.advance(1.5)
        self.stream(11, line("set", "/k", 12))
        self.assertEqual(self.events(), [11, 12])

    def test_raising_callback(self) -> None:
        """A callback that raises is logged and reported; other callbacks and events go on."""
        w = self.watcher()

        def boom(event: EtcdResponse) -> None:
            raise ZeroDivisionError(event.index)

        w.on("change", boom)
        w.start()
        self.stream(10, line("set", "/k", 11), line("set", "/k", 12))
        self.assertEqual(self.events(), [11, 12])
        errors = [p for n, p in self.seen if n == "error"]
        self.assertEqual([f.value.args for f in errors], [(11,), (12,)])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_raising_error_callback(self) -> None:
        """An "error" callback that raises is logged without looping."""
        w = self.watcher()
        w.on("error", lambda f: 1 / 0)
        w.start()
        self.request()[0].refuse()
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class StopTests(WatcherTestCase):
    """
    stop() leaves nothing behind.
    """

    def test_stop_streaming(self) -> None:
        """stop() aborts the stream and fires once it is closed, then "stop" runs."""
        w = self.watcher()
        w.start()
        response = self.stream(10, line("set", "/k", 11))
        stopping = w.stop()
        self.assertTrue(response.transport.aborted)
        self.assertNoResult(stopping)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertEqual(self.names()[-1], "stop")
        response.write(line("set", "/k", 12))
        self.assertEqual(self.events(), [11])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.agent.pending(), [])

    def test_stop_during_backoff(self) -> None:
        """stop() during a backoff cancels the timer and sends nothing more."""
        w = self.watcher()
        w.start()
        self.request()[0].refuse()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.successResultOf(w.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(self.agent.pending(), [])

    def test_stop_before_headers(self) -> None:
        """stop() while waiting for headers cancels the request."""
        w = self.watcher()
        w.start()
        req, _ = self.request()
        self.successResultOf(w.stop())
        self.assertTrue(req.cancelled)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_from_callback(self) -> None:
        """stop() called from a change callback prevents any later callback, even in the chunk."""
        w = self.watcher()
        stopping: list[Deferred[None]] = []
        w.on("change", lambda e: stopping.append(w.stop()) if not stopping else None)
        w.start()
        self.stream(10, line("set", "/k", 11) + line("set", "/k", 12))
        self.clock.advance(0)
        self.successResultOf(stopping[0])
        self.assertEqual(self.events(), [11])
        self.assertEqual(self.agent.pending(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_twice_and_unstarted(self) -> None:
        """Stopping an unstarted watcher, or twice, is harmless."""
        w = self.watcher()
        self.successResultOf(w.stop())
        w.start()
        self.request()
        first, second = w.stop(), w.stop()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(self.names().count("stop"), 1)

    def test_restart_resumes(self) -> None:
        """Starting again after stop() resumes after the last delivered index."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 11))
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)
        w.start()
        self.stream(15)
        self.assertEqual(self.request()[1]["waitIndex"], "12")


class ServiceAndIterationTests(WatcherTestCase):
    """
    The watcher is an IService and an async iterable.
    """

    def test_service(self) -> None:
        """startService/stopService run the watcher and track the running flag."""
        w = self.watcher()
        self.assertTrue(verifyObject(IService, w))
        w.startService()
        self.assertTrue(w.running)
        self.request()
        self.successResultOf(w.stopService())
        self.assertFalse(w.running)

    def test_async_for(self) -> None:
        """async for yields each change (and resync) and ends when the watcher stops."""
        w = self.watcher()
        got: list[int] = []

        async def consume() -> None:
            async for event in w:
                got.append(event.index)

        done = Deferred.fromCoroutine(consume())
        self.stream(10, line("set", "/k", 11), line("set", "/k", 12))
        self.assertEqual(got, [11, 12])
        self.assertNoResult(done)
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.successResultOf(done)


class ValidationTests(WatcherTestCase):
    """
    Bad arguments fail at once, before any I/O.
    """

    def test_bad_arguments(self) -> None:
        """Bad keys, indexes, timeouts, policies and event names raise clear errors."""
        self.assertRaises(ValueError, self.client.watcher, "/a/../b")
        self.assertRaises(TypeError, self.client.watcher, 5)
        self.assertRaises(ValueError, self.client.watcher, "/k", index=0)
        self.assertRaises(TypeError, self.client.watcher, "/k", index="5")
        self.assertRaises(ValueError, self.client.watcher, "/k", idle_timeout=0)
        self.assertRaises(TypeError, self.client.watcher, "/k", idle_timeout="1")
        self.assertRaises(TypeError, self.client.watcher, "/k", retry_policy=3)
        self.assertRaises(TypeError, self.client.watcher, "/k", recursive="yes")
        w = self.client.watcher("/k")
        self.assertRaises(ValueError, w.on, "changed", print)
        self.assertRaises(TypeError, w.on, "change", None)
        self.assertRaises(ValueError, w.off, "change", print)
        self.assertEqual(self.agent.requests, [])

    def test_off(self) -> None:
        """A callback removed with off() is not called again."""
        w = self.watcher()
        got: list[EtcdResponse] = []
        w.on("change", got.append)
        w.off("change", got.append)
        w.start()
        self.stream(10, line("set", "/k", 11))
        self.assertEqual(got, [])
        self.assertEqual(self.events(), [11])

    def test_repr(self) -> None:
        """The repr names the key and the state."""
        w = self.watcher("/a b")
        self.assertIn("/a b", repr(w))
        self.assertIn("stopped", repr(w))


class ExportTests(SynchronousTestCase):
    """
    The public facade exports the watcher.
    """

    def test_facade(self) -> None:
        """txetcd2.watch exports what its __all__ names, and the package re-exports Watcher."""
        import txetcd2
        from txetcd2 import watch

        for name in watch.__all__:
            self.assertTrue(hasattr(watch, name), name)
        self.assertIs(txetcd2.Watcher, watch.Watcher)
        self.assertIn("Watcher", txetcd2.__all__)
        self.assertEqual(
            set(watch.EVENT_NAMES) - set(watch.ACTIONS),
            {"change", "resync", "reconnect", "lagging", "error", "stop"},
        )
