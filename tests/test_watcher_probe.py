"""
Unit tests for the liveness probe of a quiet stream, over a recording agent and a Clock.
"""

import json
from typing import Any

from twisted.internet.error import ConnectionLost

from tests.test_watch_hub import HubTestCase
from tests.test_watcher import WatcherTestCase, line
from txetcd2 import EtcdTimeout
from txetcd2._watch import watcher as watcher_module
from txetcd2.testing._fakes import error_body, node_body
from txetcd2.watch import Lag, State, Watcher


class ProbeTestCase(WatcherTestCase):
    """
    Watchers with the probe on: 5 s of quiet, a 30 s idle timer.
    """

    def watcher(self, key: str = "/k", **kwargs: Any) -> Watcher:
        """
        A recorded watcher probing after 5 s of quiet, also recording "lagging".
        """
        kwargs.setdefault("probe_interval", 5.0)
        w = super().watcher(key, **kwargs)
        w.on("lagging", lambda behind: self.seen.append(("lagging", behind)))
        return w


class ProbeTests(ProbeTestCase):
    """
    A quiet stream is checked with a one-shot long-poll at the next wanted index.
    """

    def test_probe_after_quiet(self) -> None:
        """After 5 s without a byte, a long-poll at the next index goes to the same member."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 11))
        self.clock.advance(4.9)
        self.assertEqual(self.agent.pending(), [])
        self.clock.advance(0.1)
        req, query = self.request()
        self.assertEqual(query, {"wait": "true", "waitIndex": "12"})
        self.assertEqual(req.netloc, "http://h1:2379")
        self.assertIs(w.state, State.PROBING)
        self.assertEqual(w.probes, 1)

    def test_bytes_postpone_probe(self) -> None:
        """Every byte of the stream restarts the probe's interval."""
        w = self.watcher()
        w.start()
        response = self.stream(10, line("set", "/k", 11))
        self.clock.advance(4)
        response.write(line("set", "/k", 12)[:5])
        self.clock.advance(4)
        self.assertEqual(self.agent.pending(), [])
        self.clock.advance(1)
        self.assertEqual(self.request()[1]["waitIndex"], "12")

    def test_quiet_since_opened(self) -> None:
        """A stream that carried no event is not probed: etcd cannot have dropped it."""
        w = self.watcher()
        w.start()
        self.stream(10)
        self.clock.advance(29.9)
        self.assertEqual(self.agent.pending(), [])
        self.assertEqual(w.probes, 0)

    def test_blocked_probe_advances(self) -> None:
        """A probe that blocks is aborted after its grace; the watch resumes after its index."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 11))
        self.clock.advance(5)
        req, _ = self.request()
        probe = req.respond(200, None, {"x-etcd-index": "40"}, finish=False)
        self.clock.advance(0.99)
        self.assertFalse(probe.transport.aborted)
        self.clock.advance(0.01)
        self.assertTrue(probe.transport.aborted)
        self.assertFalse(stream.transport.aborted)
        self.assertIs(w.state, State.STREAMING)
        self.assertEqual(w.index, 11)
        self.assertNotIn("lagging", self.names())
        self.clock.advance(0)
        stream.finish()
        self.clock.advance(0)
        self.stream(40)
        self.clock.advance(1)
        # Caught up to 40 by the probe: the new stream needs no long-polls.
        self.assertEqual(self.agent.pending(), [])

    def test_probe_finds_missed_event(self) -> None:
        """An event from history means etcd dropped the stream: lagging, then catch up."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 11))
        self.clock.advance(5)
        self.request()[0].respond(200, line("set", "/k", 12), {"x-etcd-index": "300"})
        self.assertTrue(stream.transport.aborted)
        self.assertIn(("lagging", Lag("dropped", 289)), self.seen)
        self.assertEqual(w.lagged, 1)
        self.assertEqual(self.events(), [11, 12])
        self.clock.advance(0)
        self.assertIn(("reconnect", 0.0), self.seen)
        req, query = self.request()
        self.assertEqual(req.netloc, "http://h1:2379")
        self.assertEqual(query, {"wait": "true", "stream": "true"})
        req.respond(200, None, {"x-etcd-index": "300"}, finish=False)
        self.assertIs(w.state, State.CATCHING_UP)
        self.assertEqual(self.request()[1]["waitIndex"], "13")

    def test_probe_gets_new_event(self) -> None:
        """An event newer than the probe's index is delivered; the stream is fine and stays."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 11))
        self.clock.advance(5)
        self.request()[0].respond(200, line("set", "/k", 41), {"x-etcd-index": "40"})
        stream.write(line("set", "/k", 41) + line("set", "/k", 42))
        self.assertEqual(self.events(), [11, 41, 42])
        self.assertFalse(stream.transport.aborted)
        self.assertNotIn("lagging", self.names())
        self.assertIs(w.state, State.STREAMING)

    def test_history_lost(self) -> None:
        """A probe answered with errorCode 401 leads to a resync."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 11))
        self.clock.advance(5)
        self.request()[0].respond(400, error_body(401, "outdated", "", 2000))
        self.assertTrue(stream.transport.aborted)
        self.clock.advance(0)
        req, query = self.request()
        self.assertEqual(query, {"sorted": "true", "quorum": "true"})
        self.assertIs(w.state, State.RESYNCING)
        req.respond(
            200, {"action": "get", "node": {"key": "/k", "value": "v"}}, {"x-etcd-index": "2001"}
        )
        self.clock.advance(0)
        self.assertEqual(self.names().count("resync"), 1)
        self.assertEqual(w.index, 2001)

    def test_probe_body_cut(self) -> None:
        """A probe whose body is cut short is an error: the watcher reconnects after a back-off."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 10))
        self.clock.advance(5)
        probe = self.request()[0].respond(200, None, {"x-etcd-index": "10"}, finish=False)
        probe.fail(ConnectionLost())
        self.assertTrue(stream.transport.aborted)
        self.clock.advance(0)
        self.assertEqual(self.names()[-2:], ["error", "reconnect"])

    def test_probe_empty_answer(self) -> None:
        """A probe answered with an empty body proves nothing: the stream goes on, probed again."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 10))
        self.clock.advance(5)
        self.request()[0].respond(200, None, {"x-etcd-index": "10"})
        self.assertFalse(stream.transport.aborted)
        self.assertIs(w.state, State.STREAMING)
        self.clock.advance(5)
        self.assertEqual(self.request()[1]["waitIndex"], "11")

    def test_paused_member(self) -> None:
        """A probe that gets no headers times out: the watcher leaves the stream and reconnects."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 10))
        self.clock.advance(5)
        req, _ = self.request()
        self.clock.advance(2.0)
        self.assertTrue(req.cancelled)
        self.assertTrue(stream.transport.aborted)
        errors = [p for n, p in self.seen if n == "error"]
        self.assertIsNotNone(errors[0].check(EtcdTimeout))

    def test_stop_while_probing(self) -> None:
        """stop() aborts the probe and the stream; no timer is left."""
        w = self.watcher()
        w.start()
        stream = self.stream(10, line("set", "/k", 10))
        self.clock.advance(5)
        req, _ = self.request()
        probe = req.respond(200, None, {"x-etcd-index": "10"}, finish=False)
        stopping = w.stop()
        self.assertTrue(probe.transport.aborted)
        self.assertTrue(stream.transport.aborted)
        self.clock.advance(0)
        self.successResultOf(stopping)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_before_probe_headers(self) -> None:
        """stop() while the probe waits for its headers cancels it."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 10))
        self.clock.advance(5)
        req, _ = self.request()
        stopping = w.stop()
        self.assertTrue(req.cancelled)
        self.clock.advance(0)
        self.successResultOf(stopping)

    def test_jitter(self) -> None:
        """Probes wait up to 20 % longer at random, so that watchers started together spread."""
        self.patch(watcher_module, "jitter", lambda: 1.0)
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 10))
        self.clock.advance(5.99)
        self.assertEqual(self.agent.pending(), [])
        self.clock.advance(0.01)
        self.assertEqual(self.request()[1]["waitIndex"], "11")

    def test_probe_off(self) -> None:
        """probe_interval=None sends no probe; the idle timer still renews the stream."""
        w = self.watcher(probe_interval=None)
        w.start()
        self.stream(10)
        self.clock.advance(29.9)
        self.assertEqual(self.agent.pending(), [])

    def test_bad_probe_interval(self) -> None:
        """A probe interval that is not a positive number is refused before any I/O."""
        with self.assertRaises(ValueError):
            self.client.watcher("/k", probe_interval=0)
        with self.assertRaises(TypeError):
            self.client.watcher("/k", probe_interval="5")  # type: ignore[arg-type]

    def test_cost_per_quiet_minute(self) -> None:
        """The quiet minute after a change costs 3 probes (after 5, 10, 20 s) and one renewal."""
        w = self.watcher(idle_timeout=60.0)
        w.start()
        self.stream(10, line("set", "/k", 11))
        sent = 1
        for _ in range(600):
            self.clock.advance(0.1)
            for req in self.agent.pending():
                # Streams and probes alike are accepted and stay silent.
                sent += 1
                req.respond(200, None, {"x-etcd-index": "11"}, finish=False)
        self.assertEqual(w.probes, 3)
        self.assertEqual(sent, 5)
        # The renewed stream carried no event: the next quiet minute costs no probe.
        for _ in range(605):
            self.clock.advance(0.1)
            for req in self.agent.pending():
                sent += 1
                req.respond(200, None, {"x-etcd-index": "11"}, finish=False)
        self.assertEqual(w.probes, 3)
        self.assertEqual(sent, 6)


