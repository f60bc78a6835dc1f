"""
Every answer a watcher gets is consumed or aborted, on every path: unit tests
over real HTTP/1.1 framing in memory, against the public
:class:`~txetcd2.testing.MemoryEtcd` and, for answers etcd would never send,
the private ``tests._etcd_resource``. The base class's tearDown asserts that no connection
and no timer is left after ``stop()`` and ``close()``; most tests also check
it before stopping.
"""

from typing import Any

from tests.test_watcher import WatcherTestCase
from tests.test_watcher_web import MemoryWatcherTestCase, WebWatcherTestCase
from txetcd2 import EtcdConnectionError, EtcdProtocolError, EtcdTimeout, EtcdV2Disabled, Watcher
from txetcd2._watch import watcher as watcher_module
from txetcd2.testing._fakes import FakeRequest
from txetcd2.watch import State

JSON = {"content-type": "application/json"}


class NotEtcdTests(WebWatcherTestCase):
    """
    Answers etcd would never send are protocol errors naming the member and
    what was wrong; the watcher retries with back-off and leaves nothing open.
    """

    def watcher(self, key: str = "/k", **kwargs: Any) -> Watcher:
        """
        A recorded watcher retrying every second.
        """
        kwargs.setdefault("retry_policy", lambda attempt: 1.0)
        return super().watcher(key, **kwargs)

    def protocol_errors(self) -> list[EtcdProtocolError]:
        """
        The protocol errors reported so far (and logged: flushed here).
        """
        errors = [f.value for f in self.reported("error")]
        self.assertTrue(all(isinstance(e, EtcdProtocolError) for e in errors), errors)
        self.flushLoggedErrors(EtcdProtocolError)
        return errors

    def test_stream_without_index_twenty_retries(self) -> None:
        """A 200 stream without X-Etcd-Index, 20 times: 20 errors, 0 connections left."""
        self.etcd.raw = [(200, JSON, None)] * 20
        w = self.watcher()
        for _ in range(19):
            self.advance(1.0)
        errors = self.protocol_errors()
        self.assertEqual(len(errors), 20)
        self.assertIn("http://h1:2379", str(errors[0]))
        self.assertIn("without X-Etcd-Index", str(errors[0]))
        self.assertEqual(self.open_connections(), [])
        self.assertIs(w.state, State.WAITING)

    def test_bad_index(self) -> None:
        """An X-Etcd-Index that is not a number is a protocol error saying so."""
        self.etcd.raw = [(200, {**JSON, "x-etcd-index": "soon"}, None)]
        self.watcher()
        [error] = self.protocol_errors()
        self.assertIn("bad X-Etcd-Index ('soon')", str(error))
        self.assertEqual(self.open_connections(), [])

    def test_html_page(self) -> None:
        """An HTML page with status 200 is a malformed event, not a change."""
        html = b"<html><body>Welcome to nginx!</body></html>\n"
        self.etcd.raw = [(200, {"content-type": "text/html", "x-etcd-index": "3"}, html)]
        self.watcher()
        [error] = self.protocol_errors()
        self.assertIn("malformed watch event", str(error))
        self.assertIn("<html>", str(error))
        self.assertEqual(self.events(), [])
        self.assertEqual(self.open_connections(), [])

    def test_html_error_page(self) -> None:
        """An HTML error page from a proxy is 'not an etcd answer', its body read."""
        page = b"<html>502 Bad Gateway</html>"
        self.etcd.raw = [(502, {"content-type": "text/html"}, page)]
        self.watcher()
        [error] = self.protocol_errors()
        self.assertIn("not an etcd answer", str(error))
        self.assertIn("HTTP 502", str(error))
        self.assertEqual(self.open_connections(), [])

    def test_invalid_json(self) -> None:
        """A line that is not JSON is reported; the watch resumes from the last good event."""
        first = self.etcd.set("/k", "1")
        self.etcd.raw = [(200, {**JSON, "x-etcd-index": str(first)}, b'{"action": "set", no\n')]
        self.watcher(index=first)
        [error] = self.protocol_errors()
        self.assertIn("malformed watch event", str(error))
        self.advance(1.0)
        second = self.etcd.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first, second])

    def test_error_body_never_ends(self) -> None:
        """An error answer whose body never ends times out and is aborted."""
        self.etcd.raw = [(500, JSON, None)]
        self.watcher()
        self.advance(2.0)
        errors = [f.value for f in self.reported("error")]
        self.assertEqual([type(e) for e in errors], [EtcdTimeout])
        self.assertEqual(self.open_connections(), [])


