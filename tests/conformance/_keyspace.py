"""
The key-space scenarios (formerly ``tests/integration/test_keyspace.py``): every key-space
method and option, the same code on every back end.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, globalLogPublisher

from txetcd2 import (
    DirNotEmpty,
    EtcdResponse,
    EtcdV2Disabled,
    EventIndexCleared,
    KeyNotFound,
    NodeExist,
    NotDir,
    NotFile,
    RootReadOnly,
    TestFailed,
)

if TYPE_CHECKING:
    from tests.conformance._backends import Backend

    _Base = Backend
else:
    _Base = object


class KeySpaceScenarios(_Base):
    """
    Reading and writing keys, TTLs, the long-poll watch() and a server without v2.
    """

    async def test_set_get_round_trip(self) -> None:
        """
        set() then get() return the same typed node; set over a key replaces it.
        """
        first = await self.client.set("/app/name", "one")
        self.assertEqual((first.action, first.node.key, first.value), ("set", "/app/name", "one"))
        self.assertIsNone(first.prev_node)
        self.assertGreater(first.etcd_index, 0)
        self.assertIsNotNone(first.raft_term)
        self.assertIsNotNone(first.cluster_id)
        second = await self.client.set("app/name", "two")
        assert second.prev_node is not None
        self.assertEqual(second.prev_node.value, "one")
        self.assertGreater(second.node.created_index, first.node.created_index)
        self.assertEqual(await self.client.get_value("/app/name/"), "two")
        read = await self.client.get("app/name")
        self.assertEqual((read.action, read.node.modified_index), ("get", second.index))

    async def test_special_keys_and_values_round_trip(self) -> None:
        """
        Keys with spaces, %, ?, #, +, &, = and non-ASCII, and values with NUL
        and newlines, round-trip exactly, also in listings.
        """
        keys = ["/rt/a b", "/rt/100%", "/rt/what?x=1", "/rt/#frag", "/rt/a+b&c=d", "/rt/é✓"]
        value = "line1\nline2\x00end ✓ &=+%"
        for key in keys:
            await self.client.set(key, value)
            self.assertEqual(await self.client.get_value(key), value)
        listing = await self.client.get("/rt", sorted=True)
        self.assertEqual([n.key for n in listing.node.nodes], sorted(keys))
        self.assertEqual({n.value for n in listing.node.nodes}, {value})

    async def test_large_value(self) -> None:
        """
        A 1 MiB value round-trips.
        """
        value = "x" * (1 << 20)
        await self.client.set("big", value)
        self.assertEqual(await self.client.get_value("big"), value)

    async def test_get_value_default_and_errors(self) -> None:
        """
        get_value() gives the default for a missing key and NotFile for a directory.
        """
        self.assertEqual(await self.client.get_value("missing", "dflt"), "dflt")
        with self.assertRaises(KeyNotFound) as caught:
            await self.client.get_value("missing")
        self.assertEqual(caught.exception.cause, "/missing")
        await self.client.mkdir("adir")
        with self.assertRaises(NotFile):
            await self.client.get_value("adir")

    async def test_create_and_update(self) -> None:
        """
        create() fails with NodeExist on an existing key; update() with
        KeyNotFound on a missing one and keeps createdIndex otherwise.
        """
        created = await self.client.create("c", "1")
        self.assertEqual(created.action, "create")
        with self.assertRaises(NodeExist):
            await self.client.create("c", "2")
        with self.assertRaises(KeyNotFound):
            await self.client.update("nothere", "x")
        updated = await self.client.update("c", "3")
        self.assertEqual(updated.action, "update")
        self.assertEqual(updated.node.created_index, created.node.created_index)

    async def test_conditional_set(self) -> None:
        """
        set() with prev_value, prev_index and prev_exist checks each condition.
        """
        first = await self.client.set("k", "v1")
        swapped = await self.client.set("k", "v2", prev_value="v1")
        self.assertEqual(swapped.action, "compareAndSwap")
        with self.assertRaises(TestFailed) as caught:
            await self.client.set("k", "v3", prev_index=first.index)
        self.assertIn("!=", caught.exception.cause or "")
        await self.client.set("k", "v3", prev_index=swapped.index)
        with self.assertRaises(NodeExist):
            await self.client.set("k", "v4", prev_exist=False)
        with self.assertRaises(KeyNotFound):
            await self.client.set("k2", "v4", prev_exist=True)

    async def test_compare_and_swap_and_delete(self) -> None:
        """
        compare_and_swap()/compare_and_delete() succeed only when the condition holds.
        """
        await self.client.set("cas", "a")
        with self.assertRaises(TestFailed):
            await self.client.compare_and_swap("cas", "b", prev_value="zzz")
        swapped = await self.client.compare_and_swap("cas", "b", prev_value="a", ttl=100)
        self.assertEqual((swapped.value, swapped.node.ttl), ("b", 100))
        with self.assertRaises(TestFailed):
            await self.client.compare_and_delete("cas", prev_index=1)
        deleted = await self.client.compare_and_delete(
            "cas", prev_value="b", prev_index=swapped.index
        )
        self.assertEqual(deleted.action, "compareAndDelete")
        with self.assertRaises(KeyNotFound):
            await self.client.get("cas")

    async def test_delete(self) -> None:
        """
        delete() removes keys; missing_ok tolerates a missing key; a
        directory needs dir or recursive.
        """
        await self.client.set("d/x", "1")
        with self.assertRaises(KeyNotFound):
            await self.client.delete("nope")
        self.assertIsNone(await self.client.delete("nope", missing_ok=True))
        with self.assertRaises(NotFile):
            await self.client.delete("d")
        with self.assertRaises(DirNotEmpty):
            await self.client.delete("d", dir=True)
        removed = await self.client.delete("d", recursive=True)
        assert removed is not None
        self.assertEqual(removed.action, "delete")
        await self.client.set("e", "1")
        with self.assertRaises(TestFailed):
            await self.client.delete("e", prev_value="2")
        await self.client.delete("e", prev_value="1")

    async def test_directories(self) -> None:
        """
        mkdir(), listing (recursive, sorted) and rmdir() behave as etcd documents.
        """
        await self.client.mkdir("tree")
        with self.assertRaises(NodeExist):
            await self.client.mkdir("tree")
        await self.client.set("tree/b/deep", "2")
        await self.client.set("tree/a", "1")
        with self.assertRaises(NotDir):
            await self.client.set("tree/a/under", "x")
        flat = await self.client.get("tree", sorted=True)
        self.assertEqual([n.key for n in flat.node.nodes], ["/tree/a", "/tree/b"])
        self.assertEqual(flat.node.nodes[1].nodes, ())
        deep = await self.client.get("tree", recursive=True, sorted=True)
        self.assertEqual(deep.node.leaves(), {"/tree/a": "1", "/tree/b/deep": "2"})
        with self.assertRaises(DirNotEmpty):
            await self.client.rmdir("tree")
        await self.client.rmdir("tree", recursive=True)
        await self.client.mkdir("empty")
        await self.client.rmdir("empty")
        with self.assertRaises(KeyNotFound):
            await self.client.get("empty")

    async def test_root(self) -> None:
        """
        The root lists (quorum read too) but cannot be written.
        """
        await self.client.set("r1", "x")
        root = await self.client.get("/", quorum=True)
        self.assertEqual(root.node.key, "/")
        self.assertIn("/r1", [n.key for n in root.node.nodes])
        with self.assertRaises(RootReadOnly):
            await self.client.delete("/", recursive=True)

    async def test_hidden_keys(self) -> None:
        """
        Keys starting with _ are hidden from listings but readable by name.
        """
        await self.client.set("h/_secret", "s")
        await self.client.set("h/visible", "v")
        listing = await self.client.get("h", recursive=True)
        self.assertEqual([n.key for n in listing.node.nodes], ["/h/visible"])
        self.assertEqual(await self.client.get_value("h/_secret"), "s")

    async def test_in_order_keys(self) -> None:
        """
        append() creates keys that list in creation order.
        """
        created = [await self.client.append("queue", f"job{i}") for i in range(5)]
        self.assertEqual({r.action for r in created}, {"create"})
        listing = await self.client.get("queue", sorted=True)
        self.assertEqual([n.value for n in listing.node.nodes], [f"job{i}" for i in range(5)])
        self.assertEqual([n.key for n in listing.node.nodes], [r.node.key for r in created])

    # -- TTLs -------------------------------------------------------------------

    async def test_ttl_expiry_is_seen_by_watch(self) -> None:
        """
        A key with a TTL expires; a watcher sees an expire event.
        """
        created = await self.client.set("t", "v", ttl=1)
        self.assertEqual(created.node.ttl, 1)
        assert created.node.expiration is not None
        self.assertGreater(created.node.expiration, datetime(2000, 1, 1, tzinfo=timezone.utc))
        event = await self.wait(self.client.watch("t", index=created.index + 1), "the expiry")
        self.assertEqual(event.action, "expire")
        with self.assertRaises(KeyNotFound):
            await self.client.get("t")

    async def test_refresh_wakes_no_watcher(self) -> None:
        """
        refresh() resets the TTL and keeps the value; a watcher sees the next
        real change, not the refresh.
        """
        created = await self.client.set("r", "v", ttl=100)
        watch: Deferred[EtcdResponse] = self.client.watch("r", index=created.index + 1)
        refreshed = await self.client.refresh("r", 200)
        self.assertEqual((refreshed.value, refreshed.node.ttl), ("v", 200))
        changed = await self.client.set("r", "w")
        event = await self.wait(watch)
        self.assertEqual((event.action, event.index), ("set", changed.index))
        with self.assertRaises(KeyNotFound):
            await self.client.refresh("absent", 5)

    async def test_update_without_ttl_removes_ttl(self) -> None:
        """
        update() without ttl makes the key permanent (etcd's rule).
        """
        await self.client.set("u", "v", ttl=100)
        updated = await self.client.update("u", "w")
        self.assertIsNone(updated.node.ttl)

    async def test_ttl_zero_expires_at_once(self) -> None:
        """
        ttl=0 expires the key at once.
        """
        await self.client.set("z", "v", ttl=0)

        async def gone() -> bool:
            return await self.client.get_value("z", None) is None

        await self.eventually(gone, "the expiry")

    # -- watch() ----------------------------------------------------------------

    async def test_next_change(self) -> None:
        """
        watch() without an index fires with the next change of the key.
        """
        pending = self.client.watch("w")
        # The watch and the writes travel on different connections: the first write may
        # reach etcd before the watch does. Write until the watch fires (bounded); the event
        # is then one of the writes, with its own value.
        written: dict[int, str] = {}
        for i in range(50):
            response = await self.client.set("w", str(i))
            written[response.index] = str(i)
            if pending.called:
                break
        event = await self.wait(pending)
        self.assertEqual(event.action, "set")
        self.assertEqual(written.get(event.index), event.value)

    async def test_recursive_and_index(self) -> None:
        """
        A recursive watch from an old index returns the first change at or after it.
        """
        first = await self.client.set("dir/a", "1")
        await self.client.set("dir/b", "2")
        event = await self.client.watch("dir", index=first.index, recursive=True)
        self.assertEqual(event.node.key, "/dir/a")

    async def test_renewal_keeps_events(self) -> None:
        """
        A watch renewed after its poll timed out still sees the change.
        """
        renewals: list[dict[str, object]] = []

        def observe(event: dict[str, object]) -> None:
            if event.get("log_format") == "watch {key} renewed from {index}":
                renewals.append(event)

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        client = self.make_client(watch_timeout=0.3)
        pending = client.watch("quiet")
        for i in range(3):
            await self.client.set("other", str(i))
        await self.until(lambda: len(renewals) >= 2, "two renewals")
        written = await self.client.set("quiet", "now")
        self.assertEqual((await self.wait(pending)).index, written.index)

    async def test_history_cleared(self) -> None:
        """
        An index older than the 1000-event history raises EventIndexCleared.
        """
        first = await self.client.set("hist", "0")
        for i in range(1010):
            await self.client.set("churn", str(i))
        with self.assertRaises(EventIndexCleared) as caught:
            await self.client.watch("hist", index=first.index)
        self.assertGreater(caught.exception.index, first.index + 1000)

    # -- a server without v2 ---------------------------------------------------------

    async def test_says_v2_is_disabled(self) -> None:
        """
        Key-space calls on a server with the v2 API off raise EtcdV2Disabled, whose message
        says how to fix it.
        """
        client = self.make_client(await self.start_backend(1, enable_v2=False))
        with self.assertRaises(EtcdV2Disabled) as caught:
            await client.get("a")
        self.assertIn("--enable-v2=true", str(caught.exception))
        with self.assertRaises(EtcdV2Disabled):
            await client.set("a", "1")
