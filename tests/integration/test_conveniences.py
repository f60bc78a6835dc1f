"""
The client conveniences and exact errors against real etcd: exists(), children(),
JSON values, modify(), noValueOnSuccess, host:port endpoints, per-call
max_retries, None values refused, and https:// to a plain member.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from txetcd2 import EtcdClient, EtcdConnectionError, EtcdTLSError, NotDir, ValueNotJSON
from txetcd2.testing import EtcdCluster, start_etcd

from .test_failover import bounded, dead_endpoint


class ConvenienceTests(TestCase):
    """
    One real member, shared by the tests of this class.
    """

    timeout = 300

    async def cluster(self) -> EtcdCluster:
        return await start_etcd(self, 1)

    def client(self, urls: Any, **options: Any) -> EtcdClient:
        client = EtcdClient(urls, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    async def test_conveniences(self) -> None:
        """exists(), children() (one level and recursive), JSON values, noValueOnSuccess,
        host:port endpoints and None values behave as documented on a real member."""
        cluster = await self.cluster()
        url = cluster.client_urls[0]
        client = self.client(url.removeprefix("http://"))  # host:port
        self.assertEqual(client.endpoints, [url])
        self.assertFalse(await bounded(client.exists("conv/missing")))
        await bounded(client.set("conv/dir/a", "1"))
        await bounded(client.set("conv/dir/sub/b", "2"))
        self.assertTrue(await bounded(client.exists("conv/dir/a")))
        self.assertTrue(await bounded(client.exists("conv/dir")))
        self.assertEqual(await bounded(client.children("conv/dir")), {"a": "1", "sub": None})
        self.assertEqual(
            await bounded(client.children("conv/dir", recursive=True)), {"a": "1", "sub/b": "2"}
        )
        await self.assertFailure(client.children("conv/dir/a"), NotDir)

        await bounded(client.set_json("conv/json", {"b": [1, 2], "a": "é"}))
        self.assertEqual(await bounded(client.get_value("conv/json")), '{"a":"é","b":[1,2]}')
        self.assertEqual(await bounded(client.get_json("conv/json")), {"a": "é", "b": [1, 2]})
        self.assertEqual(await bounded(client.get_json("conv/none", {"x": 1})), {"x": 1})
        self.assertEqual(await bounded(client.get_json("conv/dir/a")), 1)
        await bounded(client.set("conv/text", "not json"))
        await self.assertFailure(client.get_json("conv/text"), ValueNotJSON)

        quiet = await bounded(client.set("conv/big", "x" * 100_000, no_value_on_success=True))
        self.assertEqual(
            (quiet.action, quiet.node.key, quiet.node.value), ("set", "/conv/big", None)
        )
        full = await bounded(client.get("conv/big"))
        self.assertEqual(full.node.modified_index, quiet.node.modified_index)

        for call in (client.set, client.create, client.update):
            self.assertRaises(TypeError, call, "conv/none", None)
        self.assertFalse(await bounded(client.exists("conv/none")))

    async def test_modify_under_contention(self) -> None:
        """20 concurrent modify() increments of one counter all land: the final value is 20."""
        cluster = await self.cluster()
        clients = [self.client(cluster.client_urls) for _ in range(4)]

        def increment(value: str | None) -> str:
            return str(int(value or "0") + 1)

        await bounded(
            gatherResults(
                [clients[i % 4].modify("conv/counter", increment, attempts=50) for i in range(20)]
            )
        )
        self.assertEqual(await bounded(clients[0].get_value("conv/counter")), "20")

    async def test_per_call_max_retries(self) -> None:
        """max_retries=0 on a call makes one sweep of the members, however the client is set."""
        client = self.client(dead_endpoint(), max_retries=10, timeout=30.0)
        started = time.monotonic()
        await self.assertFailure(client.get("k", max_retries=0), EtcdConnectionError)
        self.assertLess(time.monotonic() - started, 2.0)

    async def test_https_to_plain_member(self) -> None:
        """https:// to a member serving plain http fails at once with EtcdTLSError saying so."""
        cluster = await self.cluster()
        client = self.client(cluster.client_urls[0].replace("http://", "https://"))
        started = time.monotonic()
        error = await bounded(self.assertFailure(client.get("k"), EtcdTLSError))
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertIn("plain HTTP", str(error))
        self.assertIn("http://", str(error))
