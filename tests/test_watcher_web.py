"""
Unit tests for the Watcher over real HTTP/1.1 framing in memory (chunked bodies cut anywhere,
truncated bodies, aborted connections), a Clock for every timer: against the public
:class:`txetcd2.testing.MemoryEtcd`, and against the private ``tests._etcd_resource`` only where
a test needs what the public kit does not offer (stream bytes cut into pieces of any size and
several events in one write).
"""

from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests._etcd_resource import EtcdResource, cut_every
from txetcd2 import EtcdClient, EtcdConnectionError, EtcdResponse, EtcdTimeout, Watcher
from txetcd2._watch import watcher as watcher_module
from txetcd2.testing import MemoryEtcd


class RecordingWatchers:
    """
    Started watchers whose every event is recorded, with pinned jitter (mixed into the test
    cases below, which provide ``client``, ``seen``, ``watchers`` and ``settle``).
    """

    #: the watchers' probe interval (``None``: no probe; the probe has its own tests)
    probe_interval: float | None = 5.0
    client: EtcdClient
    seen: list[tuple[str, Any]]
    watchers: list[Watcher]

    def settle(self) -> None:
        raise NotImplementedError

    def watcher(self, key: str = "/k", **kwargs: Any) -> Watcher:
        """
        A started watcher whose every event is recorded, with pinned jitter.
        """
        kwargs.setdefault("retry_policy", backoffPolicy(jitter=lambda: 0.0))
        kwargs.setdefault("idle_timeout", 30.0)
        kwargs.setdefault("probe_interval", self.probe_interval)
        w = self.client.watcher(key, **kwargs)
        for name in ("change", "resync", "reconnect", "error", "stop"):
            w.on(name, lambda payload, name=name: self.seen.append((name, payload)))
        self.watchers.append(w)
        w.start()
        self.settle()
        return w

    def events(self) -> list[int]:
        """
        The indexes of the changes delivered so far.
        """
        return [p.index for n, p in self.seen if n == "change"]

    def reported(self, name: str) -> list[Any]:
        """
        The payloads reported under ``name`` so far.
        """
        return [p for n, p in self.seen if n == name]


class WebWatcherTestCase(RecordingWatchers, SynchronousTestCase):
    """
    A client over the private in-memory resource (for stream bytes cut anywhere and
    canned answers etcd would never send), a Clock, and a record of what watchers report.
    """

    hosts: tuple[str, ...] = ("h1:2379",)
    # The probe has its own tests (test_watcher_probe.py); these test the rest.
    probe_interval = None

    def setUp(self) -> None:
        self.clock = Clock()
        self.etcd = EtcdResource()
        # The probe's jitter pinned: exact delays.
        self.patch(watcher_module, "jitter", lambda: 0.0)
        self.agent = RequestTraversalAgent(self.etcd)
        self.etcd.pump = self.agent.flush
        self.client = EtcdClient(
            [f"http://{host}" for host in self.hosts],
            reactor=self.clock,
            agent=self.agent,
            timeout=2.0,
        )
        self.seen: list[tuple[str, Any]] = []
        self.watchers: list[Watcher] = []

    def tearDown(self) -> None:
        for w in self.watchers:
            stopping = w.stop()
            self.settle()
            self.successResultOf(stopping)
        self.successResultOf(self.client.close())
        self.settle()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.open_connections(), [])
        self.assertEqual(self.etcd.watches, [])

    def settle(self) -> None:
        """
        Move every byte between client and server and run what is due now.
        """
        for _ in range(20):
            self.agent.flush()
            self.clock.advance(0)

    def advance(self, seconds: float) -> None:
        """
        Move the client's clock, then settle.
        """
        self.clock.advance(seconds)
        self.settle()

    def open_connections(self) -> list[object]:
        """
        The in-memory connections not closed on both ends.
        """
        # treq keeps its pumps private; there is no public way to list them.
        pumps = self.agent._pumps
        return [p for p in pumps if not (p.clientIO.disconnected and p.serverIO.disconnected)]


class ChunkingTests(WebWatcherTestCase):
    """
    Every event comes out once, in order, however the body is cut.
    """

    def test_any_chunking(self) -> None:
        """Events cut into pieces of any size, several per piece, are each delivered once."""
        for size in (1, 2, 3, 7, 64, 10_000):
            if size != 1:
                self.tearDown()
                self.setUp()
            self.etcd.chunks = cut_every(size)
            self.watcher()
            written = self.etcd.apply([("/k", str(i)) for i in range(25)])
            big, _, last = self.etcd.apply([("/k", "x" * 300), ("/other", "y"), ("/k", "z")])
            self.settle()
            self.assertEqual(self.events(), [*written, big, last], f"pieces of {size} bytes")


