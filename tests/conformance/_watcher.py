"""
The Watcher scenarios (formerly ``WatcherIntegrationTests`` in
``tests/integration/test_watcher.py``): the same code on every back end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults

from txetcd2 import EtcdClient, EtcdResponse, Watcher

if TYPE_CHECKING:
    from tests.conformance._backends import Backend

    _Base = Backend
else:
    _Base = object


class Recorder:
    """
    Records what a watcher reports.
    """

    def __init__(self, watcher: Watcher) -> None:
        self.changes: list[EtcdResponse] = []
        self.resyncs: list[EtcdResponse] = []
        self.errors: list[Any] = []
        watcher.on("change", self.changes.append)
        watcher.on("resync", self.resyncs.append)
        watcher.on("error", self.errors.append)

    @property
    def indexes(self) -> list[int]:
        return [e.index for e in self.changes]


class WatcherScenarios(_Base):
    """
    A watcher against one member.
    """

    def watcher(self, client: EtcdClient, key: str, **kwargs: Any) -> tuple[Watcher, Recorder]:
        kwargs.setdefault("idle_timeout", 3.0)
        w = client.watcher(key, **kwargs)
        recorder = Recorder(w)
        self.addCleanup(lambda: Deferred.fromCoroutine(self.wait(w.stop(), "the stop")))
        return w, recorder

    async def write_many(
        self, client: EtcdClient, key: str, count: int, parallel: int = 20
    ) -> list[int]:
        """
        Fire ``count`` writes, ``parallel`` at a time; return their indexes.
        """
        semaphore = DeferredSemaphore(parallel)
        writes = [
            semaphore.run(client.set, f"{key}" if "{" not in key else key.format(i), str(i))
            for i in range(count)
        ]
        results: list[EtcdResponse] = await self.wait(gatherResults(writes), "the writes")
        return sorted(r.index for r in results)

    async def test_5000_concurrent_writes(self) -> None:
        """5,000 writes fired by a concurrent writer are delivered exactly once, in order."""
        client = self.client
        first = await client.set("/load/k", "start")
        w, seen = self.watcher(client, "/load/k", index=first.index + 1)
        w.start()
        indexes = await self.write_many(client, "/load/k", 5000)
        await self.until(lambda: seen.indexes[-1:] == indexes[-1:], "the last write")
        self.assertEqual(seen.indexes, indexes)
        self.assertEqual(seen.resyncs, [])
        self.assertEqual(w.index, indexes[-1])
        await self.wait(w.stop())

    async def test_old_index_catches_up(self) -> None:
        """A watcher started at an old index delivers all history, then live changes."""
        client = self.client
        old = await self.write_many(client, "/old/{}", 300, parallel=5)
        await client.set("/elsewhere", "x")
        w, seen = self.watcher(client, "/old", index=old[0], recursive=True)
        w.start()
        await self.until(lambda: seen.indexes[-1:] == old[-1:], "the history")
        live = await self.write_many(client, "/old/{}", 20, parallel=1)
        await self.until(lambda: seen.indexes[-1:] == live[-1:], "the live writes")
        self.assertEqual(seen.indexes, old + live)
        self.assertEqual(seen.resyncs, [])

    async def test_lost_history_resyncs(self) -> None:
        """Over 1,000 writes while behind give one resync equal to a fresh read, then events."""
        client = self.client
        start = await client.set("/r/a", "0")
        await self.write_many(client, "/r/k{}", 1100, parallel=20)
        await client.delete("/r/k7")
        w, seen = self.watcher(client, "/r", index=start.index + 1, recursive=True)
        w.start()
        await self.until(lambda: len(seen.resyncs) == 1, "the resync")
        fresh = await client.get("/r", recursive=True, quorum=True)
        self.assertEqual(seen.resyncs[0].node.leaves(), fresh.node.leaves())
        self.assertEqual(len(fresh.node.leaves()), 1100)
        after = await self.write_many(client, "/r/after{}", 5, parallel=1)
        await self.until(lambda: seen.indexes[-1:] == after[-1:], "the writes after the resync")
        self.assertEqual(seen.indexes, after)
        self.assertEqual(len(seen.resyncs), 1)
        self.assertEqual(w.index, after[-1])

    async def test_parent_directory_deleted(self) -> None:
        """Deleting a parent directory is reported to a child's watcher and a recursive one."""
        client = self.client
        made = await client.set("/p/c/leaf", "1")
        leaf, leaf_seen = self.watcher(client, "/p/c/leaf", index=made.index + 1)
        tree, tree_seen = self.watcher(client, "/p", index=made.index + 1, recursive=True)
        leaf.start()
        tree.start()
        gone = await client.rmdir("/p", recursive=True)
        await self.until(lambda: bool(leaf_seen.changes and tree_seen.changes), "the delete")
        for seen in (leaf_seen, tree_seen):
            self.assertEqual(
                [(e.action, e.node.key, e.index) for e in seen.changes],
                [("delete", "/p", gone.index)],
            )

    async def test_hidden_and_expired_keys(self) -> None:
        """A recursive watcher passes over hidden keys below it, whether etcd answers
        from its history (a watch from a past index: etcd's history scan returns
        them, its live notifications do not) or live; it sees a key's TTL expire;
        a watcher of a hidden key itself sees its changes."""
        client = self.client
        first = await client.set("/hx/start", "0")
        await client.set("/hx/_early", "h")  # in etcd's history before the watch starts
        await client.set("/hx/d/_deep", "h")
        w, seen = self.watcher(client, "/hx", index=first.index + 1, recursive=True)
        own, own_seen = self.watcher(client, "/hx/_late", index=first.index + 1)
        w.start()
        own.start()
        late = await client.set("/hx/_late", "h")
        short = await client.set("/hx/short", "s", ttl=1)
        await self.until(lambda: len(seen.changes) >= 2 and bool(own_seen.changes), "the expiry")
        self.assertEqual(
            [(e.action, e.node.key) for e in seen.changes],
            [("set", "/hx/short"), ("expire", "/hx/short")],
        )
        self.assertEqual(seen.changes[1].prev_node and seen.changes[1].prev_node.value, "s")
        self.assertGreater(seen.changes[1].index, short.index)
        self.assertEqual(w.index, seen.changes[1].index)
        self.assertEqual(
            [(e.action, e.node.key, e.index) for e in own_seen.changes],
            [("set", "/hx/_late", late.index)],
        )

    async def test_stop_leaves_nothing(self) -> None:
        """After stop() no request, timer or callback of the watcher remains."""
        client = self.client
        first = await client.set("/s", "0")
        w, seen = self.watcher(client, "/s", index=first.index + 1)
        w.start()
        await client.set("/s", "1")
        await self.until(lambda: len(seen.changes) == 1, "the first change")
        stopped: list[object] = []
        w.on("stop", stopped.append)
        await self.wait(w.stop())
        self.assertEqual(stopped, [None])
        self.assertEqual(
            [
                c
                for c in self.clock.getDelayedCalls()
                if getattr(getattr(c, "func", None), "__self__", None) is w
            ],
            [],
        )
        witness, witness_seen = self.watcher(client, "/s", index=first.index + 1)
        witness.start()
        last = await client.set("/s", "2")
        await self.until(lambda: witness_seen.indexes[-1:] == [last.index], "the witness")
        self.assertEqual(len(seen.changes), 1)
        await self.wait(witness.stop())
