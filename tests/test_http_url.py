"""
Tests for the pre-encoded request URLs given to treq (txetcd2._transport.exchange).
"""

from __future__ import annotations

from hyperlink import EncodedURL
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2._transport.exchange import RequestURL, request_url
from txetcd2._wire.keys import check_request_line, key_path
from txetcd2.client import EtcdClient
from txetcd2.testing._fakes import RecordingAgent, node_body

TARGETS = [
    check_request_line("GET", key_path("a"), []),
    check_request_line("GET", key_path("/dir/sub key"), [("recursive", "true")]),
    check_request_line("PUT", key_path("x%y?z#w"), [("prevValue", "a b&c=d")]),
    check_request_line("GET", key_path("caf\u00e9/\u2603"), [("wait", "true")]),
]


class RequestURLTests(SynchronousTestCase):
    """
    A RequestURL sends exactly what treq would have sent after parsing.
    """

    def test_same_text_as_treq_parsing(self) -> None:
        """
        For ASCII endpoints, the URL treq sends is the one hyperlink would produce.
        """
        for endpoint in ("http://127.0.0.1:2379", "https://etcd.example:2379"):
            for target in TARGETS:
                url = request_url(endpoint, target)
                self.assertIsInstance(url, RequestURL)
                assert isinstance(url, EncodedURL)
                expected = EncodedURL.from_text(endpoint + target).to_uri().to_text()
                self.assertEqual(url.to_uri().to_text(), expected)

    def test_ipv6_literal(self) -> None:
        """
        An IPv6 literal host is sent as written (hyperlink's to_uri() would reject it).
        """
        url = request_url("http://[::1]:2379", TARGETS[1])
        assert isinstance(url, EncodedURL)
        self.assertEqual(url.to_uri().to_text(), "http://[::1]:2379" + TARGETS[1])

    def test_non_ascii_left_to_treq(self) -> None:
        """
        A non-ASCII URL is given to treq as text, so that it IDNA-encodes the host.
        """
        self.assertEqual(
            request_url("http://\u00e9tcd.example:1", "/v2/keys/a"),
            "http://\u00e9tcd.example:1/v2/keys/a",
        )

    def test_client_sends_pre_encoded_url(self) -> None:
        """
        The client's request reaches the agent with the URL built from the endpoint and target.
        """
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient("http://a:1", reactor=clock, agent=agent)
        d = client.get("dir/sub key", recursive=True)
        req = agent.pop()
        self.assertEqual(req.uri, "http://a:1/v2/keys/dir/sub%20key?recursive=true")
        req.respond(200, node_body("get", "/dir/sub key", "v", 3))
        self.assertEqual(self.successResultOf(d).node.value, "v")
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_repr(self) -> None:
        """
        The repr shows the URL text.
        """
        self.assertEqual(repr(RequestURL("http://a:1/x")), "RequestURL('http://a:1/x')")
