"""
Unit tests for the auth API, its models and its errors.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txetcd2 import EtcdClient, EtcdV2Disabled
from txetcd2.auth import (
    AuthConflict,
    AuthNotFound,
    AuthRequestRejected,
    InsufficientCredentials,
    Role,
    RootProtected,
    User,
)
from txetcd2.testing._fakes import RecordingAgent

APP = {"role": "app", "permissions": {"kv": {"read": ["/app/*"], "write": None}}}


class AuthAPITests(SynchronousTestCase):
    """
    client.auth against a recording agent.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        self.client = EtcdClient("https://a:1", reactor=self.clock, agent=self.agent)

    def tearDown(self) -> None:
        self.successResultOf(self.client.close())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_get_user(self) -> None:
        """A user's roles are decoded with their permissions."""
        d = self.client.auth.get_user("alice")
        request = self.agent.pop()
        self.assertEqual((request.method, request.target), ("GET", "/v2/auth/users/alice"))
        request.respond(200, {"user": "alice", "roles": [APP]})
        user = self.successResultOf(d)
        self.assertEqual(user, User("alice", ("app",), (Role("app", ("/app/*",), ()),)))

    def test_create_role_sends_json(self) -> None:
        """create_role PUTs a JSON role document."""
        d = self.client.auth.create_role("app", read=["/app/*"])
        request = self.agent.pop()
        self.assertEqual(request.headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(
            json.loads(request.body),
            {"role": "app", "permissions": {"kv": {"read": ["/app/*"], "write": []}}},
        )
        request.respond(201, APP)
        self.assertEqual(self.successResultOf(d).read, ("/app/*",))

    def test_users_null(self) -> None:
        """etcd's {"users": null} is an empty list."""
        d = self.client.auth.users()
        self.agent.pop().respond(200, {"users": None})
        self.assertEqual(self.successResultOf(d), [])

    def test_errors(self) -> None:
        """Each status of the auth endpoints maps to its typed error, with etcd's message."""
        cases = [
            (400, AuthRequestRejected),
            (401, InsufficientCredentials),
            (403, RootProtected),
            (404, AuthNotFound),
            (409, AuthConflict),
        ]
        for status, cls in cases:
            d = self.client.auth.get_role("app")
            self.agent.pop().respond(status, {"message": f"auth: message {status}"})
            error = self.failureResultOf(d, cls).value
            self.assertIn(f"message {status}", str(error))

    def test_v2_disabled(self) -> None:
        """A plain-text 404 still says the v2 API is disabled."""
        d = self.client.auth.roles()
        self.agent.pop().respond(404, b"404 page not found", {"content-type": "text/plain"})
        version = self.agent.pop()
        self.assertEqual(version.target, "/version")
        version.respond(200, {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        self.assertIn("3.4.23", str(self.failureResultOf(d, EtcdV2Disabled).value))

    def test_enable_idempotent(self) -> None:
        """enable() on an enabled server succeeds; a missing root user fails."""
        d = self.client.auth.enable()
        self.agent.pop().respond(409, {"message": "auth: already enabled"})
        self.assertIsNone(self.successResultOf(d))
        d = self.client.auth.enable()
        self.agent.pop().respond(409, {"message": "auth: No root user available"})
        self.failureResultOf(d, AuthConflict)

    def test_revoke_guest(self) -> None:
        """revoke_guest_access revokes exactly what the guest role has."""
        d = self.client.auth.revoke_guest_access()
        guest = {"role": "guest", "permissions": {"kv": {"read": ["/*"], "write": ["/*"]}}}
        self.agent.pop().respond(200, guest)
        request = self.agent.pop()
        self.assertEqual(
            json.loads(request.body),
            {"role": "guest", "revoke": {"kv": {"read": ["/*"], "write": ["/*"]}}},
        )
        request.respond(200, {"role": "guest", "permissions": {"kv": {"read": [], "write": []}}})
        self.assertEqual(self.successResultOf(d), Role("guest"))

    def test_validation(self) -> None:
        """Bad names, patterns and passwords are refused before any request."""
        auth = self.client.auth
        self.assertRaises(ValueError, auth.get_user, "")
        self.assertRaises(TypeError, auth.grant_user_roles, "alice", "app")
        self.assertRaises(ValueError, auth.create_role, "app", read=["app"])
        self.assertRaises(ValueError, auth.grant_role_permissions, "app")
        with self.assertRaises(TypeError) as caught:
            auth.create_user("alice", 12345)  # type: ignore[arg-type]
        self.assertNotIn("12345", str(caught.exception))
        self.assertEqual(self.agent.pending(), [])


class ExportTests(SynchronousTestCase):
    """
    The auth facade and the package export the auth names.
    """

    def test_auth_facade(self) -> None:
        """Every name in txetcd2.auth.__all__ exists and is re-exported by the package."""
        import txetcd2
        from txetcd2 import auth

        for name in auth.__all__:
            self.assertTrue(hasattr(auth, name), name)
            self.assertIn(name, txetcd2.__all__)
