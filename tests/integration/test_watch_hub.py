"""
Integration tests for watch coalescing (WatchHub) against a real etcd started by the harness.
"""

from __future__ import annotations

from twisted.internet.defer import DeferredSemaphore, gatherResults

from tests.integration._support import EtcdTestCase, eventually
from txetcd2 import EtcdResponse, HubWatcher, Watcher, WatchHub

#: Generous: the machine is small and shared.
DEADLINE = 120.0
#: Local watchers on distinct keys, all fed by one stream.
KEYS = 200


class WatchHubIntegrationTests(EtcdTestCase):
    """
    Many local watchers on one real etcd stream.
    """

    timeout = 600

    async def registered(self) -> int:
        stats = await self.client.store_stats()
        return int(stats["watchers"])

    async def test_many_local_watchers_one_stream(self) -> None:
        """
        200 local watchers (plain and recursive) get exactly their events, once and in
        order, while etcd registers one watcher.
        """
        await self.client.set("hub/start", "0")
        before = await self.registered()
        hub = WatchHub(self.client, "hub", idle_timeout=30.0)
        seen: dict[str, list[EtcdResponse]] = {}
        watchers: list[HubWatcher] = []
        for i in range(KEYS):
            for key, recursive in ((f"hub/k{i}", False), (f"hub/d{i}", True)):
                w = hub.watcher(key, recursive=recursive)
                got = seen.setdefault(w.key, [])
                w.on("change", got.append)
                watchers.append(w)
        for w in watchers:
            w.start()
        self.addCleanup(lambda: gatherResults([w.stop() for w in watchers]))

        async def streaming() -> bool:
            return await self.registered() == before + 1

        await eventually(streaming, DEADLINE)
        writes = DeferredSemaphore(16)
        sets = [writes.run(self.client.set, f"hub/k{i % KEYS}", f"v{i}") for i in range(600)]
        sets += [writes.run(self.client.set, f"hub/d{i}/x/y", "deep") for i in range(KEYS)]
        sets += [writes.run(self.client.set, f"hub/other{i}", "x") for i in range(50)]
        await gatherResults(sets)
        await self.client.delete("hub/d0", recursive=True)
        last = (await self.client.set("hub/k0", "last")).index

        async def delivered() -> bool:
            events = seen["/hub/k0"]
            return bool(events) and events[-1].index >= last

        await eventually(delivered, DEADLINE)
        for i in range(KEYS):
            values = [e.node.value for e in seen[f"/hub/k{i}"]]
            expected = [f"v{j}" for j in range(i, 600, KEYS)]
            if i == 0:
                expected.append("last")
            self.assertEqual(sorted(values[: len(expected)]), sorted(expected))
            self.assertEqual(len(values), len(expected))
            indexes = [e.index for e in seen[f"/hub/k{i}"]]
            self.assertEqual(indexes, sorted(set(indexes)))
            deep = seen[f"/hub/d{i}"]
            self.assertEqual(deep[0].node.key, f"/hub/d{i}/x/y")
            self.assertEqual(len(deep), 2 if i == 0 else 1)
        self.assertEqual([e.action for e in seen["/hub/d0"]], ["set", "delete"])
        self.assertEqual(seen["/hub/d0"][1].node.key, "/hub/d0")
        self.assertEqual(watchers[0].index, last)
        self.assertEqual(await self.registered(), before + 1)
        await gatherResults([w.stop() for w in watchers])

        async def unregistered() -> bool:
            return await self.registered() == before

        await eventually(unregistered, DEADLINE)
        self.assertFalse(hub.source.running)

    async def test_resync_matches_plain_watchers(self) -> None:
        """
        After lost history, each local watcher's resync snapshot equals a plain Watcher's.
        """
        writes = DeferredSemaphore(16)
        await gatherResults(
            [writes.run(self.client.set, f"rs/d/s{i % 3}/k{i % 7}", str(i)) for i in range(1100)]
        )
        await self.client.set("rs/d/x", "file")
        hub = WatchHub(self.client, "rs", index=1, idle_timeout=30.0)
        cases = [("rs/d", False), ("rs/d", True), ("rs/d/x", False), ("rs/none", False)]
        pairs: list[tuple[list[EtcdResponse], list[EtcdResponse]]] = []
        started: list[HubWatcher | Watcher] = []
        for key, recursive in cases:
            local = hub.watcher(key, recursive=recursive)
            plain = self.client.watcher(key, recursive=recursive, index=1, idle_timeout=30.0)
            pair: tuple[list[EtcdResponse], list[EtcdResponse]] = ([], [])
            local.on("resync", pair[0].append)
            plain.on("resync", pair[1].append)
            pairs.append(pair)
            started += [local, plain]
        for w in started:
            w.start()
        self.addCleanup(lambda: gatherResults([w.stop() for w in started]))

        async def resynced() -> bool:
            return all(a and b for a, b in pairs)

        await eventually(resynced, DEADLINE)
        for (key, recursive), (ours, theirs) in zip(cases, pairs, strict=True):
            # No write since: the same view, whatever the index each read saw.
            self.assertEqual(ours[0].node, theirs[0].node, (key, recursive))
            self.assertEqual(ours[0].action, "get")
        self.assertTrue(pairs[1][0][0].node.leaves())
        self.assertEqual(pairs[3][0][0].node.modified_index, 0)
