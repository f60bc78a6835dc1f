"""
A configuration mirror: a local, read-only dict of everything under ``/examples/config``, kept
equal to etcd by one watcher, with a callback for each change.

Run: python examples/recipe_mirror.py [ENDPOINTS]
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient
from txetcd2.recipes import Mirror

PREFIX = "/examples/config"


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        await client.set(f"{PREFIX}/db/host", "db1.internal")
        config = Mirror(client, PREFIX)
        config.on("change", lambda key, old, new: print(f"change {key}: {old!r} -> {new!r}"))
        config.start()
        await config.ready
        print(f"ready: {dict(config)}")
        await client.set(f"{PREFIX}/db/host", "db2.internal")
        await client.set(f"{PREFIX}/feature/dark-mode", "on")
        await client.delete(f"{PREFIX}/db", recursive=True)
        await deferLater(reactor, 0.5)
        print(f"final: {dict(config)}")
        await config.stop()
        await client.delete(PREFIX, recursive=True)
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv)])
