"""
Failover against real three-member etcd clusters started by the harness:
dead and paused members, a leader killed during a stream of appends, the
whole cluster down, a restarted member, and quorum reads.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, TimeoutError, gatherResults
from twisted.trial.unittest import TestCase

from txetcd2 import (
    ClusterUnavailable,
    EtcdClient,
    EtcdOutcomeUnknown,
    EtcdResponse,
)
from txetcd2.testing import EtcdCluster, EtcdMember, start_etcd

#: Generous bound for anything a test waits for (a loaded 2-core machine).
DEADLINE = 120.0


def dead_endpoint() -> str:
    """
    A loopback URL nothing listens on.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def quick_policy() -> Any:
    """
    A short back-off, so that tests end quickly.
    """
    return backoffPolicy(initialDelay=0.1, factor=2.0, maxDelay=1.0, jitter=lambda: 0.0)


async def bounded(d: Deferred[Any], seconds: float = DEADLINE) -> Any:
    """
    Wait for ``d``, failing the test if it takes longer than ``seconds``.
    """
    try:
        return await d.addTimeout(seconds, reactor)
    except TimeoutError:
        raise AssertionError(f"did not finish within {seconds}s") from None


class FailoverTests(TestCase):
    """
    A client over a real three-member cluster keeps working when members fail.
    """

    timeout = 600

    async def cluster(self) -> EtcdCluster:
        """
        Start a three-member cluster, stopped at cleanup.
        """
        cluster: EtcdCluster = await start_etcd(self, 3, reactor=reactor)
        return cluster

    def client(self, endpoints: list[str], **options: Any) -> EtcdClient:
        """
        A client closed at cleanup.
        """
        options.setdefault("retry_policy", quick_policy())
        client = EtcdClient(endpoints, reactor=reactor, **options)
        self.addCleanup(client.close)
        return client

    async def leader(self, cluster: EtcdCluster) -> EtcdMember:
        """
        The current leader, once there is one.
        """
        member: EtcdMember = await bounded(cluster.wait_for_leader(timeout=60.0))
        return member

    async def test_dead_endpoint_first(self) -> None:
        """A dead first endpoint is skipped; the client then stays on a live member."""
        cluster = await self.cluster()
        dead = dead_endpoint()
        client = self.client([dead, *cluster.client_urls])
        await bounded(client.set("failover/dead-first", "1"))
        response: EtcdResponse = await bounded(client.get("failover/dead-first"))
        self.assertEqual(response.node.value, "1")
        self.assertNotEqual(client._session.members.pinned, dead)

    async def test_kill_leader_during_appends(self) -> None:
        """
        Killing the leader during 2,000 appends loses no acknowledged key and
        duplicates none; ambiguous ones are EtcdOutcomeUnknown.
        """
        cluster = await self.cluster()
        leader = await self.leader(cluster)
        client = self.client(cluster.client_urls, timeout=3.0, max_retries=6)
        total, killed_after = 2000, 400
        acknowledged: dict[str, str] = {}
        unknown: set[str] = set()
        failed: dict[str, Exception] = {}
        limit = DeferredSemaphore(16)
        kill: list[Deferred[None]] = []

        async def one(i: int) -> None:
            value = f"v{i:05d}"
            try:
                response = await client.append("failover/queue", value)
            except EtcdOutcomeUnknown:
                unknown.add(value)
            except Exception as e:
                failed[value] = e
            else:
                acknowledged[value] = response.node.key
                if len(acknowledged) == killed_after and not kill:
                    kill.append(leader.kill())

        def run(i: int) -> Deferred[None]:
            return limit.run(lambda: Deferred.fromCoroutine(one(i)))

        await bounded(gatherResults([run(i) for i in range(total)]), 480.0)
        self.assertEqual(len(kill), 1, "the leader was never killed")
        await bounded(kill[0])
        self.assertEqual(len(acknowledged) + len(unknown) + len(failed), total)
        self.assertGreater(len(acknowledged), total // 2)

        listing = await bounded(client.get("failover/queue", sorted=True, quorum=True))
        stored = {child.key: child.value for child in listing.node.nodes}
        values = [child.value for child in listing.node.nodes]
        self.assertEqual(len(values), len(set(values)), "a value was appended twice")
        for value, key in acknowledged.items():
            self.assertEqual(stored.get(key), value, f"acknowledged {key} is missing")
        allowed = set(acknowledged) | unknown
        self.assertEqual([v for v in values if v not in allowed], [])

    async def test_paused_member_skipped(self) -> None:
        """A SIGSTOPped member is detected by the request timeout and skipped."""
        cluster = await self.cluster()
        leader = await self.leader(cluster)
        follower = next(m for m in cluster.members if m is not leader)
        others = [url for url in cluster.client_urls if url != follower.client_url]
        await bounded(follower.pause())
        self.addCleanup(follower.resume)
        client = self.client([follower.client_url, *others], timeout=1.5)
        await bounded(client.set("failover/paused", "1"))
        response = await bounded(client.get("failover/paused"))
        self.assertEqual(response.node.value, "1")
        self.assertNotEqual(client._session.members.pinned, follower.client_url)
        await bounded(follower.resume())

    async def test_all_members_down(self) -> None:
        """With every member down, ClusterUnavailable comes in bounded time, naming each."""
        cluster = await self.cluster()
        client = self.client(cluster.client_urls, timeout=2.0, max_retries=2)
        await bounded(client.set("failover/down", "1"))
        for member in cluster.members:
            await bounded(member.kill())
        error = await bounded(self.assertFailure(client.get("failover/down"), ClusterUnavailable))
        self.assertEqual(sorted(e for e, _ in error.errors), sorted(cluster.client_urls))

    async def test_restart_member(self) -> None:
        """A member that was stopped and restarted serves the writes it missed."""
        cluster = await self.cluster()
        leader = await self.leader(cluster)
        follower = next(m for m in cluster.members if m is not leader)
        client = self.client(cluster.client_urls)
        await bounded(follower.kill())
        await bounded(client.set("failover/restart", "while-down"))
        await bounded(follower.restart())
        only = self.client([follower.client_url])
        response = await bounded(only.get("failover/restart", quorum=True))
        self.assertEqual(response.node.value, "while-down")
        await bounded(client.set("failover/restart", "after"))
        response = await bounded(only.get("failover/restart", quorum=True))
        self.assertEqual(response.node.value, "after")

    async def test_quorum_reads_never_older(self) -> None:
        """
        A quorum read from another member, and any read from the writing
        client, never returns a value older than an acknowledged write, even
        across a leader kill.
        """
        cluster = await self.cluster()
        leader = await self.leader(cluster)
        urls = cluster.client_urls
        writer = self.client(urls)
        reader = self.client(list(reversed(urls)))
        for i in range(200):
            if i == 100:
                await bounded(leader.kill())
            await bounded(writer.set("failover/counter", str(i)))
            quorum = await bounded(reader.get("failover/counter", quorum=True))
            self.assertGreaterEqual(int(quorum.node.value or "-1"), i)
            plain = await bounded(writer.get("failover/counter"))
            self.assertGreaterEqual(int(plain.node.value or "-1"), i)
