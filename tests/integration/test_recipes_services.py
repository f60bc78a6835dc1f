"""
Leader election, service registration and the mirror against a real
three-member etcd, with processes killed and members paused or killed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults, succeed
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.integration._processes import Child, spawn, wait_ended, wait_until
from txetcd2 import ClientClosed, EtcdClient, KeyNotFound
from txetcd2.recipes import ELECTION_PREFIX, LeaderElection, Lock, Mirror, ServiceRegistration
from txetcd2.testing import EtcdCluster, EtcdMember, start_etcd

#: The candidates' TTL in the election test.
TTL = 3


def events(child: Child) -> list[dict[str, Any]]:
    """
    The JSON lines a child printed.
    """
    return [json.loads(line) for line in child.lines() if line.startswith("{")]


async def poll(check: Any, what: str, deadline: float) -> float:
    """
    Call the async ``check`` until it returns true; return the seconds it took.

    :raises AssertionError: after ``deadline`` seconds.
    """
    start = reactor.seconds()
    while not await check():
        if reactor.seconds() - start > deadline:
            raise AssertionError(f"no {what} within {deadline}s")
        await deferLater(reactor, 0.05)
    elapsed: float = reactor.seconds() - start
    return elapsed


class RecipeServiceTests(TestCase):
    """
    The recipes keep their promises while members and processes fail.
    """

    timeout = 300

    async def cluster(self) -> EtcdCluster:
        cluster: EtcdCluster = await start_etcd(self, 3, reactor=reactor)
        return cluster

    def client(self, urls: list[str], **options: Any) -> EtcdClient:
        client = EtcdClient(urls, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    async def follower(self, cluster: EtcdCluster) -> EtcdMember:
        leader = await cluster.wait_for_leader(timeout=60.0)
        return next(m for m in cluster.members if m is not leader)

    async def test_election_survives_leader_process_kill(self) -> None:
        """
        Three candidate processes: killing the leader's process gets another
        elected within ttl + 2 s; stopping hands over; never two leaders.
        """
        cluster = await self.cluster()
        urls = ",".join(cluster.client_urls)
        candidates = {
            name: spawn(
                self,
                [
                    sys.executable,
                    "-m",
                    "tests.integration._recipes_child",
                    "elect",
                    urls,
                    "boss",
                    name,
                    str(TTL),
                ],
            )
            for name in ("c1", "c2", "c3")
        }

        def elected() -> list[dict[str, Any]]:
            found = [e for c in candidates.values() for e in events(c)]
            return sorted((e for e in found if e["event"] == "elected"), key=lambda e: e["time"])

        first = next(iter(candidates.values()))
        await wait_until(lambda: len(elected()) >= 1, first, "a first leader")
        leader = elected()[0]["identity"]
        candidates[leader].signal("KILL")
        await wait_ended(candidates[leader], "kill -9")
        killed_at = reactor.seconds()
        killed_wall = time.time()
        survivor = next(c for name, c in candidates.items() if name != leader)
        await wait_until(lambda: len(elected()) >= 2, survivor, "a second leader", TTL + 10)
        second = elected()[1]
        took = second["time"] - killed_wall
        self.assertLessEqual(took, TTL + 2, f"re-elected after {took:.2f}s")
        self.assertNotEqual(second["identity"], leader)
        for name, child in candidates.items():
            if name != leader:
                child.signal("TERM")
        for name, child in candidates.items():
            if name != leader:
                await wait_ended(child, "SIGTERM")
                self.assertEqual(child.exit_code, 0, child.describe())
        log = sorted((e for c in candidates.values() for e in events(c)), key=lambda e: e["time"])
        leaders: set[str] = set()
        for event in log:
            if event["time"] >= killed_wall:
                leaders.discard(leader)  # its process is gone
            if event["event"] == "elected":
                self.assertEqual(leaders, set(), f"two leaders at once: {log}")
                leaders.add(event["identity"])
            elif event["event"] == "deposed":
                self.assertIn(event["identity"], leaders, f"deposed without elected: {log}")
                leaders.discard(event["identity"])
        self.assertEqual(leaders, set(), "a stopped candidate still leads")
        third = [e for e in log if e["event"] == "elected"]
        self.assertGreaterEqual(len(third), 2)
        client = self.client(cluster.client_urls)
        with self.assertRaises(KeyNotFound):
            await client.get(f"{ELECTION_PREFIX}/boss", quorum=True)
        total = reactor.seconds() - killed_at
        print(f"\nre-elected {took:.2f}s after kill -9 (ttl {TTL}s); test part {total:.1f}s")

    async def test_leader_deposed_when_cut_off(self) -> None:
        """
        A leader whose only member is paused is deposed within ``ttl`` of the
        pause, before the candidate on the other members is elected.
        """
        cluster = await self.cluster()
        member = await self.follower(cluster)
        others = [u for u in cluster.client_urls if u != member.client_url]
        log: list[tuple[float, str, str]] = []
        ttl = 4

        def candidate(identity: str, client: EtcdClient) -> LeaderElection:
            election = LeaderElection(client, "cut", identity, ttl=ttl)
            election.on("elected", lambda _: log.append((reactor.seconds(), identity, "elected")))
            election.on("deposed", lambda _: log.append((reactor.seconds(), identity, "deposed")))
            election.startService()
            self.addCleanup(election.stopService)
            return election

        first = candidate("first", self.client([member.client_url], timeout=1.0, max_retries=0))
        await poll(lambda: succeed(first.is_leader), "a first leader", 10)
        candidate("second", self.client(others, timeout=3.0))
        await deferLater(reactor, 1.0)
        await member.pause()
        self.addCleanup(lambda: member.resume() if member.paused else None)
        paused_at = reactor.seconds()
        await poll(lambda: succeed(len(log) >= 3), "a second leader", 2 * ttl)
        await member.resume()
        self.assertEqual(
            [(who, what) for _, who, what in log[:3]],
            [("first", "elected"), ("first", "deposed"), ("second", "elected")],
        )
        deposed_after = log[1][0] - paused_at
        self.assertLessEqual(deposed_after, ttl + 0.1)
        print(
            f"\ndeposed {deposed_after:.2f}s after the pause, other elected "
            f"{log[2][0] - log[1][0]:.2f}s later (ttl {ttl}s)"
        )

    async def test_registration_comes_back_after_black_hole(self) -> None:
        """
        The registrant's only member is paused longer than the TTL: the key
        expires, then comes back on its own after resume; stop deletes it.
        """
        cluster = await self.cluster()
        member = await self.follower(cluster)
        others = [u for u in cluster.client_urls if u != member.client_url]
        reader = self.client(others)
        registrant = self.client([member.client_url], timeout=1.0, max_retries=0)
        registration = ServiceRegistration(registrant, "/services/web/a", "10.0.0.7:8080", ttl=3)
        registration.startService()
        stopped: list[Deferred[None]] = []
        self.addCleanup(lambda: None if stopped else registration.stopService())

        async def present() -> bool:
            try:
                await reader.get("/services/web/a", quorum=True)
                return True
            except KeyNotFound:
                return False

        async def absent() -> bool:
            return not await present()

        async def answered() -> bool:
            # The registrant's own answer, not only the key: a quorum read on another member
            # can see the key before the registrant's member has written its answer, and a
            # pause in between makes that registration a timeout the registrant cannot count.
            return registration.registered

        await poll(present, "registration", 10)
        await poll(answered, "the registrant's answer", 10)
        self.assertEqual(registration.registrations, 1)
        await member.pause()
        self.addCleanup(lambda: member.resume() if member.paused else None)
        paused_at = reactor.seconds()
        gone_after = await poll(absent, "expiry while black-holed", 10)
        await deferLater(reactor, max(0.0, 6.0 - (reactor.seconds() - paused_at)))
        self.assertFalse(await present())
        await member.resume()
        back_after = await poll(present, "the key again after resume", 15)
        await poll(answered, "the registrant's answer after resume", 15)
        self.assertEqual(registration.registrations, 2)
        self.assertTrue(registration.registered)
        stopped.append(registration.stopService())
        await stopped[0]
        self.assertTrue(await absent())
        print(f"\nexpired {gone_after:.1f}s after pause, back {back_after:.1f}s after resume")

    async def test_mirror_equal_after_cut_stream(self) -> None:
        """
        2,000 writes, 1,300 of them while the mirror's only member is down:
        the mirror ends equal to a quorum read (via a resync).
        """
        cluster = await self.cluster()
        member = await self.follower(cluster)
        others = [u for u in cluster.client_urls if u != member.client_url]
        writer = self.client(others, timeout=5.0)
        mirror_client = self.client([member.client_url], timeout=2.0)
        mirror = Mirror(mirror_client, "/mirror", idle_timeout=5.0)
        changes: list[tuple[str, str | None, str | None]] = []
        mirror.on("change", lambda key, old, new: changes.append((key, old, new)))
        mirror.start()
        self.addCleanup(mirror.stop)
        await mirror.ready
        limit = DeferredSemaphore(8)

        async def write(i: int) -> None:
            key = f"/mirror/k{i % 300:03d}"
            if i % 7 == 3:
                await writer.delete(key, missing_ok=True)
            else:
                await writer.set(key, f"v{i}")

        async def writes(numbers: range) -> None:
            def one(i: int) -> Deferred[None]:
                return Deferred.fromCoroutine(write(i))

            await gatherResults([limit.run(one, i) for i in numbers])

        async def expected() -> dict[str, str]:
            try:
                response = await writer.get("/mirror", recursive=True, quorum=True)
            except KeyNotFound:
                return {}
            return response.node.leaves()

        await writes(range(0, 400))

        async def caught_up() -> bool:
            return dict(mirror) == await expected()

        await poll(caught_up, "the mirror following the first 400 writes", 30)
        await member.kill()
        await writes(range(400, 1700))
        await member.start(timeout=60.0)
        await writes(range(1700, 2000))
        took = await poll(caught_up, "the mirror equal to a quorum read", 60)
        self.assertGreaterEqual(mirror.resyncs, 1)
        self.assertEqual(len(mirror), len(await expected()))
        await mirror.stop()
        print(f"\nmirror equal {took:.1f}s after the last write; {mirror.resyncs} resync(s)")

    async def test_recipes_give_up_when_their_client_closes(self) -> None:
        """A registration and a leader whose client is closed give up (``failure``:
        ``ClientClosed``) instead of retrying every second, and stop cleanly; their
        keys expire by themselves. A lock held on that client is lost at its next
        renewal (``"expired"``), not ``ttl`` later."""
        cluster: EtcdCluster = await start_etcd(self, 1, reactor=reactor)
        client = self.client(cluster.client_urls)
        observer = self.client(cluster.client_urls)
        registration = ServiceRegistration(client, "/services/closing/a", "up", ttl=2)
        election = LeaderElection(client, "closing", "a", ttl=2)
        lock = Lock(client, "closing", ttl=9)
        registration.startService()
        election.startService()
        await lock.acquire(timeout=30.0)

        async def started() -> bool:
            return registration.registered and election.is_leader

        await poll(started, "registration and leadership", 30.0)
        await client.close()
        # (ttl - 0.5 s without a renewal otherwise; a renewal every 3 s)
        self.assertEqual(await lock.lost.addTimeout(6.0, reactor), "expired")

        async def gave_up() -> bool:
            return registration.failure is not None and election.failure is not None

        await poll(gave_up, "both giving up", 30.0)
        assert registration.failure is not None and election.failure is not None
        self.assertIsInstance(registration.failure.value, ClientClosed)
        self.assertIsInstance(election.failure.value, ClientClosed)
        await registration.stopService()
        await election.stopService()

        async def expired() -> bool:
            for key in ("/services/closing/a", f"{ELECTION_PREFIX}/closing"):
                try:
                    await observer.get(key, quorum=True)
                    return False
                except KeyNotFound:
                    pass
            return True

        await poll(expired, "both keys to expire", 30.0)
