"""
Workload D: one recursive txetcd2 watcher while a writer with 32 in flight
sets 5,000 keys below the watched prefix.

Figures: events received, missed, and the delay between the writer's end
(its last set acknowledged) and the watcher's last event; and what the
watcher reported when it missed some: its ``"lagging"`` reports (etcd
dropped the stream; the history was lost) and resyncs, and its probes.
With ``BENCH_D_LOG=DIR`` set, each run's log (``twisted.logger``, as text)
goes to ``DIR/<prefix>.log``.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: Seconds to wait for the last events once the writer is done.
DRAIN_DEADLINE = 10.0


async def watch_while_writing(reactor: Any, url: str, n: int, inflight: int, prefix: str) -> Any:
    """
    Run workload D.

    :param reactor: the running reactor.
    :param url: etcd's client URL.
    :param n: how many keys the writer sets.
    :param inflight: the writer's concurrency.
    :param prefix: the watched prefix.
    :returns: the figures.
    """
    from twisted.internet.defer import Deferred, gatherResults
    from twisted.internet.task import deferLater

    from txetcd2 import EtcdClient

    logs = os.environ.get("BENCH_D_LOG")
    if logs:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        path = os.path.join(logs, prefix.replace("/", "_") + ".log")
        globalLogBeginner.beginLoggingTo(
            [textFileLogObserver(open(path, "w"))],  # noqa: SIM115 - open for the run
            redirectStandardIO=False,
        )
    watching = EtcdClient(url, reactor=reactor)
    writing = EtcdClient(url, reactor=reactor)
    start_index = (await writing.set(f"{prefix}/start", "0")).etcd_index
    seen: set[str] = set()
    last_event = [0.0]

    def changed(event: Any) -> None:
        key = event.node.key
        if key.startswith(f"/{prefix}/k"):
            seen.add(key)
            last_event[0] = time.perf_counter()

    watcher = watching.watcher(prefix, recursive=True, index=start_index + 1)
    watcher.on("change", changed)
    resyncs = [0]
    watcher.on("resync", lambda snapshot: resyncs.__setitem__(0, resyncs[0] + 1))
    watcher.start()
    left = n
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def writer() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await writing.set(f"{prefix}/k{left}", "v")

    await gatherResults([Deferred.fromCoroutine(writer()) for _ in range(inflight)])
    written = time.perf_counter()
    while len(seen) < n and time.perf_counter() - written < DRAIN_DEADLINE:
        await deferLater(reactor, 0.001)
    cpu = time.process_time() - cpu0
    await watcher.stop()
    await watching.close()
    await writing.close()
    return {
        "watch": {
            "ops": n / (written - t0),
            "received": float(len(seen)),
            "missed": float(n - len(seen)),
            "delay_ms": max(0.0, last_event[0] - written) * 1e3 if seen else -1.0,
            "cpu_us": cpu / n * 1e6,
            "lagged": float(watcher.lagged),
            "resyncs": float(resyncs[0]),
            "probes": float(watcher.probes),
        }
    }
