"""
Logs a person can read, against real etcd: a burst of requests logs nothing,
and a failed member logs one line per attempt that says what failed and where.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import DeferredSemaphore, gatherResults
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from txetcd2 import EtcdClient
from txetcd2.testing import start_etcd

from .test_failover import bounded, dead_endpoint


class LogTests(TestCase):
    """
    What the client logs while it works.
    """

    timeout = 300

    def capture(self) -> list[LogEvent]:
        events: list[LogEvent] = []

        def observe(event: LogEvent) -> None:
            if event.get("log_level", LogLevel.info) >= LogLevel.info:
                events.append(event)

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events

    async def test_requests_log_nothing(self) -> None:
        """500 gets at 100 in flight (new pooled connections included) log no line at all."""
        cluster = await start_etcd(self, 1)
        client = EtcdClient(cluster.client_urls, reactor=reactor, pool_size=100)
        self.addCleanup(client.close)
        await bounded(client.set("logs/k", "v"))
        events = self.capture()
        limit = DeferredSemaphore(100)
        await bounded(gatherResults([limit.run(client.get, "logs/k") for _ in range(500)]))
        self.assertEqual([formatEvent(e) for e in events], [])

    async def test_failed_member_one_line(self) -> None:
        """A dead member costs one warning per failed attempt, naming the member and the
        call, with its error in words (no Failure reprs), and nothing else."""
        cluster = await start_etcd(self, 1)
        dead = dead_endpoint()
        client = EtcdClient([dead, *cluster.client_urls], reactor=reactor)
        self.addCleanup(client.close)
        events = self.capture()
        await bounded(client.get("logs/missing", timeout=5).addErrback(lambda _: None))
        lines: list[Any] = [formatEvent(e) for e in events]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(dead, lines[0])
        self.assertIn("GET /logs/missing", lines[0])
        self.assertNotIn("Failure", lines[0])
        self.assertEqual(events[0]["log_namespace"], "txetcd2.session")
