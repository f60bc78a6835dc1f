"""
The README demo: events stream from a private etcd as a writer changes keys.

It starts an embedded etcd (the ``txetcd2.testing`` harness; the ``etcd`` binary must be
installed), runs the ``etcd-watch`` service on ``/demo`` in this process, printing one JSON line
per event on stdout, and runs ``examples/writer.py``'s changes against it. Then it keeps watching
until you press Ctrl-C: change keys yourself with the printed ``curl`` command meanwhile.

Run: make demo   (sets everything up), or: python examples/demo.py
"""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from writer import make_changes

from txetcd2 import EtcdClient
from txetcd2._tap import Options, makeService
from txetcd2.testing import EtcdBinaryNotFound, EtcdCluster

PREFIX = "/demo"


def start_logging() -> None:
    """
    Log (reconnects, resyncs, errors) to stderr, so that stdout holds only the event lines.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


async def main(reactor: Any) -> None:
    start_logging()
    cluster = EtcdCluster(1, reactor=reactor)
    try:
        await cluster.start()
    except EtcdBinaryNotFound as e:
        print(f"demo: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    url = cluster.client_urls[0]
    print(f"demo: embedded etcd at {url}; watching {PREFIX} recursively", file=sys.stderr)

    options = Options()
    # Index 1 on a fresh etcd: every change under /demo is reported, even those made before
    # the watch is up.
    options.parseOptions(["--endpoints", url, "--prefix", PREFIX, "--recursive", "--index", "1"])
    service = makeService(options, reactor, sys.stdout)
    service.startService()

    async def shutdown() -> None:
        try:
            await service.stopService()
        finally:
            await cluster.stop()
        print("demo: stopped; embedded etcd removed", file=sys.stderr, flush=True)

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(shutdown()))

    client = EtcdClient(url, reactor=reactor)
    try:
        await make_changes(reactor, client, PREFIX)
    finally:
        await client.close()
    print(
        "demo: writer done. Still watching; try in another terminal:\n"
        f"  curl -X PUT {url}/v2/keys{PREFIX}/hello -d value=world\n"
        "Press Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    await Deferred()  # until Ctrl-C (SIGINT) or SIGTERM stops the reactor


if __name__ == "__main__":
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    react(main)
