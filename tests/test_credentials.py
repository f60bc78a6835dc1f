"""
Unit tests for basic-auth credentials.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdClient, Unauthorized
from txetcd2._wire.credentials import Credentials, check_credentials
from txetcd2.testing._fakes import RecordingAgent, error_body, node_body

SECRET = "s3cret-pw-xyz"


class CredentialsTests(SynchronousTestCase):
    """
    Checking credentials and building the header.
    """

    def test_header(self) -> None:
        """The header is Basic with base64 of user:password."""
        header = Credentials("alice", SECRET).header()
        self.assertEqual(header, b"Basic " + base64.b64encode(f"alice:{SECRET}".encode()))

    def test_repr_hides_password(self) -> None:
        """repr() and str() never show the password."""
        credentials = Credentials("alice", SECRET)
        self.assertNotIn(SECRET, repr(credentials) + str(credentials))

    def test_both_or_neither(self) -> None:
        """Only one of username and password is refused; neither means no auth."""
        self.assertIsNone(check_credentials(None, None, ["https://a:1"]))
        self.assertRaises(ValueError, check_credentials, "alice", None, ["https://a:1"])
        self.assertRaises(ValueError, check_credentials, None, SECRET, ["https://a:1"])

    def test_bad_username(self) -> None:
        """An empty username or one with ':' is refused."""
        self.assertRaises(ValueError, check_credentials, "", SECRET, ["https://a:1"])
        self.assertRaises(ValueError, check_credentials, "a:b", SECRET, ["https://a:1"])

    def test_password_type(self) -> None:
        """A non-str password is a TypeError that does not show it."""
        with self.assertRaises(TypeError) as caught:
            check_credentials("alice", b"bytes-secret", ["https://a:1"])  # type: ignore[arg-type]
        self.assertNotIn("bytes-secret", str(caught.exception))

    def test_plain_http_refused(self) -> None:
        """Credentials over http:// are refused unless allow_insecure_auth=True."""
        with self.assertRaises(ValueError) as caught:
            EtcdClient("http://a:1", reactor=Clock(), username="alice", password=SECRET)
        self.assertIn("allow_insecure_auth", str(caught.exception))
        self.assertNotIn(SECRET, str(caught.exception))
        self.assertIsNotNone(check_credentials("alice", SECRET, ["http://a:1"], True))


class HeaderSentTests(SynchronousTestCase):
    """
    The client sends the header on every request, watches included.
    """

    def test_every_request(self) -> None:
        """Reads, writes, watches and auth calls all carry the Authorization header."""
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient(
            "http://a:1",
            reactor=clock,
            agent=agent,
            username="alice",
            password=SECRET,
            allow_insecure_auth=True,
        )
        expected = [Credentials("alice", SECRET).header()]
        calls: list[Callable[[], Deferred[Any]]] = [
            lambda: client.get("k"),
            lambda: client.set("k", "v"),
            lambda: client.watch("k"),
            lambda: client.auth.enabled(),
        ]
        for call in calls:
            d = call()
            request = agent.pop()
            self.assertEqual(request.headers.getRawHeaders(b"authorization"), expected)
            request.respond(
                200,
                node_body("get", "/k", "v", 5)
                if "enable" not in request.uri
                else {"enabled": True},
            )
            self.successResultOf(d)
        self.assertNotIn(SECRET, repr(client))
        self.successResultOf(client.close())
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_unauthorized_not_retried(self) -> None:
        """errorCode 110 fails at once, without trying another member."""
        clock = Clock()
        agent = RecordingAgent(clock)
        client = EtcdClient(
            ["https://a:1", "https://b:1"],
            reactor=clock,
            agent=agent,
            username="u",
            password=SECRET,
        )
        d = client.get("k")
        agent.pop().respond(401, error_body(110, "The request requires user authentication"))
        self.assertNotIn(SECRET, str(self.failureResultOf(d, Unauthorized).value))
        self.assertEqual(agent.pending(), [])
        self.successResultOf(client.close())
