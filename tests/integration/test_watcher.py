"""
Integration tests for the Watcher against real etcd clusters started by the harness: member
faults (kill, pause, lost quorum, a black-holed route) and a soak. The single-member scenarios
are in ``tests/conformance`` (run on etcd 3.4, 3.5 and MemoryEtcd).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutput
from twisted.trial.unittest import TestCase

from tests.conformance._watcher import Recorder
from txetcd2 import EtcdClient, EtcdError, EtcdResponse, EtcdV2Disabled
from txetcd2.testing import EtcdMember, FaultProxy, start_etcd
from txetcd2.watch import Lag, State

#: The checkout, for the writer process.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Generous: the machine is small and shared.
DEADLINE = 120.0


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """
    Poll ``condition`` on the reactor until it holds, or fail after ``deadline`` seconds.
    """
    end = reactor.seconds() + deadline
    while not condition():
        if reactor.seconds() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.05)


class ClusterWatcherTests(TestCase):
    """
    A watcher against a three-member cluster.
    """

    timeout = 600

    async def fault_on_serving_member(
        self, key: str, fault: Callable[[EtcdMember], Deferred[None]], writes: int, at: int
    ) -> None:
        """
        Watch ``key`` on a follower while ``writes`` sets go through the other members; after
        ``at`` of them, apply ``fault`` to the serving follower. Every set must come out once,
        in order, from another member, without a resync.
        """
        cluster = await start_etcd(self, 3, reactor=reactor)
        leader = await cluster.wait_for_leader()
        victim = next(m for m in cluster.members if m is not leader)
        # Cleanups run last-in first-out: this one before the harness stops the cluster.
        self.addCleanup(_resume, victim)
        others = [m.client_url for m in cluster.members if m is not victim]
        watch_client = EtcdClient([victim.client_url, *others], reactor=reactor, timeout=15.0)
        self.addCleanup(watch_client.close)
        write_client = EtcdClient(others, reactor=reactor, timeout=15.0)
        self.addCleanup(write_client.close)
        first = await write_client.set(key, "start")
        w = watch_client.watcher(key, index=first.index + 1, idle_timeout=3.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        written: list[int] = []
        faulted: Deferred[None] | None = None
        for i in range(writes):
            written.append((await write_client.set(key, str(i))).index)
            if i == at:
                await until(lambda: len(seen.changes) >= at // 2, "events before the fault")
                self.assertEqual(w.endpoint, victim.client_url)
                faulted = fault(victim)
        assert faulted is not None
        await faulted
        await until(lambda: seen.indexes[-1:] == written[-1:], "the last write")
        self.assertEqual(seen.indexes, written)
        self.assertNotEqual(w.endpoint, victim.client_url)
        self.assertEqual(seen.resyncs, [])
        await w.stop()

    async def test_kill_serving_member(self) -> None:
        """kill -9 of the member serving the stream loses and duplicates nothing."""
        await self.fault_on_serving_member("/kill/k", lambda m: m.kill(), writes=600, at=200)

    async def test_pause_serving_member(self) -> None:
        """SIGSTOP of the member serving the stream: the idle timer moves on, nothing lost."""
        await self.fault_on_serving_member("/pause/k", lambda m: m.pause(), writes=500, at=150)

    async def test_member_sync_reaches_watcher(self) -> None:
        """
        A watcher started when its client knew one member fails over, after that member's
        kill -9, to members the client learned later from the member sync.
        """
        cluster = await start_etcd(self, 3, reactor=reactor)
        await cluster.wait_for_leader()
        first, *others = cluster.members
        watch_client = EtcdClient(
            [first.client_url], reactor=reactor, timeout=5.0, sync_interval=0.5
        )
        self.addCleanup(watch_client.close)
        write_client = EtcdClient([m.client_url for m in others], reactor=reactor, timeout=15.0)
        self.addCleanup(write_client.close)
        start = await write_client.set("/sync/k", "start")
        w = watch_client.watcher("/sync/k", index=start.index + 1, idle_timeout=3.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        before = [(await write_client.set("/sync/k", f"b{i}")).index for i in range(10)]
        await until(lambda: seen.indexes[-1:] == before[-1:], "the writes before the kill")
        self.assertEqual(w.endpoint, first.client_url)
        watch_client.start()
        await until(lambda: len(watch_client.endpoints) == 3, "the member sync")
        await first.kill()
        await cluster.wait_for_leader(timeout=60.0)
        after = [(await write_client.set("/sync/k", f"a{i}")).index for i in range(10)]
        await until(lambda: seen.indexes[-1:] == after[-1:], "the writes after the kill")
        self.assertEqual(seen.indexes, before + after)
        self.assertIn(w.endpoint, [m.client_url for m in others])
        self.assertEqual(seen.resyncs, [])
        await w.stop()

    async def test_member_without_quorum(self) -> None:
        """A member without quorum accepts watches and stays silent: the watcher leaves it."""
        cluster = await start_etcd(self, 3, reactor=reactor)
        await cluster.wait_for_leader()
        alone, *others = cluster.members
        for member in others:
            self.addCleanup(_resume, member)
        urls = [alone.client_url, *(m.client_url for m in others)]
        # A short request timeout: the paused members are only noticed by it.
        watch_client = EtcdClient(urls, reactor=reactor, timeout=5.0)
        self.addCleanup(watch_client.close)
        write_client = EtcdClient(urls, reactor=reactor, timeout=15.0)
        self.addCleanup(write_client.close)
        first = await write_client.set("/quorum/k", "start")
        w = watch_client.watcher("/quorum/k", index=first.index + 1, idle_timeout=3.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        before = [(await write_client.set("/quorum/k", f"b{i}")).index for i in range(20)]
        await until(lambda: seen.indexes[-1:] == before[-1:], "the writes before the pause")
        self.assertEqual(w.endpoint, alone.client_url)
        await gatherResults([m.pause() for m in others])
        # The stream on the member left alone goes silent; the idle timer moves the watcher
        # on, the paused members time out, and it comes back to the lone member, which
        # accepts a new watch and stays silent: the watcher must leave it again.
        await until(lambda: w.endpoint != alone.client_url, "leaving the lone member")
        await until(lambda: w.endpoint == alone.client_url, "coming back to the lone member")
        await until(lambda: w.endpoint != alone.client_url, "leaving the lone member again")
        await gatherResults([m.resume() for m in others])
        await cluster.wait_for_leader(timeout=60.0)
        after = [(await write_client.set("/quorum/k", f"a{i}")).index for i in range(50)]
        await until(lambda: seen.indexes[-1:] == after[-1:], "the writes after the resume")
        self.assertEqual(seen.indexes, before + after)
        self.assertEqual(seen.resyncs, [])
        self.assertEqual(w.index, after[-1])
        await w.stop()


class ProxyWatcherTests(TestCase):
    """
    A watcher whose route to a member goes through a :class:`~txetcd2.testing.FaultProxy`.
    """

    timeout = 300

    async def test_blackholed_route(self) -> None:
        """A stream through a black-holed route goes quiet: the watcher moves on, nothing lost."""
        cluster = await start_etcd(self, 1, reactor=reactor)
        direct = cluster.client_urls[0]
        port = urlsplit(direct).port
        assert port is not None
        proxy = FaultProxy(reactor, "127.0.0.1", port)
        routed = await proxy.start()
        self.addCleanup(proxy.stop)
        # Two routes to one member: the client takes them for two members.
        watch_client = EtcdClient([routed, direct], reactor=reactor, timeout=3.0)
        self.addCleanup(watch_client.close)
        write_client = EtcdClient([direct], reactor=reactor, timeout=15.0)
        self.addCleanup(write_client.close)
        first = await write_client.set("/hole/k", "start")
        w = watch_client.watcher("/hole/k", index=first.index + 1, idle_timeout=2.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        before = [(await write_client.set("/hole/k", f"b{i}")).index for i in range(50)]
        await until(lambda: seen.indexes[-1:] == before[-1:], "the writes before the hole")
        self.assertEqual(w.endpoint, routed)
        proxy.blackhole()
        after = [(await write_client.set("/hole/k", f"a{i}")).index for i in range(50)]
        await until(lambda: seen.indexes[-1:] == after[-1:], "the writes after the hole")
        self.assertEqual(seen.indexes, before + after)
        self.assertEqual(w.endpoint, direct)
        self.assertEqual(seen.resyncs, [])
        await w.stop()


async def _resume(member: EtcdMember) -> None:
    """
    Resume a member if it is paused (a cleanup, before the harness stops the cluster).
    """
    if member.paused:
        await member.resume()


class _Writer:
    """
    Writes ``w0``, ``w1``, ... to one key, one after the other, until told to stop.

    A write that fails may still be applied by etcd later (ETCD-V2.md): its value is
    recorded as uncertain rather than acknowledged.
    """

    def __init__(self, client: EtcdClient, key: str) -> None:
        self._client = client
        self._key = key
        self.acked: dict[str, int] = {}
        self.uncertain: set[str] = set()
        self.running = True
        self.done: Deferred[None] = Deferred.fromCoroutine(self._run())

    @property
    def last(self) -> int:
        return max(self.acked.values(), default=0)

    async def _run(self) -> None:
        count = 0
        while self.running:
            value = f"w{count}"
            count += 1
            try:
                self.acked[value] = (await self._client.set(self._key, value)).index
            except EtcdError:
                self.uncertain.add(value)
                await deferLater(reactor, 0.1)
            else:
                # At most ~100 writes/s: a watcher silent for a few seconds stays well
                # within etcd's 1000-event history, so only the planned resync happens.
                await deferLater(reactor, 0.01)

    async def stop(self) -> None:
        self.running = False
        await self.done


class SoakTests(TestCase):
    """
    One watcher, a continuous writer and a sequence of faults.
    """

    timeout = 600

    async def test_faults_in_sequence(self) -> None:
        """Through kill -9, SIGSTOP and lost history, every change is delivered once, in order."""
        cluster = await start_etcd(self, 3, reactor=reactor)
        leader = await cluster.wait_for_leader()
        followers = [m for m in cluster.members if m is not leader]
        for member in cluster.members:
            self.addCleanup(_resume, member)
        urls = [m.client_url for m in [*followers, leader]]
        watch_client = EtcdClient(urls, reactor=reactor, timeout=5.0)
        self.addCleanup(watch_client.close)
        write_client = EtcdClient(urls[::-1], reactor=reactor, timeout=15.0, max_retries=0)
        self.addCleanup(write_client.close)
        first = await write_client.set("/soak/k", "start")
        w = watch_client.watcher("/soak/k", index=first.index + 1, idle_timeout=3.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        writer = _Writer(write_client, "/soak/k")
        self.addCleanup(writer.stop)

        def serving() -> EtcdMember:
            return next(m for m in cluster.members if m.client_url == w.endpoint)

        async def progress(what: str) -> None:
            # 50 more acknowledged writes, all of them delivered.
            wanted = len(writer.acked) + 50
            await until(lambda: len(writer.acked) >= wanted, f"writes {what}")
            last = writer.last
            await until(lambda: seen.indexes[-1:] >= [last], f"events {what}")

        await progress("at the start")
        victim = serving()
        await victim.kill()
        await progress("after kill -9")
        self.assertNotEqual(w.endpoint, victim.client_url)
        await victim.start()
        await progress("after the restart")

        victim = serving()
        await victim.pause()
        await progress("while a member is paused")
        self.assertNotEqual(w.endpoint, victim.client_url)
        await victim.resume()
        await progress("after the resume")

        await w.stop()
        stopped_at = w.index
        assert stopped_at is not None
        burst_client = EtcdClient(urls[::-1], reactor=reactor, timeout=15.0)
        self.addCleanup(burst_client.close)
        semaphore = DeferredSemaphore(20)
        await gatherResults(
            [semaphore.run(burst_client.set, "/soak/k", f"b{i}") for i in range(1100)]
        )
        w.start()
        await until(lambda: len(seen.resyncs) == 1, "the resync")
        resynced_at = seen.resyncs[0].etcd_index
        await progress("after the resync")
        await writer.stop()
        last = writer.last
        await until(lambda: seen.indexes[-1:] >= [last], "the last write")

        indexes = seen.indexes
        self.assertEqual(indexes, sorted(set(indexes)))
        self.assertEqual([i for i in indexes if stopped_at < i <= resynced_at], [])
        self.assertEqual(len(seen.resyncs), 1)
        acked = sorted(i for i in writer.acked.values() if not stopped_at < i <= resynced_at)
        self.assertEqual([i for i in acked if i not in set(indexes)], [])
        for event in seen.changes:
            value = event.node.value
            assert value is not None
            if value in writer.acked:
                self.assertEqual(event.index, writer.acked[value])
            else:
                self.assertIn(value, writer.uncertain)
        await w.stop()


def busy(milliseconds: float) -> None:
    """
    Keep the reactor busy for ``milliseconds``, as a slow callback would (never sleeps).
    """
    end = time.monotonic() + milliseconds / 1000.0
    while time.monotonic() < end:
        pass


class SlowConsumerTests(TestCase):
    """
    A consumer slower than the writes: etcd drops its stream, the probe notices in seconds.
    """

    timeout = 600

    async def test_slow_callbacks(self) -> None:
        """
        Callbacks of 2-5 ms under 5,000 writes of 2 KiB at 32 in flight (from another process):
        every write is delivered or covered by a resync, the last one at most 10 s after the
        writer ended.
        """
        cluster = await start_etcd(self, 1, reactor=reactor)
        client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        self.addCleanup(client.close)
        first = await client.set("/slow/k", "start")
        w = client.watcher("/slow/k", index=first.index + 1)
        self.addCleanup(w.stop)
        timeline: list[tuple[str, int, float]] = []
        lagging: list[Lag] = []

        def slow_change(event: EtcdResponse) -> None:
            busy(2 + event.index % 4)
            timeline.append(("change", event.index, time.time()))

        w.on("change", slow_change)
        w.on("resync", lambda snap: timeline.append(("resync", snap.etcd_index, time.time())))
        w.on("lagging", lagging.append)
        w.start()
        argv = [cluster.client_urls[0], "/slow/k", "5000", "32", "2048"]
        output = await getProcessOutput(
            sys.executable, ["-m", "tests.integration._writer", *argv], env=os.environ, path=ROOT
        )
        written = json.loads(output)
        indexes: list[int] = written["indexes"]
        await until(lambda: timeline[-1][1] >= indexes[-1], "the last write", deadline=120.0)
        reached = next(t for _, index, t in timeline if index >= indexes[-1])
        after = reached - written["ended"]
        resyncs = [index for kind, index, _ in timeline if kind == "resync"]
        print(
            f"\nslow consumer: last event {after:.2f}s after the writer ended; "
            f"{len(timeline) - len(resyncs)} changes, {len(resyncs)} resyncs, "
            f"{w.lagged} times lagging, {w.probes} probes"
        )
        self.assertLessEqual(after, 10.0)
        # Every write was delivered, or a resync at or after it came before the next change.
        order = [index for _, index, _ in timeline]
        self.assertEqual(order, sorted(order))
        delivered = {index for kind, index, _ in timeline if kind == "change"}
        for index in indexes:
            if index not in delivered:
                covering = next(kind for kind, at, _ in timeline if at >= index)
                self.assertEqual(covering, "resync", index)
        self.assertEqual(len(lagging), w.lagged)
        # Each resync came with its "history lost" report, however the loss was found.
        lost = [lag for lag in lagging if lag.reason == "history lost"]
        self.assertEqual(len(lost), len(resyncs))
        await w.stop()


class ProbeIntegrationTests(TestCase):
    """
    The probe against real etcd.
    """

    timeout = 600

    async def test_quiet_key_stays_in_history(self) -> None:
        """
        A key gone quiet while 1,200 other changes pass over 12 s: the probe moves the
        resume index, so a restart resumes without a resync; without the probe it needs one.
        """
        cluster = await start_etcd(self, 1, reactor=reactor)
        client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        self.addCleanup(client.close)
        first = await client.set("/quiet/k", "0")
        probed = client.watcher("/quiet/k", index=first.index + 1, probe_interval=0.5)
        unprobed = client.watcher("/quiet/k", index=first.index + 1, probe_interval=None)
        seen = Recorder(probed)
        unseen = Recorder(unprobed)
        self.addCleanup(probed.stop)
        self.addCleanup(unprobed.stop)
        probed.start()
        unprobed.start()
        # One change on the key, so its streams carried an event (a stream quiet since it
        # opened is not probed), then only changes of other keys.
        changed = await client.set("/quiet/k", "1")
        await until(lambda: seen.indexes == unseen.indexes == [changed.index], "the change")
        semaphore = DeferredSemaphore(20)
        for batch in range(12):
            # About 100 changes of other keys a second; a probe at least every 5 s (0.5 s
            # of quiet, doubling up to 4 s, then 1 s of grace) sees them while etcd's
            # 1000-event history still holds the key's index.
            await gatherResults(
                [semaphore.run(client.set, f"/other/{batch}-{i}", "x") for i in range(100)]
            )
            await deferLater(reactor, 1.0)
        sent = probed.probes
        await until(lambda: probed.probes >= sent + 2, "two probes after the writes")
        await probed.stop()
        await unprobed.stop()
        last = await client.set("/quiet/k", "2")
        probed.start()
        unprobed.start()
        await until(lambda: seen.indexes == [changed.index, last.index], "the change, probed")
        await until(lambda: len(unseen.resyncs) == 1, "the resync, unprobed")
        self.assertEqual(seen.resyncs, [])
        self.assertEqual(seen.errors, [])

    async def test_close_stops_watchers(self) -> None:
        """close() stops a running watcher: no more events, state STOPPED, "stop" called."""
        cluster = await start_etcd(self, 1, reactor=reactor)
        client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        writer = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        self.addCleanup(writer.close)
        first = await writer.set("/closing/k", "0")
        w = client.watcher("/closing/k", index=first.index + 1)
        seen = Recorder(w)
        stops: list[object] = []
        w.on("stop", stops.append)
        w.start()
        await writer.set("/closing/k", "1")
        await until(lambda: len(seen.changes) == 1, "the first change")
        await client.close()
        self.assertEqual(stops, [None])
        self.assertIs(w.state, State.STOPPED)
        await writer.set("/closing/k", "2")
        await deferLater(reactor, 0.5)
        self.assertEqual(len(seen.changes), 1)

    async def test_v2_disabled(self) -> None:
        """Against etcd without --enable-v2 the watcher gives up with EtcdV2Disabled."""
        cluster = await start_etcd(self, 1, reactor=reactor, enable_v2=False)
        client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        self.addCleanup(client.close)
        w = client.watcher("/x")
        stops: list[Any] = []
        w.on("stop", stops.append)
        w.start()
        await until(lambda: bool(stops), "the watcher giving up")
        self.assertIsInstance(stops[0].value, EtcdV2Disabled)
        self.assertIs(w.state, State.FAILED)
        self.assertEqual(len(self.flushLoggedErrors(EtcdV2Disabled)), 1)


class FaultRunTests(TestCase):
    """
    The watcher's fault run, through fault proxies in front of a three-member cluster.
    """

    timeout = 600

    async def test_cuts_black_holes_and_a_leader_kill(self) -> None:
        """
        Under a continuous writer, 10 connection cuts (FIN and RST), 2 black holes and a
        leader kill -9 between the watcher and the cluster: every acknowledged change is
        delivered exactly once, in order, without a resync, and nothing that was not written.
        """
        cluster = await start_etcd(self, 3, reactor=reactor)
        proxies: dict[str, FaultProxy] = {}
        for url in cluster.client_urls:
            port = urlsplit(url).port
            assert port is not None
            proxy = FaultProxy(reactor, "127.0.0.1", port)
            proxies[await proxy.start()] = proxy
            self.addCleanup(proxy.stop)
        watch_client = EtcdClient(list(proxies), reactor=reactor, timeout=3.0)
        self.addCleanup(watch_client.close)
        write_client = EtcdClient(cluster.client_urls, reactor=reactor, timeout=15.0)
        self.addCleanup(write_client.close)
        first = await write_client.set("/faults/k", "start")
        w = watch_client.watcher("/faults/k", index=first.index + 1, idle_timeout=2.0)
        seen = Recorder(w)
        self.addCleanup(w.stop)
        w.start()
        writer = _Writer(write_client, "/faults/k")
        self.addCleanup(writer.stop)

        async def after_writes(count: int) -> None:
            target = len(writer.acked) + count
            await until(lambda: len(writer.acked) >= target, f"{count} more writes")

        for i in range(10):
            await after_writes(25)
            proxies[w.endpoint].cut(rst=i % 2 == 1)
        for _ in range(2):
            await after_writes(25)
            hole = proxies[w.endpoint]
            hole.blackhole()
            await after_writes(100)
            hole.restore()
        await after_writes(25)
        leader = await cluster.wait_for_leader()
        await leader.kill()
        await cluster.wait_for_leader(timeout=60.0)
        await after_writes(50)
        await writer.stop()
        acked = sorted(writer.acked.values())
        await until(lambda: bool(seen.indexes) and seen.indexes[-1] >= acked[-1], "the last write")
        self.assertEqual(seen.resyncs, [])
        self.assertEqual(seen.indexes, sorted(set(seen.indexes)), "a change came twice or late")
        self.assertEqual(sorted(set(acked) - set(seen.indexes)), [], "acknowledged, not delivered")
        values = {e.index: e.value for e in seen.changes}
        for value, index in writer.acked.items():
            self.assertEqual(values[index], value)
        allowed = set(writer.acked) | writer.uncertain
        self.assertEqual([v for v in values.values() if v not in allowed], [])
        self.assertGreaterEqual(len(acked), 500)
        await w.stop()
