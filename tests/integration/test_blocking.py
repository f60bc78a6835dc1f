"""
BlockingEtcdClient against real etcd: operations, errors, threads, and the reactor-thread guard.

crochet runs Twisted's global reactor in a thread, which must not be trial's reactor, so the
scenarios run in a child process (``tests/integration/_blocking_child.py``) that reports what
happened as JSON; the assertions are here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.integration._processes import spawn, wait_ended
from tests.integration._support import EtcdTestCase


class BlockingClientTests(EtcdTestCase):
    """
    The blocking client behaves like the async one, from any thread but the reactor's.
    """

    async def setUp(self) -> None:  # type: ignore[override]
        await super().setUp()
        child = spawn(
            self,
            [
                sys.executable,
                "-m",
                "tests.integration._blocking_child",
                self.cluster.client_urls[0],
            ],
        )
        code = await wait_ended(child, "the blocking scenarios", deadline=120)
        self.assertEqual(code, 0, child.describe())
        self.assertNotIn(b"Unhandled error", child.err, child.describe())
        self.report: dict[str, Any] = json.loads(child.out.splitlines()[-1])

    def test_operations(self) -> None:
        """Every key-space method returns what the async client's Deferred would fire with."""
        seen = self.report["keyspace"]
        self.assertEqual(seen["set"], ["set", "one"])
        self.assertEqual(seen["get_value"], "one")
        self.assertEqual(seen["default"], "fallback")
        self.assertEqual(seen["update_prev"], "one")
        self.assertEqual(seen["cas_right"], "3")
        self.assertEqual(seen["refresh_ttl"], 30)
        self.assertTrue(seen["append"])
        self.assertEqual(seen["rmdir"], "delete")
        self.assertIsNone(seen["delete_missing_ok"])
        self.assertEqual(seen["cad"], "compareAndDelete")
        self.assertEqual(seen["watch"], "w")

    def test_errors(self) -> None:
        """etcd's errors, bad arguments and timeouts raise the async client's exceptions."""
        seen = self.report["keyspace"]
        self.assertEqual(seen["create_existing"], "NodeExist")
        self.assertEqual(seen["get_missing"], "KeyNotFound")
        self.assertEqual(seen["cas_wrong"], "TestFailed")
        self.assertEqual(seen["rmdir_not_empty"], "DirNotEmpty")
        self.assertEqual(seen["bad_key"], "ValueError")
        self.assertEqual(seen["cas_no_condition"], "ValueError")
        self.assertEqual(seen["watch_timeout"], "EtcdTimeout")
        self.assertEqual(self.report["dead"], [True, True])
        self.assertEqual(self.report["closed"], "ClientClosed")

    def test_threads(self) -> None:
        """Twelve threads sharing one client lose no write and no compare-and-swap increment."""
        threads = self.report["threads"]
        self.assertEqual(threads["errors"], [])
        self.assertTrue(threads["all_written"])
        self.assertEqual(threads["counter"], "40")

    def test_reactor_thread(self) -> None:
        """A call from the reactor thread raises ReactorThreadError and the client still works."""
        result = self.report["reactor_thread"]
        self.assertIn("called from the Twisted reactor thread", result["message"])
        self.assertEqual(result["still_works"], "ok")
