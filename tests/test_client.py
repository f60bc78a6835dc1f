"""
Unit tests for the key-space client, over a recording agent and a Clock.
"""

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import (
    ClusterUnavailable,
    EtcdClient,
    EtcdConnectionError,
    EtcdError,
    EtcdOutcomeUnknown,
    EtcdProtocolError,
    EtcdTimeout,
    EtcdV2Disabled,
    EventIndexCleared,
    KeyNotFound,
    NodeExist,
    NotFile,
)
from txetcd2.testing._fakes import FakeRequest, RecordingAgent, error_body, node_body


class ClientTestCase(SynchronousTestCase):
    """
    Builds a client over a recording agent and a Clock.
    """

    endpoints: Any = "http://h1:2379"

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        # One sweep, no back-off: retries and back-offs are tested in test_cluster.
        self.client = EtcdClient(
            self.endpoints, reactor=self.clock, agent=self.agent, timeout=2.0, max_retries=0
        )

    def tearDown(self) -> None:
        self.successResultOf(self.client.close())
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def request(self) -> tuple[FakeRequest, str, list[tuple[str, str]], list[tuple[str, str]]]:
        """
        The pending request, with its path, query and form fields.
        """
        req = self.agent.pop()
        parts = urlsplit(req.uri)
        return (
            req,
            parts.path,
            parse_qsl(parts.query),
            parse_qsl(req.body.decode(), keep_blank_values=True),
        )


class WireTests(ClientTestCase):
    """
    Each method sends the request etcd expects.
    """

    def test_get(self) -> None:
        """
        get() sends only the options that are set, as true.
        """
        d = self.client.get("/dir", recursive=True, quorum=True)
        req, path, query, form = self.request()
        self.assertEqual(
            (req.method, path, query, form),
            ("GET", "/v2/keys/dir", [("recursive", "true"), ("quorum", "true")], []),
        )
        req.respond(200, node_body("get", "/dir", None, 3, dir=True), {"x-etcd-index": "9"})
        response = self.successResultOf(d)
        self.assertEqual((response.node.dir, response.etcd_index), (True, 9))

    def test_set_with_conditions(self) -> None:
        """
        set() puts value and ttl in the form body and the conditions in the query.
        """
        d = self.client.set("a", "v w", ttl=10, prev_value="old", prev_index=4, prev_exist=True)
        req, path, query, form = self.request()
        self.assertEqual((req.method, path), ("PUT", "/v2/keys/a"))
        self.assertEqual(query, [("prevValue", "old"), ("prevIndex", "4"), ("prevExist", "true")])
        self.assertEqual(form, [("value", "v w"), ("ttl", "10")])
        self.assertEqual(
            req.headers.getRawHeaders("content-type"), ["application/x-www-form-urlencoded"]
        )
        req.respond(200, node_body("compareAndSwap", "/a", "v w", 5))
        self.assertEqual(self.successResultOf(d).action, "compareAndSwap")

    def test_empty_value_is_sent(self) -> None:
        """
        An empty value is sent as a form field, never left out.
        """
        d = self.client.set("a", "")
        req, _, _, form = self.request()
        self.assertEqual(form, [("value", "")])
        req.respond(200, node_body("set", "/a", "", 2))
        self.assertEqual(self.successResultOf(d).node.value, "")

    def test_create_update_refresh(self) -> None:
        """
        create/update/refresh use prevExist, and refresh sends no value.
        """
        self.client.create("a", "1", ttl=3)
        _, _, query, form = self.request()
        self.assertEqual((query, form), ([("prevExist", "false")], [("value", "1"), ("ttl", "3")]))
        self.agent.pop().respond(201, node_body("create", "/a", "1", 2))
        self.client.update("a", "2")
        _, _, query, form = self.request()
        self.assertEqual((query, form), ([("prevExist", "true")], [("value", "2")]))
        self.agent.pop().respond(200, node_body("update", "/a", "2", 3))
        self.client.refresh("a", 30)
        _, _, query, form = self.request()
        self.assertEqual(
            (query, form), ([("prevExist", "true")], [("ttl", "30"), ("refresh", "true")])
        )
        self.agent.pop().respond(200, node_body("update", "/a", "2", 4))

    def test_append(self) -> None:
        """
        append() POSTs the value to the directory.
        """
        d = self.client.append("/queue", "job")
        req, path, _, form = self.request()
        self.assertEqual((req.method, path, form), ("POST", "/v2/keys/queue", [("value", "job")]))
        req.respond(201, node_body("create", "/queue/00000000000000000007", "job", 7))
        self.assertEqual(self.successResultOf(d).node.key, "/queue/00000000000000000007")

    def test_delete_variants(self) -> None:
        """
        delete, compare_and_delete and rmdir send their flags in the query.
        """
        self.client.delete("d", recursive=True, dir=True)
        req, _, query, _ = self.request()
        self.assertEqual((req.method, query), ("DELETE", [("recursive", "true"), ("dir", "true")]))
        req.respond(200, node_body("delete", "/d", None, 5))
        self.client.compare_and_delete("k", prev_value="v")
        req, _, query, _ = self.request()
        self.assertEqual(query, [("prevValue", "v")])
        req.respond(200, node_body("compareAndDelete", "/k", None, 6))
        self.client.rmdir("d")
        req, _, query, _ = self.request()
        self.assertEqual(query, [("dir", "true")])
        req.respond(200, node_body("delete", "/d", None, 7))

    def test_mkdir(self) -> None:
        """
        mkdir() asks for a directory that must not exist yet.
        """
        self.client.mkdir("d", ttl=5)
        req, _, query, form = self.request()
        self.assertEqual(
            (query, form), ([("dir", "true"), ("prevExist", "false")], [("ttl", "5")])
        )
        req.respond(201, node_body("create", "/d", None, 2, dir=True))


