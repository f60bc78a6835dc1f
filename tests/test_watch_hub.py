"""
Unit tests for watch coalescing (WatchHub), over a recording agent and a Clock.
"""

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twisted.application.internet import backoffPolicy
from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txetcd2 import EtcdClient, EtcdResponse, HubWatcher, WatchHub
from txetcd2._watch import watcher as watcher_module
from txetcd2.testing._fakes import FakeRequest, FakeResponse, RecordingAgent, error_body, node_body


def line(action: str, key: str, index: int, value: str | None = "v", **extra: Any) -> bytes:
    """
    One event as etcd streams it: JSON and a newline.
    """
    return json.dumps(node_body(action, key, value, index, **extra)).encode() + b"\n"


class HubTestCase(SynchronousTestCase):
    """
    Builds a client over a recording agent and a Clock, a hub on ``/p``, and
    records what each local watcher reports.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = RecordingAgent(self.clock)
        # The probe's jitter pinned: exact delays.
        self.patch(watcher_module, "jitter", lambda: 0.0)
        self.client = EtcdClient("http://h1:2379", reactor=self.clock, agent=self.agent)
        self.hub = WatchHub(
            self.client, "/p", retry_policy=backoffPolicy(jitter=lambda: 0.0), idle_timeout=30
        )
        self.seen: dict[str, list[tuple[str, Any]]] = {}
        self.locals: list[HubWatcher] = []

    def tearDown(self) -> None:
        for w in self.locals:
            stopping = w.stop()
            self.clock.advance(0)
            self.successResultOf(stopping)
        self.successResultOf(self.client.close())
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def local(self, key: str, recursive: bool = False, name: str | None = None) -> HubWatcher:
        """
        A local watcher whose every event is recorded in ``self.seen[name or key]``.
        """
        w = self.hub.watcher(key, recursive=recursive)
        record = self.seen.setdefault(name or key, [])
        for event in ("change", "resync", "reconnect", "error", "stop"):
            w.on(event, lambda payload, event=event: record.append((event, payload)))
        self.locals.append(w)
        return w

    def changes(self, name: str) -> list[tuple[str, int]]:
        """
        The (key, index) of the changes a local watcher got.
        """
        return [(p.node.key, p.index) for n, p in self.seen[name] if n == "change"]

    def request(self) -> tuple[FakeRequest, dict[str, str]]:
        """
        The single pending request and its query.
        """
        req = self.agent.pop()
        return req, dict(parse_qsl(urlsplit(req.uri).query))

    def stream(self, store: int, *chunks: bytes) -> FakeResponse:
        """
        Answer the pending request with headers and body chunks.
        """
        req, _ = self.request()
        response = req.respond(200, None, {"x-etcd-index": str(store)}, finish=False)
        for chunk in chunks:
            response.write(chunk)
        return response


class SharingTests(HubTestCase):
    """
    Many local watchers share one recursive stream, started and stopped with them.
    """

    def test_one_stream_for_all(self) -> None:
        """Three started local watchers send one recursive stream request on the prefix."""
        for key in ("/p/a", "/p/b", "/p/c"):
            self.local(key)
        self.assertEqual(self.agent.requests, [])
        for w in self.locals:
            w.start()
        req, query = self.request()
        self.assertEqual(urlsplit(req.uri).path, "/v2/keys/p")
        self.assertEqual(query, {"wait": "true", "recursive": "true", "stream": "true"})
        self.assertEqual(self.hub.running, 3)

    def test_last_stop_stops_the_stream(self) -> None:
        """The stream stays while one local watcher runs and is aborted with the last."""
        a, b = self.local("/p/a"), self.local("/p/b")
        a.start()
        b.start()
        response = self.stream(10)
        self.successResultOf(a.stop())
        self.assertFalse(response.transport.aborted)
        self.assertEqual(self.seen["/p/a"][-1], ("stop", None))
        stopping = b.stop()
        self.assertTrue(response.transport.aborted)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertEqual(self.seen["/p/b"][-1], ("stop", None))
        self.assertEqual(self.hub.running, 0)
        self.assertFalse(self.hub.source.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart_during_stop(self) -> None:
        """A local watcher started while the stream stops gets a new stream once it stopped."""
        a, b = self.local("/p/a"), self.local("/p/b")
        a.start()
        self.stream(10, line("set", "/p/a", 11))
        stopping = a.stop()
        b.start()
        self.assertNoResult(stopping)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertTrue(self.hub.source.running)
        self.stream(13)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "12")

    def test_stop_and_start_again(self) -> None:
        """A local watcher started again during its stop runs once the stop completed."""
        a = self.local("/p/a")
        a.start()
        self.stream(10)
        stopping = a.stop()
        a.start()
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertTrue(a.running)
        self.assertEqual(self.hub.running, 1)
        self.stream(10, line("set", "/p/a", 11))
        self.assertEqual(self.changes("/p/a"), [("/p/a", 11)])

    def test_iservice(self) -> None:
        """A local watcher is an IService whose running flag follows start and stop."""
        w = self.local("/p/a")
        self.assertTrue(verifyObject(IService, w))
        w.startService()
        self.assertTrue(w.running)
        self.request()
        self.successResultOf(w.stopService())
        self.assertFalse(w.running)


class RoutingTests(HubTestCase):
    """
    Each local watcher gets exactly what a plain Watcher of its key would, once, in order.
    """

    def test_keys_and_subtrees(self) -> None:
        """A plain local watcher gets its key's changes; a recursive one also those below it."""
        self.local("/p/a").start()
        self.local("/p/b", recursive=True).start()
        self.local("/p/b", name="b-flat").start()
        self.local("/p").start()
        self.stream(
            10,
            line("set", "/p/a", 11),
            line("set", "/p/a/x", 12),
            line("set", "/p/b/x/y", 13),
            line("set", "/p/b", 14),
            line("set", "/p/c", 15),
            line("update", "/p/a", 16),
        )
        self.assertEqual(self.changes("/p/a"), [("/p/a", 11), ("/p/a", 16)])
        self.assertEqual(self.changes("/p/b"), [("/p/b/x/y", 13), ("/p/b", 14)])
        self.assertEqual(self.changes("b-flat"), [("/p/b", 14)])
        self.assertEqual(self.changes("/p"), [])
        self.assertEqual([w.index for w in self.locals], [16, 14, 14, None])

    def test_directory_removal(self) -> None:
        """Deleting or expiring a directory above a key reaches its watchers; a file does not."""
        self.local("/p/d/k").start()
        self.local("/p/e").start()
        self.stream(
            10,
            line("delete", "/p/d", 11, None, dir=True),
            line("expire", "/p", 12, None, dir=True),
            line("delete", "/p/e/z", 13, None),
            line("compareAndDelete", "/p/d/k", 14, None),
        )
        self.assertEqual(self.changes("/p/d/k"), [("/p/d", 11), ("/p", 12), ("/p/d/k", 14)])
        self.assertEqual(self.changes("/p/e"), [("/p", 12)])

    def test_removal_above_the_prefix(self) -> None:
        """Deleting a directory above the prefix reaches every local watcher."""
        hub = WatchHub(self.client, "/p/q")
        w = hub.watcher("/p/q/k")
        seen: list[EtcdResponse] = []
        w.on("delete", seen.append)
        w.start()
        self.stream(10, line("delete", "/p", 11, None, dir=True))
        self.assertEqual([e.node.key for e in seen], ["/p"])
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)

    def test_joins_at_the_stream_position(self) -> None:
        """A local watcher started on a running stream starts at its index, gets what follows."""
        self.local("/p/a").start()
        response = self.stream(10, line("set", "/p/a", 11))
        late = self.local("/p/a", name="late")
        late.start()
        self.assertEqual(late.index, 11)
        self.assertEqual(self.agent.pending(), [])
        response.write(line("set", "/p/a", 12))
        self.assertEqual(self.changes("late"), [("/p/a", 12)])
        self.assertEqual(self.changes("/p/a"), [("/p/a", 11), ("/p/a", 12)])

    def test_reconnect_forwarded(self) -> None:
        """A renewed stream is reported as a reconnect to every running local watcher."""
        self.local("/p/a").start()
        self.local("/p/b").start()
        self.stream(10, line("set", "/p/a", 11)).finish()
        self.assertIn(("reconnect", 0.0), self.seen["/p/a"])
        self.assertIn(("reconnect", 0.0), self.seen["/p/b"])
        self.stream(13)
        _, query = self.request()
        self.assertEqual(query["waitIndex"], "12")

    def test_error_forwarded(self) -> None:
        """A failed request is reported as an error, then a reconnect, to each local watcher."""
        self.local("/p/a").start()
        self.request()[0].refuse()
        self.assertEqual([n for n, _ in self.seen["/p/a"]], ["error", "reconnect"])
        self.clock.advance(1.5)
        self.request()

    def test_callback_error_stays_local(self) -> None:
        """A raising callback is reported to its own watcher only; the others still get events."""
        a = self.local("/p/a")
        a.on("set", lambda event: 1 / 0)
        a.start()
        self.local("/p/a", name="other").start()
        self.stream(10, line("set", "/p/a", 11))
        self.assertEqual([n for n, _ in self.seen["/p/a"]], ["change", "error"])
        self.assertEqual([n for n, _ in self.seen["other"]], ["change"])
        self.flushLoggedErrors(ZeroDivisionError)

    def test_async_for(self) -> None:
        """async for yields each change and ends when the local watcher stops."""
        w = self.hub.watcher("/p/a")
        got: list[int] = []

        async def consume() -> None:
            async for event in w:
                got.append(event.index)

        done = Deferred.fromCoroutine(consume())
        self.stream(10, line("set", "/p/b", 11), line("set", "/p/a", 12))
        self.assertEqual(got, [12])
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.successResultOf(done)


