"""
Benchmark: a Watcher against a plain one-long-poll-per-event loop, in the same run.

Starts its own single-member etcd (the txetcd2 test harness), then for each
contestant fires a burst of writes to one key and measures:

- events/s: events delivered divided by the time from the first write to the
  delivery of the last event;
- last-event delay: time from the acknowledgement of the last write to the
  delivery of its event (0 when the event came before the acknowledgement).

Each round is bounded by ``--count`` events (default 800: within etcd's
1000-event history, so the plain loop cannot lose history) and ``--deadline``
seconds. Results are printed per round, then as ratios (watcher / plain)::

    PYTHONPATH=. python bench/watch_bench.py --count 800 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure

from txetcd2 import EtcdClient, EtcdResponse, EventIndexCleared
from txetcd2.testing import EtcdCluster

PARALLEL_WRITES = 20


async def burst(
    reactor: Any, writer: EtcdClient, key: str, count: int
) -> tuple[float, int, float]:
    """
    Fire ``count`` writes, ``PARALLEL_WRITES`` at a time.

    :returns: when the burst started, the index of the last write, when it was acknowledged.
    """
    semaphore = defer.DeferredSemaphore(PARALLEL_WRITES)
    started = reactor.seconds()
    results: list[EtcdResponse] = await defer.gatherResults(
        [semaphore.run(writer.set, key, str(i)) for i in range(count)]
    )
    return started, max(r.index for r in results), reactor.seconds()


def reached(delivered: list[tuple[int, float]], last: int) -> bool:
    return bool(delivered) and delivered[-1][0] >= last


def ignore_end(failure: Failure) -> None:
    failure.trap(defer.CancelledError, EventIndexCleared)


async def wait_for(reactor: Any, done: Callable[[], bool], deadline: float) -> bool:
    end = reactor.seconds() + deadline
    while not done():
        if reactor.seconds() > end:
            return False
        await task.deferLater(reactor, 0.01)
    return True


async def run_watcher(
    reactor: Any, urls: list[str], key: str, count: int, deadline: float
) -> dict[str, float]:
    client = EtcdClient(urls, reactor=reactor)
    writer = EtcdClient(urls, reactor=reactor)
    try:
        first = await writer.set(key, "start")
        delivered: list[tuple[int, float]] = []
        w = client.watcher(key, index=first.index + 1)
        w.on("change", lambda e: delivered.append((e.index, reactor.seconds())))
        w.start()
        started, last, acked = await burst(reactor, writer, key, count)
        ok = await wait_for(reactor, lambda: reached(delivered, last), deadline)
        await w.stop()
        return result(delivered, started, last, acked, ok)
    finally:
        await client.close()
        await writer.close()


async def run_plain(
    reactor: Any, urls: list[str], key: str, count: int, deadline: float
) -> dict[str, float]:
    client = EtcdClient(urls, reactor=reactor)
    writer = EtcdClient(urls, reactor=reactor)
    delivered: list[tuple[int, float]] = []
    try:
        first = await writer.set(key, "start")

        async def loop() -> None:
            index = first.index + 1
            while True:
                event = await client.watch(key, index=index)
                delivered.append((event.index, reactor.seconds()))
                index = event.index + 1

        polling = defer.Deferred.fromCoroutine(loop())
        polling.addErrback(ignore_end)
        started, last, acked = await burst(reactor, writer, key, count)
        ok = await wait_for(reactor, lambda: reached(delivered, last), deadline)
        polling.cancel()
        return result(delivered, started, last, acked, ok)
    finally:
        await client.close()
        await writer.close()


def result(
    delivered: list[tuple[int, float]], started: float, last: int, acked: float, ok: bool
) -> dict[str, float]:
    end = delivered[-1][1] if delivered else acked
    return {
        "events": float(len(delivered)),
        "events_per_s": len(delivered) / max(end - started, 1e-9),
        # The event may come before the write's own answer: that is no delay.
        "last_delay_ms": max(end - acked, 0.0) * 1000 if ok else float("inf"),
        "complete": 1.0 if ok else 0.0,
    }


async def main(reactor: Any, options: argparse.Namespace) -> None:
    cluster = EtcdCluster(1, reactor=reactor)
    await cluster.start()
    try:
        urls = cluster.client_urls
        rows: dict[str, list[dict[str, float]]] = {"watcher": [], "plain": []}
        for round_number in range(options.rounds):
            for name, run in (("watcher", run_watcher), ("plain", run_plain)):
                key = f"/bench/{name}{round_number}"
                row = await run(reactor, urls, key, options.count, options.deadline)
                rows[name].append(row)
                print(
                    f"round {round_number} {name:8} events={row['events']:.0f} "
                    f"events/s={row['events_per_s']:.0f} "
                    f"last-event delay={row['last_delay_ms']:.1f} ms "
                    f"{'complete' if row['complete'] else 'INCOMPLETE'}",
                    flush=True,
                )
        rate = {n: statistics.median(r["events_per_s"] for r in rs) for n, rs in rows.items()}
        delay = {n: statistics.median(r["last_delay_ms"] for r in rs) for n, rs in rows.items()}
        print(f"median events/s: watcher {rate['watcher']:.0f}, plain {rate['plain']:.0f}")
        print(f"median last-event delay: watcher {delay['watcher']:.1f} ms, ", end="")
        print(f"plain {delay['plain']:.1f} ms")
        print(f"ratio events/s (watcher / plain): {rate['watcher'] / rate['plain']:.2f}")
        print(
            "ratio last-event delay (watcher / plain): "
            f"{delay['watcher'] / max(delay['plain'], 1e-9):.3f}"
        )
    finally:
        await cluster.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--count", type=int, default=800, help="writes per burst")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per contestant")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds per round")
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, options)))
