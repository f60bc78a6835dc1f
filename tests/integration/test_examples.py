"""
Every script in ``examples/`` runs against a real etcd.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.integration._processes import (
    CHECKOUT,
    Child,
    checkout_env,
    in_new_session,
    spawn,
    stopped_by,
    wait_ended,
    wait_until,
)
from tests.integration._support import EtcdTestCase
from txetcd2 import EtcdClient, EtcdConnectionError


def example(name: str) -> str:
    return os.path.join(CHECKOUT, "examples", name)


class ExampleTests(EtcdTestCase):
    """
    Each example finishes with status 0 and prints what it promises.
    """

    async def run_example(self, name: str, *args: str, **env: str) -> str:
        child = spawn(self, [sys.executable, example(name), *args], checkout_env(**env))
        code = await wait_ended(child, f"{name} finished", deadline=90)
        self.assertEqual(code, 0, child.describe())
        self.assertNotIn(b"Traceback", child.err, child.describe())
        return (child.out + child.err).decode("utf-8", "replace")

    @property
    def url(self) -> str:
        return self.cluster.client_urls[0]

    async def test_keyspace(self) -> None:
        """keyspace.py sets, updates, lists and deletes keys."""
        output = await self.run_example("keyspace.py", self.url)
        self.assertIn("update: 'hello' -> 'hello again'", output)
        self.assertIn("create refused: /examples/keyspace/greeting", output)
        self.assertIn("/examples/keyspace/colors/sky = blue", output)
        self.assertIn("deleted /examples/keyspace", output)

    async def test_cas_retry(self) -> None:
        """cas_retry.py loses no increment among concurrent workers."""
        output = await self.run_example("cas_retry.py", self.url)
        self.assertIn("counter = 50 (expected 50)", output)

    async def test_ttl_keepalive(self) -> None:
        """ttl_keepalive.py keeps a 3s-TTL key alive past its TTL by refreshing it."""
        output = await self.run_example("ttl_keepalive.py", self.url, "4")
        self.assertIn("refreshed, expires", output)
        self.assertIn("still registered: 10.0.0.7:8080", output)
        self.assertIn("unregistered", output)

    async def test_cluster_failover(self) -> None:
        """cluster.py fails over from an unreachable first endpoint to a live one."""
        output = await self.run_example("cluster.py", f"http://127.0.0.1:1,{self.url}")
        self.assertIn("members: http://127.0.0.1:1, ", output)
        self.assertIn("read /examples/cluster/key = value", output)
        self.assertIn("ok", output.splitlines())

    async def test_tls_auth_from_environment(self) -> None:
        """tls_auth.py takes its endpoints from TXETCD2_ENDPOINTS and works without TLS/auth."""
        output = await self.run_example("tls_auth.py", TXETCD2_ENDPOINTS=self.url)
        self.assertIn("using: no TLS client options, no auth", output)
        self.assertIn("read back: secret value", output)

    async def test_blocking(self) -> None:
        """blocking.py uses the blocking client from several threads."""
        output = await self.run_example("blocking.py", self.url)
        self.assertIn("missing key raises KeyNotFound", output)
        self.assertIn("8 writes from 4 threads", output)
        self.assertIn("items: 0=0, 1=1, 2=4, 3=9, 4=16, 5=25, 6=36, 7=49", output)

    async def test_watcher_with_writer(self) -> None:
        """watcher.py mirrors the writer's nine changes and ends with an empty directory."""
        watcher = spawn(self, [sys.executable, example("watcher.py"), self.url, "/w", "9"])
        await wait_until(lambda: b"watching from index" in watcher.out, watcher, "watch start")
        await self.run_example("writer.py", self.url, "/w")
        self.assertEqual(await wait_ended(watcher, "nine events"), 0, watcher.describe())
        lines = watcher.out.decode().splitlines()
        self.assertEqual(
            lines[1:],
            [
                "set /w/greeting -> 1 keys",
                "update /w/greeting -> 1 keys",
                "set /w/session -> 2 keys",
                "expire /w/session -> 1 keys",
                "create /w/config -> 1 keys",
                "set /w/config/color -> 2 keys",
                "set /w/config/size -> 3 keys",
                "delete /w/greeting -> 2 keys",
                "delete /w/config -> 0 keys",
                "final: ",
            ],
        )


class DemoTests(TestCase):
    """
    ``examples/demo.py`` (what ``make demo`` runs) needs no running etcd.
    """

    timeout = 180

    async def test_demo(self) -> None:
        """The demo streams the writer's events as JSON lines and cleans up on Ctrl-C."""
        demo: Child = spawn(self, in_new_session([sys.executable, example("demo.py")]))
        await wait_until(lambda: b"Press Ctrl-C" in demo.err, demo, "the writer to finish")
        await wait_until(lambda: len(demo.lines()) >= 9, demo, "nine events")
        events = [json.loads(line) for line in demo.lines()]
        self.assertEqual(
            [(e["action"], e["key"]) for e in events],
            [
                ("set", "/demo/greeting"),
                ("update", "/demo/greeting"),
                ("set", "/demo/session"),
                ("expire", "/demo/session"),
                ("create", "/demo/config"),
                ("set", "/demo/config/color"),
                ("set", "/demo/config/size"),
                ("delete", "/demo/greeting"),
                ("delete", "/demo/config"),
            ],
        )
        [url] = re.findall(rb"embedded etcd at (http://[0-9.:]+)", demo.err)
        demo.signal_group("INT")  # as a terminal's Ctrl-C: the demo's whole process group
        await wait_ended(demo, "Ctrl-C")
        self.assertTrue(stopped_by(demo, signal.SIGINT), demo.describe())
        self.assertIn(b"stopped; embedded etcd removed", demo.err)
        self.assertNotIn(b"Traceback", demo.err, demo.describe())
        client = EtcdClient(url.decode(), reactor=reactor, timeout=5.0)
        self.addCleanup(client.close)
        with self.assertRaises(EtcdConnectionError):
            await client.get("/")
