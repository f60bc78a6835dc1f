"""
Unit tests for the public in-memory etcd, :class:`txetcd2.testing.MemoryEtcd`: its clock, its
members' failure modes, the admin documents and its clean shutdown. What it answers on the
key space and watches is checked against real etcd by ``tests/conformance``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import txetcd2.testing
from txetcd2 import (
    EtcdConnectionError,
    EtcdOutcomeUnknown,
    EtcdResponse,
    EtcdTimeout,
    EtcdV2Disabled,
    EventIndexCleared,
    KeyNotFound,
    Watcher,
)
from txetcd2.testing import FaultProxy, MemoryEtcd, memory_etcd

NO_JITTER = backoffPolicy(jitter=lambda: 0.0)


class ShapeTests(SynchronousTestCase):
    """
    Construction, exports and argument checks.
    """

    def test_exports(self) -> None:
        """txetcd2.testing exports MemoryEtcd, FaultProxy and memory_etcd."""
        for name in ("MemoryEtcd", "MemoryMember", "FaultProxy", "memory_etcd"):
            self.assertIn(name, txetcd2.testing.__all__)
        self.assertIs(txetcd2.testing.FaultProxy, FaultProxy)

    def test_default_clock(self) -> None:
        """Without a clock, MemoryEtcd makes a fresh Clock and its clients run on it."""
        etcd = MemoryEtcd()
        self.assertIsInstance(etcd.clock, Clock)
        clock = Clock()
        self.assertIs(MemoryEtcd(clock).clock, clock)

    def test_bad_arguments(self) -> None:
        """Bad members, history, agent or failure status are refused before anything runs."""
        self.assertRaises(TypeError, MemoryEtcd, members="3")
        self.assertRaises(ValueError, MemoryEtcd, members=0)
        self.assertRaises(ValueError, MemoryEtcd, history=0)
        etcd = MemoryEtcd()
        self.assertRaises(TypeError, etcd.client, agent=object())
        self.assertRaises(ValueError, etcd.members[0].fail, 404)

    def test_repr(self) -> None:
        """The reprs say how many members, the index and each member's state."""
        etcd = MemoryEtcd(members=2)
        self.assertEqual(repr(etcd), "<MemoryEtcd 2 member(s), index 0>")
        etcd.members[1].silence()
        self.assertIn("silent", repr(etcd.members[1]))


class KeySpaceTests(SynchronousTestCase):
    """
    Calls answered at once, time on the clock.
    """

    def setUp(self) -> None:
        self.etcd, self.client = memory_etcd(self)
        self.clock = self.etcd.clock

    def test_round_trip_is_synchronous(self) -> None:
        """A set and a get answer without any time passing."""
        written = self.successResultOf(self.client.set("/a", "1"))
        self.assertEqual((written.action, written.index), ("set", 1))
        self.assertEqual(self.successResultOf(self.client.get_value("/a")), "1")
        self.assertEqual(self.etcd.index, 1)

    def test_ttl_expires_on_the_clock(self) -> None:
        """A TTL counts down on the clock; at zero the key is gone and a watch sees expire."""
        created = self.successResultOf(self.client.set("/t", "v", ttl=10))
        watch = self.client.watch("/t", index=created.index + 1)
        self.clock.advance(9.5)
        self.assertEqual(self.successResultOf(self.client.get("/t")).node.ttl, 1)
        self.assertNoResult(watch)
        self.clock.advance(0.5)
        event = self.successResultOf(watch)
        self.assertEqual((event.action, event.index), ("expire", created.index + 1))
        self.failureResultOf(self.client.get("/t"), KeyNotFound)

    def test_refresh_consumes_an_index_without_event(self) -> None:
        """refresh() moves the index and the expiry but wakes no watcher."""
        created = self.successResultOf(self.client.set("/r", "v", ttl=5))
        watch = self.client.watch("/r", index=created.index + 1)
        refreshed = self.successResultOf(self.client.refresh("/r", 20))
        self.assertEqual(refreshed.etcd_index, created.index + 1)
        self.clock.advance(10)
        self.assertNoResult(watch)
        changed = self.successResultOf(self.client.set("/r", "w"))
        self.assertEqual(self.successResultOf(watch).index, changed.index)

    def test_small_history(self) -> None:
        """history= shrinks the window: an older waitIndex raises EventIndexCleared."""
        etcd = MemoryEtcd(history=3)
        client = etcd.client()
        for i in range(5):
            self.successResultOf(client.set("/h", str(i)))
        self.failureResultOf(client.watch("/h", index=2), EventIndexCleared)
        self.assertEqual(self.successResultOf(client.watch("/h", index=3)).index, 3)
        closed = client.close()
        etcd.close()
        self.successResultOf(closed)

    def test_v2_disabled(self) -> None:
        """enable_v2=False answers /v2 with a plain 404: the client says v2 is disabled."""
        _, client = memory_etcd(self, enable_v2=False)
        self.failureResultOf(client.get("/a"), EtcdV2Disabled)