class MemoryWatcherTestCase(RecordingWatchers, SynchronousTestCase):
    """
    A client on a :class:`MemoryEtcd`, a writer client on its last member, and a record of
    what watchers report.
    """

    members = 1
    #: how many members (the first ones) the watchers' client talks to (``None``: all)
    client_members: int | None = None
    enable_v2 = True

    def setUp(self) -> None:
        self.etcd = MemoryEtcd(members=self.members, enable_v2=self.enable_v2)
        self.clock = self.etcd.clock
        self.client = self.etcd.client(
            timeout=2.0, endpoints=self.etcd.urls[: self.client_members]
        )
        self.writer = self.etcd.client(endpoints=[self.etcd.urls[-1]])
        self.seen: list[tuple[str, Any]] = []
        self.watchers: list[Watcher] = []

    def tearDown(self) -> None:
        for w in self.watchers:
            stopping = w.stop()
            self.settle()
            self.successResultOf(stopping)
        for client in (self.client, self.writer):
            closing = client.close()
            self.settle()
            self.successResultOf(closing)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.etcd.open_connections(), [])
        self.assertEqual(self.etcd.watch_count, 0)

    def settle(self) -> None:
        """
        Deliver every byte and run what is due now.
        """
        for _ in range(5):
            self.etcd.kick()
            self.clock.advance(0)

    def advance(self, seconds: float) -> None:
        """
        Move the clock, then settle.
        """
        self.clock.advance(seconds)
        self.settle()

    def set(self, key: str, value: str) -> int:
        """
        Write through the writer client; the change's index.
        """
        return self.successResultOf(self.writer.set(key, value)).index

    def watch_queries(self) -> list[dict[str, str]]:
        """
        The queries of the watch requests received so far.
        """
        return [r.query for r in self.etcd.requests if r.is_watch]


class CatchUpTests(MemoryWatcherTestCase):
    """
    An old index is caught up with long-polls, then the stream takes over.
    """

    def test_stream_from_now(self) -> None:
        """Without an index the watcher streams from etcd's index and sends one request."""
        self.set("/k", "old")
        w = self.watcher()
        written = [self.set("/k", str(i)) for i in range(3)]
        self.settle()
        self.assertEqual(self.events(), written)
        self.assertEqual(w.index, written[-1])
        self.assertEqual(self.watch_queries(), [{"wait": "true", "stream": "true"}])

    def test_catch_up_then_stream(self) -> None:
        """History from the wanted index comes first, then the stream's events, none twice."""
        old = [self.set("/k", str(i)) for i in range(10)]
        self.set("/other", "x")
        w = self.watcher(index=old[3])
        live = [self.set("/k", f"live{i}") for i in range(5)]
        self.settle()
        self.assertEqual(self.events(), old[3:] + live)
        self.assertEqual(w.index, live[-1])
        polls = [q for q in self.watch_queries() if "waitIndex" in q and "stream" not in q]
        self.assertEqual([int(q["waitIndex"]) for q in polls], [*old[3:], old[-1] + 1])
        self.assertEqual([w.stream for w in self.etcd.watches], [True])
        self.assertEqual(self.reported("reconnect"), [])

    def test_changes_during_catch_up(self) -> None:
        """Changes made while history is still being caught up come after it, once each."""
        old = [self.set("/k", str(i)) for i in range(4)]
        writes: list[Deferred[EtcdResponse]] = []

        def write_once(event: object) -> None:
            if not writes:
                writes.extend([self.writer.set("/k", "a"), self.writer.set("/k", "b")])

        w = self.client.watcher("/k", index=old[0], idle_timeout=30.0)
        w.on("change", write_once)
        w.on("change", lambda e: self.seen.append(("change", e)))
        self.watchers.append(w)
        w.start()
        self.settle()
        live = [self.successResultOf(d).index for d in writes]
        self.assertEqual(len(live), 2)
        self.assertEqual(self.events(), old + live)

    def test_header_timeout(self) -> None:
        """A member that never answers is reported as a timeout after the client's timeout."""
        old = [self.set("/k", str(i)) for i in range(3)]
        member = self.etcd.members[0]
        member.stop_answering()
        policy = backoffPolicy(jitter=lambda: 0.0)
        self.watcher(index=old[0], retry_policy=policy)
        member.restore()
        self.advance(1.999)
        self.assertEqual(self.reported("error"), [])
        self.advance(0.001)
        errors = [f.value for f in self.reported("error")]
        self.assertEqual([type(e) for e in errors], [EtcdTimeout])
        self.assertIn("2", str(errors[0]))
        self.assertEqual(self.reported("reconnect"), [policy(1)])
        self.advance(policy(1))
        live = [self.set("/k", "a"), self.set("/k", "b")]
        self.settle()
        self.assertEqual(self.events(), old + live)