class SlowConsumerTests(ProbeTestCase):
    """
    A slow consumer is reported as "lagging" before etcd drops its stream, and probed sooner.
    """

    def test_busy_callbacks(self) -> None:
        """Callbacks taking the whole reactor for a second: "busy", then a probe after 0.5 s."""
        w = self.watcher()
        w.on("change", lambda event: self.clock.advance(0.1))
        w.start()
        stream = self.stream(10)
        stream.write(b"".join(line("set", "/k", i) for i in range(11, 22)))
        self.assertIn(("lagging", Lag("busy")), self.seen)
        self.assertEqual(w.lagged, 1)
        self.assertEqual(self.agent.pending(), [])
        self.clock.advance(0.5)
        self.assertEqual(self.request()[1]["waitIndex"], "22")

    def test_caught_up(self) -> None:
        """A probe that blocks ends the busy state: the next one waits twice the interval."""
        w = self.watcher()
        w.on("change", lambda event: self.clock.advance(0.1))
        w.start()
        self.stream(10).write(b"".join(line("set", "/k", i) for i in range(11, 22)))
        self.clock.advance(0.5)
        self.request()[0].respond(200, None, {"x-etcd-index": "30"}, finish=False)
        self.clock.advance(1.0)
        self.clock.advance(9.9)
        self.assertEqual(self.agent.pending(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.request()[1]["waitIndex"], "31")

    def test_fast_callbacks(self) -> None:
        """Callbacks taking a third of the time are not reported."""
        w = self.watcher()
        stream = self.stream_after_start(w)
        for i in range(11, 31):
            self.clock.advance(0.2)
            stream.write(line("set", "/k", i))
        self.assertNotIn("lagging", self.names())
        self.assertEqual(w.lagged, 0)

    def test_history_lost(self) -> None:
        """A probe refused with errorCode 401 reports "history lost" with the distance."""
        w = self.watcher()
        w.start()
        self.stream(10, line("set", "/k", 11))
        self.clock.advance(5)
        self.request()[0].respond(400, error_body(401, "outdated", "", 2000))
        self.clock.advance(0)
        self.assertIn(("lagging", Lag("history lost", 1989)), self.seen)
        self.assertEqual(w.lagged, 1)
        self.assertEqual(
            str(Lag("history lost", 1989)), "history lost, at least 1989 indexes behind"
        )

    def stream_after_start(self, w: Watcher) -> Any:
        """
        Start ``w`` and answer its stream request, open, at index 10.
        """
        w.start()
        return self.stream(10)


class HubProbeTests(HubTestCase):
    """
    A hub pays the probe once, for all its local watchers.
    """

    def test_one_probe_per_hub(self) -> None:
        """Three local watchers on a quiet hub: one stream, one probe."""
        for key in ("/p/a", "/p/b", "/p/c"):
            self.local(key).start()
        req = self.agent.pop()
        stream = req.respond(200, None, {"x-etcd-index": "10"}, finish=False)
        stream.write(json.dumps(node_body("set", "/p/a", "1", 11)).encode() + b"\n")
        self.clock.advance(5)
        probe = self.agent.pop()
        self.assertIn("waitIndex=12", probe.target)
        self.assertEqual(self.hub.source.probes, 1)
