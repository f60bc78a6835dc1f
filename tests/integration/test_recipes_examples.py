"""
The recipe examples in ``examples/`` run against a real etcd.
"""

from __future__ import annotations

import os
import sys

from tests.integration._processes import CHECKOUT, spawn, wait_ended
from tests.integration._support import EtcdTestCase


class RecipeExampleTests(EtcdTestCase):
    """
    Each recipe example finishes with status 0 and prints what it promises.
    """

    async def run_example(self, name: str, *args: str) -> str:
        script = os.path.join(CHECKOUT, "examples", name)
        child = spawn(self, [sys.executable, script, self.cluster.client_urls[0], *args])
        code = await wait_ended(child, f"{name} finished", deadline=90)
        self.assertEqual(code, 0, child.describe())
        self.assertNotIn(b"Traceback", child.err, child.describe())
        return child.out.decode("utf-8", "replace")

    async def test_lock(self) -> None:
        """recipe_lock.py: three workers, 15 holdings, no lost increment, a refused try."""
        output = await self.run_example("recipe_lock.py")
        self.assertIn("counter = 15 (expected 15)", output)
        self.assertIn("15 holdings, 15 distinct fencing tokens", output)
        self.assertIn("non-blocking try refused: lock /_txetcd2/locks/examples/busy", output)
        self.assertNotIn("lost", output)

    async def test_election(self) -> None:
        """recipe_election.py: elected, resigns, elected again (alone), stops with no leader."""
        output = await self.run_example("recipe_election.py", "solo")
        lines = output.splitlines()
        self.assertEqual(lines[0], "solo: elected (token " + lines[0].split("token ")[1])
        self.assertIn("leader now: solo", lines)
        self.assertIn("solo: deposed (resigned)", lines)
        self.assertIn("solo: deposed (stopped)", lines)
        self.assertEqual(lines[-1], "solo: stopped; leader: None")

    async def test_registration(self) -> None:
        """recipe_registration.py: two instances outlive their 3 s TTL, and are gone after stop."""
        output = await self.run_example("recipe_registration.py", "4")
        prefix = "/examples/services/web"
        self.assertIn(
            f"registered after 4.0s: ['{prefix}/10.0.0.7:8080', '{prefix}/10.0.0.8:8080']", output
        )
        self.assertIn("after stop: []", output)

    async def test_mirror(self) -> None:
        """recipe_mirror.py: the first read, an update, a new key and a directory delete."""
        output = await self.run_example("recipe_mirror.py")
        self.assertEqual(
            output.splitlines(),
            [
                "change /examples/config/db/host: None -> 'db1.internal'",
                "ready: {'/examples/config/db/host': 'db1.internal'}",
                "change /examples/config/db/host: 'db1.internal' -> 'db2.internal'",
                "change /examples/config/feature/dark-mode: None -> 'on'",
                "change /examples/config/db/host: 'db2.internal' -> None",
                "final: {'/examples/config/feature/dark-mode': 'on'}",
            ],
        )
