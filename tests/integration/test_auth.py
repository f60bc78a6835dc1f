"""
Basic auth and the v2 auth API against a real etcd (over TLS, as auth should be).
"""

from __future__ import annotations

from typing import Any, cast

from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.integration._single_etcd import reactor, start_etcd, temp_dir
from txetcd2 import EtcdClient, Unauthorized
from txetcd2._embedded.certificates import write_tls_files
from txetcd2.auth import (
    AuthConflict,
    AuthNotFound,
    InsufficientCredentials,
    Role,
    RootProtected,
)

ROOT_PASSWORD = "r00t-Pa55-zq"
ALICE_PASSWORD = "al1ce-Pa55-zq"


class AuthTests(TestCase):
    """
    The full enable flow, allowed and denied requests, and secrets kept out of sight.
    """

    timeout = 300

    def setUp(self) -> None:
        directory = temp_dir(self, "txetcd2-auth-")
        self.files = write_tls_files(directory)
        # No --client-cert-auth: the certificate's CommonName would act as the user.
        self.etcd = start_etcd(self, "https", self.files.etcd_args(client_cert_auth=False))
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def client(self, username: str | None = None, password: str | None = None) -> EtcdClient:
        client = EtcdClient(
            self.etcd.url, reactor=reactor, ca=self.files.ca, username=username, password=password
        )
        self.addCleanup(client.close)
        return client

    async def test_full_flow(self) -> None:
        """Enable auth, use a role on a prefix, deny the rest, revoke guest, disable auth."""
        anonymous = self.client()
        await self.etcd.wait_ready(anonymous)
        self.assertFalse(await anonymous.auth.enabled())
        with self.assertRaises(AuthConflict):
            await anonymous.auth.enable()  # no root user yet
        await anonymous.auth.create_user("root", ROOT_PASSWORD)
        role = await anonymous.auth.create_role("app", read=["/app/*"], write=["/app/*"])
        self.assertEqual(role, Role("app", ("/app/*",), ("/app/*",)))
        with self.assertRaises(AuthConflict):
            await anonymous.auth.create_role("app", read=["/app/*"])
        alice = await anonymous.auth.create_user("alice", ALICE_PASSWORD, roles=["app"])
        self.assertEqual(alice.roles, ("app",))
        await anonymous.auth.enable()
        self.assertTrue(await anonymous.auth.enabled())
        root = self.client("root", ROOT_PASSWORD)
        await root.auth.enable()  # idempotent
        user = self.client("alice", ALICE_PASSWORD)
        wrong = self.client("alice", "not-the-password")

        # guest still reads and writes everything until revoked
        await anonymous.set("/open", "1")
        guest = await root.auth.revoke_guest_access()
        self.assertEqual((guest.read, guest.write), ((), ()))
        with self.assertRaises(Unauthorized):
            await anonymous.set("/open", "2")

        with self.assertRaises(InsufficientCredentials):
            await user.auth.users()
        with self.assertRaises(RootProtected):
            await root.auth.delete_user("root")
        with self.assertRaises(AuthNotFound):
            await root.auth.get_role("nope")
        with self.assertRaises(AuthConflict):
            await root.auth.grant_user_roles("alice", ["app"])
        fetched = await root.auth.get_user("alice")
        self.assertEqual(fetched.role_details, (role,))
        self.assertIn("alice", [u.name for u in await root.auth.users()])
        self.assertIn("app", [r.name for r in await root.auth.roles()])

        written = await user.set("/app/a", "x")
        self.assertEqual(await user.get_value("/app/a"), "x")
        with self.assertRaises(Unauthorized):
            await user.set("/other", "x")
        with self.assertRaises(Unauthorized):
            await user.get_value("/open")
        with self.assertRaises(Unauthorized) as caught:
            await wrong.get_value("/app/a")
        errors: list[Any] = [caught.exception]

        watching = user.watch("/app/a", index=written.node.modified_index + 1)
        await root.set("/app/a", "y")
        event = await watching
        self.assertEqual(event.node.value, "y")
        with self.assertRaises(Unauthorized):
            await anonymous.watch("/app/a")

        await root.auth.grant_role_permissions("app", read=["/open"])
        self.assertEqual(await user.get_value("/open"), "1")
        await root.auth.revoke_role_permissions("app", read=["/open"])
        await root.auth.change_password("alice", "n3w-Pa55-zq")
        with self.assertRaises(Unauthorized):
            await user.get_value("/app/a")

        await root.auth.disable()
        self.assertFalse(await anonymous.auth.enabled())
        await anonymous.auth.delete_user("alice")
        await anonymous.auth.delete_role("app")

        # Secrets never show: not in logs, reprs nor error messages.
        texts = [repr(c) for c in (root, user, wrong, anonymous, root.auth)]
        texts += [str(e) + repr(e) for e in errors]
        texts += [formatEvent(e) + repr(e) for e in self.events]
        for secret in (ROOT_PASSWORD, ALICE_PASSWORD, "not-the-password", "n3w-Pa55-zq"):
            for text in texts:
                self.assertNotIn(secret, text)
        self.assertTrue(texts)