class ResyncTests(MemoryWatcherTestCase):
    """
    Lost history gives one resync, then the changes after it.
    """

    def test_index_cleared(self) -> None:
        """An index older than the history gives a quorum read, a resync, then the changes."""
        self.tearDown()
        self.etcd = MemoryEtcd(history=10)
        self.clock = self.etcd.clock
        self.client = self.etcd.client(timeout=2.0)
        self.writer = self.etcd.client()
        first = self.set("/d/a", "0")
        for i in range(30):
            self.set(f"/d/k{i % 4}", str(i))
        self.successResultOf(self.writer.delete("/d/k3"))
        w = self.watcher("/d", index=first + 1, recursive=True)
        resyncs = self.reported("resync")
        self.assertEqual(len(resyncs), 1)
        reads = [r.query for r in self.etcd.requests if r.method == "GET" and not r.is_watch]
        self.assertEqual(reads, [{"recursive": "true", "sorted": "true", "quorum": "true"}])
        tree = self.successResultOf(self.writer.get("/d", recursive=True))
        self.assertEqual(resyncs[0].node.leaves(), tree.node.leaves())
        self.assertEqual(len(tree.node.leaves()), 4)
        self.assertEqual(resyncs[0].etcd_index, self.etcd.index)
        after = [self.set("/d/new", "1"), self.set("/d/k0", "2")]
        self.settle()
        self.assertEqual(self.events(), after)
        self.assertEqual(w.index, after[-1])


class ReconnectTests(MemoryWatcherTestCase):
    """
    Ends of an answer are resumed from the last delivered index.
    """

    def test_clean_end_reconnects_at_once(self) -> None:
        """A stream that ends cleanly is renewed at once, without the clock moving."""
        self.watcher()
        first = self.set("/k", "1")
        self.etcd.members[0].end_streams()
        self.settle()
        self.assertEqual(self.reported("reconnect"), [0.0])
        self.assertEqual(self.etcd.watch_count, 1)
        second = self.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first, second])
        self.assertEqual(self.reported("error"), [])

    def test_truncated_body(self) -> None:
        """A body cut mid-line is reported, the half line dropped, and nothing lost or repeated."""
        self.watcher(retry_policy=lambda attempt: 1.5 * attempt)
        first = self.set("/k", "1")
        self.etcd.members[0].truncate_streams(b'{"action": "set", "node": {"key": "/k", "val')
        self.settle()
        errors = self.reported("error")
        self.assertEqual(len(errors), 1)
        self.assertIsInstance(errors[0].value, EtcdConnectionError)
        self.assertIn("cut short", str(errors[0].value))
        self.assertEqual(self.reported("reconnect"), [1.5])
        self.advance(1.5)
        second = self.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first, second])

    def test_idle_timer(self) -> None:
        """A stream silent for idle_timeout is dropped and renewed; bytes restart the timer."""
        self.watcher(idle_timeout=10.0)
        self.advance(9.0)
        first = self.set("/k", "1")
        self.advance(9.0)
        self.assertEqual(self.reported("reconnect"), [])
        self.advance(1.0)
        self.assertEqual(self.reported("reconnect"), [0.0])
        self.assertEqual(self.etcd.watch_count, 1)
        self.assertEqual(len(self.etcd.open_connections()), 1)
        second = self.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first, second])
        self.assertEqual(self.reported("error"), [])


class BackoffTests(MemoryWatcherTestCase):
    """
    Failures back off with the retry policy's exact delays; success resets them.
    """

    def test_exact_delays(self) -> None:
        """Consecutive failures wait policy(1), policy(2), ...; a delivered event resets it."""
        policy = backoffPolicy(jitter=lambda: 0.0)
        member = self.etcd.members[0]
        member.fail(500)
        self.watcher(retry_policy=policy)
        for attempt in (1, 2, 3):
            if attempt == 3:
                member.restore()  # three failed answers, then normal ones
            delay = policy(attempt)
            self.assertEqual(self.reported("reconnect")[-1], delay)
            sent = len(self.etcd.requests)
            self.advance(delay - 0.001)
            self.assertEqual(len(self.etcd.requests), sent)
            self.advance(0.001)
            self.assertEqual(len(self.etcd.requests), sent + 1)
        self.assertEqual(self.reported("reconnect"), [policy(1), policy(2), policy(3)])
        first = self.set("/k", "1")
        self.settle()
        member.truncate_streams()
        self.settle()
        self.assertEqual(self.reported("reconnect")[-2:], [policy(3), policy(1)])
        self.advance(policy(1))
        second = self.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first, second])


