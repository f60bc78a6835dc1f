"""
Unit tests for the recipes' TTL keep-alive against an in-memory etcd and a Clock.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from tests._recipes_case import RecipeTestCase
from txetcd2._recipes._keepalive import KeepAlive


class KeepAliveTests(RecipeTestCase):
    """
    Refresh every ttl/3; report a key gone, replaced or no longer renewable.
    """

    def keepalive(self, watch: bool = False) -> KeepAlive:
        """
        A started keep-alive of ``/k`` (ttl 6) whose outcomes are recorded.
        """
        client = self.client()
        node = self.result(client.set("/k", "v", ttl=6)).node
        self.gone: list[tuple[float, str]] = []
        self.refreshed: list[int] = []
        keepalive = KeepAlive(
            client,
            self.clock,
            "/k",
            6,
            lambda why: self.gone.append((self.clock.seconds(), why)),
            self.refreshed.append,
            created_index=node.created_index,
            watch=watch,
        )
        keepalive.start(self.clock.seconds())

        def stop() -> Deferred[None]:
            keepalive.stop()
            return succeed(None)

        self.stops.append(stop)
        return keepalive

    def test_refreshes(self) -> None:
        """It refreshes every 2 s (ttl 6), each with a new modified index."""
        keepalive = self.keepalive()
        self.advance(6)
        self.assertEqual(len(self.refreshed), 3)
        self.assertEqual(self.refreshed, sorted(set(self.refreshed)))
        self.assertEqual(keepalive.renewed_at, 6.0)
        self.assertEqual(self.gone, [])

    def test_replaced_key_is_gone(self) -> None:
        """A refresh that renews another node (created again by someone else) reports it gone."""
        keepalive = self.keepalive()
        self.delete("/k")
        self.client().set("/k", "someone else", ttl=60)
        self.settle()
        self.advance(2)
        self.assertEqual(self.gone, [(2.0, "missing")])
        self.assertFalse(keepalive.running)

    def test_watch_sees_delete_at_once(self) -> None:
        """With ``watch=True`` a deleted key is reported at once, not at the next refresh."""
        self.keepalive(watch=True)
        self.advance(0.5)
        self.delete("/k")
        self.settle()
        self.assertEqual(self.gone, [(0.5, "missing")])

    def test_expired_without_answers(self) -> None:
        """Without answers, it reports ``expired`` ttl seconds after the last renewal was sent,
        less its safety margin (a tenth of the TTL, at most 0.5 s)."""
        keepalive = self.keepalive()
        self.advance(2)
        self.member().stop_answering()
        self.advance(6)
        self.assertEqual(self.gone, [(7.5, "expired")])
        self.assertFalse(keepalive.running)
        self.member().restore()
