"""
The lock recipe against a real three-member etcd: mutual exclusion between
processes while the raft leader is killed and restarted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.integration._processes import Child, spawn, wait_ended
from txetcd2 import EtcdClient, KeyNotFound
from txetcd2.recipes import LOCK_PREFIX, Lock, LockNotAcquired
from txetcd2.testing import EtcdCluster, start_etcd

#: Processes taking the lock, and how many times each.
PROCESSES, TIMES = 5, 40

#: Leader kills during the run.
KILLS = 3


def events(child: Child) -> list[dict[str, Any]]:
    """
    The JSON lines a child printed.
    """
    return [json.loads(line) for line in child.lines() if line.startswith("{")]


class LockTests(TestCase):
    """
    Processes sharing one lock never overlap, even across leader failures.
    """

    timeout = 300

    async def cluster(self) -> EtcdCluster:
        cluster: EtcdCluster = await start_etcd(self, 3, reactor=reactor)
        return cluster

    def client(self, cluster: EtcdCluster) -> EtcdClient:
        client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=3.0, max_retries=8)
        self.addCleanup(client.close)
        return client

    def client_for(self, urls: list[str]) -> EtcdClient:
        client = EtcdClient(urls, reactor=reactor, timeout=3.0)
        self.addCleanup(client.close)
        return client

    async def counter(self, client: EtcdClient) -> int:
        try:
            return int((await client.get("/recipes/counter", quorum=True)).node.value or "0")
        except KeyNotFound:
            return 0

    async def test_mutual_exclusion_across_leader_kills(self) -> None:
        """
        5 processes x 40 acquisitions, each a read-wait-write of a counter
        without compare, while the leader is killed -9 and restarted 3 times:
        the counter ends at 200, tokens grow with the counter, no key is left.
        """
        cluster = await self.cluster()
        client = self.client(cluster)
        urls = ",".join(cluster.client_urls)
        started = reactor.seconds()
        children = [
            spawn(
                self,
                [
                    sys.executable,
                    "-m",
                    "tests.integration._recipes_child",
                    "lock",
                    urls,
                    "mutex",
                    str(TIMES),
                    "15",
                ],
            )
            for _ in range(PROCESSES)
        ]
        total = PROCESSES * TIMES
        kills = 0
        killed_at: list[int] = []
        while kills < KILLS:
            progress = await self.counter(client)
            if progress >= (kills + 1) * total // (KILLS + 2):
                leader = await cluster.wait_for_leader(timeout=60.0)
                killed_at.append(progress)
                await leader.kill()
                await deferLater(reactor, 1.0)
                await leader.start(timeout=60.0)
                kills += 1
            elif all(not c.running for c in children):
                break
            else:
                await deferLater(reactor, 0.1)
        for child in children:
            await wait_ended(child, "all its acquisitions", deadline=240)
            self.assertEqual(child.exit_code, 0, child.describe())
        elapsed = reactor.seconds() - started
        self.assertEqual(kills, KILLS)
        self.assertTrue(all(n < total for n in killed_at), killed_at)
        held = [e for c in children for e in events(c) if e["event"] == "held"]
        self.assertEqual(len(held), total)
        self.assertEqual([e for c in children for e in events(c) if e["event"] == "violation"], [])
        self.assertEqual([e for e in held if e["lost"]], [])
        self.assertEqual(await self.counter(client), total)
        by_counter = sorted(held, key=lambda e: e["seen"])
        self.assertEqual([e["seen"] for e in by_counter], list(range(total)))
        tokens = [e["token"] for e in by_counter]
        self.assertEqual(tokens, sorted(set(tokens)), "tokens are not strictly increasing")
        with self.assertRaises(KeyNotFound):  # no key, not even the empty queue directory
            await client.get(f"{LOCK_PREFIX}/mutex", quorum=True)
        retries = [e for c in children for e in events(c) if e["event"].endswith("retry")]
        warnings = [e for c in children for e in events(c) if e["event"] == "log"]
        print(
            f"\n{total} acquisitions, leader killed at counter {killed_at}, {elapsed:.1f}s, "
            f"{len(retries)} counter retries, {len(warnings)} client/recipe warnings"
        )
        for warning in warnings[:10]:
            print(" ", warning["text"][:160])

    async def test_non_blocking_and_timeout_leave_no_key(self) -> None:
        """Failed non-blocking and timed-out acquires leave only the holder's key in etcd."""
        cluster = await self.cluster()
        holder = Lock(self.client(cluster), "solo", ttl=5)
        other = Lock(self.client(cluster), "solo", ttl=5)
        token = await holder.acquire()
        with self.assertRaises(LockNotAcquired):
            await other.acquire(blocking=False)
        with self.assertRaises(LockNotAcquired):
            await other.acquire(timeout=1.5)
        queue = await self.client(cluster).get(f"{LOCK_PREFIX}/solo", quorum=True)
        self.assertEqual([n.created_index for n in queue.node.nodes], [token])
        await deferLater(reactor, 6.0)  # past the TTL: renewals keep it
        self.assertTrue(holder.held)
        waiting = other.acquire(timeout=10)
        await holder.release()
        self.assertGreater(await waiting, token)
        await other.release()
        with self.assertRaises(KeyNotFound):
            await self.client(cluster).get(f"{LOCK_PREFIX}/solo", quorum=True)

    async def test_lost_when_key_deleted(self) -> None:
        """Against real etcd, deleting the holder's key fires ``lost`` within ttl/3."""
        cluster = await self.cluster()
        client = self.client(cluster)
        lock = Lock(client, "victim", ttl=3)
        await lock.acquire()
        await client.delete(f"{LOCK_PREFIX}/victim", recursive=True)
        started = reactor.seconds()
        why = await lock.lost.addTimeout(5, reactor)
        self.assertEqual(why, "missing")
        self.assertLess(reactor.seconds() - started, 2.0)
        self.assertFalse(lock.held)

    async def test_lost_before_the_next_holder(self) -> None:
        """
        A holder whose only member is paused learns ``lost`` within ``ttl``
        of the pause, before a waiter on the other members gets the lock.
        """
        cluster = await self.cluster()
        leader = await cluster.wait_for_leader(timeout=60.0)
        member = next(m for m in cluster.members if m is not leader)
        others = [u for u in cluster.client_urls if u != member.client_url]
        cut_off = EtcdClient([member.client_url], reactor=reactor, timeout=1.0, max_retries=0)
        self.addCleanup(cut_off.close)
        ttl = 4
        holder = Lock(cut_off, "pause", ttl=ttl)
        waiter = Lock(self.client_for(others), "pause", ttl=ttl)
        token = await holder.acquire()
        lost_at: list[float] = []
        holder.lost.addCallback(lambda why: lost_at.append(reactor.seconds()))
        waiting = waiter.acquire(timeout=30)
        await deferLater(reactor, 1.0)
        await member.pause()
        self.addCleanup(lambda: member.resume() if member.paused else None)
        paused_at = reactor.seconds()
        second = await waiting
        acquired_at = reactor.seconds()
        await member.resume()
        self.assertEqual(len(lost_at), 1)
        self.assertLessEqual(lost_at[0] - paused_at, ttl + 0.1)
        self.assertLess(lost_at[0], acquired_at)
        self.assertGreater(second, token)
        self.assertFalse(holder.held)
        await waiter.release()
        print(
            f"\nlost {lost_at[0] - paused_at:.2f}s after the pause, next holder "
            f"{acquired_at - lost_at[0]:.2f}s after that (ttl {ttl}s)"
        )
