"""
Unit tests for what the watcher logs: one readable line per reconnect, failures as fields.
"""

from typing import Any, cast

from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.python.failure import Failure

from tests.test_watcher import WatcherTestCase, line
from txetcd2 import EtcdConnectionError, Watcher


class LogTests(WatcherTestCase):
    """
    Log lines a person can read.
    """

    endpoints = "http://h1:2379,http://h2:2379"

    def logged(self, w: Watcher) -> list[dict[str, Any]]:
        """
        Capture the events ``w`` logs.
        """
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        w.log = Logger(namespace=type(w).log.namespace, source=w, observer=observer)
        return events

    def test_namespace(self) -> None:
        """The watchers log under stable public names."""
        from txetcd2.watch import HubWatcher, WatchHub

        self.assertEqual(Watcher.log.namespace, "txetcd2.watch.Watcher")
        self.assertEqual(self.watcher().log.namespace, "txetcd2.watch.Watcher")
        self.assertEqual(HubWatcher.log.namespace, "txetcd2.watch.HubWatcher")
        self.assertEqual(WatchHub.log.namespace, "txetcd2.watch.WatchHub")

    def test_one_line_per_failed_reconnect(self) -> None:
        """A failure: what failed, where, where next and when, with the failure as a field."""
        w = self.watcher(retry_policy=lambda attempt: 1.0 / 3)
        events = self.logged(w)
        w.start()
        self.request()[0].refuse()
        self.request()[0].refuse()
        texts = [formatEvent(e) for e in events]
        self.assertTrue(texts[-1].startswith("watch /k failed at http://h2:2379: "), texts[-1])
        self.assertIn("refused", texts[-1])
        self.assertTrue(
            texts[-1].endswith("; reconnecting to http://h1:2379 in 0.33s (attempt 2)"), texts[-1]
        )
        self.assertIsInstance(events[-1]["failure"], Failure)
        self.assertIsNotNone(events[-1]["failure"].check(EtcdConnectionError))
        self.assertEqual(events[-1]["log_level"], LogLevel.warn)
        self.assertNotIn("<", texts[-1])
        self.assertEqual(len(events), 2)

    def test_renewal(self) -> None:
        """A clean end: one line saying so, where, and the index the watch resumes from."""
        w = self.watcher()
        events = self.logged(w)
        w.start()
        self.stream(10, line("set", "/k", 11), finish=True)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "watch /k: the stream ended at http://h1:2379; reconnecting to "
                "http://h1:2379 at once from index 12"
            ],
        )

    def test_idle_renewal(self) -> None:
        """Silence: one line with the seconds rounded to 2 decimals and the next member."""
        w = self.watcher(idle_timeout=1 / 3)
        events = self.logged(w)
        w.start()
        self.stream(10)
        self.clock.advance(1 / 3)
        self.clock.advance(0)
        self.assertEqual(
            [formatEvent(e) for e in events],
            [
                "watch /k: nothing came for 0.33s at http://h1:2379; reconnecting to "
                "http://h2:2379 at once from index 11"
            ],
        )

    def test_stop_before_any_change(self) -> None:
        """A watcher stopped before its first change never says "index None"."""
        w = self.watcher()
        events = self.logged(w)
        w.start()
        self.stream(10)
        stopping = w.stop()
        self.clock.advance(0)
        self.successResultOf(stopping)
        texts = [formatEvent(e) for e in events]
        self.assertEqual(texts, ["watch /k stopped before its first change"])