class ResyncTests(HubTestCase):
    """
    A resync of the prefix reaches each local watcher cut down to its key.
    """

    def test_snapshots_cut_down(self) -> None:
        """Each local watcher gets its subtree (flat or deep) or an empty node when missing."""
        hub = WatchHub(self.client, "/p", index=5)
        watchers = {
            "flat": hub.watcher("/p/d"),
            "deep": hub.watcher("/p/d", recursive=True),
            "file": hub.watcher("/p/d/x"),
            "missing": hub.watcher("/p/nope"),
        }
        snapshots: dict[str, EtcdResponse] = {}
        for name, w in watchers.items():

            def keep(snapshot: EtcdResponse, name: str = name) -> None:
                snapshots[name] = snapshot

            w.on("resync", keep)
            w.start()
        self.assertEqual([w.index for w in watchers.values()], [4, 4, 4, 4])
        self.stream(2000)
        self.request()[0].respond(400, error_body(401, "outdated", "", 2000))
        req, query = self.request()
        self.assertEqual(urlsplit(req.uri).path, "/v2/keys/p")
        self.assertEqual(query, {"recursive": "true", "sorted": "true", "quorum": "true"})
        tree = node_body("get", "/p", None, 3, dir=True)
        d = node_body("set", "/p/d", None, 4, dir=True)["node"]
        sub = node_body("set", "/p/d/s", None, 6, dir=True)["node"]
        sub["nodes"] = [node_body("set", "/p/d/s/y", "2", 7)["node"]]
        d["nodes"] = [node_body("set", "/p/d/x", "1", 5)["node"], sub]
        tree["node"]["nodes"] = [d]
        req.respond(200, tree, {"x-etcd-index": "2001"})
        self.clock.advance(0)
        flat, deep = snapshots["flat"], snapshots["deep"]
        self.assertEqual([n.key for n in flat.node.nodes], ["/p/d/x", "/p/d/s"])
        self.assertEqual(flat.node.nodes[1].nodes, ())
        self.assertTrue(flat.node.nodes[1].dir)
        self.assertEqual(deep.node.leaves(), {"/p/d/x": "1", "/p/d/s/y": "2"})
        self.assertEqual(snapshots["file"].node.value, "1")
        missing = snapshots["missing"]
        self.assertEqual((missing.node.key, missing.node.modified_index), ("/p/nope", 0))
        self.assertEqual({s.etcd_index for s in snapshots.values()}, {2001})
        self.assertEqual({s.action for s in snapshots.values()}, {"get"})
        self.assertEqual([w.index for w in watchers.values()], [2001] * 4)
        self.stream(2001, line("set", "/p/d/x", 2002))
        self.assertEqual(watchers["file"].index, 2002)
        self.assertEqual(watchers["flat"].index, 2001)
        self.assertEqual(watchers["deep"].index, 2002)
        self.locals.extend(watchers.values())


