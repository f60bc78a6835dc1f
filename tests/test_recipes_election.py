"""
Unit tests for :class:`txetcd2.recipes.LeaderElection` against an in-memory etcd and a Clock.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.service import IService
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from zope.interface.verify import verifyObject

from tests._recipes_case import RecipeTestCase
from txetcd2 import ClientClosed
from txetcd2.recipes import ELECTION_PREFIX, LeaderElection

KEY = f"{ELECTION_PREFIX}/boss"


class ElectionTests(RecipeTestCase):
    """
    One leader at a time; ``elected`` and ``deposed`` alternate per candidate.
    """

    def setUp(self) -> None:
        super().setUp()
        self.log: list[tuple[float, str, str, object]] = []

    def candidate(self, identity: str, ttl: int = 6, member: int = 0) -> LeaderElection:
        """
        A started candidate with its own client, whose events are logged; stopped at the end.
        """
        election = LeaderElection(self.client(member), "boss", identity, ttl=ttl)
        election.on(
            "elected",
            lambda token: self.log.append((self.clock.seconds(), identity, "elected", token)),
        )
        election.on(
            "deposed",
            lambda why: self.log.append((self.clock.seconds(), identity, "deposed", why)),
        )
        election.startService()
        self.stops.append(election.stopService)
        self.settle()
        return election

    def kinds(self) -> list[tuple[str, str]]:
        """
        The logged events as ``(identity, event)``.
        """
        return [(who, what) for _, who, what, _ in self.log]

    def assertAlternating(self) -> None:
        """
        Per candidate, ``elected`` and ``deposed`` alternate, starting with
        ``elected``; and no two candidates are elected at once.
        """
        leaders: set[str] = set()
        for _, who, what, _ in self.log:
            if what == "elected":
                self.assertNotIn(who, leaders)
                self.assertEqual(leaders, set(), f"{who} elected while {leaders} lead")
                leaders.add(who)
            else:
                self.assertIn(who, leaders)
                leaders.discard(who)

    def test_is_a_service(self) -> None:
        """A LeaderElection provides IService."""
        self.assertTrue(verifyObject(IService, LeaderElection(self.client(), "boss", "a")))

    def test_first_candidate_leads(self) -> None:
        """The first candidate is elected, its identity is the key's value, the second follows."""
        a = self.candidate("a")
        b = self.candidate("b")
        self.assertEqual(self.kinds(), [("a", "elected")])
        self.assertTrue(a.is_leader)
        self.assertFalse(b.is_leader)
        node = self.node(KEY)
        assert node is not None
        self.assertEqual((node.value, node.ttl), ("a", 6))
        self.assertEqual(self.result(b.leader()), "a")
        self.assertEqual(self.log[0][3], node.created_index)

    def test_leader_renews(self) -> None:
        """A leader keeps its key alive far past its TTL, with refreshes."""
        self.candidate("a", ttl=3)
        self.candidate("b", ttl=3)
        self.advance(60)
        self.assertEqual(self.kinds(), [("a", "elected")])
        self.assertEqual(self.value(KEY), "a")

    def test_stop_hands_over(self) -> None:
        """Stopping the leader deletes its key; another candidate is elected at once."""
        a = self.candidate("a")
        self.candidate("b")
        self.stops.remove(a.stopService)
        self.result(a.stopService())
        self.assertEqual(self.kinds(), [("a", "elected"), ("a", "deposed"), ("b", "elected")])
        self.assertEqual(self.log[1][3], "stopped")
        self.assertEqual(self.value(KEY), "b")
        self.assertAlternating()

    def test_resign(self) -> None:
        """A leader that resigns is deposed, another is elected, and it campaigns on."""
        a = self.candidate("a")
        b = self.candidate("b")
        self.result(a.resign())
        self.assertEqual(self.kinds()[-2:], [("a", "deposed"), ("b", "elected")])
        self.assertTrue(b.is_leader)
        self.stops.remove(b.stopService)
        self.result(b.stopService())
        self.advance(2)
        self.assertEqual(self.kinds()[-2:], [("b", "deposed"), ("a", "elected")])
        self.assertAlternating()

    def test_deposed_when_cut_off(self) -> None:
        """
        A leader that cannot renew is deposed ``ttl`` after its last renewal, less
        the safety margin (0.5 s here), before etcd expires its key and another
        candidate is elected.
        """
        self.candidate("a", ttl=6, member=0)
        self.candidate("b", ttl=6, member=1)
        self.advance(2)  # a's renewal sent at t=2 succeeds
        self.member(0).stop_answering()
        self.advance(5.0)
        self.assertEqual(self.kinds(), [("a", "elected")])
        self.advance(1.0)
        at = {(who, what): (t, why) for t, who, what, why in self.log}
        self.assertEqual(sorted(at), [("a", "deposed"), ("a", "elected"), ("b", "elected")])
        deposed_at, why = at["a", "deposed"]
        self.assertEqual((deposed_at, why), (7.5, "expired"))
        self.assertLess(deposed_at, at["b", "elected"][0])
        self.member(0).restore()
        self.advance(3)
        self.assertEqual(self.value(KEY), "b")

    def test_key_deleted(self) -> None:
        """When the key is deleted, the leader is deposed at once and one candidate leads again."""
        a = self.candidate("a")
        b = self.candidate("b")
        self.delete(KEY)
        self.settle()
        self.assertEqual(self.kinds()[:2], [("a", "elected"), ("a", "deposed")])
        self.assertEqual(self.log[1][3], "missing")
        self.advance(10)
        self.assertAlternating()
        [leader] = [e for e in (a, b) if e.is_leader]
        self.assertEqual(self.value(KEY), leader.identity)

    def test_key_replaced(self) -> None:
        """When someone else sets the key, the leader is deposed at once (its watch sees it)."""
        a = self.candidate("a")
        self.set(KEY, "intruder")
        self.settle()
        self.assertEqual(self.kinds(), [("a", "elected"), ("a", "deposed")])
        self.assertEqual(self.log[1][3], "missing")
        self.assertFalse(a.is_leader)
        self.assertEqual(self.result(a.leader()), "intruder")

    def test_callbacks_without_arguments(self) -> None:
        """A callback taking no argument is called without one; one that raises is logged."""
        calls: list[str] = []
        election = LeaderElection(self.client(), "boss", "a")
        election.on("elected", lambda: calls.append("elected"))
        election.on("elected", lambda token: calls.append(f"token {token}"))
        election.on("elected", lambda token: 1 / 0)
        election.startService()
        self.stops.append(election.stopService)
        self.settle()
        node = self.node(KEY)
        assert node is not None
        self.assertEqual(calls, ["elected", f"token {node.created_index}"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_leader_none(self) -> None:
        """``leader()`` fires with None when nobody leads."""
        election = LeaderElection(self.client(), "boss", "a")
        self.assertIsNone(self.result(election.leader()))

    def test_create_outcome_unknown(self) -> None:
        """A create applied without an answer is recognised as ours by its value."""
        self.member().lose_answers()
        a = self.candidate("a")
        self.advance(2.5)
        self.assertEqual(self.kinds(), [("a", "elected")])
        self.assertTrue(a.is_leader)

    def test_stop_during_unanswered_create(self) -> None:
        """Stopped while its create is unanswered, a candidate deletes the key it made."""
        self.member().lose_answers()
        a = self.candidate("a")
        self.assertEqual(self.value(KEY), "a")
        self.stops.remove(a.stopService)
        self.result(a.stopService())
        self.assertIsNone(self.node(KEY))
        self.assertEqual(self.kinds(), [])

    def test_stop_when_not_started(self) -> None:
        """Stopping a candidate that never started sends nothing."""
        election = LeaderElection(self.client(), "boss", "a")
        self.result(election.stopService())
        self.assertEqual(self.etcd.requests, [])

    def test_bad_arguments(self) -> None:
        """Bad arguments raise TypeError or ValueError before any request."""
        client = self.client()
        with self.assertRaises(TypeError):
            LeaderElection(client, "boss", 7)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            LeaderElection(client, "boss", "")
        with self.assertRaises(ValueError):
            LeaderElection(client, "", "a")
        with self.assertRaises(ValueError):
            LeaderElection(client, "boss", "a").on("won", print)
        self.assertEqual(self.etcd.requests, [])

    def test_gives_up_when_the_client_closes(self) -> None:
        """An error retrying cannot fix (here, the leader's client closed) ends the
        campaign: the leader is deposed once its TTL can no longer be renewed, then one
        error line, the error kept in ``failure``, and no request or timer after it;
        stopping still works."""
        leader = self.candidate("a", ttl=3)
        events: list[dict[str, Any]] = []
        leader.log = Logger(
            namespace=LeaderElection.log.namespace,
            source=leader,
            observer=cast(ILogObserver, events.append),
        )
        self.assertTrue(leader.is_leader)
        self.result(self.clients[-1].close())
        self.advance(5)
        self.assertEqual(self.kinds(), [("a", "elected"), ("a", "deposed")])
        self.assertFalse(leader.is_leader)
        sent = len(self.etcd.requests)
        self.advance(30)
        assert leader.failure is not None
        self.assertIsInstance(leader.failure.value, ClientClosed)
        self.assertTrue(repr(leader).endswith(" 'a' failed>"), repr(leader))
        self.assertEqual(len(self.etcd.requests), sent)
        errors = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(errors), 1)
        self.assertIn("giving up (retrying cannot fix this)", formatEvent(errors[0]))