class ResultTests(ClientTestCase):
    """
    Answers become typed results and typed errors.
    """

    def test_error_document(self) -> None:
        """
        An etcd error document becomes the class for its code.
        """
        d = self.client.create("a", "1")
        self.agent.pop().respond(412, error_body(105, "Key already exists", "/a", 8))
        error = self.failureResultOf(d, NodeExist).value
        self.assertEqual((error.cause, error.index, error.status), ("/a", 8, 412))

    def test_get_value(self) -> None:
        """
        get_value() fires with the value, or the default for a missing key.
        """
        d = self.client.get_value("a")
        self.agent.pop().respond(200, node_body("get", "/a", "x", 2))
        self.assertEqual(self.successResultOf(d), "x")
        d2 = self.client.get_value("b", None)
        self.agent.pop().respond(404, error_body(100, "Key not found", "/b", 2))
        self.assertIsNone(self.successResultOf(d2))
        d3 = self.client.get_value("b")
        self.agent.pop().respond(404, error_body(100, "Key not found", "/b", 2))
        self.failureResultOf(d3, KeyNotFound)

    def test_get_value_of_directory(self) -> None:
        """
        get_value() of a directory fails with NotFile.
        """
        d = self.client.get_value("d")
        self.agent.pop().respond(200, node_body("get", "/d", None, 2, dir=True))
        self.failureResultOf(d, NotFile)

    def test_delete_missing_ok(self) -> None:
        """
        delete(missing_ok=True) fires with None for a missing key.
        """
        d = self.client.delete("gone", missing_ok=True)
        self.agent.pop().respond(404, error_body(100, "Key not found", "/gone", 2))
        self.assertIsNone(self.successResultOf(d))

    def test_v2_disabled(self) -> None:
        """
        A plain-text 404 means the v2 API is off, not a missing key.
        """
        d = self.client.get("a")
        self.agent.pop().respond(404, b"404 page not found\n", {"content-type": "text/plain"})
        self.agent.pop().respond(200, {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        self.failureResultOf(d, EtcdV2Disabled)

    def test_not_etcd(self) -> None:
        """
        An answer etcd would not send is an EtcdProtocolError.
        """
        d = self.client.get("a")
        self.agent.pop().respond(502, b"<html>bad gateway</html>", {"content-type": "text/html"})
        self.failureResultOf(d, EtcdProtocolError)
        d = self.client.get("a")
        self.agent.pop().respond(200, b"{not json")
        self.failureResultOf(d, EtcdProtocolError)

    def test_redirect_not_followed(self) -> None:
        """
        A redirect is reported, never followed.
        """
        d = self.client.get("a")
        self.agent.pop().respond(301, b"", {"location": "/v2/keys/b", "content-type": "text/html"})
        self.failureResultOf(d, EtcdProtocolError)
        self.assertEqual(self.agent.pending(), [])


class ValidationTests(ClientTestCase):
    """
    Bad input raises at once, before any request.
    """

    def test_bad_input(self) -> None:
        """
        Each kind of bad input raises TypeError or ValueError and sends nothing.
        """
        cases: list[tuple[type[Exception], Any]] = [
            (TypeError, lambda: self.client.set("a", 1)),  # type: ignore[arg-type]
            (ValueError, lambda: self.client.set("a/../b", "v")),
            (ValueError, lambda: self.client.set("a", "v", ttl=-1)),
            (TypeError, lambda: self.client.set("a", "v", ttl="5")),  # type: ignore[arg-type]
            (ValueError, lambda: self.client.set("a", "v", prev_index=0)),
            (ValueError, lambda: self.client.set("a", "v", prev_value="")),
            (ValueError, lambda: self.client.compare_and_swap("a", "v")),
            (ValueError, lambda: self.client.compare_and_delete("a")),
            (TypeError, lambda: self.client.get("a", recursive="yes")),  # type: ignore[arg-type]
            (ValueError, lambda: self.client.get("a" * 5000)),
            (ValueError, lambda: self.client.watch("a", index=0)),
            (ValueError, lambda: self.client.get("a\x00")),
        ]
        for error, call in cases:
            self.assertRaises(error, call)
        self.assertEqual(self.agent.requests, [])

    def test_bad_endpoints(self) -> None:
        """
        Endpoints must be http(s) base URLs without credentials.
        """
        bad: list[Any] = ["ftp://h:1", "http://u:p@h:1", "http://h:1/v2", []]
        for endpoints in bad:
            self.assertRaises(ValueError, EtcdClient, endpoints, reactor=self.clock)
        self.assertEqual(
            EtcdClient("http://a:1/, http://b:2", reactor=self.clock, agent=self.agent).endpoints,
            ["http://a:1", "http://b:2"],
        )


class TimeoutAndCancelTests(ClientTestCase):
    """
    Timeouts, cancellation and close().
    """

    def test_timeout(self) -> None:
        """
        A request without an answer fails with EtcdTimeout after the timeout.
        """
        d = self.client.get("a")
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        error = self.failureResultOf(d, EtcdTimeout).value
        self.assertEqual((error.endpoint, error.seconds), ("http://h1:2379", 2.0))
        self.assertTrue(self.agent.requests[0].cancelled)

    def test_timeout_while_reading_body(self) -> None:
        """
        A body that stops coming also times out, and the connection is aborted.
        """
        d = self.client.get("a")
        response = self.agent.pop().respond(200, b'{"action":', finish=False)
        self.clock.advance(2.0)
        self.failureResultOf(d, EtcdTimeout)
        self.assertTrue(response.transport.aborted)

    def test_cancel(self) -> None:
        """
        Cancelling aborts the request; a late answer fires nothing.
        """
        d = self.client.get("a")
        req = self.agent.pop()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(req.cancelled)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_cancels_pending(self) -> None:
        """
        close() cancels requests in flight, and the client refuses new ones.
        """
        d = self.client.get("a")
        self.successResultOf(self.client.close())
        self.failureResultOf(d, CancelledError)
        self.assertRaises(EtcdError, self.client.get, "a")

    def test_truncated_body(self) -> None:
        """
        A body cut short is a connection error, not a success.
        """
        d = self.client.get("a")
        self.agent.pop().respond(200, b'{"action":"get"', finish=False).fail()
        self.failureResultOf(d, EtcdConnectionError)


class WatchTests(ClientTestCase):
    """
    Tests for the long-poll watch().
    """

    def test_event(self) -> None:
        """
        watch() fires with the event the long-poll returns.
        """
        d = self.client.watch("a", index=5, recursive=True)
        req, _, query, _ = self.request()
        self.assertEqual(query, [("wait", "true"), ("recursive", "true"), ("waitIndex", "5")])
        req.respond(200, node_body("set", "/a/b", "1", 6), {"x-etcd-index": "5"})
        self.assertEqual(self.successResultOf(d).index, 6)

    def test_renewed_from_accepted_index(self) -> None:
        """
        A poll with no event in watch_timeout is renewed from its X-Etcd-Index + 1.
        """
        d = self.client.watch("a")
        req, _, query, _ = self.request()
        self.assertEqual(query, [("wait", "true")])
        first = req.respond(200, None, {"x-etcd-index": "41"}, finish=False)
        self.clock.advance(60)
        self.assertTrue(first.transport.aborted)
        req, _, query, _ = self.request()
        self.assertEqual(query, [("wait", "true"), ("waitIndex", "42")])
        req.respond(200, b"", {"x-etcd-index": "41"})
        req, _, query, _ = self.request()
        self.assertEqual(query, [("wait", "true"), ("waitIndex", "42")])
        req.respond(200, node_body("delete", "/a", None, 50), {"x-etcd-index": "41"})
        self.assertEqual(self.successResultOf(d).action, "delete")

    def test_index_not_moved_back(self) -> None:
        """
        A renewal never moves the wanted index backwards.
        """
        self.client.watch("a", index=100)
        self.agent.pop().respond(200, None, {"x-etcd-index": "41"}, finish=False)
        self.clock.advance(60)
        _, _, query, _ = self.request()
        self.assertEqual(query[-1], ("waitIndex", "100"))
        self.agent.pop().respond(200, node_body("set", "/a", "1", 100))

    def test_history_lost(self) -> None:
        """
        An index older than etcd's history fails with EventIndexCleared.
        """
        d = self.client.watch("a", index=1)
        self.agent.pop().respond(
            400, error_body(401, "The event in requested index is outdated and cleared", "", 1500)
        )
        self.failureResultOf(d, EventIndexCleared)


class FailoverTests(ClientTestCase):
    """
    The basic member failover rules.
    """

    endpoints = ("http://h1:2379", "http://h2:2379")

    def test_refused_moves_on_and_pins(self) -> None:
        """
        A refused connection moves to the next member, which is then tried first.
        """
        d = self.client.create("a", "1")
        req = self.agent.pop()
        self.assertEqual(req.netloc, "http://h1:2379")
        req.refuse()
        req = self.agent.pop()
        self.assertEqual(req.netloc, "http://h2:2379")
        req.respond(201, node_body("create", "/a", "1", 2))
        self.successResultOf(d)
        self.client.get("a")
        self.assertEqual(self.agent.pop().netloc, "http://h2:2379")
        self.agent.pop().respond(200, node_body("get", "/a", "1", 2))

    def test_all_refused(self) -> None:
        """
        When every member refuses, ClusterUnavailable lists them all.
        """
        d = self.client.get("a")
        self.agent.pop().refuse()
        self.agent.pop().refuse()
        error = self.failureResultOf(d, ClusterUnavailable).value
        self.assertEqual([e for e, _ in error.errors], ["http://h1:2379", "http://h2:2379"])

    def test_timeout_of_write_not_resent(self) -> None:
        """
        A non-idempotent request that timed out is not resent anywhere.
        """
        d: Deferred[Any] = self.client.append("q", "job")
        self.clock.advance(2.0)
        error = self.failureResultOf(d, EtcdOutcomeUnknown).value
        self.assertEqual(
            (error.endpoint, error.method, error.key), ("http://h1:2379", "POST", "/q")
        )
        self.assertEqual(len(self.agent.requests), 1)

    def test_timeout_of_read_retried(self) -> None:
        """
        An idempotent request that timed out is retried on the next member.
        """
        d = self.client.get("a")
        self.clock.advance(1.0)  # its share of the call's 2 s: two members to try
        req = self.agent.pop()
        self.assertEqual(req.netloc, "http://h2:2379")
        req.respond(200, node_body("get", "/a", "1", 2))
        self.successResultOf(d)
