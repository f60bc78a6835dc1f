"""
TTL keep-alive: register a key that expires unless it is refreshed, and refresh it in a loop.

A service registers itself under ``/examples/services/<name>`` with a short TTL; while it runs,
a LoopingCall refreshes the TTL (a refresh does not wake watchers). If the process dies, the key
expires and watchers see an ``expire`` event.

Run: python examples/ttl_keepalive.py [ENDPOINTS] [SECONDS]   (or set TXETCD2_ENDPOINTS)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.task import LoopingCall, deferLater, react

from txetcd2 import EtcdClient

KEY = "/examples/services/worker-1"
TTL = 3


def endpoints(argv: list[str]) -> str:
    """
    The etcd endpoints: the first argument, else ``$TXETCD2_ENDPOINTS``, else the default.
    """
    return (
        argv[1] if len(argv) > 1 else os.environ.get("TXETCD2_ENDPOINTS", "http://127.0.0.1:2379")
    )


async def main(reactor: Any, urls: str, seconds: float) -> None:
    client = EtcdClient(urls, reactor=reactor)
    try:
        response = await client.set(KEY, "10.0.0.7:8080", ttl=TTL)
        print(f"registered {KEY} with ttl {response.node.ttl}s")

        def refresh() -> Any:
            d = client.refresh(KEY, TTL)
            d.addCallback(lambda r: print(f"refreshed, expires {r.node.expiration:%H:%M:%S}"))
            return d

        keepalive = LoopingCall(refresh)
        keepalive.clock = reactor
        # Refresh at a third of the TTL, so one slow or failed refresh is not fatal.
        done = keepalive.start(TTL / 3, now=False)
        await deferLater(reactor, seconds)
        keepalive.stop()
        await done
        print("still registered:", await client.get_value(KEY))
        await client.delete(KEY)
        print("unregistered")
    finally:
        await client.close()


if __name__ == "__main__":
    react(main, [endpoints(sys.argv), float(sys.argv[2]) if len(sys.argv) > 2 else 5.0])