class AdminTests(SynchronousTestCase):
    """
    The admin calls of the client against three in-memory members.
    """

    def setUp(self) -> None:
        self.etcd, self.client = memory_etcd(self, members=3)

    def test_members_and_leader(self) -> None:
        """members(), leader() and machines() list the three members, the first leading."""
        members = self.successResultOf(self.client.members())
        self.assertEqual([m.client_urls[0] for m in members], self.etcd.urls)
        leader = self.successResultOf(self.client.leader())
        self.assertEqual(leader.id, self.etcd.members[0].id)
        self.assertEqual(self.successResultOf(self.client.machines()), self.etcd.urls)

    def test_documents(self) -> None:
        """version(), health() and the stats answer like etcd."""
        self.assertEqual(
            self.successResultOf(self.client.version()),
            {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"},
        )
        self.assertTrue(self.successResultOf(self.client.health()))
        self.assertEqual(self.successResultOf(self.client.self_stats())["state"], "StateLeader")
        self.successResultOf(self.client.set("/x", "1"))
        self.assertEqual(self.successResultOf(self.client.store_stats())["setsSuccess"], 1)
        followers = self.successResultOf(self.client.leader_stats())["followers"]
        self.assertEqual(sorted(followers), sorted(m.id for m in self.etcd.members[1:]))

    def test_cluster_status(self) -> None:
        """cluster_status() finds every member reachable and the leader."""
        status = self.successResultOf(self.client.cluster_status())
        self.assertEqual(status.reachable, 3)
        self.assertTrue(status.healthy)

    def test_add_and_remove_member(self) -> None:
        """add_member() then remove_member() change /v2/members; a known peer URL is refused."""
        added = self.successResultOf(self.client.add_member(["http://10.0.0.9:2380"]))
        self.assertEqual(len(self.successResultOf(self.client.members())), 4)
        self.failureResultOf(self.client.add_member(["http://10.0.0.9:2380"]))
        self.successResultOf(self.client.remove_member(added.id))
        self.assertEqual(len(self.successResultOf(self.client.members())), 3)


class FailoverTests(SynchronousTestCase):
    """
    Members that refuse, fail, never answer or go silent.
    """

    def setUp(self) -> None:
        self.etcd, self.client = memory_etcd(self, members=3, timeout=2.0, retry_policy=NO_JITTER)
        self.first, self.second, _ = self.etcd.members

    def served_by(self) -> str:
        """
        The member that answered the last request.
        """
        return self.etcd.requests[-1].member

    def test_refusing_member(self) -> None:
        """A refusing member is skipped at once; the next one answers."""
        self.first.refuse()
        self.assertEqual(self.successResultOf(self.client.set("/k", "1")).value, "1")
        self.assertEqual(self.served_by(), self.second.url)

    def test_all_refusing(self) -> None:
        """With every member refusing, the call fails with EtcdConnectionError after back-offs."""
        for member in self.etcd.members:
            member.refuse()
        failed = self.client.get("/k")
        for _ in range(30):
            self.etcd.clock.advance(1.0)
        self.failureResultOf(failed, EtcdConnectionError)

    def test_unanswering_member(self) -> None:
        """A member that never answers is left after its share of the call's deadline (a
        third of the client's 2 s, with three members)."""
        self.first.stop_answering()
        read = self.client.get("/k")
        self.assertNoResult(read)
        self.assertEqual(self.first.pending, 1)
        self.etcd.clock.advance(2.0 / 3)
        self.failureResultOf(read, KeyNotFound)
        self.assertEqual(self.served_by(), self.second.url)
        self.assertEqual(self.first.pending, 0)

    def test_failing_member(self) -> None:
        """A member answering 5xx with errorCode 300 is left for another one on a read."""
        self.successResultOf(self.client.set("/k", "1"))
        self.first.fail(503)
        read = self.client.get_value("/k")
        for _ in range(10):
            self.etcd.clock.advance(0.5)
        self.assertEqual(self.successResultOf(read), "1")
        self.assertEqual(self.etcd.requests[-2].member, self.first.url)
        self.assertEqual(self.served_by(), self.second.url)

    def test_member_without_quorum(self) -> None:
        """Without quorum a member serves plain reads, times writes out after 7 s, is unhealthy."""
        self.successResultOf(self.client.set("/q", "1"))
        self.first.lose_quorum()
        alone = self.etcd.client(endpoints=[self.first.url], timeout=10.0, max_retries=0)
        self.addCleanup(alone.close)
        self.assertEqual(self.successResultOf(alone.get_value("/q")), "1")
        self.assertFalse(self.successResultOf(alone.health()))
        write = alone.set("/q", "2")
        self.etcd.clock.advance(6.9)
        self.assertNoResult(write)
        self.etcd.clock.advance(0.1)
        failure = self.failureResultOf(write)
        self.assertIn("300", str(failure.value))
        self.assertEqual(self.successResultOf(self.client.get_value("/q")), "1")

    def test_silent_member_under_a_watcher(self) -> None:
        """A watcher streaming from a member that goes silent moves on at its idle timeout."""
        first = self.successResultOf(self.client.set("/w", "0"))
        w: Watcher = self.client.watcher("/w", index=first.index + 1, idle_timeout=5.0)
        seen: list[EtcdResponse] = []
        w.on("change", seen.append)
        w.start()
        one = self.successResultOf(self.client.set("/w", "1"))
        self.assertEqual([e.index for e in seen], [one.index])
        self.assertEqual(w.endpoint, self.first.url)
        self.first.silence()
        writer = self.etcd.client(endpoints=[self.second.url])
        two = self.successResultOf(writer.set("/w", "2"))
        self.assertEqual(len(seen), 1)
        self.etcd.clock.advance(5.0)
        self.etcd.clock.advance(1.0)
        self.assertEqual([e.index for e in seen], [one.index, two.index])
        self.assertEqual(w.endpoint, self.second.url)
        stopped = w.stop()
        self.etcd.clock.advance(0)
        self.successResultOf(stopped)
        closed = writer.close()
        self.etcd.clock.advance(0)
        self.successResultOf(closed)


class FaultTests(SynchronousTestCase):
    """
    Transient failures, lost answers, lost history, a large start index and the request log.
    """

    def setUp(self) -> None:
        self.etcd, self.client = memory_etcd(self, timeout=2.0, max_retries=0)
        self.member = self.etcd.members[0]

    def test_fail_times(self) -> None:
        """fail(times=1) fails one request, then the member answers normally again."""
        self.member.fail(503, times=1)
        failure = self.failureResultOf(self.client.get("/k"))
        self.assertIn("300", str(failure.value))
        self.assertEqual(self.member.state, "answering")
        self.failureResultOf(self.client.get("/k"), KeyNotFound)

    def test_fail_match(self) -> None:
        """fail(match=...) fails only the matching requests; restore() ends it."""
        self.member.fail(500, match=lambda request: request.method == "GET")
        self.assertEqual(self.successResultOf(self.client.set("/k", "1")).value, "1")
        self.assertIn("300", str(self.failureResultOf(self.client.get("/k")).value))
        self.assertIn("300", str(self.failureResultOf(self.client.get("/k")).value))
        self.member.restore()
        self.assertEqual(self.successResultOf(self.client.get_value("/k")), "1")
        self.assertRaises(ValueError, self.member.fail, 500, times=0)

    def test_lost_answer_applied(self) -> None:
        """lose_answers() applies the next write and never answers it: the outcome is unknown."""
        self.member.lose_answers()
        write = self.client.append("/q", "1")
        self.assertNoResult(write)
        self.assertEqual(self.member.pending, 1)
        self.etcd.clock.advance(2.0)
        self.failureResultOf(write, EtcdOutcomeUnknown)
        self.assertEqual(self.member.pending, 0)
        queue = self.successResultOf(self.client.get("/q")).node
        self.assertEqual([n.value for n in queue.nodes], ["1"])
        self.assertEqual(self.successResultOf(self.client.append("/q", "2")).value, "2")

    def test_lost_answer_dropped(self) -> None:
        """lose_answers(apply=False) neither applies nor answers the next writes; reads answer."""
        self.member.lose_answers(2, apply=False)
        self.failureResultOf(self.client.get("/q"), KeyNotFound)
        writes = [self.client.append("/q", "1"), self.client.set("/k", "1")]
        self.etcd.clock.advance(2.0)
        self.failureResultOf(writes[0], EtcdOutcomeUnknown)
        self.failureResultOf(writes[1], EtcdTimeout)
        self.failureResultOf(self.client.get("/q"), KeyNotFound)
        self.assertEqual(self.etcd.index, 0)
        self.assertEqual(self.successResultOf(self.client.append("/q", "2")).value, "2")
        self.assertRaises(ValueError, self.member.lose_answers, 0)

    def test_lost_history(self) -> None:
        """lose_history() answers the next watch with a waitIndex with EventIndexCleared."""
        first = self.successResultOf(self.client.set("/k", "1"))
        self.member.lose_history()
        failure = self.failureResultOf(
            self.client.watch("/k", index=first.index), EventIndexCleared
        )
        self.assertIn("cleared", str(failure.value))
        self.assertEqual(self.successResultOf(self.client.watch("/k", index=first.index)).index, 1)
        self.assertRaises(ValueError, self.member.lose_history, 0)

    def test_start_index(self) -> None:
        """index= starts the store there, as in a long-lived cluster; bad ones are refused."""
        etcd = MemoryEtcd(index=10**19)
        client = etcd.client()
        self.assertEqual(self.successResultOf(client.set("/k", "1")).index, 10**19 + 1)
        self.assertEqual(self.successResultOf(client.get("/k")).etcd_index, 10**19 + 1)
        closed = client.close()
        etcd.close()
        self.successResultOf(closed)
        self.assertRaises(ValueError, MemoryEtcd, index=-1)
        self.assertRaises(ValueError, MemoryEtcd, index=2**64)

    def test_request_log_form(self) -> None:
        """The request log holds a write's form fields; reads have none."""
        self.successResultOf(self.client.set("/k", "v", ttl=30))
        self.successResultOf(self.client.refresh("/k", 60))
        self.successResultOf(self.client.get("/k"))
        forms = [r.form for r in self.etcd.requests]
        self.assertEqual(forms[0], {"value": "v", "ttl": "30"})
        self.assertEqual(forms[1], {"ttl": "60", "refresh": "true"})
        self.assertEqual(forms[2], {})


class CleanupTests(SynchronousTestCase):
    """
    Nothing is left behind.
    """

    def test_close_leaves_no_timer_and_no_connection(self) -> None:
        """After the client and MemoryEtcd close, no delayed call and no connection remain."""
        etcd = MemoryEtcd()
        client = etcd.client()
        self.successResultOf(client.set("/t", "v", ttl=30))
        pending = client.watch("/t", index=99)
        self.assertNotEqual(etcd.clock.getDelayedCalls(), [])
        pending.cancel()
        closed = client.close()
        etcd.close()
        etcd.clock.advance(0)
        self.successResultOf(closed)
        self.failureResultOf(pending)
        self.assertEqual(etcd.clock.getDelayedCalls(), [])
        self.assertEqual(etcd.open_connections(), [])
        self.assertEqual(etcd.watch_count, 0)

    def test_memory_etcd_registers_its_cleanup(self) -> None:
        """memory_etcd registers one cleanup that closes the client and drops every connection."""
        calls: list[Any] = []

        class Case:
            def addCleanup(self, f: Any, *args: Any, **kwargs: Any) -> None:
                calls.append(f)

        etcd, client = memory_etcd(Case())
        self.successResultOf(client.set("/a", "1"))
        self.assertEqual(len(calls), 1)
        calls[0]()
        self.assertEqual(etcd.open_connections(), [])
        self.assertEqual(etcd.clock.getDelayedCalls(), [])
