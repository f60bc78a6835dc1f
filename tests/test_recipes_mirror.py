"""
Unit tests for :class:`txetcd2.recipes.Mirror` against an in-memory etcd and a Clock.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests._recipes_case import RecipeTestCase
from txetcd2.recipes import Mirror


class MirrorTests(RecipeTestCase):
    """
    A read-only mapping of a prefix, equal to etcd, with change callbacks.
    """

    def mirror(self, prefix: str = "/config") -> Mirror:
        """
        A started mirror whose changes are recorded; stopped at the end of the test.
        """
        mirror = Mirror(self.client(), prefix, idle_timeout=10.0)
        self.changes: list[tuple[str, str | None, str | None]] = []
        mirror.on("change", lambda key, old, new: self.changes.append((key, old, new)))
        mirror.start()
        self.stops.append(mirror.stop)
        self.settle()
        return mirror

    def expected(self, prefix: str = "/config") -> dict[str, str]:
        """
        What etcd holds below ``prefix``.
        """
        return self.values_below(prefix)

    def test_initial_content(self) -> None:
        """After ``ready`` the mirror holds every key below the prefix, by full key."""
        self.set("/config/db/host", "db1")
        self.set("/config/color", "blue")
        self.set("/other", "x")
        mirror = self.mirror()
        self.successResultOf(mirror.ready)
        self.assertIsInstance(mirror, Mapping)
        self.assertEqual(dict(mirror), {"/config/db/host": "db1", "/config/color": "blue"})
        self.assertEqual(mirror["/config/db/host"], "db1")
        self.assertIn("/config/color", mirror)
        self.assertNotIn("/other", mirror)
        self.assertEqual(len(mirror), 2)
        self.assertEqual(sorted(mirror), ["/config/color", "/config/db/host"])
        with self.assertRaises(TypeError):
            mirror["/config/color"] = "red"  # type: ignore[index]

    def test_missing_prefix(self) -> None:
        """A prefix that does not exist yet gives an empty, ready mirror that fills later."""
        mirror = self.mirror()
        self.successResultOf(mirror.ready)
        self.assertEqual(len(mirror), 0)
        self.set("/config/a", "1")
        self.settle()
        self.assertEqual(dict(mirror), {"/config/a": "1"})

    def test_changes(self) -> None:
        """Sets, updates and deletes (of keys and directories) reach the mapping and callbacks."""
        self.set("/config/a", "1")
        mirror = self.mirror()
        self.set("/config/a", "2")
        self.set("/config/dir/b", "3")
        self.set("/config/dir/c", "4")
        self.delete("/config/dir")
        self.delete("/config/a")
        self.settle()
        self.assertEqual(dict(mirror), {})
        self.assertEqual(
            self.changes,
            [
                ("/config/a", None, "1"),
                ("/config/a", "1", "2"),
                ("/config/dir/b", None, "3"),
                ("/config/dir/c", None, "4"),
                ("/config/dir/b", "3", None),
                ("/config/dir/c", "4", None),
                ("/config/a", "2", None),
            ],
        )

    def test_expire(self) -> None:
        """A key that expires leaves the mirror."""
        mirror = self.mirror()
        self.client().set("/config/session", "s", ttl=5)
        self.settle()
        self.assertIn("/config/session", mirror)
        self.advance(5)
        self.assertNotIn("/config/session", mirror)
        self.assertEqual(self.changes[-1], ("/config/session", "s", None))

    def test_resync_after_lost_stream(self) -> None:
        """
        Writes beyond etcd's history while the stream is silent end in a
        resync: the mirror equals etcd, and each difference was reported once.
        """
        self.new_etcd(history=20)
        for i in range(5):
            self.set(f"/config/k{i}", "old")
        mirror = self.mirror()
        self.member().silence()
        for i in range(60):
            self.set(f"/config/k{i % 8}", f"v{i}")
        self.delete("/config/k0")
        self.assertEqual(mirror["/config/k1"], "old")
        self.member().restore()
        self.advance(10)
        self.assertEqual(mirror.resyncs, 1)
        self.assertEqual(dict(mirror), self.expected())
        self.assertEqual(len(self.changes), 5 + 8)  # k0 gone, k1-k4 changed, k5-k7 new
        self.set("/config/after", "1")
        self.settle()
        self.assertEqual(dict(mirror), self.expected())

    def test_stop_leaves_nothing_running(self) -> None:
        """``stop()`` ends the watch; later changes are not applied."""
        mirror = self.mirror()
        self.stops.remove(mirror.stop)
        self.result(mirror.stop())
        self.set("/config/late", "1")
        self.settle()
        self.assertNotIn("/config/late", mirror)
        self.assertEqual(self.etcd.watch_count, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self) -> None:
        """Started again after a stop, the mirror catches up and reports what it missed."""
        self.set("/config/a", "1")
        mirror = self.mirror()
        self.result(mirror.stop())
        self.set("/config/a", "2")
        self.set("/config/b", "3")
        mirror.start()
        self.settle()
        self.assertEqual(dict(mirror), {"/config/a": "2", "/config/b": "3"})
        self.assertEqual(self.changes[-2:], [("/config/a", "1", "2"), ("/config/b", None, "3")])

    def test_first_read_retried(self) -> None:
        """When the first read fails, it is retried; ``ready`` fires once it succeeded."""
        self.member().fail(500, times=1)
        self.set("/config/a", "1")
        mirror = self.mirror()
        self.assertNoResult(mirror.ready)
        self.advance(5)
        self.successResultOf(mirror.ready)
        self.assertEqual(dict(mirror), {"/config/a": "1"})

    def test_bad_prefix(self) -> None:
        """A bad prefix or idle timeout raises ValueError before any request."""
        with self.assertRaises(ValueError):
            Mirror(self.client(), "/")
        with self.assertRaises(ValueError):
            Mirror(self.client(), "/config", idle_timeout=0)
        self.assertEqual(self.etcd.requests, [])
