"""
A watcher that keeps a local copy of a directory, with resync handling.

The pattern: read the tree once (a quorum read), then watch from the index of that read, so no
change is missed between the two. Apply each change to the copy. If etcd's event history no
longer reaches back far enough (only the last 1000 events are kept), the watcher reads the tree
again and hands it over as a "resync": replace the whole copy with it.

Run: python examples/watcher.py [ENDPOINTS] [PREFIX] [COUNT]   (or set TXETCD2_ENDPOINTS)
Stops after COUNT changes when given, else runs until Ctrl-C. Try it with examples/writer.py.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from txetcd2 import EtcdClient, EtcdResponse, KeyNotFound

GONE = {"delete", "expire", "compareAndDelete"}


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


class Mirror:
    """
    A local copy of every value below a prefix.
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def replace(self, snapshot: EtcdResponse) -> None:
        """
        Start again from a full read of the tree.
        """
        self.values = snapshot.node.leaves()

    def apply(self, event: EtcdResponse) -> None:
        """
        Apply one change; deleting or expiring a directory removes everything below it.
        """
        key = event.node.key
        if event.action in GONE:
            below = key.rstrip("/") + "/"
            self.values = {
                k: v for k, v in self.values.items() if k != key and not k.startswith(below)
            }
        elif not event.node.dir and event.node.value is not None:
            self.values[key] = event.node.value


async def main(reactor: Any, urls: str, prefix: str, count: int | None) -> None:
    client = EtcdClient(urls, reactor=reactor)
    mirror = Mirror()
    try:
        snapshot = await client.get(prefix, recursive=True, quorum=True)
        mirror.replace(snapshot)
        start = snapshot.etcd_index + 1
    except KeyNotFound as e:
        start = e.index + 1  # the error carries the store index
    print(f"{len(mirror.values)} keys under {prefix}; watching from index {start}", flush=True)

    watcher = client.watcher(prefix, index=start, recursive=True)
    done: Deferred[None] = Deferred()
    seen = 0

    def on_change(event: EtcdResponse) -> None:
        nonlocal seen
        mirror.apply(event)
        seen += 1
        print(f"{event.action} {event.node.key} -> {len(mirror.values)} keys", flush=True)
        if count is not None and seen >= count and not done.called:
            done.callback(None)

    def on_resync(snapshot: EtcdResponse) -> None:
        mirror.replace(snapshot)
        print(f"resync at index {snapshot.etcd_index}: {len(mirror.values)} keys", flush=True)

    watcher.on("change", on_change)
    watcher.on("resync", on_resync)
    watcher.on("reconnect", lambda delay: print(f"reconnecting in {delay:.1f}s", flush=True))
    watcher.start()
    try:
        await done
    finally:
        await watcher.stop()
        await client.close()
    print("final:", ", ".join(f"{k}={v}" for k, v in sorted(mirror.values.items())), flush=True)


if __name__ == "__main__":
    react(
        main,
        [
            endpoints(sys.argv),
            sys.argv[2] if len(sys.argv) > 2 else "/demo",
            int(sys.argv[3]) if len(sys.argv) > 3 else None,
        ],
    )