class ValidationTests(HubTestCase):
    """
    Bad arguments fail at once, before any I/O.
    """

    def test_bad_keys(self) -> None:
        """Keys outside the prefix or hidden below it, and bad flags, raise clear errors."""
        self.assertRaises(ValueError, self.hub.watcher, "/q/a")
        self.assertRaises(ValueError, self.hub.watcher, "/pp")
        self.assertRaises(ValueError, self.hub.watcher, "/p/_hidden/a")
        self.assertRaises(ValueError, self.hub.watcher, "/p/../a")
        self.assertRaises(TypeError, self.hub.watcher, 5)
        self.assertRaises(TypeError, self.hub.watcher, "/p/a", recursive="yes")
        self.assertRaises(ValueError, self.local("/p/a").on, "nope", print)
        self.assertRaises(TypeError, self.local("/p/a").on, "change", 5)
        self.assertRaises(ValueError, self.local("/p/a").off, "change", print)
        self.assertEqual(self.agent.requests, [])

    def test_root_prefix(self) -> None:
        """A hub on the root takes any key and routes by it."""
        hub = WatchHub(self.client, "/")
        w = hub.watcher("a/b")
        self.assertEqual((w.key, hub.prefix), ("/a/b", "/"))
        seen: list[int] = []
        w.on("change", lambda e: seen.append(e.index))
        w.start()
        self.stream(10, line("set", "/a", 11), line("set", "/a/b", 12))
        self.assertEqual(seen, [12])
        self.assertIn("/a/b", repr(w))
        self.assertIn("watchers=1", repr(hub))
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)
