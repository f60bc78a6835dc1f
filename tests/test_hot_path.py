"""
Unit tests for the shortcuts of the request path: key and form encoding, headers, deadlines.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers

from txetcd2._api.keys import _form
from txetcd2._transport.agent import etcd_http_client
from txetcd2._transport.deadline import within
from txetcd2._transport.exchange import Exchange
from txetcd2._wire.answers import etcd_headers
from txetcd2._wire.keys import canonical_path, key_path, normalize_key
from txetcd2.testing._fakes import RecordingAgent


def _quoted(canonical: str) -> str:
    return "/v2/keys" + "".join("/" + quote(s, safe="") for s in canonical[1:].split("/"))


class CanonicalPathTests(SynchronousTestCase):
    """
    Encoding a normalized key without quote() when nothing needs encoding.
    """

    def test_same_as_quoting(self) -> None:
        """Every key encodes exactly as quoting each segment does."""
        keys = [
            "a",
            "/a/b/c",
            "A-Z_0.9~x",
            "a b/c",
            "a?b",
            "a%2Fb",
            "ключ/значение",
            "a+b",
            "a#b",
            "x..y",
            "日本",
        ]
        for key in keys:
            canonical = normalize_key(key)
            self.assertEqual(canonical_path(canonical), _quoted(canonical), key)
            self.assertEqual(key_path(key), _quoted(canonical), key)

    def test_root_and_prefix(self) -> None:
        """The root is the prefix with a slash, and another prefix is used as given."""
        self.assertEqual(canonical_path("/"), "/v2/keys/")
        self.assertEqual(canonical_path("/a b", "/v2/other"), "/v2/other/a%20b")


class EtcdHeadersTests(SynchronousTestCase):
    """
    Picking etcd's headers out of an answer in one pass.
    """

    def test_picks_etcd_headers(self) -> None:
        """Only etcd's headers are kept, by lower-case name, the last value of each."""
        headers = Headers(
            {
                b"X-Etcd-Index": [b"4", b"7"],
                b"x-raft-term": [b"2"],
                b"Content-Type": [b"application/json"],
                b"Date": [b"today"],
                b"X-Etcd-Cluster-Id": [b"cdf818194e3a8c32"],
            }
        )
        self.assertEqual(
            etcd_headers(headers),
            {
                "x-etcd-index": "7",
                "x-raft-term": "2",
                "content-type": "application/json",
                "x-etcd-cluster-id": "cdf818194e3a8c32",
            },
        )

    def test_none(self) -> None:
        """An answer without etcd's headers gives an empty dict."""
        self.assertEqual(etcd_headers(Headers({b"Server": [b"nginx"]})), {})


class FormTests(SynchronousTestCase):
    """
    Encoding a set's form without urlencode() when nothing needs encoding.
    """

    def test_same_as_urlencode(self) -> None:
        """Every form encodes exactly as urlencode() does, with or without TTL and refresh."""
        for value in ["v1", "A-Z_0.9~x", "", "a b", "a/b", "a+b&c=d", "é", "日本", "x" * 300]:
            self.assertEqual(_form(value), urlencode([("value", value)]).encode(), value)
            self.assertEqual(
                _form(value, 5), urlencode([("value", value), ("ttl", "5")]).encode(), value
            )
        self.assertEqual(_form(None, 5, True), b"ttl=5&refresh=true")

    def test_checks_value(self) -> None:
        """A value that is not text is refused on the short path too."""
        self.assertRaises(TypeError, _form, b"v1")
        self.assertRaises(ValueError, _form, "\ud800")


class RequestHeadersTests(SynchronousTestCase):
    """
    The headers of requests without extra headers, built once per credentials.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        self.exchange = Exchange(etcd_http_client(self.agent), self.clock)

    def _sent(self, form: bytes | None, headers: Headers | None = None) -> Headers:
        opened = self.exchange.open("http://m:2379", "PUT", "/v2/keys/a", form, headers)
        request = self.agent.requests[-1]
        opened.cancel()
        self.failureResultOf(opened)
        return request.headers

    def test_form_and_credentials(self) -> None:
        """A form is labelled, later credentials are sent, and the agent's changes stay local."""
        self.assertIsNone(self._sent(None).getRawHeaders(b"content-type"))
        sent = self._sent(b"value=1")
        self.assertEqual(
            sent.getRawHeaders(b"content-type"), [b"application/x-www-form-urlencoded"]
        )
        sent.setRawHeaders(b"x-changed", [b"yes"])
        self.assertIsNone(self._sent(b"value=2").getRawHeaders(b"x-changed"))
        self.exchange.auth_header = b"Basic abc"
        self.assertEqual(self._sent(None).getRawHeaders(b"authorization"), [b"Basic abc"])
        self.assertEqual(self._sent(b"value=3").getRawHeaders(b"authorization"), [b"Basic abc"])
        self.exchange.auth_header = None
        self.assertIsNone(self._sent(b"value=4").getRawHeaders(b"authorization"))

    def test_extra_headers_untouched(self) -> None:
        """The caller's headers are merged into a copy, never changed."""
        self.exchange.auth_header = b"Basic abc"
        mine = Headers({b"content-type": [b"application/json"]})
        sent = self._sent(b"{}", mine)
        self.assertEqual(sent.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(sent.getRawHeaders(b"authorization"), [b"Basic abc"])
        self.assertEqual(list(mine.getAllRawHeaders()), [(b"Content-Type", [b"application/json"])])


class WithinTests(SynchronousTestCase):
    """
    A request's deadline, with its one delayed call.
    """

    def test_answer_cancels_the_deadline(self) -> None:
        """An answer in time is passed on and leaves no delayed call."""
        clock = Clock()
        d: Deferred[int] = Deferred()
        results: list[int] = []
        within(d, 5.0, clock).addCallback(results.append)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        d.callback(7)
        self.assertEqual(results, [7])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_deadline_runs_out(self) -> None:
        """A request without an answer in time is cancelled and fails with TimeoutError."""
        clock = Clock()
        cancelled: list[object] = []
        d: Deferred[int] = Deferred(cancelled.append)
        attempt = within(d, 5.0, clock)
        clock.advance(5.0)
        self.assertEqual(cancelled, [d])
        self.failureResultOf(attempt, TimeoutError)
        self.assertEqual(clock.getDelayedCalls(), [])