class EveryPathTests(MemoryWatcherTestCase):
    """
    No path leaves a connection behind (the watchers' client talks to the
    first member; writes go through the second).
    """

    members = 2
    client_members = 1

    def setUp(self) -> None:
        super().setUp()
        self.member = self.etcd.members[0]

    def watcher(self, key: str = "/k", **kwargs: Any) -> Watcher:
        """
        A recorded watcher with the probe's jitter pinned.
        """
        self.patch(watcher_module, "jitter", lambda: 0.0)
        return super().watcher(key, **kwargs)

    def test_probe_blocked(self) -> None:
        """A blocked probe is aborted after its grace; only the stream stays open."""
        w = self.watcher(probe_interval=5.0)
        self.set("/k", "1")
        self.advance(5.0)
        self.assertEqual(self.etcd.watch_count, 2)
        self.advance(1.0)
        self.assertEqual(self.etcd.watch_count, 1)
        self.assertEqual(len(self.etcd.open_connections()), 1)
        self.assertEqual(w.probes, 1)

    def test_probe_finds_dropped_stream(self) -> None:
        """A stream etcd stopped feeding is found by the probe and replaced; nothing leaks."""
        w = self.watcher(probe_interval=5.0)
        changes = [self.set("/k", "0")]
        self.member.silence()
        changes += [self.set("/k", str(i)) for i in range(1, 4)]
        self.member.restore()
        self.advance(5.0)
        self.settle()
        self.assertEqual(self.events(), changes)
        self.assertEqual(w.lagged, 1)
        self.assertEqual(self.etcd.watch_count, 1)
        self.assertEqual(len(self.etcd.open_connections()), 1)

    def test_stop_while_probing(self) -> None:
        """stop() during a probe aborts the probe and the stream."""
        w = self.watcher(probe_interval=5.0)
        self.set("/k", "1")
        self.advance(5.0)
        self.assertIs(w.state, State.PROBING)
        stopping = w.stop()
        self.settle()
        self.successResultOf(stopping)
        self.assertEqual(self.etcd.open_connections(), [])
        self.assertEqual(self.etcd.watch_count, 0)

    def test_stop_while_probe_unanswered(self) -> None:
        """stop() while a probe waits for headers cancels it."""
        w = self.watcher(probe_interval=5.0)
        self.set("/k", "1")
        self.member.stop_answering()
        self.advance(5.0)
        self.assertEqual(self.member.pending, 2)  # the stream and the probe
        stopping = w.stop()
        self.settle()
        self.successResultOf(stopping)
        self.assertEqual(self.etcd.open_connections(), [])

    def test_close_while_catching_up(self) -> None:
        """close() while long-polls fill the gap aborts the polls and the stream."""
        old = [self.set("/k", str(i)) for i in range(3)]
        self.member.stop_answering()
        w = self.watcher(index=old[0])
        closing = self.client.close()
        self.settle()
        self.successResultOf(closing)
        self.assertIs(w.state, State.STOPPED)
        self.assertEqual(self.etcd.open_connections(), [])


class DisabledTests(MemoryWatcherTestCase):
    """
    A member without the v2 API.
    """

    enable_v2 = False

    def test_v2_disabled(self) -> None:
        """Against a member without v2 the watcher gives up, its answers read, nothing open."""
        w = self.watcher()
        self.assertIs(w.state, State.FAILED)
        self.assertIsInstance(self.reported("stop")[0].value, EtcdV2Disabled)
        self.assertEqual([r.path for r in self.etcd.requests], ["/v2/keys/k", "/version"])
        self.assertEqual(len(self.flushLoggedErrors(EtcdV2Disabled)), 1)
        self.assertEqual(self.etcd.open_connections(), [])


class HeaderPathTests(WatcherTestCase):
    """
    Errors after the headers, before the body is read: each answer is ended or aborted.
    """

    def left_open(self) -> list[FakeRequest]:
        """
        The requests still waiting, or whose answer is neither ended nor aborted.
        """
        return [
            r
            for r in self.agent.requests
            if (not r.deferred.called and not r.cancelled)
            or (
                r.response is not None
                and not r.response.ended
                and not r.response.transport.aborted
            )
        ]

    def test_error_body_cut(self) -> None:
        """A 500 whose body breaks off is a connection error; the answer is ended."""
        w = self.watcher(retry_policy=lambda attempt: 1.0)
        w.start()
        response = self.request()[0].respond(500, b'{"errorCode": 3', finish=False)
        response.fail()
        [error] = [p for n, p in self.seen if n == "error"]
        self.assertIsNotNone(error.check(EtcdConnectionError))
        self.assertEqual(self.left_open(), [])

    def test_no_index_aborted(self) -> None:
        """A 200 without X-Etcd-Index is aborted at once, before any retry."""
        w = self.watcher(retry_policy=lambda attempt: 1.0)
        w.start()
        response = self.request()[0].respond(200, None, {"x-etcd-index": ""}, finish=False)
        self.assertTrue(response.transport.aborted)
        self.assertEqual(len(self.flushLoggedErrors(EtcdProtocolError)), 1)
        self.clock.advance(0)
        self.assertEqual(self.left_open(), [])

    def test_stop_during_error_body(self) -> None:
        """stop() while an error answer's body is being read aborts it."""
        w = self.watcher()
        w.start()
        response = self.request()[0].respond(500, b"{", finish=False)
        stopping = w.stop()
        self.assertTrue(response.transport.aborted)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertEqual(self.left_open(), [])
