"""
The demo's writer: a few changes under a prefix, one of each kind a watcher can see.

set, update, a key with a TTL that expires, a directory with keys, a delete, and the recursive
removal of the directory. ``examples/demo.py`` runs it against its embedded etcd; it works
against any etcd too.

Run: python examples/writer.py [ENDPOINTS] [PREFIX]   (or set TXETCD2_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import deferLater, react

from txetcd2 import EtcdClient


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def make_changes(reactor: Any, client: EtcdClient, prefix: str, pause: float = 0.3) -> int:
    """
    Make the demo's changes under ``prefix``, pausing between them so a person can follow.

    :returns: how many watch events the changes produce (for a recursive watch of ``prefix``).
    """

    async def step(text: str) -> None:
        print(f"writer: {text}", file=sys.stderr, flush=True)
        await deferLater(reactor, pause)

    await client.set(f"{prefix}/greeting", "hello")
    await step(f"set {prefix}/greeting")
    await client.update(f"{prefix}/greeting", "hello, world")
    await step(f"updated {prefix}/greeting")

    session = await client.set(f"{prefix}/session", "expires soon", ttl=1)
    await step(f"set {prefix}/session with a 1s TTL")
    # Wait for etcd to expire it: the next change of the key is the expire event.
    expired = await client.watch(f"{prefix}/session", index=session.index + 1)
    await step(f"{prefix}/session: {expired.action}")

    await client.mkdir(f"{prefix}/config")
    await client.set(f"{prefix}/config/color", "blue")
    await client.set(f"{prefix}/config/size", "large")
    await step(f"created directory {prefix}/config with two keys")

    await client.delete(f"{prefix}/greeting")
    await step(f"deleted {prefix}/greeting")
    await client.rmdir(f"{prefix}/config", recursive=True)
    await step(f"removed directory {prefix}/config")
    return 9


async def main(reactor: Any, urls: str, prefix: str) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        await make_changes(reactor, client, prefix)
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv), sys.argv[2] if len(sys.argv) > 2 else "/demo"])