class MembersTests(MemoryWatcherTestCase):
    """
    With several members, silence and failures move the watcher to another one.
    """

    members = 3

    def test_silent_member_left(self) -> None:
        """A member without quorum accepts watches and stays silent: it is left at idle_timeout."""
        first_url, second_url, _ = self.etcd.urls
        self.etcd.members[0].lose_quorum()
        w = self.watcher(idle_timeout=5.0)
        self.assertEqual(w.endpoint, first_url)
        first = self.set("/k", "1")
        self.settle()
        self.assertEqual(self.events(), [])
        self.advance(5.0)
        self.assertEqual(w.endpoint, second_url)
        self.settle()
        self.assertEqual(self.events(), [first])
        self.assertEqual(
            [r.member for r in self.etcd.requests if r.is_watch][-2:], [second_url] * 2
        )

    def test_silent_member_after_history(self) -> None:
        """History caught up from a member without quorum is not repeated by the next member."""
        old = [self.set("/k", str(i)) for i in range(5)]
        self.etcd.members[0].lose_quorum()
        w = self.watcher(index=old[1], idle_timeout=5.0)
        self.assertEqual(self.events(), old[1:])
        live = self.set("/k", "live")
        self.settle()
        self.assertEqual(self.events(), old[1:])
        self.advance(5.0)
        self.assertEqual(w.endpoint, self.etcd.urls[1])
        self.assertEqual(self.events(), [*old[1:], live])
        self.assertEqual(self.reported("error"), [])

    def test_unanswered_members_swept_then_back_off(self) -> None:
        """Members that never answer time out one after the other, then the watcher backs off."""
        for member in self.etcd.members:
            member.stop_answering()
        policy = backoffPolicy(jitter=lambda: 0.0)
        w = self.watcher(retry_policy=policy)
        self.advance(2.0)
        self.advance(2.0)
        self.assertEqual(self.reported("reconnect"), [0.0, 0.0])
        self.advance(2.0)
        self.assertEqual(self.reported("reconnect"), [0.0, 0.0, policy(1)])
        errors = [f.value for f in self.reported("error")]
        self.assertEqual([type(e) for e in errors], [EtcdTimeout] * 3)
        for member in self.etcd.members:
            member.restore()
        self.advance(policy(1))
        self.assertEqual(w.endpoint, self.etcd.urls[0])
        first = self.set("/k", "1")
        self.settle()
        self.assertEqual(self.events(), [first])


class StopTests(MemoryWatcherTestCase):
    """
    stop() leaves no timer, no connection and no callback behind.
    """

    def test_stop_while_streaming(self) -> None:
        """Stopping aborts the stream; the server sees it go and later changes are not reported."""
        w = self.watcher()
        first = self.set("/k", "1")
        self.settle()
        stopping = w.stop()
        self.settle()
        self.successResultOf(stopping)
        self.assertEqual(self.etcd.watch_count, 0)
        self.assertEqual(self.etcd.open_connections(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.set("/k", "2")
        self.settle()
        self.assertEqual(self.events(), [first])
        self.assertEqual(self.reported("stop"), [None])

    def test_stop_while_catching_up(self) -> None:
        """Stopping during a pending long-poll and stream closes both."""
        old = self.set("/k", "0")
        self.set("/other", "x")
        w = self.watcher(index=old + 1)
        self.assertEqual(self.etcd.watch_count, 2)
        stopping = w.stop()
        self.settle()
        self.successResultOf(stopping)
        self.assertEqual(self.etcd.watch_count, 0)
        self.assertEqual(self.etcd.open_connections(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_during_backoff(self) -> None:
        """Stopping while waiting to retry cancels the wait."""
        self.etcd.members[0].fail(500)
        w = self.watcher()
        self.assertNotEqual(self.clock.getDelayedCalls(), [])
        stopping = w.stop()
        self.settle()
        self.successResultOf(stopping)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.etcd.open_connections(), [])
